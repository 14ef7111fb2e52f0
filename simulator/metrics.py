"""Every Prometheus metric callsim exports, declared in this one module.

Names follow the Prometheus conventions: base units (`_seconds`), `_total`
for counters, bounded label sets.  Per-org labels are kept for the first
`max_org_labels` orgs of the scenario; the others are aggregated under
`org="_other"` so a 10,000-tenant scenario cannot explode the series count.

Metrics live in a registry per run (not the process-global one), so tests
and the server can run several simulations in one process.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, MICRO, EventColumns, group_sum

if TYPE_CHECKING:
    from rating_core import RatingEngine

    from .switch import Switch, WindowReport

OTHER_ORGS = "_other"


def declare_build_info(registry: CollectorRegistry, scenario: str, seed: int) -> Info:
    """`callsim_build_info{version, scenario, seed} 1`: which callsim runs what.

    The usual Prometheus info metric: join on it (`* on(instance) group_left(scenario)
    callsim_build_info`) to label a dashboard, or tell two runs apart after an upgrade.
    `scenario` is the scenario's name, `seed` the one the traffic is drawn from
    (`--seed` included).  Bounded: one series per process.
    """
    from ._version import version

    info = Info("callsim_build", "The callsim version, and the scenario name and seed this process "
                                 "runs; always 1.", registry=registry)
    info.info({"version": version(), "scenario": scenario, "seed": str(seed)})
    return info


class ServerMetrics:
    """Wire-protocol health of `callsim serve` (see docs/protocol.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Counter(
            "callsim_server_connections_total", "TCP connections accepted.", registry=registry)
        self.open_connections = Gauge(
            "callsim_server_open_connections", "TCP connections currently open.", registry=registry)
        self.buffered_bytes = Gauge(
            "callsim_server_buffered_bytes",
            "Unread replies and partly received frames of all connections (--max-buffered-bytes).",
            registry=registry)
        self.messages = Counter(
            "callsim_server_messages_total", "Protocol messages received, by op.", ["op"],
            registry=registry)
        self.protocol_errors = Counter(
            "callsim_server_protocol_errors_total",
            "Messages or connections refused, by kind (malformed, unknown_op, bad_field, "
            "oversize, not_authenticated, bad_token, unknown_call, idle_timeout, flood, ...).",
            ["kind"], registry=registry)
        self.setup_latency = BulkHistogram(
            "callsim_server_setup_latency_seconds",
            "Wall time from a setup message's arrival to its answered/rejected reply.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=registry)
        # The exchange's engine ticks: what bounds setup latency when many calls are connected.
        self.advance_duration = Histogram(
            "callsim_server_advance_duration_seconds",
            "Wall time of one advance of the rating core (one exchange tick).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 1.0),
            registry=registry)
        self.setups_per_advance = Histogram(
            "callsim_server_setups_per_advance",
            "Setups rated together in one advance of the rating core (batching under load).",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 10_000), registry=registry)


class SipMetrics(Collector):
    """SIP health of `callsim serve --sip` (docs/sip.md).

    The endpoint tallies in plain dicts (`SipStats`: no Prometheus call per
    message on the hot path); a scrape reads them (`watch`).  Labels are
    bounded: methods outside the known ones count as `other`, response codes
    are the few the server sends, kinds and reasons are fixed lists.
    """

    _COUNTERS = (
        ("requests", "callsim_sip_requests_total", "SIP requests received, by method.", "method"),
        ("responses", "callsim_sip_responses_total", "SIP responses sent (first sendings), by status code.",
         "code"),
        ("retransmissions", "callsim_sip_retransmissions_total",
         "Retransmissions: response_sent (timer G, the 200 until its ACK), bye_sent (timer E), "
         "request_absorbed (a request received again, answered from its transaction).", "kind"),
        ("malformed", "callsim_sip_malformed_total",
         "SIP messages refused as malformed (400 when one could be formed, else dropped), by kind.", "kind"),
        ("auth_failures", "callsim_sip_auth_failures_total",
         "Digest authentications refused with 403, by reason.", "reason"),
        ("timeouts", "callsim_sip_timeouts_total",
         "no_ack: a final response never acknowledged (timer H; a 200's call is then released); "
         "bye_unanswered: our BYE never answered (timer F).", "kind"),
        ("dropped", "callsim_sip_dropped_total",
         "Messages not handled: source_budget and muted (one source's flood), stray_response, "
         "server_error.", "reason"),
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        self.setup_latency = BulkHistogram(
            "callsim_sip_setup_latency_seconds",
            "Wall time from an INVITE's arrival to its 200 OK leaving (ringing excluded).",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=registry)
        self._stats: Any = None
        self._dialogs: Callable[[], int] = lambda: 0
        registry.register(self)

    def watch(self, stats: Any, dialogs: Callable[[], int]) -> None:
        """Read `stats` (a `simulator.sip.SipStats`) and `dialogs()` at every scrape."""
        self._stats, self._dialogs = stats, dialogs

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(name, doc, labels=[label]) for _, name, doc, label in self._COUNTERS] + [
            GaugeMetricFamily("callsim_sip_dialogs", "SIP dialogs in progress.")]

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        for attr, name, doc, label in self._COUNTERS:
            family = CounterMetricFamily(name, doc, labels=[label])
            table = dict(getattr(stats, attr)) if stats is not None else {}
            for key, value in sorted(table.items(), key=lambda kv: str(kv[0])):
                family.add_metric([str(key)], value)
            yield family
        yield GaugeMetricFamily("callsim_sip_dialogs", "SIP dialogs in progress.", value=self._dialogs())


class BulkHistogram(Collector):
    """A histogram observed in bulk: `observe(value, count)` records `count` equal observations.

    The server answers a frame's setups together, so they all waited the
    same time; prometheus_client's Histogram would take one `observe` (two
    locked increments) per setup, a visible share of the server's CPU at
    20,000 setups/s.  Scrapes read a copy of the counts (the HTTP thread),
    which can lag the sum by one observation, as with prometheus_client's own.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self._name, self._doc = name, documentation
        self._bounds = [float(b) for b in buckets]
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float, count: int = 1) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += count  # buckets are `le`
        self._sum += value * count

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._doc)]

    def collect(self) -> list[Metric]:
        counts, total = list(self._counts), self._sum
        cumulative = itertools.accumulate(counts)
        labels = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        return [HistogramMetricFamily(self._name, self._doc, buckets=list(zip(labels, cumulative)),
                                      sum_value=total)]


# --------------------------------------------------------------------------- `callsim run`

#: Wall seconds; a realtime run (--speed 1) must keep p99 lag under 50 ms, so resolution is finest there.
EVENT_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
                     0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RATING_DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                           0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RATING_BATCH_SIZE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
RECHARGE_OUTCOMES = ("succeeded", "failed")
DEFAULT_MAX_ORG_LABELS = 50
#: Wall seconds between publications of a run's counters and gauges (Prometheus scrapes every
#: few seconds; reading the engine's state every 10 ms window would cost more than it shows).
PUBLISH_EVERY_S = 0.25


class RunMetrics:
    """The metrics of one `callsim run`, folded in window by window from the switch.

    `observe` takes the switch's `WindowReport` and folds the window's CDRs
    in with one `np.bincount` and one `np.add.at` (never a Python loop per
    call; ledger events are few and are looped over).  What a scrape sees is
    *published* at most every `publish_every_s` wall seconds, and always on
    the end-of-run step: publishing reads the engine's live state (active
    calls, balances, pools), a pass over the whole call table that would
    cost more than the window itself at 100k connected calls and 10 ms
    windows.  Each publication is one immutable snapshot, so a scrape never
    sees half a window and counters always agree with each other
    (started - ended = active).

    Counters and labelled gauges are exposed by a custom collector over
    exact integer totals: money is kept in micro-units and only turned into
    a float (the correctly rounded value of the exact decimal) at scrape
    time, so `callsim_credits_charged_total` equals summary.json's decimal
    string exactly instead of drifting with float additions.

    `callsim_calls_started_total{call_type}` counts every arrival, refused
    ones included (an unroutable call is `call_type="outbound"`, as in its
    CDR); it is derived as (active now - active before + ended since),
    because the call type is only known after admission.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        engine: RatingEngine,
        *,
        max_org_labels: int = DEFAULT_MAX_ORG_LABELS,
        realtime: bool = False,
        publish_every_s: float = PUBLISH_EVERY_S,
        wall: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_org_labels < 0:
            raise ValueError("max_org_labels must be >= 0")
        tables = engine.tables
        self._engine = engine
        self._realtime = realtime
        self._publish_every_s = publish_every_s
        self._wall = wall
        self.currency = engine.setup.currency
        n_orgs = len(tables.org_ids)
        # org index -> org label index: the first max_org_labels orgs keep their id
        self.org_labels = list(tables.org_ids[:max_org_labels])
        if n_orgs > max_org_labels:
            self.org_labels.append(OTHER_ORGS)
        self._org_label = np.minimum(np.arange(n_orgs), max_org_labels).astype(np.intp)
        # global pool index -> (org label, pool name) series
        series: dict[tuple[str, str], int] = {}
        pool_series = [
            series.setdefault((self.org_labels[self._org_label[o]], name), len(series))
            for o, name in zip(tables.pool_orgs, tables.pool_names)
        ]
        self.pool_labels = list(series)
        self._pool_series = np.asarray(pool_series, dtype=np.intp)

        n_labels = len(self.org_labels)
        self._n_reasons = len(END_REASON_NAMES)
        zeros = _Snapshot(
            started=np.zeros(len(CALL_TYPE_NAMES), dtype=np.int64),
            ended=np.zeros((len(CALL_TYPE_NAMES), self._n_reasons), dtype=np.int64),
            active=np.zeros(len(CALL_TYPE_NAMES), dtype=np.int64),
            charged_micro=np.zeros(n_labels, dtype=np.int64),
            expired_micro=np.zeros(n_labels, dtype=np.int64),
            recharges=np.zeros((n_labels, len(RECHARGE_OUTCOMES)), dtype=np.int64),
            balance_micro=np.zeros(n_labels, dtype=np.int64),
            pool_remaining_s=np.zeros(len(self.pool_labels), dtype=np.int64),
            sim_ms=0,
        )
        self._pending = zeros.zeroed()  # counts of the windows since the last publication
        self._published = zeros  # what a scrape sees; replaced whole, never mutated
        self._active = engine.active_by_type()
        self._publish()

        registry.register(_RunCollector(self))
        self.rating_batch_size = Histogram(
            "callsim_rating_batch_size",
            "Arrivals plus increments charged in one switch window (one call of the rating core).",
            buckets=RATING_BATCH_SIZE_BUCKETS, registry=registry)
        self.rating_batch_duration = Histogram(
            "callsim_rating_batch_duration_seconds",
            "Wall time the rating core took for one switch window.",
            buckets=RATING_DURATION_BUCKETS, registry=registry)
        self.event_lag = Histogram(
            "callsim_event_lag_seconds",
            "Per switch window at a finite --speed: wall seconds from the window's first instant "
            "falling due to the rating core returning its decisions, an upper bound on the lag of "
            "every event applied in the window.  No observations at --speed max.",
            buckets=EVENT_LAG_BUCKETS, registry=registry)

    @classmethod
    def attach(
        cls, switch: Switch, registry: CollectorRegistry, max_org_labels: int = DEFAULT_MAX_ORG_LABELS,
        **options: Any,
    ) -> "RunMetrics":
        """Metrics for the run `switch` drives, registered in `registry` and observing its windows."""
        metrics = cls(registry, switch.engine, max_org_labels=max_org_labels,
                      realtime=not switch.clock.virtual, **options)
        switch.observers.append(metrics.observe)
        return metrics

    def observe(self, report: WindowReport) -> None:
        """Fold one window in (vectorised over its CDRs); publish if it is time to."""
        cdrs, step, p = report.step.cdrs, report.step, self._pending
        flat = cdrs.call_type.astype(np.intp) * self._n_reasons + cdrs.end_reason
        p.ended[...] += np.bincount(flat, minlength=p.ended.size).reshape(p.ended.shape)
        np.add.at(p.charged_micro, self._org_label[cdrs.org], cdrs.credits_micro)
        events = step.events
        if not isinstance(events, EventColumns):  # the server's steps hold lists
            events = EventColumns.from_events(list(events))
        label = self._org_label[events.org]
        np.add.at(p.recharges[:, 0], label[events.of("recharge_succeeded")], 1)
        np.add.at(p.recharges[:, 1], label[events.of("recharge_failed")], 1)
        expired = events.of("credits_expired")
        np.add.at(p.expired_micro, label[expired], events.amount[expired])
        if not report.final:
            self.rating_batch_size.observe(report.arrivals + step.increments)
            self.rating_batch_duration.observe(report.rating_s)
            if self._realtime:
                self.event_lag.observe(report.lag_s)
        if report.final or self._wall() - self._published_at >= self._publish_every_s:
            self._publish()

    def _publish(self) -> None:
        """Read the engine's live state and make the pending counts visible to scrapes."""
        engine, p, old = self._engine, self._pending, self._published
        active = engine.active_by_type()
        n_labels = len(self.org_labels)
        self._published = _Snapshot(
            started=old.started + (active - self._active + p.ended.sum(axis=1)),
            ended=old.ended + p.ended,
            active=active,
            charged_micro=old.charged_micro + p.charged_micro,
            expired_micro=old.expired_micro + p.expired_micro,
            recharges=old.recharges + p.recharges,
            balance_micro=group_sum(self._org_label, engine.balances(), n_labels),
            pool_remaining_s=group_sum(self._pool_series, engine.pool_remaining(), len(self.pool_labels)),
            sim_ms=engine.now,
        )
        self._active = active
        self._pending = p.zeroed()
        self._published_at = self._wall()

    def snapshot(self) -> "_Snapshot":
        """The last publication (immutable: safe to read from the HTTP server's thread)."""
        return self._published


@dataclass(frozen=True)
class _Snapshot:
    """Totals of a run at one publication (or, while pending, since the last one)."""

    started: NDArray[np.int64]  # [call_type]
    ended: NDArray[np.int64]  # [call_type, end_reason]
    active: NDArray[np.int64]  # [call_type]
    charged_micro: NDArray[np.int64]  # [org label]
    expired_micro: NDArray[np.int64]  # [org label]
    recharges: NDArray[np.int64]  # [org label, outcome]
    balance_micro: NDArray[np.int64]  # [org label]
    pool_remaining_s: NDArray[np.int64]  # [pool series]
    sim_ms: int

    def zeroed(self) -> "_Snapshot":
        return _Snapshot(**{f.name: np.zeros_like(getattr(self, f.name)) for f in fields(self)})


class _RunCollector(Collector):
    """Exposes a RunMetrics snapshot as metric families at scrape time."""

    def __init__(self, metrics: RunMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:  # lets the registry refuse a duplicate name up front
        return list(self._families(None))

    def collect(self) -> list[Metric]:
        return list(self._families(self._metrics.snapshot()))

    def _families(self, s: _Snapshot | None) -> Iterator[Metric]:
        m = self._metrics
        cur = m.currency

        def money(micro: np.int64) -> float:
            return int(micro) / MICRO  # correctly rounded value of the exact decimal

        started = CounterMetricFamily(
            "callsim_calls_started", "Calls arrived, refused ones included, by call type.",
            labels=["call_type"])
        ended = CounterMetricFamily(
            "callsim_calls_ended", "Calls ended (CDRs written), by call type and end reason.",
            labels=["call_type", "end_reason"])
        active = GaugeMetricFamily(
            "callsim_active_calls", "Calls connected now, by call type.", labels=["call_type"])
        pools = GaugeMetricFamily(
            "callsim_pool_remaining_seconds", "Seconds left in the bundled-minutes pools.",
            labels=["org", "pool"])
        balance = GaugeMetricFamily(
            "callsim_credit_balance", "Communications-credit balance, in currency units.",
            labels=["org", "currency"])
        charged = CounterMetricFamily(
            "callsim_credits_charged", "Credits charged for calls, in currency units.",
            labels=["org", "currency"])
        recharges = CounterMetricFamily(
            "callsim_recharges", "Auto-recharge attempts, by outcome (succeeded, failed).",
            labels=["org", "outcome"])
        expired = CounterMetricFamily(
            "callsim_credits_expired", "Credits removed by lot expiry, in currency units.",
            labels=["org", "currency"])
        sim_time = GaugeMetricFamily(
            "callsim_simulated_time_seconds",
            "Simulated seconds since the simulation start that have been rated.")
        if s is not None:
            for t, call_type in enumerate(CALL_TYPE_NAMES):
                started.add_metric([call_type], int(s.started[t]))
                active.add_metric([call_type], int(s.active[t]))
                for r, reason in enumerate(END_REASON_NAMES):
                    ended.add_metric([call_type, reason], int(s.ended[t, r]))
            for (org, pool), seconds in zip(m.pool_labels, s.pool_remaining_s):
                pools.add_metric([org, pool], int(seconds))
            for i, org in enumerate(m.org_labels):
                balance.add_metric([org, cur], money(s.balance_micro[i]))
                charged.add_metric([org, cur], money(s.charged_micro[i]))
                expired.add_metric([org, cur], money(s.expired_micro[i]))
                for k, outcome in enumerate(RECHARGE_OUTCOMES):
                    recharges.add_metric([org, outcome], int(s.recharges[i, k]))
            sim_time.add_metric([], s.sim_ms / 1000)
        yield from (started, ended, active, pools, balance, charged, recharges, expired, sim_time)


class MetricsServer:
    """The /metrics HTTP endpoint of a run: a daemon thread serving one registry.

    Bind to loopback unless told otherwise: metrics name tenants.  Port 0
    picks a free port (see `port`).  Use as a context manager; leaving it
    stops the server, so wrap the whole run plus any linger time.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = CollectorRegistry()
        self._httpd, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host = host
        self.port: int = self._httpd.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
