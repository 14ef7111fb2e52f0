"""Every Prometheus metric callsim exports, declared in this one module.

Names follow the Prometheus conventions: base units (`_seconds`), `_total`
for counters, bounded label sets.  Per-org labels are kept for the first
`max_org_labels` orgs of the scenario; the others are aggregated under
`org="_other"` so a 10,000-tenant scenario cannot explode the series count.

Metrics live in a registry per run (not the process-global one), so tests
and the server can run several simulations in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OTHER_ORGS = "_other"


class ServerMetrics:
    """Wire-protocol health of `callsim serve` (see docs/protocol.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Counter(
            "callsim_server_connections_total", "TCP connections accepted.", registry=registry)
        self.open_connections = Gauge(
            "callsim_server_open_connections", "TCP connections currently open.", registry=registry)
        self.messages = Counter(
            "callsim_server_messages_total", "Protocol messages received, by op.", ["op"],
            registry=registry)
        self.protocol_errors = Counter(
            "callsim_server_protocol_errors_total",
            "Messages or connections refused, by kind (malformed, unknown_op, bad_field, "
            "oversize, not_authenticated, bad_token, unknown_call, idle_timeout, flood, ...).",
            ["kind"], registry=registry)
        self.setup_latency = Histogram(
            "callsim_server_setup_latency_seconds",
            "Wall time from a setup message's arrival to its answered/rejected reply.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=registry)
