"""The dashboard in a real headless Chromium against a real 3-node cluster: it shows
the members and one leader, then the leader's death and its successor."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.testing.cluster import LocalCluster, http, running_cluster, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

DEADLINE_MS = 30_000
UP_ROWS = "#members tr[data-state=up]"
LEADER_ROWS = "#members tr[data-state=up][data-role=leader]"
SHARD_ROWS = "#shards tr[data-shard-id]"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path / "cluster")


@pytest.fixture
def page() -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


@pytest.fixture
def writer(cluster: LocalCluster) -> Iterator[None]:
    """Writes in the background so the throughput and latency charts have data."""
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            node = 1 + i % 3
            try:
                http("PUT", f"{cluster.url(node)}/v1/kv/load{i % 50}", b"x", timeout=1)
            except OSError:
                stop.wait(0.05)  # that node is down; the others carry on
            i += 1

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)


def screenshots(tmp_path: Path) -> Path:
    """docs/images when ACCORD_SCREENSHOT_DIR says so; a temporary directory otherwise."""
    return Path(os.environ.get("ACCORD_SCREENSHOT_DIR", tmp_path))


def test_dashboard_shows_members_and_a_failover(
    cluster: LocalCluster, page: sync_api.Page, writer: None, tmp_path: Path
) -> None:
    leader = cluster.leader()
    viewer = 1 if leader != 1 else 2  # the page keeps polling after the leader dies
    page.goto(f"{cluster.url(viewer)}/")
    page.wait_for_function(
        f"document.querySelectorAll('{UP_ROWS}').length === 3"
        f" && document.querySelectorAll('{LEADER_ROWS}').length === 1",
        timeout=DEADLINE_MS,
    )
    assert page.locator("#members tr").count() == 3
    assert page.get_attribute(LEADER_ROWS, "data-member-id") == str(leader)
    assert "leader" in (page.get_attribute(LEADER_ROWS, "class") or "")  # highlighted
    page.wait_for_function("series.requests.some((p) => p.value > 0)", timeout=DEADLINE_MS)
    page.wait_for_function("series.requests.length >= 5", timeout=DEADLINE_MS)
    page.screenshot(path=str(screenshots(tmp_path) / "dashboard.png"), full_page=True)

    os.kill(cluster.pids()[leader], signal.SIGKILL)
    page.wait_for_function(
        f"document.querySelector('#members tr[data-member-id=\"{leader}\"]')"
        f".dataset.state === 'down'"
        f" && document.querySelectorAll('{LEADER_ROWS}').length === 1",
        timeout=DEADLINE_MS,
    )
    new_leader = page.get_attribute(LEADER_ROWS, "data-member-id")
    assert new_leader is not None and new_leader != str(leader)
    assert page.locator(UP_ROWS).count() == 2
    events = page.inner_text("#events")
    assert "is down" in events and "new leader" in events
    page.screenshot(path=str(screenshots(tmp_path) / "dashboard-failover.png"), full_page=True)


def test_dashboard_shows_each_shard_and_its_leader(tmp_path: Path, page: sync_api.Page) -> None:
    for cluster in running_cluster(tmp_path / "cluster", shards=3):
        page.goto(f"{cluster.url(2)}/")
        page.wait_for_function(
            f"[...document.querySelectorAll('{SHARD_ROWS}')].length === 3"
            f" && [...document.querySelectorAll('{SHARD_ROWS}')].every((r) => r.dataset.leader)",
            timeout=DEADLINE_MS,
        )

        def agrees(cluster: LocalCluster = cluster) -> bool:
            """The page shows the leaders the node reports (they settle on the
            preferred voters within a few seconds of the start)."""
            code, body, _ = http("GET", f"{cluster.url(2)}/v1/cluster/shards")
            expected = {str(s["id"]): s["leader"] for s in json.loads(body)["shards"]}
            shown = page.eval_on_selector_all(
                SHARD_ROWS, "rows => rows.map(r => [r.dataset.shardId, r.dataset.leader])"
            )
            return code == 200 and dict(shown) == expected

        wait_for(agrees, "the page to show each shard's leader")
        assert page.text_content("#shard-map-version") == "map version 1"
        page.screenshot(path=str(screenshots(tmp_path) / "dashboard-shards.png"), full_page=True)
