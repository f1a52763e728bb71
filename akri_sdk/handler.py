"""The DiscoveryHandler base class and the context each discovery runs with.

A handler author subclasses `DiscoveryHandler`, declares `name`, `shared` and a
`details` model, and implements either `scan` (polled) or `watch` (an async
generator of complete snapshots). Everything on the wire is the SDK's job.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from akri_sdk.credentials import DiscoveryProperties
from akri_sdk.device import Device

__all__ = ["DiscoveryContext", "DiscoveryHandler"]

DetailsT = TypeVar("DetailsT")

# The handler name becomes a socket file name (<name>.sock) and must equal
# Configuration.spec.discoveryHandler.name.
_HANDLER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ProblemSink(Protocol):
    def note_problem(self, problem: BaseException | str, kind: str | None) -> None: ...
    def note_resolved(self) -> None: ...


@dataclass(eq=False)
class DiscoveryContext(Generic[DetailsT]):
    """What one discovery task works from.

    Identical requests (same details and properties) share one task and so one
    context; `key` identifies it in logs and metrics.
    """

    handler_name: str
    # Details can carry credentials (a broker URI with a password): keep them out of reprs.
    details: DetailsT = field(repr=False)
    properties: DiscoveryProperties
    raw_details: str = field(repr=False)
    key: str
    log: logging.LoggerAdapter[logging.Logger] = field(repr=False)
    # Free-form per-task state a handler may keep between scans.
    state: dict[str, Any] = field(default_factory=dict, repr=False)
    # Set by the discovery task that owns this context.
    problem_sink: ProblemSink | None = field(default=None, repr=False, compare=False)

    def report_problem(self, problem: BaseException | str, *, kind: str | None = None) -> None:
        """Say discovery is degraded without raising.

        For handlers that recover on their own (a broker connection lost while the
        handler reconnects): the problem is counted in metrics by `kind` (default:
        the exception's type) and shown by `akri-dh status` until
        `problem_resolved()`. Nothing is logged here; log it yourself once.
        """
        if self.problem_sink is not None:
            self.problem_sink.note_problem(problem, kind)

    def problem_resolved(self) -> None:
        if self.problem_sink is not None:
            self.problem_sink.note_resolved()


class DiscoveryHandler:
    """Base class for a discovery handler. Subclass it and implement one method.

    Class attributes:
      name: the handler name Configurations refer to (`discoveryHandler.name`).
      shared: True when several nodes can see the same device (IP camera, OPC UA
        server); False for node-local devices (USB). May be set per instance.
      details: the type `discoveryDetails` decodes into (a msgspec Struct,
        dataclass, TypedDict or plain type). None means details are ignored.
      scan_interval: seconds between `scan` calls; a details model with a
        `scan_interval_seconds` attribute overrides it per Configuration.
      grace_period: seconds to keep the last-known devices while discovery
        fails (broker down, camera silent) before reporting them gone.
      retry_initial, retry_max: capped exponential backoff after a failure.
    """

    name: ClassVar[str]
    shared: bool = False
    details: ClassVar[Any] = None
    scan_interval: ClassVar[float] = 10.0
    grace_period: ClassVar[float] = 300.0
    retry_initial: ClassVar[float] = 1.0
    retry_max: ClassVar[float] = 30.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # an intermediate base class; checked when a concrete one names itself
        if not isinstance(cls.name, str) or not _HANDLER_NAME.fullmatch(cls.name):
            raise TypeError(
                f"{cls.__qualname__}.name must be 1-100 letters, digits, '.', '_' or '-' "
                f"(it names the socket file), got {cls.name!r}"
            )
        if not (cls.is_event_driven() or cls._overrides("scan")):
            raise TypeError(f"{cls.__qualname__} must implement scan() or watch()")

    @classmethod
    def _overrides(cls, method: str) -> bool:
        return getattr(cls, method) is not getattr(DiscoveryHandler, method)

    @classmethod
    def is_event_driven(cls) -> bool:
        """True when the handler implements `watch` (it then wins over `scan`)."""
        return cls._overrides("watch")

    def validate(self, ctx: DiscoveryContext[Any]) -> None:
        """Check a request before the stream opens; raise DetailsError to refuse it.

        Called once per new discovery task, before response headers are sent, so
        a DetailsError reaches the Agent as INVALID_ARGUMENT. Use it for checks
        the details model cannot express (a URI that must parse, a property that
        must be present). Keep it fast and free of I/O.
        """

    def interval(self, ctx: DiscoveryContext[Any]) -> float:
        """Seconds between scans for this task."""
        override = getattr(ctx.details, "scan_interval_seconds", None)
        if isinstance(override, int | float) and override > 0:
            return float(override)
        return self.scan_interval

    async def scan(self, ctx: DiscoveryContext[Any]) -> Iterable[Device]:
        """Return the complete set of devices visible now. Called every interval."""
        raise NotImplementedError

    def watch(self, ctx: DiscoveryContext[Any]) -> AsyncIterator[Iterable[Device]]:
        """Yield the complete device set each time it may have changed.

        Implement as `async def watch(self, ctx): ... yield devices`. The SDK
        sends only real changes, so yielding an unchanged set is cheap.
        """
        raise NotImplementedError
