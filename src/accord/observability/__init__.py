"""Metrics, structured logs and tracing for one node.

Nothing here knows the node's classes: the node hands in plain samples and
callbacks, so the Raft core stays free of this package and tests can run several
nodes, each with its own registry, in one process.
"""
