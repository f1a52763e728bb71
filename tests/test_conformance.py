"""The conformance suite: debugEcho passes it; each deliberately broken handler
fails exactly the check that names its fault, with a line saying what to fix,
while every other check is still reported."""

from __future__ import annotations

import asyncio
import glob
import re
import sys
from pathlib import Path

import pytest

from akri_sdk.cli import main as akri_dh
from akri_sdk.commands.conformance import UsageError, parse_properties
from akri_sdk.testing.conformance import (
    CheckResult,
    ConformanceReport,
    hostile_cases,
    run_conformance,
)

BROKEN = Path(__file__).parent / "broken_handlers"
DEBUG_ECHO = [sys.executable, "-m", "akri_sdk.cli", "run", "debugEcho"]
DETAILS = "descriptions: [foo0, foo1]"
SUMMARY = re.compile(r"(\d+) passed, (\d+) failed")

REGISTRATION_CHECKS = {
    "registration",
    "registration authority",
    "registration fields",
    "no registration on a timer",
    "re-registration after an Agent restart with open streams",
    "re-registration after an Agent restart without open streams",
    "registration when the Agent starts after the handler",
}
HOSTILE_CHECKS = {
    "INVALID_ARGUMENT for non-YAML details",
    "INVALID_ARGUMENT for a scalar where a mapping is expected",
    "INVALID_ARGUMENT for a mapping where 'descriptions' expects a list",
    "INVALID_ARGUMENT for empty details",
    "INVALID_ARGUMENT for 5 MB details",
    "INVALID_ARGUMENT for a YAML alias bomb",
}
ALL_CHECKS = (
    REGISTRATION_CHECKS
    | HOSTILE_CHECKS
    | {
        "response headers",
        "first snapshot",
        "serves after bad details",
        "concurrent streams",
        "sends only on change",
        "stream stays open",
        "cancellation",
        "SIGTERM",
    }
)


@pytest.fixture(autouse=True)
def availability(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # debugEcho reads a fixed /tmp file by default; give each test its own.
    monkeypatch.setenv("DEBUG_ECHO_AVAILABILITY_FILE", str(tmp_path / "availability.txt"))


def leftover_directories() -> set[str]:
    return set(glob.glob("/tmp/akri-conf-*"))


async def judge(
    command: list[str], *, name: str | None = None, timeout: float = 10.0
) -> tuple[ConformanceReport, list[str]]:
    """Run the suite with the printed lines captured."""
    lines: list[str] = []
    report = await run_conformance(
        command,
        details=DETAILS,
        name=name,
        # Short windows keep the file fast; a generous headers bound keeps a
        # loaded machine from failing a timing that benchmarks should judge.
        observe=0.5,
        headers_within=5.0,
        timeout=timeout,
        out=lines.append,
    )
    return report, lines


def line_of(lines: list[str], check: str) -> str:
    """The one line judging `check` (whose name may prefix another's)."""
    pattern = re.compile(rf"(PASS|FAIL) {re.escape(check)}( \(|: | \d|$)")
    [line] = [x for x in lines if pattern.match(x)]
    return line


def assert_summary(report: ConformanceReport, lines: list[str]) -> None:
    """One line per check, then exactly `N passed, N failed`."""
    assert lines[:-1] == [check.line() for check in report.checks]
    assert lines[-1] == f"{report.passed_count} passed, {report.failed_count} failed"
    assert SUMMARY.fullmatch(lines[-1])


# ---- end to end ---------------------------------------------------------------


@pytest.mark.slow
async def test_debug_echo_passes_every_check() -> None:
    before = leftover_directories()
    report, lines = await judge(DEBUG_ECHO, name="debugEcho")
    assert report.failures() == []
    assert report.ok
    assert {check.name for check in report.checks} == ALL_CHECKS
    assert_summary(report, lines)
    assert lines[-1] == f"{len(ALL_CHECKS)} passed, 0 failed"
    assert all(line.startswith("PASS ") for line in lines[:-1])
    fields = line_of(lines, "registration fields")
    assert "name=debugEcho" in fields
    assert "endpoint_type=UDS" in fields
    assert "shared=true" in fields
    assert re.search(r"\d+ ms$", line_of(lines, "registration")), lines
    assert re.search(r"\d+ ms$", line_of(lines, "response headers")), lines
    assert "trailers-only" in line_of(lines, "INVALID_ARGUMENT for a YAML alias bomb")
    assert leftover_directories() <= before


BROKEN_CASES = {
    # program: (the checks it must fail, the check whose line is asserted, patterns in that line)
    "no_authority_fix.py": (
        REGISTRATION_CHECKS,
        "registration authority",
        ["%", "InvalidPercent", re.escape('("grpc.default_authority", "localhost")')],
    ),
    "ends_stream.py": (
        {"stream stays open"},
        "stream stays open",
        ["ended its stream", "makes the Agent delete the Configuration's Instances"],
    ),
    "timer_registration.py": (
        {
            "no registration on a timer",
            "re-registration after an Agent restart with open streams",
            "re-registration after an Agent restart without open streams",
        },
        "no registration on a timer",
        [
            # The count and the interval seen (the program registers every 0.1 s).
            r"registered ([2-9]|[1-9]\d+) times in [\d.]+ s without an Agent restart "
            r"\(about every \d+ ms\)",
            "never on a timer",
        ],
    ),
    "unknown_status.py": (
        HOSTILE_CHECKS,
        "INVALID_ARGUMENT for empty details",
        ["answered UNKNOWN instead of INVALID_ARGUMENT", "an exception escaped"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("program", sorted(BROKEN_CASES))
async def test_broken_handler_fails_its_check_with_a_clear_line(program: str) -> None:
    failing, check, patterns = BROKEN_CASES[program]
    report, lines = await judge([sys.executable, str(BROKEN / program)])
    assert_summary(report, lines)
    assert {c.name for c in report.failures()} == failing, "\n".join(lines)
    # Everything else was still judged, and passed.
    assert {c.name for c in report.checks} == ALL_CHECKS
    line = line_of(lines, check)
    assert line.startswith(f"FAIL {check}: "), line
    for pattern in patterns:
        assert re.search(pattern, line), (pattern, line)
    assert not report.ok


@pytest.mark.slow
async def test_cli_end_to_end() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akri_sdk.cli",
        "conformance",
        "--details",
        DETAILS,
        "--name",
        "debugEcho",
        "--observe",
        "0.5",
        "--headers-within",
        "5",
        "--",
        *DEBUG_ECHO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = stdout.decode().splitlines()
    assert process.returncode == 0, (stdout.decode(), stderr.decode())
    match = SUMMARY.fullmatch(lines[-1])
    assert match and match[2] == "0" and int(match[1]) == len(ALL_CHECKS), lines[-1]
    assert len(lines) == len(ALL_CHECKS) + 1
    assert all(line.startswith("PASS ") for line in lines[:-1])


# ---- quick ones -------------------------------------------------------------------


async def test_a_handler_that_dies_is_judged_without_waiting_out_timeouts() -> None:
    command = [sys.executable, "-c", "import sys; print('no config here'); sys.exit(3)"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    report, lines = await judge(command, timeout=30.0)
    assert loop.time() - started < 15  # exits are noticed; no 30 s waits
    assert_summary(report, lines)
    assert report.passed_count == 0
    registration = line_of(lines, "registration")
    assert "exited with status 3" in registration
    assert "no config here" in registration


async def test_a_command_that_cannot_start() -> None:
    report, lines = await judge(["/nonexistent/handler"])
    assert [c.name for c in report.checks] == ["handler starts"]
    assert lines[-1] == "0 passed, 1 failed"
    assert "/nonexistent/handler" in lines[0]


def test_hostile_cases_follow_the_good_details() -> None:
    cases = {case.label: case.details for case in hostile_cases(DETAILS)}
    assert set(cases) == {name.removeprefix("INVALID_ARGUMENT for ") for name in HOSTILE_CHECKS}
    assert cases["a mapping where 'descriptions' expects a list"] == '"descriptions": {wrong: type}'
    assert cases["empty details"] == ""
    big = cases["5 MB details"]
    assert big.startswith(DETAILS + "\n#") and len(big) > 5 * 1024 * 1024
    assert cases["a YAML alias bomb"].endswith('"descriptions": *lol8')
    # Not a mapping: no key to aim at, and no "mapping expected" case.
    assert {c.label for c in hostile_cases("[a, b]")} == {
        "non-YAML details",
        "empty details",
        "5 MB details",
        "a YAML alias bomb",
    }
    # A case equal to the good details is left out.
    assert "empty details" not in {c.label for c in hostile_cases("")}


def test_result_lines() -> None:
    assert (
        CheckResult("registration fields", True, "name=x", "143 ms").line()
        == "PASS registration fields (name=x) 143 ms"
    )
    assert CheckResult("SIGTERM", False, "exited with status 1").line() == (
        "FAIL SIGTERM: exited with status 1"
    )
    report = ConformanceReport([CheckResult("a", True), CheckResult("b", False, "why")])
    assert report.summary() == "1 passed, 1 failed"
    assert not report.ok
    assert '"failed": 1' in report.to_json()
    assert not ConformanceReport().ok  # nothing judged is not a pass


def test_properties_parse_like_the_agent_sends_them() -> None:
    assert parse_properties(["user=admin", "empty=", "flag", "x=a=b"]) == {
        "user": b"admin",
        "empty": b"",
        "flag": None,
        "x": b"a=b",
    }
    with pytest.raises(UsageError, match="must match"):
        parse_properties(["bad-name=1"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--details", "x"], "no handler command"),
        (["--", "handler"], "--details YAML or --details-file FILE is required"),
        (["--details", "x", "--details-file", "/nonexistent", "--", "h"], None),
        (["--details-file", "/nonexistent/details.yaml", "--", "h"], "--details-file"),
        (["--details", "x", "--property", "1x=2", "--", "h"], "must match"),
        (["--details", "x", "--observe", "0", "--", "h"], None),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = akri_dh(["conformance", *argv])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code  # type: ignore[assignment]
    assert status == 2
    if message is not None:
        assert message in capsys.readouterr().err
