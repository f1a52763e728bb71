"""Prometheus metrics, read from the runtime's state at scrape time.

Imported only when the health port is enabled, so prometheus-client (the
`metrics` extra) costs nothing otherwise. Labels are the handler name, the
discovery task key (one per distinct Configuration) and error kinds: never
device ids or topics.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from akri_sdk.health import readiness
from akri_sdk.stats import DURATION_BUCKETS

if TYPE_CHECKING:
    from akri_sdk.runtime import HandlerRuntime

__all__ = ["MetricsExporter"]


class _HandlerCollector:
    def __init__(self, runtimes: Sequence[HandlerRuntime]) -> None:
        self.runtimes = runtimes

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "akri_dh_ready", "1 when serving and registered with a live Agent", labels=["handler"]
        )
        registrations = CounterMetricFamily(
            "akri_dh_registrations", "Successful registrations with the Agent", labels=["handler"]
        )
        streams = GaugeMetricFamily(
            "akri_dh_open_streams", "Open Discover streams", labels=["handler"]
        )
        tasks = GaugeMetricFamily(
            "akri_dh_discovery_tasks",
            "Running discovery tasks (shared by identical requests)",
            labels=["handler"],
        )
        devices = GaugeMetricFamily(
            "akri_dh_devices",
            "Devices in the latest snapshot of a discovery task",
            labels=["handler", "task"],
        )
        sent = CounterMetricFamily(
            "akri_dh_snapshots_sent", "Snapshots written to Discover streams", labels=["handler"]
        )
        rejected = CounterMetricFamily(
            "akri_dh_details_rejected",
            "Discover requests refused with INVALID_ARGUMENT",
            labels=["handler"],
        )
        errors = CounterMetricFamily(
            "akri_dh_discovery_errors",
            "Failed scans or watch restarts, by exception type",
            labels=["handler", "kind"],
        )
        duration = HistogramMetricFamily(
            "akri_dh_discovery_duration_seconds", "Duration of scan() calls", labels=["handler"]
        )
        for runtime in self.runtimes:
            name = runtime.handler.name
            service = runtime.service
            stats = service.stats
            ready.add_metric([name], 1.0 if readiness(runtime) else 0.0)
            registrar = runtime.registrar
            registrations.add_metric([name], registrar.registrations if registrar else 0)
            streams.add_metric([name], len(service.streams))
            tasks.add_metric([name], len(service.tasks))
            for task in service.tasks.values():
                devices.add_metric([name, task.ctx.key], len(task.feed.snapshot or ()))
            sent.add_metric([name], stats.snapshots_sent)
            rejected.add_metric([name], stats.details_rejected)
            for kind, count in sorted(stats.discovery_errors.items()):
                errors.add_metric([name, kind], count)
            buckets = [(str(b), stats.scan_buckets[i]) for i, b in enumerate(DURATION_BUCKETS)]
            buckets.append(("+Inf", stats.scan_buckets[-1]))
            duration.add_metric([name], buckets, sum_value=stats.scan_seconds)
        yield from (ready, registrations, streams, tasks, devices, sent, rejected, errors, duration)


class MetricsExporter:
    """Renders the Prometheus text format for a set of handler runtimes."""

    def __init__(self, runtimes: Sequence[HandlerRuntime]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_HandlerCollector(runtimes))
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
