"""Broker credentials and TLS from `discovery_properties` (upstream's key names).

Values stay in `Secret`s until the moment paho needs them, and no message built
here contains one. The CA is loaded from memory; Python's `ssl` can only load a
client certificate and key from files, so they are written to a fresh private
directory (0700, files 0600, in /dev/shm when it exists so they never reach a
disk), loaded into the SSLContext and deleted at once: they exist for the
duration of one `load_cert_chain` call, not for the life of the task.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from akri_sdk import DetailsError, DiscoveryProperties, PropertyError, Secret

from akri_sdk_mqtt.uri import BrokerUri

__all__ = [
    "CA",
    "CERTIFICATE",
    "KEY",
    "PASSWORD",
    "USERNAME",
    "BrokerAuth",
    "private_directory",
]

USERNAME = "mqtt_broker_username"
PASSWORD = "mqtt_broker_password"
CA = "mqtt_broker_ca"
CERTIFICATE = "mqtt_broker_certificate"
KEY = "mqtt_broker_key"
_MEMORY_DIR = "/dev/shm"


@dataclass(frozen=True)
class BrokerAuth:
    """What a connection authenticates with. repr shows no secret."""

    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    client_certificate: bool = False
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_properties(cls, properties: DiscoveryProperties, uri: BrokerUri) -> BrokerAuth:
        """Read and check credentials; DetailsError (naming keys, never values) if unusable."""
        try:
            return cls._build(properties, uri)
        except PropertyError as error:
            raise DetailsError(str(error)) from None

    @classmethod
    def _build(cls, properties: DiscoveryProperties, uri: BrokerUri) -> BrokerAuth:
        warnings: list[str] = []
        username = properties.text(USERNAME, strip=True) or None
        password = properties.secret(PASSWORD)
        if password is not None:
            # `kubectl create secret --from-file` keeps the file's final newline.
            password = Secret(password.reveal().rstrip("\r\n"), name=PASSWORD)
            if not password:
                password = None
        if username is None and uri.username is not None:
            username = uri.username
            if password is None and uri.password is not None:
                password = Secret(uri.password, name="mqttBrokerUri")
            warnings.append(
                "mqttBrokerUri carries credentials; anyone who can read the Configuration "
                f"can read them: prefer the discovery properties {USERNAME}/{PASSWORD}"
            )
        if password is not None and username is None:
            raise DetailsError(
                f"discovery property {PASSWORD!r} is set but {USERNAME!r} is not; "
                "MQTT sends a password only with a user name"
            )
        tls_keys = [k for k in (CA, CERTIFICATE, KEY) if properties.get(k) is not None]
        context = None
        with_certificate = False
        if uri.tls:
            context, with_certificate = _tls_context(properties)
        elif tls_keys:
            warnings.append(
                f"{', '.join(tls_keys)} ignored: mqttBrokerUri uses {uri.scheme}://, "
                "not a TLS scheme (mqtts://, ssl:// or wss://)"
            )
        return cls(username, password, context, with_certificate, tuple(warnings))


def _tls_context(properties: DiscoveryProperties) -> tuple[ssl.SSLContext, bool]:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca = properties.secret(CA)
    if ca is not None:
        # A fresh context trusts only the given CA, as upstream does.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cadata=ca.reveal())
        except (ssl.SSLError, ValueError):
            raise DetailsError(f"discovery property {CA!r} is not a PEM CA certificate") from None
    certificate = properties.secret(CERTIFICATE)
    key = properties.secret(KEY)
    if (certificate is None) != (key is None):
        given, missing = (CERTIFICATE, KEY) if key is None else (KEY, CERTIFICATE)
        raise DetailsError(
            f"discovery property {given!r} is set but {missing!r} is not; "
            "a client certificate needs its key"
        )
    if certificate is not None and key is not None:
        with private_directory() as directory:
            cert_path = _write_private(directory / "client.crt", certificate)
            key_path = _write_private(directory / "client.key", key)
            try:
                context.load_cert_chain(cert_path, key_path)
            except (ssl.SSLError, ValueError):
                raise DetailsError(
                    f"discovery properties {CERTIFICATE!r} and {KEY!r} are not a PEM "
                    "certificate and its unencrypted private key (PKCS#8, EC or RSA)"
                ) from None
    return context, certificate is not None


@contextlib.contextmanager
def private_directory() -> Iterator[Path]:
    """A 0700 directory, in memory when possible, removed with its contents on exit."""
    base = _MEMORY_DIR if os.access(_MEMORY_DIR, os.W_OK | os.X_OK) else None
    path = Path(tempfile.mkdtemp(prefix="akri-mqtt-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_private(path: Path, secret: Secret) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(secret.reveal_bytes())
    return str(path)
