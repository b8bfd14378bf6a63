"""Prometheus text exposition for the judge server, without a client library.

Counters, gauges and histograms with labels, rendered in the text format (version 0.0.4) that
every Prometheus scraper reads. Values change from the server's event loop and from its worker
thread, so each update takes a lock (cheap next to a model call).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence

__all__ = ["ServerMetrics"]

LabelKey = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _labels(key: LabelKey, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*key, *extra]
    if not pairs:
        return ""

    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in pairs) + "}"


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_: str, lock: threading.Lock):
        self.name, self.help, self._lock = name, help_, lock

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class _Counter(_Metric):
    kind = "counter"

    def __init__(self, *a: object) -> None:
        super().__init__(*a)  # type: ignore[arg-type]
        self.values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = self.header()
        for key, v in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(key)} {_num(v)}")
        if not self.values:
            lines.append(f"{self.name} 0")
        return lines


class _Gauge(_Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self.values[tuple(sorted(labels.items()))] = float(value)


class _Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_: str, lock: threading.Lock, buckets: Sequence[float]):
        super().__init__(name, help_, lock)
        self.buckets = tuple(buckets)
        self.series: dict[LabelKey, list[float]] = {}  # bucket counts..., +Inf count, sum

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            row = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            row[bisect.bisect_left(self.buckets, value)] += 1  # first bucket with le >= value
            row[-1] += value

    def count(self, **labels: str) -> int:
        row = self.series.get(tuple(sorted(labels.items())))
        return 0 if row is None else int(sum(row[:-1]))

    def render(self) -> list[str]:
        lines = self.header()
        for key, row in sorted(self.series.items()):
            acc = 0.0
            for le, n in zip((*self.buckets, math.inf), row[:-1], strict=True):
                acc += n
                lines.append(f"{self.name}_bucket{_labels(key, [('le', _num(le))])} {_num(acc)}")
            lines.append(f"{self.name}_sum{_labels(key)} {_num(row[-1])}")
            lines.append(f"{self.name}_count{_labels(key)} {_num(acc)}")
        return lines


class ServerMetrics:
    """Every metric the judge server exports (names are stable: dashboards use them)."""

    def __init__(self) -> None:
        lock = threading.Lock()
        self.requests = _Counter("judgelm_requests_total", "HTTP requests by endpoint and status code.", lock)
        self.request_latency = _Histogram(
            "judgelm_request_latency_seconds",
            "Time from request received to response ready.",
            lock,
            LATENCY_BUCKETS,
        )
        self.queue_samples = _Gauge("judgelm_queue_depth", "Samples waiting for a model call.", lock)
        self.queue_requests = _Gauge("judgelm_queue_requests", "Requests waiting for a model call.", lock)
        self.batch_size = _Histogram("judgelm_batch_size", "Samples per model call.", lock, SIZE_BUCKETS)
        self.batch_latency = _Histogram(
            "judgelm_batch_latency_seconds", "Duration of one model call.", lock, LATENCY_BUCKETS
        )
        self.verdicts = _Counter("judgelm_verdicts_total", "Verdicts returned.", lock)
        self.abstains = _Counter("judgelm_abstains_total", "Abstained verdicts by reason code.", lock)
        self.rejected = _Counter("judgelm_rejected_total", "Requests refused with 503, by reason.", lock)
        self.batch_errors = _Counter("judgelm_batch_errors_total", "Model calls that raised.", lock)
        self._all: list[_Metric] = [
            self.requests,
            self.request_latency,
            self.queue_samples,
            self.queue_requests,
            self.batch_size,
            self.batch_latency,
            self.verdicts,
            self.abstains,
            self.rejected,
            self.batch_errors,
        ]

    def render(self) -> str:
        lines: list[str] = []
        for m in self._all:
            lines.extend(m.render())  # type: ignore[attr-defined]
        return "\n".join(lines) + "\n"
