"""Broken on purpose: registers without the `grpc.default_authority` fix.

grpcio >= 1.57 then sends the percent-encoded socket path as `:authority`,
which the Rust Agent resets (spec §2.7). Discover itself is served correctly.
"""

import akri_sdk.registration as registration
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.runtime import run

registration.REGISTRATION_CHANNEL_OPTIONS = tuple(
    option
    for option in registration.REGISTRATION_CHANNEL_OPTIONS
    if option[0] != "grpc.default_authority"
)

if __name__ == "__main__":
    run(DebugEcho())
