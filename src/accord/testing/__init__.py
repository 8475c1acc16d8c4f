"""Public test helpers: an in-memory Raft network for unit tests and examples."""
