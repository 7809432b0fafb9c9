"""Process-wide counters: what happened, not how fast.

Kept dependency-free. :func:`snapshot` is the hook: a health view, a log line or any
monitoring agent can read it. With ``prometheus_client`` installed (the ``prometheus``
extra), :func:`register_prometheus` exposes the same numbers as Prometheus counters.

Names (all counters unless said): ``connections``, ``disconnections``, ``connections_open``
(gauge, derived), ``frames_sent``, ``call_ok`` and ``call_<error code>`` (likewise for
``subscribe_``/``unsubscribe_``), ``refused_<reason>`` (``invalid_key``, ``expired_key``,
``key_refused``, ``origin``, ``bad_hello``, ``hello_timeout``, ``too_large``),
``rate_limited``, ``dropped``, ``expired``, ``publish_errors``, ``layer_failures``,
``layer_receive_errors``, ``revoked_windows``, ``send_errors``, ``queued_ok``,
``queued_error``, ``resource_events_<action>``, ``slow_clients_closed``, ``requests_refused``,
``layer_messages_invalid``, ``hub_errors``, ``hub_start_failures``, ``task_crashes``,
``task_restarts``, ``history_evicted``, ``resource_events_dropped``, ``resync_<reason>``,
``resource_dedup_evicted``, ``tracked_pks_overflow``, ``resource_events_unsendable``;
durable queues: ``queue_runs``, ``queue_failures``, ``queue_reruns``, ``queue_dead_lettered``,
``queue_released``, ``queue_full``, ``queue_no_worker``, ``queue_errors``, and the gauges
``queue_waiting_<queue>``, ``queue_delayed_<queue>``, ``queue_oldest_seconds_<queue>``,
``queue_workers_<queue>`` (read from Redis by each worker, see floorchannels.queues)
(docs/operations.md says what each means).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

_counters: Counter[str] = Counter()
#: Values read from somewhere else (Redis) and set whole: one per name, so as bounded as
#: the names (a few per queue).
_gauges: dict[str, float] = {}


def increment(name: str, amount: int = 1) -> None:
    _counters[name] += amount


def set_gauge(name: str, value: float) -> None:
    """Set a gauge: a value that goes up and down (a queue's length), unlike a counter."""
    _gauges[name] = value


def snapshot() -> dict[str, Any]:
    """A copy of every counter and gauge, plus the derived ``connections_open`` gauge."""
    values: dict[str, Any] = dict(_counters)
    values.update(_gauges)
    values["connections_open"] = values.get("connections", 0) - values.get("disconnections", 0)
    return values


def reset() -> None:
    _counters.clear()
    _gauges.clear()


def _prometheus() -> Any:
    """prometheus_client, or an error that names the extra that installs it."""
    try:
        import prometheus_client.core
    except ImportError as exc:
        raise ImportError(
            'floorchannels.metrics.register_prometheus() needs prometheus_client: pip install "floorchannels[prometheus]"'
        ) from exc
    return prometheus_client


class PrometheusCollector:
    """A ``prometheus_client`` collector reading :func:`snapshot` at scrape time."""

    def collect(self) -> Any:
        core = _prometheus().core
        for name, value in sorted(snapshot().items()):
            if name == "connections_open":
                yield core.GaugeMetricFamily(
                    "floorchannels_connections_open", "Open websockets.", value=value
                )
            elif name in _gauges:
                yield core.GaugeMetricFamily(f"floorchannels_{name}", f"floorchannels {name}.", value=value)
            else:
                yield core.CounterMetricFamily(f"floorchannels_{name}", f"floorchannels {name}.", value=value)


def register_prometheus(registry: Any = None) -> PrometheusCollector:
    """Expose the counters in ``registry`` (default: prometheus_client's global one)."""
    registry = registry or _prometheus().REGISTRY
    collector = PrometheusCollector()
    registry.register(collector)
    return collector
