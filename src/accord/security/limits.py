"""Bounds of the client ports and of the security layer, named with units last.

The connection, timeout, rate and login values are the defaults of `[security]`
settings (`accord.security.config`, named in each docstring), overridable by
`ACCORD_<KEY>`; the connection cap and the timeouts apply whether or not the rest of
security is on. The replicated auth store's bounds are the node's
(`accord.node.limits`), beside the store itself. This module imports nothing.
"""

from __future__ import annotations

# --- Client ports ([security] settings, on by default) ------------------------------
CONNECTIONS_MAX = 1024
"""Open connections per client port, HTTP and native each (setting `connections_max`):
at the cap a new connection closes the longest-idle one, and is closed at once only if
every connection has a request in progress (or, native, a watch open)."""

READ_TIMEOUT_S = 30.0
"""A started request (HTTP headers and body, a native frame or the hello) must arrive
within this, or the connection is closed (setting `read_timeout_s`)."""

IDLE_TIMEOUT_S = 30.0
"""A connection with no request in progress for this long is closed (setting
`idle_timeout_s`): HTTP before its first byte or between keep-alive requests, native
after the hello with no request in flight and no watch open."""

RATE_LIMIT_RPS = 0.0
"""Requests per second per client, the user or else the address (setting
`rate_limit_rps`; 0: unlimited); beyond it 429 `rate_limited` with `Retry-After`."""

RATE_LIMIT_BURST = 100
"""Requests a client may send at once above its rate (setting `rate_limit_burst`)."""

RATE_LIMIT_CLIENTS_MAX = 10_000
"""Clients whose token buckets are remembered; the least recently seen is forgotten
first (and starts again with a full bucket)."""

# --- Logins ([security] settings) -------------------------------------------------------
LOGIN_SOURCE_RPS = 2.0
"""Login attempts per second per source address (setting `login_source_rps`; 0:
unlimited)."""

LOGIN_SOURCE_BURST = 30
"""Login attempts one address may make at once (setting `login_source_burst`)."""

LOGIN_USER_RPS = 1.0
"""Failed logins per second per user name, known or not (setting `login_user_rps`;
0: unlimited)."""

LOGIN_USER_BURST = 10
"""Failed logins one name may take at once (setting `login_user_burst`)."""

LOGIN_FAILURES_MAX = 5
"""Failures in a row from one address before the (name, address) is locked (setting
`login_failures_max`; 0: never)."""

LOGIN_LOCKOUT_S = 5.0
"""The first lock of a (name, address); doubled by each further failure (setting
`login_lockout_s`)."""

LOGIN_LOCKOUT_S_MAX = 900.0
"""The longest lock; a success, or a quiet spell this long after the lock, forgets
the failures (setting `login_lockout_max_s`)."""

LOGIN_ENTRIES_MAX = 10_000
"""Sources, names and (name, source) pairs each login table remembers (setting
`login_entries_max`)."""

LOGIN_LOCKOUT_DOUBLINGS_MAX = 32
"""Past this many doublings the lock is at `lockout_max_s` anyway; no huge powers."""

# --- Credentials -----------------------------------------------------------------------
TOKEN_TTL_S = 3600
"""Lifetime of a login token (setting `token_ttl_s`)."""

TOKEN_CHARS_MAX = 1024
"""Longest token accepted; a longer one is refused before it is checked."""

PASSWORD_BYTES_MAX = 1024
"""Longer passwords are refused before hashing (scrypt's cost is in N, not the input,
but there is no reason to accept megabytes)."""

ENCRYPTION_KEYS_MAX = 16
"""Keys one keyring may hold (the current one and those still being retired)."""
