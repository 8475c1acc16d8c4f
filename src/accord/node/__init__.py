"""The node runtime: drives raft, storage, transport and the state machine."""
