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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any
from urllib.parse import urlsplit

import grpc

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.details import load_yaml
from akri_sdk.device import Device, is_env_name
from akri_sdk.testing.fake_agent import (
    REGISTRATION_SOCKET_NAME,
    UDS,
    DiscoverStream,
    FakeAgent,
    Registration,
    RejectedCall,
)
from akri_sdk.testing.raw_discover import RawReply, raw_discover

__all__ = [
    "CheckResult",
    "ConformanceReport",
    "HostileCase",
    "hostile_cases",
    "run_conformance",
]

_NO_PROPERTIES: Mapping[str, bytes | None] = MappingProxyType({})
_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_ENDPOINT_TYPES = {0: "UDS", 1: "NETWORK"}

# After a rejected registration, how long a good one may still take to come.
_REJECTION_GRACE = 1.0
# Between dropping every stream and restarting the Agent: handlers that
# re-register when a stream closes (the Rust built-ins) do it in this time.
_SETTLE = 0.5
# After the handler's socket appears and before its Agent starts, so the
# handler has looked for the Agent at least once and found nothing.
_ABSENT_HEAD_START = 0.3
_POLL = 0.02
_FIVE_MB = 5 * 1024 * 1024


# ---- results -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, verdict, what was seen (or what to fix) and a figure."""

    name: str
    passed: bool
    detail: str = ""
    figure: str = ""

    def line(self) -> str:
        """The printed form: `PASS name (detail) figure` or `FAIL name: detail figure`."""
        if self.passed:
            text = f"PASS {self.name}" + (f" ({self.detail})" if self.detail else "")
        else:
            text = f"FAIL {self.name}: {self.detail or 'failed'}"
        return f"{text} {self.figure}" if self.figure else text


@dataclass(slots=True)
class ConformanceReport:
    """Every check of one suite run, in the order they were printed."""

    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed_count(self) -> int:
        return sum(1 for check in self.checks if check.passed)

    @property
    def failed_count(self) -> int:
        return len(self.checks) - self.passed_count

    @property
    def ok(self) -> bool:
        """True when there were checks and all of them passed."""
        return bool(self.checks) and self.failed_count == 0

    def summary(self) -> str:
        return f"{self.passed_count} passed, {self.failed_count} failed"

    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def get(self, name: str) -> CheckResult:
        """The check called `name` (KeyError lists the names there are)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check {name!r}; checks: {[c.name for c in self.checks]}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "checks": [asdict(check) for check in self.checks],
            "passed": self.passed_count,
            "failed": self.failed_count,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def _ms(seconds: float) -> str:
    return f"{max(seconds, 0.0) * 1000:.0f} ms"


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s"


def _not_run(name: str, reason: str) -> CheckResult:
    return CheckResult(name, False, f"not run: {reason}")


def _excerpt(text: str | None, limit: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- hostile details -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostileCase:
    """discoveryDetails a handler must refuse with INVALID_ARGUMENT (DESIGN rule 6)."""

    label: str
    details: str


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def _alias_bomb(key: str | None) -> str:
    """Nine levels of ten aliases each: 10^9 values once expanded."""
    lines = ["lol0: &lol0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [
        f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * 10) + "]"
        for level in range(1, 9)
    ]
    if key is not None:
        lines.append(f"{json.dumps(key)}: *lol8")
    return "\n".join(lines)


def hostile_cases(details: str) -> list[HostileCase]:
    """The hostile details to try, shaped after the handler's own good `details`.

    Where the good details are a mapping, the wrong-type cases and the alias
    bomb use its first key, so a handler that only looks at its own keys still
    meets them. Cases identical to the good details are left out.
    """
    try:
        parsed = load_yaml(details)
    except ValueError:
        parsed = None
    mapping = parsed if isinstance(parsed, dict) and parsed else None
    key = next(iter(mapping)) if mapping is not None else None
    if key is not None and not isinstance(key, str):
        key = None
    cases = [HostileCase("non-YAML details", "{unclosed: [yaml")]
    if mapping is not None:
        cases.append(HostileCase("a scalar where a mapping is expected", "just a string"))
    if mapping is not None and key is not None and mapping[key] is not None:
        expected = _kind(mapping[key])
        wrong = "[wrong, type]" if expected == "a mapping" else "{wrong: type}"
        given = "a list" if expected == "a mapping" else "a mapping"
        cases.append(
            HostileCase(f"{given} where {key!r} expects {expected}", f"{json.dumps(key)}: {wrong}")
        )
    cases += [
        HostileCase("empty details", ""),
        # The good details, made 5 MB long by a comment: only a size bound refuses it.
        HostileCase("5 MB details", details + "\n# " + "x" * _FIVE_MB),
        HostileCase("a YAML alias bomb", _alias_bomb(key)),
    ]
    return [case for case in cases if case.details != details]


@dataclass(frozen=True, slots=True)
class _Reply:
    """How a handler answered one Discover call, as far as the wire shows it."""

    status: int | None = None
    message: str | None = None
    headers_first: bool = False  # response headers came before any status
    snapshots: int = 0
    frames_seen: bool = True  # False over TCP, where grpcio hides the frames
    reset: int | None = None
    timed_out: bool = False


def _raw_reply(raw: RawReply) -> _Reply:
    return _Reply(
        status=raw.status,
        message=raw.status_message,
        headers_first=bool(raw.header_blocks) and not raw.trailers_only,
        snapshots=len(raw.messages),
        reset=raw.reset_code,
    )


def _status_advice(status: int) -> str:
    name = _STATUS_NAMES.get(status, str(status))
    advice = {
        "UNKNOWN": "an exception escaped the Discover method; catch bad details and abort "
        "with INVALID_ARGUMENT",
        "INTERNAL": "bad details are the caller's error: abort with INVALID_ARGUMENT",
        "RESOURCE_EXHAUSTED": "that is gRPC's message size limit: raise the server's maximum "
        "receive message size above 5 MB and refuse oversized details with INVALID_ARGUMENT "
        "yourself",
        "OUT_OF_RANGE": "that is gRPC's message size limit: raise the server's maximum receive "
        "message size above 5 MB and refuse oversized details with INVALID_ARGUMENT yourself",
        "OK": "ending the call with OK tells the Agent nothing; abort with INVALID_ARGUMENT",
    }.get(name, "abort with INVALID_ARGUMENT")
    return (
        f"answered {name} instead of INVALID_ARGUMENT: {advice} (the Agent treats any other "
        "status as a temporary handler failure)"
    )


def _judge_refusal(reply: _Reply, waited: float) -> tuple[bool, str]:
    """INVALID_ARGUMENT as the call's first and only reply, or what to fix."""
    if reply.timed_out:
        return False, (
            f"no answer within {waited:g} s (a stream left open without devices, or the handler "
            "hangs on this input): refuse it with INVALID_ARGUMENT at once"
        )
    if reply.reset is not None:
        return False, f"reset the HTTP/2 stream (error code {reply.reset}) instead of answering"
    if reply.status is None:
        if reply.snapshots:
            return False, (
                "accepted the details, opened a stream and sent devices: refuse them with "
                "INVALID_ARGUMENT before sending response headers"
            )
        return False, "closed the call without a gRPC status"
    if reply.status != _INVALID_ARGUMENT:
        return False, _status_advice(reply.status)
    if reply.headers_first:
        return False, (
            "answered INVALID_ARGUMENT after response headers: the Agent reads that as a stream "
            "that ended, not a refused call; fail before sending headers (a trailers-only reply)"
        )
    form = "trailers-only" if reply.frames_seen else "status only: frames not visible over TCP"
    message = _excerpt(reply.message, 80)
    return True, f"{form}, {message!r}" if message else f"{form}, no message"


# ---- the process under test ------------------------------------------------------


class _CannotStart(Exception):
    """The handler command could not be executed at all."""


class _HandlerProcess:
    """The command under test, in its own session so every child can be stopped."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], *, show_output: bool
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.show_output = show_output
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None
        self._killed = False

    async def start(self) -> None:
        output: int | IO[bytes]
        if self.show_output:
            output = 2  # our stderr: stdout stays for the check lines
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
            output = self._log
        self.started_at = time.monotonic()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise _CannotStart(f"cannot run {self.command[0]!r}: {error}") from error

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def how_it_ended(self) -> str:
        """`exited with status N` or `was killed by signal N`; '' while it runs."""
        code = self.returncode
        if code is None:
            return ""
        return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"

    def exit_note(self, *, output: bool = True) -> str:
        """Why the handler is gone, with its last output, or '' while it runs."""
        how = self.how_it_ended()
        if not how:
            return ""
        tail = self.output_tail() if output else ""
        return f"the handler {how}" + (f"; its last output: {tail}" if tail else "")

    def output_tail(self, limit: int = 300) -> str:
        if self._log is None or self._log.closed:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        data = os.pread(fd, limit, max(0, size - limit))
        return _excerpt(data.decode(errors="replace"), limit)

    async def terminate(self, timeout: float) -> tuple[int | None, float]:  # noqa: ASYNC109
        """SIGTERM, then wait: (exit status or None if it had to be killed, seconds taken)."""
        assert self.process is not None
        sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
        except TimeoutError:
            await self.kill()
            return None, time.monotonic() - sent
        return code, time.monotonic() - sent

    async def kill(self) -> None:
        """Kill the whole process group: the handler and anything it started (once)."""
        process = self.process
        if process is None or self._killed:
            return
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    async def stop(self) -> None:
        """Kill what is left and let go of the output file."""
        await self.kill()
        if self._log is not None:
            self._log.close()


@contextlib.asynccontextmanager
async def _handler_process(
    command: Sequence[str], directory: Path, extra_env: Mapping[str, str], show_output: bool
) -> AsyncIterator[_HandlerProcess]:
    env = {**os.environ, **extra_env, "DISCOVERY_HANDLERS_DIRECTORY": str(directory)}
    process = _HandlerProcess(command, env, show_output=show_output)
    try:
        await process.start()
        yield process
    finally:
        await process.stop()


@contextlib.contextmanager
def _short_directory() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes: stay directly under /tmp.
    path = Path(tempfile.mkdtemp(prefix="akri-conf-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _exists(path: Path) -> bool:
    """Whether anything, even a dangling link or a socket, is at `path`."""
    return os.path.lexists(path)


def _sockets_in(directory: Path) -> list[Path]:
    found = []
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.name == REGISTRATION_SOCKET_NAME:
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(entry.lstat().st_mode):
                    found.append(entry)
    return sorted(found)


def _request(details: str, properties: Mapping[str, bytes | None]) -> pb.DiscoverRequest:
    return pb.DiscoverRequest(
        discovery_details=details,
        discovery_properties={
            key: pb.ByteData() if value is None else pb.ByteData(vec=value)
            for key, value in properties.items()
        },
    )


def _canonical(devices: Sequence[Device]) -> tuple[bytes, ...]:
    """A snapshot's identity, independent of device order."""
    return tuple(sorted(device.wire() for device in devices))


def _describe_devices(devices: Sequence[Device], limit: int = 5) -> str:
    ids = [device.id for device in devices]
    shown = ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")
    noun = "device" if len(ids) == 1 else "devices"
    return f"{len(ids)} {noun}" + (f": {shown}" if ids else "")


def _judge_devices(devices: Sequence[Device]) -> tuple[str, str]:
    """(problem, note) for one snapshot's devices, as the Agent will use them (§3.6, §3.7)."""
    ids = [device.id for device in devices]
    if not all(ids):
        return "a device has an empty id: ids name Instances and must be stable", ""
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        return (
            f"duplicate device ids {duplicates[:3]}: the Agent collapses them into one "
            "Instance; each message must list each device once",
            "",
        )
    bad_names = sorted({k for device in devices for k in device.properties if not is_env_name(k)})
    if bad_names:
        return "", (
            f"; note: property names {bad_names[:3]} are not valid environment variable names, "
            "which broker pods need"
        )
    return "", ""


def _status_name(code: grpc.StatusCode | None) -> str:
    return "no status" if code is None else str(code.name)


def _stream_state(stream: DiscoverStream) -> str:
    """Where a stream without a snapshot stands, for failure lines."""
    if not stream.ended:
        return "still open" if stream.headers_at is not None else "no response headers"
    return f"ended with {_status_name(stream.code)}: {_excerpt(stream.message)!r}"


# ---- the suite -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Options:
    """run_conformance's arguments, checked once."""

    command: tuple[str, ...]
    details: str
    properties: Mapping[str, bytes | None]
    name: str | None
    observe: float
    timeout: float
    headers_within: float
    streams: int
    env: Mapping[str, str]
    show_output: bool

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("no handler command to run")
        if not (self.observe > 0 and self.timeout > 0 and self.headers_within > 0):
            raise ValueError("observe, timeout and headers_within must be positive")
        if self.streams < 1:
            raise ValueError("streams must be at least 1")
        for key, value in self.properties.items():
            if not isinstance(key, str) or not (value is None or isinstance(value, bytes)):
                raise ValueError(f"property {key!r}: values must be bytes or None")


@dataclass(slots=True)
class _FirstRun:
    """What the absent-Agent run needs from the main run: when to start its Agent."""

    registered: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    latency: float | None = None
    socket_name: str | None = None


class _Recorder:
    """Appends results to the report and prints each as it is decided."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.report = ConformanceReport()
        self.out = out

    def add(self, result: CheckResult) -> None:
        self.report.checks.append(result)
        self.out(result.line())


class _PresentAgentRun:
    """The main run: the Agent is up before the handler starts."""

    def __init__(
        self,
        options: _Options,
        recorder: _Recorder,
        directory: Path,
        agent: FakeAgent,
        process: _HandlerProcess,
        first_run: _FirstRun,
    ) -> None:
        self.options = options
        self.record = recorder.add
        self.directory = directory
        self.agent = agent
        self.process = process
        self.registration: Registration | None = None
        self.endpoint: Registration | str | None = None
        self.socket_path: Path | None = None
        self.first_run = first_run
        self.via = ""  # how Discover is reached when registration failed
        self._exit_reported = False
        self.main: DiscoverStream | None = None
        self.main_refused = False
        self.opened: list[DiscoverStream] = []

    # ---- helpers ----

    async def _wait(self, ready: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until `ready()`, the handler exits or `timeout` passes; `ready()` then."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.returncode is not None or time.monotonic() >= deadline:
                return ready()
            await asyncio.sleep(_POLL)
        return True

    def _with_exit(self, detail: str) -> str:
        """`detail`, plus why the handler is gone if it is (its output only the first time)."""
        note = self.process.exit_note(output=not self._exit_reported)
        self._exit_reported = self._exit_reported or bool(note)
        return f"{detail} ({note})" if note else detail

    def _discover(self, details: str | None = None) -> DiscoverStream:
        assert self.endpoint is not None
        text = self.options.details if details is None else details
        stream = self.agent.discover(self.endpoint, text, self.options.properties)
        self.opened.append(stream)
        return stream

    async def _first_snapshot(self, stream: DiscoverStream) -> bool:
        await self._wait(lambda: bool(stream.snapshots) or stream.ended, self.options.timeout)
        return bool(stream.snapshots)

    async def _guarded(self, name: str, check: Callable[[], Awaitable[CheckResult]]) -> None:
        """Run one check; an unexpected error fails that check, not the suite."""
        try:
            result = await check()
        except Exception as error:
            result = CheckResult(
                name, False, self._with_exit(f"the check broke: {type(error).__name__}: {error}")
            )
        self.record(result)

    # ---- the sequence ----

    async def run(self) -> None:
        try:
            await self._registration_checks()
        finally:
            self.first_run.socket_name = self.socket_path.name if self.socket_path else None
            self.first_run.registered.set()
        if self.endpoint is None:
            reason = "no endpoint to call (the handler did not register)"
            for name in (
                "response headers",
                "first snapshot",
                "INVALID_ARGUMENT for hostile details",
                "serves after bad details",
                "concurrent streams",
                "sends only on change",
                "stream stays open",
            ):
                self.record(_not_run(name, reason))
        else:
            await self._stream_checks()
        await self._guarded("no registration on a timer", self._check_timer)
        await self._guarded("cancellation", self._check_cancellation)
        await self._guarded(
            "re-registration after an Agent restart with open streams",
            self._check_restart_with_streams,
        )
        await self._guarded(
            "re-registration after an Agent restart without open streams",
            self._check_restart_without_streams,
        )
        await self._guarded("SIGTERM", self._check_sigterm)

    # ---- registration ----

    async def _registration_checks(self) -> None:
        agent = self.agent
        rejected_before = len(agent.rejected)
        await _await_registration(agent, self.process, self.options.timeout)
        rejected = agent.rejected[rejected_before:]
        if agent.registrations:
            registration = agent.registrations[0]
            self.registration = registration
            self.endpoint = registration
            latency = registration.at - self.process.started_at
            self.first_run.latency = latency
            self.record(
                CheckResult(
                    "registration",
                    True,
                    "the Agent was up before the handler started",
                    _ms(latency),
                )
            )
        else:
            self.record(CheckResult("registration", False, self._no_registration(rejected)))
        self.record(self._authority_result(rejected))
        if self.registration is not None:
            self.record(self._fields_result(self.registration))
            if self.registration.endpoint_type == UDS:
                self.socket_path = Path(self.registration.endpoint)
        else:
            self.record(self._fields_or_rejection(rejected))
            self._fall_back_to_socket()

    def _no_registration(self, rejected: Sequence[RejectedCall]) -> str:
        if rejected:
            reasons = sorted({call.reason for call in rejected})
            shown = "; ".join(reasons[:3])
            return f"the Agent rejected all {len(rejected)} registration attempt(s): {shown}"
        if self.process.returncode is not None:
            self._exit_reported = True
            tail = self.process.output_tail()
            how = f"the handler {self.process.how_it_ended()} before registering"
            return how + (f"; its last output: {tail}" if tail else "")
        return (
            f"no RegisterDiscoveryHandler call within {self.options.timeout:g} s; register on "
            f"$DISCOVERY_HANDLERS_DIRECTORY/{REGISTRATION_SOCKET_NAME} once serving"
        )

    def _authority_result(self, rejected: Sequence[RejectedCall]) -> CheckResult:
        name = "registration authority"
        bad = [call for call in rejected if call.reason.startswith("malformed :authority")]
        if bad:
            call = bad[0]
            error = call.reason.removeprefix("malformed :authority").strip(" ()")
            return CheckResult(
                name,
                False,
                f"the Agent resets registrations whose :authority is {call.authority!r} "
                f"({error} in the Rust http crate); grpcio >= 1.57 sends the percent-encoded "
                "socket path for unix: targets: create the registration channel with "
                '("grpc.default_authority", "localhost")',
            )
        if self.registration is None:
            return _not_run(name, "no registration call reached the Agent")
        return CheckResult(name, True, f":authority {self.registration.authority!r}")

    def _fields_or_rejection(self, rejected: Sequence[RejectedCall]) -> CheckResult:
        for call in rejected:
            if call.reason.startswith("endpoint_type"):
                return CheckResult(
                    "registration fields",
                    False,
                    f"{call.reason}: the Agent's handler task panics on it; send 0 (UDS) or 1",
                )
        return _not_run("registration fields", "no accepted registration")

    def _fields_result(self, registration: Registration) -> CheckResult:
        problems: list[str] = []
        expected = self.options.name
        if not registration.name:
            problems.append("name is empty: it must equal Configurations' discoveryHandler.name")
        elif expected is not None and registration.name != expected:
            problems.append(f"name is {registration.name!r}, expected {expected!r}")
        note = ""
        if registration.endpoint_type == UDS:
            problem, note = self._check_uds_endpoint(registration.endpoint)
        else:
            problem = self._check_network_endpoint(registration.endpoint)
        if problem:
            problems.append(problem)
        if problems:
            return CheckResult("registration fields", False, "; ".join(problems))
        endpoint = registration.endpoint
        if registration.endpoint_type == UDS:
            endpoint = Path(endpoint).name
        detail = (
            f"name={registration.name}, endpoint={endpoint}, "
            f"endpoint_type={_ENDPOINT_TYPES[registration.endpoint_type]}, "
            f"shared={str(registration.shared).lower()}"
        )
        return CheckResult("registration fields", True, detail + note)

    def _check_uds_endpoint(self, endpoint: str) -> tuple[str, str]:
        """(problem, note) for a UDS endpoint: a socket inside the shared directory."""
        path = Path(endpoint)
        if not path.is_absolute():
            return f"UDS endpoint {endpoint!r} is not an absolute path", ""
        if path.parent.resolve() != self.directory.resolve():
            return (
                f"UDS endpoint {endpoint!r} is not in $DISCOVERY_HANDLERS_DIRECTORY "
                f"({self.directory}), the directory the Agent shares with handlers",
                "",
            )
        try:
            info = path.stat()
        except OSError:
            return f"UDS endpoint {endpoint!r} does not exist", ""
        if not stat.S_ISSOCK(info.st_mode):
            return f"UDS endpoint {endpoint!r} is not a socket", ""
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o666 != 0o666:
            return "", (
                f"; note: socket mode {mode:o}: an Agent without CAP_DAC_OVERRIDE under another "
                "uid cannot connect; chmod 0666 after binding"
            )
        return "", ""

    @staticmethod
    def _check_network_endpoint(endpoint: str) -> str:
        url = urlsplit(endpoint)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme != "http" or not url.hostname or port is None:
            return f"NETWORK endpoint {endpoint!r} is not an http://host:port URL"
        return ""

    def _fall_back_to_socket(self) -> None:
        """Judge Discover anyway through the handler's socket, if it has exactly one."""
        sockets = _sockets_in(self.directory)
        if self.options.name is not None:
            named = self.directory / f"{self.options.name}.sock"
            sockets = [named] if named in sockets else sockets
        if len(sockets) == 1:
            self.socket_path = sockets[0]
            self.endpoint = str(sockets[0])
            self.via = f"; called through {sockets[0].name}, found in the directory"

    # ---- Discover ----

    async def _stream_checks(self) -> None:
        await self._guarded("response headers", self._check_headers)
        if self.main is not None and not self.main_refused:
            await self._guarded("first snapshot", self._check_first_snapshot)
        else:
            self.record(_not_run("first snapshot", "the stream did not open"))
        for case in hostile_cases(self.options.details):
            await self._guarded(f"INVALID_ARGUMENT for {case.label}", self._hostile_check(case))
        await self._guarded("serves after bad details", self._check_serves_after_bad_details)
        await self._guarded("concurrent streams", self._check_concurrent)
        await self._check_observation_window()

    async def _check_headers(self) -> CheckResult:
        name = "response headers"
        stream = self.main = self._discover()
        await self._wait(
            lambda: stream.headers_at is not None or stream.ended, self.options.timeout
        )
        if stream.headers_at is None:
            if stream.ended:
                self.main_refused = True
                return CheckResult(
                    name,
                    False,
                    f"the handler refused the details under test with "
                    f"{_status_name(stream.code)}: {_excerpt(stream.message)!r}; check --details",
                )
            return CheckResult(
                name,
                False,
                self._with_exit(
                    f"no response headers within {self.options.timeout:g} s: the Agent awaits "
                    "them inside its reconcile; return the stream at once and discover "
                    "asynchronously"
                ),
            )
        latency = stream.headers_at - stream.opened_at
        figure = _ms(latency)
        if latency > self.options.headers_within:
            return CheckResult(
                name,
                False,
                f"response headers took longer than {self.options.headers_within:g} s: the "
                "Agent awaits them inside its reconcile; send headers at once and discover "
                "asynchronously",
                figure,
            )
        bound = f"within the {self.options.headers_within:g} s bound"
        return CheckResult(name, True, bound + self.via, figure)

    async def _check_first_snapshot(self) -> CheckResult:
        name = "first snapshot"
        stream = self.main
        assert stream is not None
        if not await self._first_snapshot(stream):
            if stream.ended:
                return CheckResult(
                    name,
                    False,
                    f"the stream ended with {_status_name(stream.code)} "
                    f"({_excerpt(stream.message)!r}) before any DiscoverResponse",
                )
            return CheckResult(
                name,
                False,
                self._with_exit(
                    f"no DiscoverResponse within {self.options.timeout:g} s with the details "
                    "under test: send the complete device set as soon as it is known"
                ),
            )
        first = stream.snapshots[0]
        figure = _ms(first.at - stream.opened_at)
        problem, note = _judge_devices(first.devices)
        if problem:
            return CheckResult(name, False, problem, figure)
        return CheckResult(name, True, _describe_devices(first.devices) + note, figure)

    async def _hostile_reply(self, details: str) -> _Reply:
        timeout = self.options.timeout
        if self.socket_path is not None:
            request = _request(details, self.options.properties)
            try:
                raw = await raw_discover(self.socket_path, request, timeout=timeout)
            except TimeoutError:
                return _Reply(timed_out=True)
            return _raw_reply(raw)
        # A network endpoint: raw_discover speaks only over a unix socket, and
        # grpcio cannot tell a trailers-only reply from headers then trailers.
        stream = self._discover(details)
        await self._wait(lambda: bool(stream.snapshots) or stream.ended, timeout)
        ended, snapshots, code = stream.ended, len(stream.snapshots), stream.code
        reply = _Reply(
            status=None if code is None else code.value[0],
            message=stream.message,
            headers_first=bool(snapshots),
            snapshots=snapshots,
            timed_out=not ended and not snapshots,
            frames_seen=False,
        )
        await stream.cancel()
        return reply

    def _hostile_check(self, case: HostileCase) -> Callable[[], Awaitable[CheckResult]]:
        async def check() -> CheckResult:
            started = time.monotonic()
            reply = await self._hostile_reply(case.details)
            figure = _ms(time.monotonic() - started)
            passed, detail = _judge_refusal(reply, self.options.timeout)
            detail = detail if passed else self._with_exit(detail)
            return CheckResult(f"INVALID_ARGUMENT for {case.label}", passed, detail, figure)

        return check

    async def _check_serves_after_bad_details(self) -> CheckResult:
        name = "serves after bad details"
        stream = self._discover()
        if await self._first_snapshot(stream):
            devices = stream.snapshots[0].devices
            return CheckResult(
                name,
                True,
                f"a good request got {_describe_devices(devices)}",
                _ms(stream.snapshots[0].at - stream.opened_at),
            )
        return CheckResult(
            name,
            False,
            self._with_exit(
                f"a good request after the hostile ones got no snapshot within "
                f"{self.options.timeout:g} s ({_stream_state(stream)}): bad details must never "
                "harm the handler"
            ),
        )

    def _reference_snapshots(self) -> set[tuple[bytes, ...]]:
        return {
            _canonical(snapshot.devices)
            for stream in self.opened
            if stream.request.discovery_details == self.options.details
            for snapshot in stream.snapshots
        }

    async def _check_concurrent(self) -> CheckResult:
        name = "concurrent streams"
        count = self.options.streams
        reference = self._reference_snapshots()
        streams = [self._discover() for _ in range(count)]
        await self._wait(lambda: all(s.snapshots or s.ended for s in streams), self.options.timeout)
        missing = [s for s in streams if not s.snapshots]
        if missing:
            ended = sum(1 for s in missing if s.ended)
            return CheckResult(
                name,
                False,
                self._with_exit(
                    f"{len(missing)} of {count} identical streams got no snapshot within "
                    f"{self.options.timeout:g} s ({ended} ended): serve every stream; the Agent "
                    "opens one per Configuration and registration"
                ),
            )
        slowest = max(s.snapshots[0].at - s.opened_at for s in streams)
        if reference:
            differing = [s for s in streams if _canonical(s.snapshots[0].devices) not in reference]
            if differing:
                return CheckResult(
                    name,
                    False,
                    f"{len(differing)} of {count} streams started with a device set no other "
                    f"stream had ({_describe_devices(differing[0].snapshots[0].devices)}): "
                    "every stream's first message must be the complete current set",
                    _ms(slowest),
                )
        devices = streams[0].snapshots[0].devices
        return CheckResult(
            name, True, f"{count} streams, each got {_describe_devices(devices)}", _ms(slowest)
        )

    async def _check_observation_window(self) -> None:
        """Only on change and never ending, judged over the main stream's life so far."""
        stream = self.main
        if stream is None or self.main_refused or not stream.snapshots:
            reason = "the first stream got no snapshot"
            self.record(_not_run("sends only on change", reason))
            self.record(_not_run("stream stays open", reason))
            return
        start = stream.snapshots[0].at
        remaining = start + self.options.observe - time.monotonic()
        if remaining > 0 and not stream.ended:
            # Legitimately timed: the point is that nothing happens.
            await self._wait(lambda: stream.ended, remaining)
        end = stream.ended_at if stream.ended_at is not None else time.monotonic()
        window = end - start
        await self._guarded("sends only on change", lambda: self._judge_changes(stream, window))
        await self._guarded("stream stays open", lambda: self._judge_open(stream, window))

    async def _judge_changes(self, stream: DiscoverStream, window: float) -> CheckResult:
        snapshots = list(stream.snapshots)
        repeats = [
            later
            for earlier, later in itertools.pairwise(snapshots)
            if _canonical(earlier.devices) == _canonical(later.devices)
        ]
        figure = f"{len(snapshots)} snapshot(s) in {_seconds(window)}"
        if repeats:
            gap = (snapshots[-1].at - snapshots[0].at) / max(1, len(snapshots) - 1)
            return CheckResult(
                "sends only on change",
                False,
                f"sent an unchanged device set again {len(repeats)} time(s) (about every "
                f"{_ms(gap)}): send only when the set changes; every message makes the Agent "
                "reconcile the Configuration",
                figure,
            )
        return CheckResult("sends only on change", True, "no repeated device set", figure)

    async def _judge_open(self, stream: DiscoverStream, window: float) -> CheckResult:
        if stream.ended:
            after = (stream.ended_at or 0.0) - stream.opened_at
            how = (
                "ended its stream"
                if stream.code == grpc.StatusCode.OK
                else f"ended its stream with {_status_name(stream.code)} "
                f"({_excerpt(stream.message)!r})"
            )
            return CheckResult(
                "stream stays open",
                False,
                self._with_exit(
                    f"{how} {_ms(after)} after it opened, after {len(stream.snapshots)} "
                    "snapshot(s), which makes the Agent delete the Configuration's Instances; "
                    "keep every stream open until the Agent cancels it"
                ),
            )
        return CheckResult("stream stays open", True, f"open for {_seconds(window)}")

    # ---- registrations over time ----

    async def _check_timer(self) -> CheckResult:
        name = "no registration on a timer"
        if self.registration is None:
            return _not_run(name, "the handler never registered")
        registrations = list(self.agent.registrations)
        window = time.monotonic() - registrations[0].at
        figure = f"over {_seconds(window)}"
        if len(registrations) > 1:
            interval = (registrations[-1].at - registrations[0].at) / (len(registrations) - 1)
            return CheckResult(
                name,
                False,
                f"registered {len(registrations)} times in {_seconds(window)} without an Agent "
                f"restart (about every {_ms(interval)}): register once per Agent start (when "
                f"{REGISTRATION_SOCKET_NAME} is recreated), never on a timer; the current Agent "
                "opens one more Discover stream per registration",
            )
        return CheckResult(name, True, "registered once", figure)

    async def _check_cancellation(self) -> CheckResult:
        name = "cancellation"
        if self.endpoint is None:
            return _not_run(name, "no endpoint to call")
        streams = [s for s in self.opened if not s.ended]
        await asyncio.gather(*(s.cancel() for s in streams))
        stream = self._discover()
        if await self._first_snapshot(stream):
            return CheckResult(
                name,
                True,
                f"{len(streams)} open streams cancelled; a new stream got "
                f"{_describe_devices(stream.snapshots[0].devices)}",
                _ms(stream.snapshots[0].at - stream.opened_at),
            )
        return CheckResult(
            name,
            False,
            self._with_exit(
                f"after {len(streams)} streams were cancelled a new stream got no snapshot "
                f"within {self.options.timeout:g} s ({_stream_state(stream)}): free a cancelled "
                "stream's resources and keep serving"
            ),
        )

    async def _restart_and_count(self) -> tuple[Registration | None, float, int]:
        """Restart the Agent; (first new registration, its delay, registrations seen)."""
        agent = self.agent
        restarted = time.monotonic()
        await agent.restart()
        await _await_registration(agent, self.process, self.options.timeout)
        if not agent.registrations:
            return None, 0.0, 0
        first = agent.registrations[0]
        # Legitimately timed: no further registration may come.
        await asyncio.sleep(self.options.observe)
        return first, first.at - restarted, len(agent.registrations)

    def _judge_reregistration(
        self, name: str, first: Registration | None, delay: float, count: int, how: str
    ) -> CheckResult | None:
        if first is None:
            return CheckResult(
                name,
                False,
                self._with_exit(
                    f"did not register again within {self.options.timeout:g} s after the Agent "
                    f"restarted {how}: the new Agent knows nothing of it; register again when "
                    f"{REGISTRATION_SOCKET_NAME} is recreated (watch its inode and ctime)"
                ),
            )
        if count > 1:
            return CheckResult(
                name,
                False,
                f"registered {count} times within {_seconds(delay + self.options.observe)} of "
                "one Agent restart: register exactly once per restart; the current Agent opens "
                "one more Discover stream per registration",
                _ms(delay),
            )
        return None

    async def _check_restart_with_streams(self) -> CheckResult:
        name = "re-registration after an Agent restart with open streams"
        registration = self.registration
        if registration is None:
            return _not_run(name, "the handler never registered")
        agent = self.agent
        configuration = "conformance"
        opened = agent.add_configuration(
            configuration, registration.name, self.options.details, self.options.properties
        )
        await self._wait(lambda: all(s.snapshots or s.ended for s in opened), self.options.timeout)
        first, delay, count = await self._restart_and_count()
        failed = self._judge_reregistration(name, first, delay, count, "(streams were open)")
        if failed is not None:
            return failed
        # The registration reopens the Configuration's stream (spec §3.1).
        reopened = agent.streams(configuration)
        await self._wait(
            lambda: any(s.snapshots or s.ended for s in reopened), self.options.timeout
        )
        if not any(s.snapshots for s in reopened):
            return CheckResult(
                name,
                False,
                self._with_exit(
                    "registered again, but the Configuration's new stream got no snapshot "
                    f"within {self.options.timeout:g} s"
                ),
                _ms(delay),
            )
        devices = next(s for s in reopened if s.snapshots).snapshots[0].devices
        return CheckResult(
            name,
            True,
            f"once; the Configuration's new stream got {_describe_devices(devices)}",
            _ms(delay),
        )

    async def _check_restart_without_streams(self) -> CheckResult:
        name = "re-registration after an Agent restart without open streams"
        if self.registration is None:
            return _not_run(name, "the handler never registered")
        agent = self.agent
        with contextlib.suppress(KeyError):
            await agent.remove_configuration("conformance")
        await asyncio.gather(*(s.cancel() for s in self.opened if not s.ended))
        # Legitimately timed: let stream-closed reactions finish before the restart.
        await asyncio.sleep(_SETTLE)
        first, delay, count = await self._restart_and_count()
        failed = self._judge_reregistration(
            name, first, delay, count, "while no stream was open (akri#558)"
        )
        if failed is not None:
            return failed
        return CheckResult(name, True, "once", _ms(delay))

    # ---- SIGTERM ----

    async def _check_sigterm(self) -> CheckResult:
        name = "SIGTERM"
        if self.process.returncode is not None:
            how = self.process.how_it_ended()
            return CheckResult(name, False, f"the handler had already {how} before SIGTERM")
        code, elapsed = await self.process.terminate(self.options.timeout)
        figure = _ms(elapsed)
        if code is None:
            return CheckResult(
                name,
                False,
                f"still running {self.options.timeout:g} s after SIGTERM (killed): stop "
                "serving, remove the socket and exit 0 promptly",
                figure,
            )
        problems = []
        if code != 0:
            how = f"died of signal {-code}" if code < 0 else f"exited with status {code}"
            problems.append(
                f"{how} on SIGTERM: handle SIGTERM and exit 0 (Kubernetes stops pods with it)"
            )
        if self.socket_path is not None and _exists(self.socket_path):
            problems.append(
                f"left its socket {self.socket_path.name} behind: remove it on exit so a "
                "restarted handler does not meet a stale socket"
            )
        if problems:
            return CheckResult(name, False, "; ".join(problems), figure)
        removed = ", socket removed" if self.socket_path is not None else ""
        return CheckResult(name, True, f"exit 0{removed}", figure)


async def _await_registration(
    agent: FakeAgent,
    process: _HandlerProcess,
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Until a registration, a rejected one plus a short grace, the handler's exit or timeout."""
    rejected_before = len(agent.rejected)
    deadline = time.monotonic() + timeout
    grace_started = False
    while not agent.registrations and process.returncode is None:
        now = time.monotonic()
        if not grace_started and len(agent.rejected) > rejected_before:
            grace_started = True
            deadline = min(deadline, now + _REJECTION_GRACE)
        if now >= deadline:
            return
        await asyncio.sleep(_POLL)


async def _head_start(
    options: _Options, first_run: _FirstRun, directory: Path, process: _HandlerProcess
) -> None:
    """Let the handler come up and look for its Agent before the Agent starts.

    With a UDS endpoint, wait for the handler's socket (it is serving); without
    one, for as long as the main run took to register, plus a margin.
    """
    await first_run.registered.wait()
    if first_run.socket_name is None:
        await asyncio.sleep((first_run.latency or 0.0) + _ABSENT_HEAD_START)
        return
    wanted = directory / first_run.socket_name
    deadline = time.monotonic() + options.timeout
    while not _exists(wanted) and process.returncode is None:
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(_POLL)
    await asyncio.sleep(_ABSENT_HEAD_START)  # legitimately timed: the Agent is absent


async def _absent_agent_check(options: _Options, first_run: _FirstRun) -> CheckResult:
    """Start the handler before its Agent: it must keep trying and register."""
    name = "registration when the Agent starts after the handler"
    if "POD_IP" in {**os.environ, **options.env}:
        # A network endpoint's port cannot be served twice at once.
        await first_run.finished.wait()
    with _short_directory() as directory:
        agent = FakeAgent(directory)
        async with _handler_process(
            options.command, directory, options.env, options.show_output
        ) as process:
            try:
                await _head_start(options, first_run, directory, process)
                if process.returncode is not None:
                    return CheckResult(
                        name,
                        False,
                        f"the handler {process.how_it_ended()} while no Agent was there: keep "
                        "retrying until the Agent appears",
                    )
                await agent.start()
                started = time.monotonic()
                await _await_registration(agent, process, options.timeout)
                if agent.registrations:
                    delay = agent.registrations[0].at - started
                    return CheckResult(name, True, "kept looking for the Agent", _ms(delay))
                reasons = sorted({call.reason for call in agent.rejected})
                if reasons:
                    return CheckResult(
                        name, False, "the Agent rejected every attempt: " + "; ".join(reasons[:2])
                    )
                detail = (
                    f"no registration within {options.timeout:g} s of the Agent starting: retry "
                    "with capped backoff until the Agent's socket appears"
                )
                note = process.exit_note()
                return CheckResult(name, False, f"{detail} ({note})" if note else detail)
            finally:
                with contextlib.suppress(Exception):
                    await process.terminate(min(options.timeout, 5.0))
                await agent.stop()


async def _run_present(options: _Options, recorder: _Recorder, first_run: _FirstRun) -> None:
    try:
        with _short_directory() as directory:
            async with (
                FakeAgent(directory) as agent,
                _handler_process(
                    options.command, directory, options.env, options.show_output
                ) as process,
            ):
                run = _PresentAgentRun(options, recorder, directory, agent, process, first_run)
                await run.run()
    finally:
        # Never leave the other run waiting.
        first_run.registered.set()
        first_run.finished.set()


async def run_conformance(
    command: Sequence[str],
    *,
    details: str,
    properties: Mapping[str, bytes | None] = _NO_PROPERTIES,
    name: str | None = None,
    observe: float = 2.0,
    timeout: float = 10.0,  # noqa: ASYNC109 - a bound for each wait, not for the whole run
    headers_within: float = 1.0,
    streams: int = 20,
    env: Mapping[str, str] | None = None,
    show_output: bool = False,
    out: Callable[[str], None] = print,
) -> ConformanceReport:
    """Run the suite against `command` and return every check's result.

    `details` and `properties` are what the Agent sends in good requests; `name`
    is the expected handler name; `observe` is the length of each window in
    which nothing may happen; `timeout` bounds each wait for something that
    must happen; `headers_within` bounds the response headers; `streams` is
    how many concurrent streams to open; `env` is added to the handler's
    environment; `show_output` sends the handler's output to stderr (otherwise
    its tail is quoted when it dies). Each check's line goes to `out` as it is
    decided, then the `N passed, N failed` summary. Every process, directory
    and socket the run made is gone when this returns, also on error or
    cancellation. Raises ValueError for unusable arguments.
    """
    options = _Options(
        command=tuple(command),
        details=details,
        properties=dict(properties),
        name=name,
        observe=observe,
        timeout=timeout,
        headers_within=headers_within,
        streams=streams,
        env=dict(env or {}),
        show_output=show_output,
    )
    recorder = _Recorder(out)
    first_run = _FirstRun()
    present = asyncio.create_task(_run_present(options, recorder, first_run))
    # The Agent-absent run goes alongside; it starts its Agent after the main
    # run registered, so both handler processes start up at the same time.
    absent = asyncio.create_task(_absent_agent_check(options, first_run))
    try:
        try:
            await present
        except _CannotStart as error:
            absent.cancel()
            recorder.add(CheckResult("handler starts", False, str(error)))
        else:
            recorder.add(await _absent_result(absent))
    finally:
        # On error or cancellation: each run's own cleanup stops its process and Agent.
        present.cancel()
        absent.cancel()
        await asyncio.gather(present, absent, return_exceptions=True)
    out(recorder.report.summary())
    return recorder.report


async def _absent_result(task: asyncio.Task[CheckResult]) -> CheckResult:
    try:
        return await task
    except Exception as error:
        return CheckResult(
            "registration when the Agent starts after the handler",
            False,
            f"the check broke: {type(error).__name__}: {error}",
        )
