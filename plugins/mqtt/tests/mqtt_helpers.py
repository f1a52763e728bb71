"""Test peers for the MQTT plugin: a real mosquitto, test certificates, paho clients,
and the in-process `Served` harness (copied from the SDK's tests on purpose: a
plugin's tests must not import another distribution's test modules)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from akri_sdk.handler import DiscoveryHandler
from akri_sdk.runtime import HandlerRuntime
from akri_sdk.testing.harness import ServedHandlers
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


def find_mosquitto() -> str:
    """The mosquitto binary; a missing one fails in CI and skips (loudly) elsewhere."""
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if path is None:
        message = (
            "mosquitto is not installed (run `bash scripts/system-deps.sh`, or "
            "apt-get install mosquitto); the MQTT plugin is tested against a real broker"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def die_with_parent(argv: list[str]) -> list[str]:
    """`argv` run so that it gets SIGTERM when the test process dies, even by a crash,
    and no broker outlives a run whose fixtures never tore down. util-linux's setpriv
    sets the parent-death signal before exec; a preexec_fn cannot, as forking from a
    process with gRPC threads in Python code is not safe."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def mosquitto_password_line(user: str, password: str) -> str:
    """A mosquitto 2.x password file line ($7$: PBKDF2-SHA512, as mosquitto_passwd writes)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class Pki:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @property
    def other_ca(self) -> Path:
        return self.directory / "other-ca.crt"

    @classmethod
    def generate(cls, directory: Path) -> Pki:
        """EC P-256 certificates made with the openssl CLI, valid for one day."""
        openssl = shutil.which("openssl")
        if openssl is None:
            message = "the openssl CLI is needed to make test certificates"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        for name in ("ca", "other-ca"):
            run("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt",
                "-days", "1", "-subj", f"/CN=akri test {name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        for name, extensions in (
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
            ("client", "extendedKeyUsage=clientAuth"),
        ):
            (directory / f"{name}.ext").write_text(extensions + "\n")
            run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=akri-{name}")  # fmt: skip
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-out", f"{name}.crt",
                "-extfile", f"{name}.ext")  # fmt: skip
        for path in directory.iterdir():
            path.chmod(0o644)  # mosquitto may drop to its own user before reading them
        return cls(directory)


class Broker:
    """A mosquitto process on 127.0.0.1 with one listener; restartable on the same port."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        tls: str | None = None,
        pki: Pki | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.tls = tls  # None, "password" or "certificate"
        self.pki = pki
        self.users = users or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "mosquitto.log"
        self.config_path = directory / "mosquitto.conf"
        self._write_config()

    @property
    def uri(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # keep reading our 0600 files after startup
        if self.users:
            password_file = self.directory / "passwords"
            password_file.write_text(
                "".join(mosquitto_password_line(u, p) + "\n" for u, p in self.users.items())
            )
            password_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            assert self.pki is not None
            lines += [
                f"cafile {self.pki.ca}",
                f"certfile {self.pki.server_cert}",
                f"keyfile {self.pki.server_key}",
            ]
            if self.tls == "certificate":
                lines += ["require_certificate true", "use_identity_as_username true"]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 5.0) -> None:
        assert self.process is None, "already running"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            die_with_parent([self.binary, "-c", str(self.config_path)]), stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not listen within {timeout}s:\n{self.log()}")
            time.sleep(0.01)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class Publisher:
    """A paho client that publishes for a test (threaded loop)."""

    def __init__(
        self,
        broker: Broker,
        *,
        client_id: str = "",
        will: tuple[str, bytes] | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        tls: dict[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if tls is not None:
            self.client.tls_set(**tls)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1
    ) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)

    def die(self) -> None:
        """Drop the TCP connection without DISCONNECT, so the broker sends the last will."""
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        self.client.loop_stop()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


class Served(ServedHandlers):
    """The testing kit's harness with a short stop grace: streams are still open when
    a test ends."""

    async def start(self, *handlers: DiscoveryHandler, **config: Any) -> list[HandlerRuntime]:
        config.setdefault("stop_grace", 0.1)
        return await super().start(*handlers, **config)


def ids(devices: Iterator[Any] | tuple[Any, ...] | None) -> list[str]:
    return sorted(d.id for d in devices or ())
