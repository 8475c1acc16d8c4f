"""Hypothesis strategies for valid Raft messages (the shapes our core produces)."""

from __future__ import annotations

from hypothesis import strategies as st

from accord.raft.types import ConfState, Entry, EntryType, Message, MessageType, SnapshotChunk
from accord.transport.limits import INDEX_MAX, SNAPSHOT_BYTES_MAX, TERM_MAX

U64_MAX = (1 << 64) - 1


def bounded(value_max: int, value_min: int = 0) -> st.SearchStrategy[int]:
    """Small values, the bound itself, and anything in between."""
    return st.one_of(
        st.integers(value_min, 1000), st.just(value_max), st.integers(value_min, value_max)
    )


terms = bounded(TERM_MAX)
indexes = bounded(INDEX_MAX)
offsets = bounded(SNAPSHOT_BYTES_MAX)
node_ids = st.integers(1, 1 << 20)
members = st.frozensets(node_ids, max_size=7)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    return Entry(
        term=draw(bounded(TERM_MAX, 1)),
        index=draw(bounded(INDEX_MAX, 1)),
        type=draw(st.sampled_from(EntryType)),
        data=draw(st.binary(max_size=64)),
    )


@st.composite
def chunks(draw: st.DrawFn) -> SnapshotChunk:
    data = draw(st.binary(max_size=128))
    offset = draw(offsets.filter(lambda n: n + len(data) <= SNAPSHOT_BYTES_MAX))
    total = draw(st.integers(offset + len(data), SNAPSHOT_BYTES_MAX))
    conf = ConfState(voters=draw(members), voters_outgoing=draw(members), learners=draw(members))
    return SnapshotChunk(draw(indexes), draw(terms), conf, offset, data, total)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from(MessageType))
    return Message(
        type=kind,
        group=draw(st.integers(0, 1000)),
        src=draw(node_ids),
        dst=draw(node_ids),
        term=draw(terms),
        log_term=draw(terms),
        index=draw(indexes),
        entries=tuple(draw(st.lists(entries(), max_size=8))) if kind is MessageType.APPEND else (),
        commit=draw(indexes),
        reject=draw(st.booleans()),
        reject_hint=draw(indexes),
        context=draw(st.binary(max_size=32)),
        chunk=draw(chunks()) if kind is MessageType.SNAPSHOT else None,
        offset=draw(offsets),
    )


# Anything msgpack can pack: what a broken or hostile peer might put in a field.
junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(1 << 63), U64_MAX),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.binary(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=4), children, max_size=3),
    ),
    max_leaves=8,
)
