"""The client's defaults and bounds, named with units last.

Every one of the timing values can be overridden per client (`AsyncClient(...)`
keyword arguments); `timeout_s` can also be overridden per call. The bounds on what a
node sends (native answer frames, HTTP watch lines) are the protocols' own, in
`accord.api.limits`: the largest a node may send, so the client accepts exactly those.
"""

from __future__ import annotations

CALL_TIMEOUT_S = 5.0
"""Default deadline of one call, retries and backoff included."""

ATTEMPT_TIMEOUT_S = 2.0
"""Longest one attempt may take before it is abandoned and retried elsewhere (never
longer than what is left of the call's deadline). Bounds the time lost to a node that
accepts connections but does not answer (paused, partitioned)."""

ATTEMPT_TIMEOUT_S_MIN = 0.01
"""A retry is not started with less than this left of the call's deadline: it could
not get an answer, and its timeout would hide why the earlier attempts failed."""

RETRIES_MAX = 10
"""Retries after the first attempt of one call (the deadline usually ends it first)."""

RETRY_BACKOFF_S_MIN = 0.05
"""Ceiling of the first retry's delay; the ceiling doubles with every retry."""

RETRY_BACKOFF_S_MAX = 1.0
"""Largest ceiling of a retry's delay. Each delay is drawn uniformly from
[0, ceiling] (full jitter), so clients that failed together retry apart."""

BREAKER_FAILURES_MAX = 3
"""Consecutive connection failures (refused, reset, attempt timeout) that open an
endpoint's circuit breaker."""

BREAKER_COOLDOWN_S = 2.0
"""How long an open breaker refuses requests before one trial request (half-open) is
let through; a trial that has not reported back after this long is given up and
another one may start."""

DISCOVERY_TIMEOUT_S = 1.0
"""Deadline of one `/v1/cluster/status` request made to find the leader."""

LEADER_REFRESH_S = 10.0
"""Age after which the next write first asks the cluster who leads (a leader that
changed while the old one kept answering would otherwise cost every write a hop)."""

NATIVE_LINK_IDLE_S_MAX = 15.0
"""A shared native link unused for this long is closed and a new one opened for the
next request: below the node's idle timeout (`idle_timeout_s`, 30 s by default), so a
request never races the node closing the idle connection (over HTTP, aiohttp's
keep-alive of 15 s does the same)."""

WATCH_PROBE_INTERVAL_S = 5.0
"""A watch stream silent for this long has its node probed (`/ready`: it knows a leader
and is not far behind); if the probe fails the watch resumes on another endpoint."""

WATCH_RECONNECT_TIMEOUT_S = 30.0
"""A watch that finds no node to resume on for this long raises `Unavailable`."""

CLIENT_ID_BITS = 63
"""Client ids are random positive 63-bit integers (they fit any signed 64-bit field)."""

WATCH_QUEUE_FRAMES_MAX = 64
"""Frames of a native watch held for a slow consumer before the link stops reading
(backpressure through TCP; the node ends a watcher that falls too far behind)."""

CLIENT_SESSIONS_MAX = 64
"""Concurrent writes one client sends: each uses a session of its own (a client id
and its sequence numbers), as the node keeps one result per client id."""
