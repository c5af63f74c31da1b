"""The process's metrics: what each hook observes, and the pools read at scrape time.

Labels hold only bounded, admin-chosen values: a function's name (names the caller invents
become ``(unknown)``), a decision, an error code, a front door, a pool's name. Never a user,
a subject, a token or a parameter value.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from querygate.errors import QuerygateError

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series

FRONT_DOORS = frozenset({"http", "postgres", "mcp", "console", "cli", "python"})
UNKNOWN = "(unknown)"

# latency from a fraction of a millisecond (a cached refusal) to the statement timeout and past
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 500)

CALLS = Counter("querygate_calls", "Calls by function, decision, error code and front door.",
                ["function", "decision", "code", "client"])
CALL_SECONDS = Histogram("querygate_call_duration_seconds",
                         "Time from a call's arrival in the gateway to its answer.",
                         ["function", "decision", "client"], buckets=_SECONDS)
AUDIT_BATCH_EVENTS = Histogram("querygate_audit_batch_events",
                               "Events per audit group commit.", buckets=_BATCH)
AUDIT_COMMIT_SECONDS = Histogram("querygate_audit_commit_seconds",
                                 "Time to write and commit one audit batch.", buckets=_SECONDS)
AUDIT_WAIT_SECONDS = Histogram("querygate_audit_wait_seconds",
                               "Time a call waits for its audit event's commit (queue and "
                               "commit).", buckets=_SECONDS)
AUDIT_EVENTS = Counter("querygate_audit_events", "Audit events by batch outcome: written, or "
                       "failed (their calls failed closed).", ["outcome"])
POOL_WAIT_SECONDS = Histogram("querygate_pool_checkout_seconds",
                              "Time a call waits for its query connection.", ["pool"],
                              buckets=_SECONDS)

G = TypeVar("G", bound="_Serving")
P = ParamSpec("P")
R = TypeVar("R")


class _Serving(Protocol):
    functions: Mapping[str, Any]


def outcome(exc: BaseException) -> tuple[str, str]:
    """The decision and code a call's failure is counted under, as its audit event has them."""
    if isinstance(exc, QuerygateError):
        return ("denied" if exc.status in (401, 403, 404) else "error"), exc.code
    if isinstance(exc, asyncio.CancelledError):
        return "error", "client_closed"
    return "error", "internal"


_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}


def observe_call(function: str, client: str, decision: str, code: str, seconds: float) -> None:
    key = (function, decision, code, client)
    child = _children.get(key)
    if child is None:  # ``labels()`` takes a lock and builds a key: once per label set
        child = _children[key] = (CALLS.labels(function, decision, code, client),
                                  CALL_SECONDS.labels(function, decision, client))
    child[0].inc()
    child[1].observe(seconds)


def observed(fixed: str | None = None) -> Callable[
        [Callable[Concatenate[G, Any, Any, P], Coroutine[Any, Any, R]]],
        Callable[Concatenate[G, Any, Any, P], Coroutine[Any, Any, R]]]:
    """Count and time a gateway entry point whose third argument is the function's name (or
    whose function is ``fixed``) and whose ``client`` keyword names the front door."""

    def decorate(method: Callable[Concatenate[G, Any, Any, P], Coroutine[Any, Any, R]],
                 ) -> Callable[Concatenate[G, Any, Any, P], Coroutine[Any, Any, R]]:
        @functools.wraps(method)
        async def wrapper(self: G, token: Any, name: Any, /, *args: P.args,
                          **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            decision, code = "allowed", "ok"
            try:
                return await method(self, token, name, *args, **kwargs)
            except BaseException as exc:
                decision, code = outcome(exc)
                raise
            finally:
                function = fixed or (name if isinstance(name, str) and name in self.functions
                                     else UNKNOWN)
                client = kwargs.get("client", "http")
                observe_call(function, client if client in FRONT_DOORS else "other", decision,
                             code, time.perf_counter() - started)

        return wrapper

    return decorate


def observe_batch(events: int, seconds: float, *, written: bool) -> None:
    """One audit group commit: its size, how long it took, and whether it was written."""
    AUDIT_BATCH_EVENTS.observe(events)
    AUDIT_COMMIT_SECONDS.observe(seconds)
    AUDIT_EVENTS.labels("written" if written else "failed").inc(events)


class PoolCollector(Collector):
    """psycopg_pool's own statistics of every open pool, read at scrape time, by pool name."""

    _GAUGES = (("pool_size", "querygate_pool_connections", "Connections the pool holds."),
               ("pool_available", "querygate_pool_idle", "Connections idle in the pool."),
               ("pool_max", "querygate_pool_max", "Most connections the pool may open."),
               ("requests_waiting", "querygate_pool_waiting", "Requests waiting for a "
                                                              "connection now."))
    _COUNTERS = (("requests_num", "querygate_pool_requests", "Connections asked for.", 1.0),
                 ("requests_queued", "querygate_pool_requests_queued",
                  "Requests that had to wait for a connection.", 1.0),
                 ("requests_wait_ms", "querygate_pool_waited_seconds",
                  "Seconds spent waiting for a connection, all requests together.", 0.001),
                 ("requests_errors", "querygate_pool_timeouts",
                  "Requests that got no connection in time.", 1.0),
                 ("connections_errors", "querygate_pool_connect_errors",
                  "Failed attempts to connect.", 1.0),
                 ("connections_lost", "querygate_pool_connections_lost",
                  "Connections found broken and discarded.", 1.0))

    def __init__(self) -> None:
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()

    def stats(self) -> dict[str, dict[str, float]]:
        totals: dict[str, dict[str, float]] = {}
        for pool in list(self.pools):
            if pool.closed:
                continue
            name = str(pool.name).removeprefix("querygate-").replace("-", "_")
            into = totals.setdefault(name, {})
            for key, value in pool.get_stats().items():
                into[key] = into.get(key, 0) + value
        return totals

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        for key, name, help_ in self._GAUGES:
            gauge = GaugeMetricFamily(name, help_, labels=["pool"])
            for pool, values in sorted(stats.items()):
                gauge.add_metric([pool], values.get(key, 0))
            yield gauge
        for key, name, help_, scale in self._COUNTERS:
            counter = CounterMetricFamily(name, help_, labels=["pool"])
            for pool, values in sorted(stats.items()):
                counter.add_metric([pool], values.get(key, 0) * scale)
            yield counter


POOLS = PoolCollector()
REGISTRY.register(POOLS)


def track_pool(pool: object) -> None:
    """Report ``pool`` (a psycopg_pool pool) in the metrics while it is open."""
    POOLS.pools.add(pool)


_pool_waits: dict[str, Any] = {}


def observe_pool_wait(pool: str, seconds: float) -> None:
    child = _pool_waits.get(pool)
    if child is None:
        child = _pool_waits[pool] = POOL_WAIT_SECONDS.labels(pool)
    child.observe(seconds)
