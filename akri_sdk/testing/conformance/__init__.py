"""The conformance suite: judge any Discovery Handler command from the outside.

A handler in any language is only ever seen by the Agent through its socket,
so the suite runs the command as a process with `DISCOVERY_HANDLERS_DIRECTORY`
set to a fresh directory, plays the Agent with `FakeAgent`, and checks what the
real Agent depends on (spec §2, §3; DESIGN runtime rules): registration,
prompt response headers, snapshot semantics, INVALID_ARGUMENT for hostile
details, concurrent streams, cancellation, re-registration after Agent
restarts (never on a timer) and a clean SIGTERM. A second run of the command
starts before its Agent does ("Agent absent at start").

Every check produces one `CheckResult`, printed as one line that says what to
fix when it fails. Checks are independent where the protocol allows: a failure
is reported and the suite moves on; a check that needs something an earlier
one could not provide is reported as failed with "not run: ...".

Modules, one job each:

- `report`: CheckResult, ConformanceReport, and the recorder that prints lines.
- `text`: how figures, devices and streams are worded in those lines.
- `hostile`: the hostile details to try (`hostile_cases`).
- `process`: the handler command: start, output capture, SIGTERM, kill; its directory.
- `context`: the options and the state the main run's checks share.
- `checks_registration`, `checks_streams`, `checks_hostile`, `checks_restarts`,
  `checks_sigterm`: the checks, by subject.
- `absent`: the second run, whose Agent starts after the handler.
- `runner`: `run_conformance`, which runs both and prints the summary.
"""

from __future__ import annotations

from akri_sdk.testing.conformance.hostile import HostileCase, hostile_cases
from akri_sdk.testing.conformance.report import CheckResult, ConformanceReport
from akri_sdk.testing.conformance.runner import run_conformance

__all__ = [
    "CheckResult",
    "ConformanceReport",
    "HostileCase",
    "hostile_cases",
    "run_conformance",
]
