"""Security: encryption at rest, TLS material and contexts, users, tokens and RBAC.

Everything here is off unless configured (the `[security]` table of a node's
configuration); a node without it behaves exactly as one built before this package.
"""
