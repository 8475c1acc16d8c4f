"""Hypothesis strategies for valid Raft messages (the shapes our core produces)."""

from __future__ import annotations

from hypothesis import strategies as st

from accord.raft.types import ConfState, Entry, EntryType, Message, MessageType, SnapshotChunk

U64_MAX = (1 << 64) - 1

uint64 = st.one_of(st.integers(0, 1000), st.integers(0, U64_MAX))
positive = st.one_of(st.integers(1, 1000), st.integers(1, U64_MAX))
node_ids = st.integers(1, 1 << 20)
members = st.frozensets(node_ids, max_size=7)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    return Entry(
        term=draw(positive),
        index=draw(positive),
        type=draw(st.sampled_from(EntryType)),
        data=draw(st.binary(max_size=64)),
    )


@st.composite
def chunks(draw: st.DrawFn) -> SnapshotChunk:
    data = draw(st.binary(max_size=128))
    offset = draw(uint64.filter(lambda n: n + len(data) <= U64_MAX))
    total = draw(st.integers(offset + len(data), U64_MAX))
    conf = ConfState(voters=draw(members), voters_outgoing=draw(members), learners=draw(members))
    return SnapshotChunk(draw(uint64), draw(uint64), conf, offset, data, total)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from(MessageType))
    return Message(
        type=kind,
        group=draw(uint64),
        src=draw(node_ids),
        dst=draw(node_ids),
        term=draw(uint64),
        log_term=draw(uint64),
        index=draw(uint64),
        entries=tuple(draw(st.lists(entries(), max_size=8))) if kind is MessageType.APPEND else (),
        commit=draw(uint64),
        reject=draw(st.booleans()),
        reject_hint=draw(uint64),
        context=draw(st.binary(max_size=32)),
        chunk=draw(chunks()) if kind is MessageType.SNAPSHOT else None,
        offset=draw(uint64),
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
