"""Prometheus metrics of one node, on a registry of its own.

Theory of operation
-------------------
Two kinds of metrics, chosen by cost on the hot path:

- Counters and histograms that the request and disk paths update directly: HTTP
  requests and their latency (one observation per request), WAL fsync latency and
  bytes (one per Ready, from the disk thread).
- Everything else is read at scrape time: `NodeCollector` calls a `sample()`
  function that copies the node's state (term, role, indexes, plain-integer counters
  the runtime keeps, follower progress, store sizes) into a `NodeSample`, and turns
  it into metric families. The Ready loop then pays for integer increments only.

The registry is per node (never the global one), so several nodes can share a
process, and each registry carries its own `ProcessCollector`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger("accord.observability")

CONTENT_TYPE = CONTENT_TYPE_LATEST
ROLES = ("follower", "pre_candidate", "candidate", "leader")
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
FSYNC_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass(slots=True)
class NodeSample:
    """What the node reports at scrape time; plain values, no references kept."""

    node_id: int
    name: str
    term: int
    role: str
    leader: int
    commit: int
    applied: int
    last_index: int
    pending_proposals: int
    proposals_failed: int
    leader_changes: int
    snapshots_taken: int
    snapshots_installed: int
    messages_sent: Mapping[str, int]
    messages_received: Mapping[str, int]
    follower_match: Mapping[int, int] = field(default_factory=dict)
    """Leader only: the highest index known replicated on each other member."""
    follower_lag_seconds: Mapping[int, float] = field(default_factory=dict)
    """Leader only: age of the oldest entry each member lacks (0: it has them all)."""
    keys: int = 0
    revision: int = 0
    leases: int = 0
    watchers: int = 0
    client_connections: int = 0


class NodeCollector(Collector):
    """Gauges and counters built from one `NodeSample` per scrape."""

    def __init__(self, sample: Callable[[], NodeSample]) -> None:
        self._sample = sample

    def describe(self) -> Iterable[Metric]:
        return ()  # families are only known once sampled; nothing to check at register

    def collect(self) -> Iterator[Metric]:
        s = self._sample()
        yield _info(s)
        yield _gauge("accord_raft_term", "Current Raft term", s.term)
        role = GaugeMetricFamily("accord_raft_role", "1 for this node's role", labels=["role"])
        for name in ROLES:
            role.add_metric([name], 1.0 if name == s.role else 0.0)
        yield role
        yield _gauge("accord_raft_leader_id", "Leader this node knows (0: none)", s.leader)
        yield _gauge("accord_raft_commit_index", "Highest index known committed", s.commit)
        yield _gauge("accord_raft_applied_index", "Highest index applied", s.applied)
        yield _gauge("accord_raft_last_index", "Last index in the local log", s.last_index)
        yield _gauge(
            "accord_raft_pending_proposals", "Proposals waiting to be applied", s.pending_proposals
        )
        yield _counter(
            "accord_raft_proposals_failed",
            "Proposals that did not take effect (dropped, timed out, not leader)",
            s.proposals_failed,
        )
        yield _counter(
            "accord_raft_leader_changes", "Times this node saw a new leader", s.leader_changes
        )
        yield _counter("accord_raft_snapshots_taken", "Local snapshots taken", s.snapshots_taken)
        yield _counter(
            "accord_raft_snapshots_installed",
            "Snapshots received from the leader and installed",
            s.snapshots_installed,
        )
        yield _counter(
            "accord_raft_snapshots_sent",
            "Snapshot messages sent to followers",
            s.messages_sent.get("snapshot", 0),
        )
        yield _by_type("accord_raft_messages_sent", "Raft messages sent", s.messages_sent)
        yield _by_type(
            "accord_raft_messages_received", "Raft messages received", s.messages_received
        )
        lag = GaugeMetricFamily(
            "accord_raft_replication_lag_entries",
            "Leader only: entries a follower is behind the leader's last index",
            labels=["follower"],
        )
        for follower, match in sorted(s.follower_match.items()):
            lag.add_metric([str(follower)], float(max(0, s.last_index - match)))
        yield lag
        lag_s = GaugeMetricFamily(
            "accord_raft_replication_lag_seconds",
            "Leader only: how long ago the leader appended the oldest entry a follower lacks",
            labels=["follower"],
        )
        for follower, seconds in sorted(s.follower_lag_seconds.items()):
            lag_s.add_metric([str(follower)], seconds)
        yield lag_s
        yield _gauge("accord_kv_keys", "Live keys", s.keys)
        yield _gauge("accord_kv_revision", "Current store revision", s.revision)
        yield _gauge("accord_kv_leases", "Live leases", s.leases)
        yield _gauge("accord_kv_watchers", "Open watches on this node", s.watchers)
        yield _gauge(
            "accord_http_client_connections", "Open HTTP client connections", s.client_connections
        )


def _info(s: NodeSample) -> Metric:
    info = GaugeMetricFamily("accord_node_info", "This node's identity", labels=["id", "name"])
    info.add_metric([str(s.node_id), s.name], 1.0)
    return info


def _gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(name, documentation, value=float(value))


def _by_type(name: str, documentation: str, counts: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["type"])
    for kind, count in sorted(counts.items()):
        family.add_metric([kind], float(count))
    return family


class NodeMetrics:
    """The registry of one node and the metrics updated on hot paths."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "accord_http_requests",
            "HTTP requests served, by operation and status code",
            ["operation", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "accord_http_request_duration_seconds",
            "Time to answer an HTTP request (to the start of the body for streams)",
            ["operation"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.native_requests = Counter(
            "accord_native_requests",
            "Native-protocol requests served, by operation and status code",
            ["operation", "status"],
            registry=self.registry,
        )
        self.native_duration = Histogram(
            "accord_native_request_duration_seconds",
            "Time to answer a native-protocol request",
            ["operation"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.wal_fsync = Histogram(
            "accord_wal_fsync_duration_seconds",
            "Time of one WAL data sync (one per Ready that persists something)",
            buckets=FSYNC_BUCKETS_S,
            registry=self.registry,
        )
        self.wal_bytes = Counter(
            "accord_wal_written_bytes", "Bytes appended to the WAL", registry=self.registry
        )
        ProcessCollector(registry=self.registry)
        # Labelled children by (operation, status): `labels()` takes a lock and builds
        # a tuple on every call. Bounded: operations are route names, statuses < 600.
        self._request_children: dict[tuple[Counter, str, int], tuple[Counter, Histogram]] = {}

    def watch(self, sample: Callable[[], NodeSample]) -> None:
        """Report the node's state at every scrape."""
        self.registry.register(NodeCollector(sample))

    def observe_request(self, operation: str, status: int, seconds: float) -> None:
        """An HTTP request was answered."""
        self._observe(self.http_requests, self.http_duration, operation, status, seconds)

    def observe_native(self, operation: str, status: int, seconds: float) -> None:
        """A native-protocol request was answered."""
        self._observe(self.native_requests, self.native_duration, operation, status, seconds)

    def _observe(
        self, counter: Counter, histogram: Histogram, operation: str, status: int, seconds: float
    ) -> None:
        key = (counter, operation, status)
        children = self._request_children.get(key)
        if children is None:
            children = (counter.labels(operation, str(status)), histogram.labels(operation))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_sync(self, seconds: float, nbytes: int) -> None:
        """A WAL sync finished (called on the disk thread; the client is thread-safe)."""
        self.wal_fsync.observe(seconds)
        self.wal_bytes.inc(nbytes)

    def render(self) -> bytes:
        return generate_latest(self.registry)
