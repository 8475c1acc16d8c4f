"""Deterministic simulation of whole Raft clusters; see `accord.sim.runner`."""
