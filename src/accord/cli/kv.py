"""The key-value commands of `accord`: put, get, del, range, watch, txn, lease, status
(`status --watch` keeps the table live).

Each command is a thin layer over `accord.Client`, so it gets the client's leader
routing, retries and failover. Every command takes `--endpoints` (comma-separated
client URLs; default `$ACCORD_ENDPOINTS`, else the three ports `accord up` uses).
TLS and credentials come from `ACCORD_CACERT`, `ACCORD_USER`, ... (see
`accord.security.clientenv`). Errors are printed as `error: <code>: <message>` on
stderr with exit status 1.

Keys and values are shown as text; bytes that are not UTF-8 are shown as
backslash escapes. `accord get` prints the raw value.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from accord.client import Client, ClusterStatus, Event, EventType, InvalidRequest
from accord.client.txn import compare_from_json, op_from_json
from accord.errors import AccordError
from accord.kv.results import DeleteResult, GetResult, PutResult, RangeResult, TxnResult
from accord.kv.types import KeyValue
from accord.security.clientenv import client_options_from_env

DEFAULT_ENDPOINTS = "http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003"
STATUS_TIMEOUT_S = 2.0
"""How long `accord status` waits for each member's own status."""

endpoints_option = click.option(
    "--endpoints",
    default=lambda: os.environ.get("ACCORD_ENDPOINTS", DEFAULT_ENDPOINTS),
    show_default="$ACCORD_ENDPOINTS or the ports of `accord up`",
    help="comma-separated client URLs",
)


def fail(code: str, message: str) -> click.exceptions.Exit:
    click.echo(f"error: {code}: {message}", err=True)
    return click.exceptions.Exit(1)


@contextmanager
def connect(endpoints: str) -> Iterator[Client]:
    """A client for the command; an Accord error becomes `error: ...` and exit 1."""
    urls = [e.strip() for e in endpoints.split(",") if e.strip()]
    if not urls:
        raise fail("bad_request", "no endpoint given")
    try:
        with Client(urls, **client_options_from_env()) as client:
            yield client
    except AccordError as e:
        raise fail(e.code, str(e)) from None


def show(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


# --- JSON output (the HTTP API's shapes) -----------------------------------------------
def kv_json(kv: KeyValue) -> dict[str, Any]:
    return {
        "key": show(kv.key),
        "value": show(kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
    }


def result_json(result: object) -> dict[str, Any]:
    if isinstance(result, PutResult):
        return {"revision": result.revision}
    if isinstance(result, DeleteResult):
        return {"revision": result.revision, "deleted": result.deleted}
    if isinstance(result, GetResult):
        return {"revision": result.revision, "kv": kv_json(result.kv) if result.kv else None}
    if isinstance(result, RangeResult):
        kvs = [kv_json(kv) for kv in result.kvs]
        return {"revision": result.revision, "count": result.count, "more": result.more, "kvs": kvs}
    if isinstance(result, TxnResult):
        responses = [result_json(r) for r in result.responses]
        return {"succeeded": result.succeeded, "revision": result.revision, "responses": responses}
    raise TypeError(f"no JSON form for {type(result).__name__}")


# --- keys ------------------------------------------------------------------------------
@click.command("put")
@endpoints_option
@click.argument("key")
@click.argument("value")
@click.option("--lease", type=click.IntRange(0), default=0, help="attach the key to this lease")
def put(endpoints: str, key: str, value: str, lease: int) -> None:
    """Write VALUE under KEY; prints the revision of the write."""
    with connect(endpoints) as client:
        result = client.put(key, value, lease=lease)
    click.echo(f"revision {result.revision}")


@click.command("get")
@endpoints_option
@click.argument("key")
@click.option("--serializable", is_flag=True, help="read any node's local state (maybe stale)")
@click.option("--revision", type=click.IntRange(0), default=0, help="read as of this revision")
def get(endpoints: str, key: str, serializable: bool, revision: int) -> None:
    """Print the value of KEY; exit status 1 if it does not exist."""
    with connect(endpoints) as client:
        kv = client.get(key, serializable=serializable, revision=revision)
    if kv is None:
        raise fail("not_found", f"key {key!r} not found")
    click.echo(kv.value)


@click.command("del")
@endpoints_option
@click.argument("key")
def delete(endpoints: str, key: str) -> None:
    """Delete KEY; prints how many keys were deleted (0 or 1)."""
    with connect(endpoints) as client:
        result = client.delete(key)
    click.echo(f"deleted {result.deleted} (revision {result.revision})")


@click.command("range")
@endpoints_option
@click.argument("key", required=False)
@click.argument("end", required=False)
@click.option("--prefix", help="every key starting with PREFIX")
@click.option("--limit", type=click.IntRange(0), default=0, help="at most this many keys")
@click.option("--serializable", is_flag=True, help="read any node's local state (maybe stale)")
def range_(
    endpoints: str,
    key: str | None,
    end: str | None,
    prefix: str | None,
    limit: int,
    serializable: bool,
) -> None:
    """Print the keys in [KEY, END), or KEY alone, or with --prefix, or every key:
    one `key<TAB>value` line each."""
    if prefix is not None and key is not None:
        raise click.UsageError("give either --prefix or KEY [END]")
    with connect(endpoints) as client:
        result = client.range(key, end, prefix=prefix, limit=limit, serializable=serializable)
    for kv in result.kvs:
        click.echo(f"{show(kv.key)}\t{show(kv.value)}")
    if result.more:
        click.echo(f"({result.count - len(result.kvs)} more keys)", err=True)


def event_line(event: Event) -> str:
    kind = "PUT" if event.type == EventType.PUT else "DELETE"
    line = f"{event.revision} {kind} {show(event.kv.key)}"
    return f"{line} {show(event.kv.value)}" if event.type == EventType.PUT else line


@click.command("watch")
@endpoints_option
@click.argument("key", required=False)
@click.option("--prefix", help="every key starting with PREFIX")
@click.option("--start-revision", type=click.IntRange(0), default=0, help="replay from here")
@click.option("--count", type=click.IntRange(1), default=None, help="exit after COUNT events")
def watch(
    endpoints: str, key: str | None, prefix: str | None, start_revision: int, count: int | None
) -> None:
    """Print one line per change (`revision PUT key value` or `revision DELETE key`)
    until Ctrl-C; resumes by itself if a node fails."""
    if prefix is not None and key is not None:
        raise click.UsageError("give either --prefix or KEY")
    seen = 0
    with connect(endpoints) as client:
        events = client.watch(key, prefix=prefix, start_revision=start_revision)
        try:
            for event in events:
                click.echo(event_line(event))
                seen += 1
                if count is not None and seen >= count:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            events.close()


@click.command("txn")
@endpoints_option
@click.argument("file", type=click.File("rb"))
def txn(endpoints: str, file: BinaryIO) -> None:
    """Run the transaction in FILE (`-`: stdin), a JSON body as `POST /v1/txn` takes:
    {"compare": [...], "success": [ops], "failure": [ops]}. Prints the result as JSON."""
    try:
        body = json.loads(file.read())
    except (ValueError, UnicodeDecodeError) as e:
        raise fail("bad_request", f"the transaction is not valid JSON: {e}") from None
    with connect(endpoints) as client:
        if not isinstance(body, dict) or set(body) - {"compare", "success", "failure"}:
            raise InvalidRequest("a transaction is an object of compare, success, failure")
        lists = [body.get(name, []) for name in ("compare", "success", "failure")]
        if not all(isinstance(items, list) for items in lists):
            raise InvalidRequest("compare, success and failure must be lists")
        result = client.txn(
            [compare_from_json(c) for c in lists[0]],
            [op_from_json(o) for o in lists[1]],
            [op_from_json(o) for o in lists[2]],
        )
    click.echo(json.dumps(result_json(result)))


# --- leases ------------------------------------------------------------------------------
@click.group("lease")
def lease() -> None:
    """Grant, refresh, inspect and revoke leases."""


@lease.command("grant")
@endpoints_option
@click.argument("ttl", type=click.IntRange(1))
def lease_grant(endpoints: str, ttl: int) -> None:
    """Grant a lease of TTL seconds; prints its id alone (for $(...) in scripts)."""
    with connect(endpoints) as client:
        granted = client.lease_grant(ttl)
    click.echo(str(granted.id))


@lease.command("keepalive")
@endpoints_option
@click.argument("lease_id", type=click.IntRange(1))
def lease_keepalive(endpoints: str, lease_id: int) -> None:
    """Refresh a lease once."""
    with connect(endpoints) as client:
        refreshed = client.lease_keepalive(lease_id)
    click.echo(f"lease {refreshed.id} kept alive, ttl {refreshed.ttl_s}s")


@lease.command("revoke")
@endpoints_option
@click.argument("lease_id", type=click.IntRange(1))
def lease_revoke(endpoints: str, lease_id: int) -> None:
    """Revoke a lease and delete its keys."""
    with connect(endpoints) as client:
        revoked = client.lease_revoke(lease_id)
    click.echo(f"lease {lease_id} revoked (revision {revoked.revision})")


@lease.command("ttl")
@endpoints_option
@click.argument("lease_id", type=click.IntRange(1))
def lease_ttl(endpoints: str, lease_id: int) -> None:
    """Print a lease's remaining time to live and its keys."""
    with connect(endpoints) as client:
        info = client.lease_ttl(lease_id)
    keys = ", ".join(show(k) for k in info.keys) or "-"
    click.echo(f"lease {info.id}: ttl {info.ttl_s}s of {info.granted_ttl_s}s, keys: {keys}")


# --- status -------------------------------------------------------------------------------
StatusRow = tuple[int, str, str | None, ClusterStatus | None]


def member_views(client: Client, known: list[StatusRow] | None = None) -> list[StatusRow]:
    """(id, name, url, that member's own status or None if it did not answer). With
    `known` rows, a cluster that cannot list its members (no quorum) is shown as the
    members seen last time."""
    try:
        members = [(m.id, m.name or str(m.id), m.url) for m in client.members()]
    except AccordError:
        if not known:
            raise
        members = [(member_id, name, url) for member_id, name, url, _ in known]
    rows: list[StatusRow] = []
    for member_id, name, url in members:
        own: ClusterStatus | None = None
        if url:
            try:
                own = client.status(endpoint=url, timeout_s=STATUS_TIMEOUT_S)
            except AccordError:
                own = None
        rows.append((member_id, name, url, own))
    return rows


def status_table(rows: list[StatusRow], caption: str | None = None) -> Table:
    table = Table(title="Accord cluster", caption=caption)
    for column in ("member", "url", "role", "term", "commit", "applied", "leader"):
        numeric = column in ("term", "commit", "applied")
        table.add_column(column, justify="right" if numeric else "left")
    for member_id, name, url, own in rows:
        if own is None:
            table.add_row(f"{name} ({member_id})", url or "-", "unreachable", "", "", "", "")
            continue
        marker = "*" if own.role == "leader" else ""
        cells = (own.role, str(own.term), str(own.commit), str(own.applied), marker)
        table.add_row(f"{name} ({member_id})", url or "-", *cells)
    return table


@click.command("status")
@endpoints_option
@click.option("--watch", "live", is_flag=True, help="refresh the table until Ctrl-C")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.2, 60),
    help="seconds between refreshes with --watch",
)
def status(endpoints: str, live: bool, interval: float) -> None:
    """A table of every member as it reports itself: role, term, commit, applied."""
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # keep URLs whole in pipes and logs
    with connect(endpoints) as client:
        rows = member_views(client)
        if not live:
            console.print(status_table(rows))
            return
        with contextlib.suppress(KeyboardInterrupt), Live(console=console) as screen:
            while True:
                stamp = time.strftime("%H:%M:%S")
                try:
                    rows = member_views(client, rows)
                    caption = f"updated {stamp}; Ctrl-C stops"
                except AccordError as e:
                    caption = f"{stamp}: {e.code}: {e}; Ctrl-C stops"
                screen.update(status_table(rows, caption))
                time.sleep(interval)


COMMANDS = (put, get, delete, range_, watch, txn, lease, status)
