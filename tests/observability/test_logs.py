"""Log records as JSON lines (default) or text, stamped with node, id, term and the
request id; and the configuration keys that choose them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.node.address import ConfigError
from accord.observability.logs import NodeContext, configure_logging, request_id
from accord.server.config import load_config

BASE = {
    "name": "n1",
    "id": "1",
    "data_dir": "/tmp/x",
    "client": "127.0.0.1:7001",
    "peer": "127.0.0.1:7101",
    "join": "true",
}


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def capture(log_format: str, term: int = 7) -> io.StringIO:
    out = io.StringIO()
    configure_logging(log_format, "info", NodeContext("n2", 2, lambda: term), out)
    return out


def test_json_lines_carry_node_term_request_and_event_fields(restore_root_logging: None) -> None:
    out = capture("json")
    log = logging.getLogger("accord.node")
    log.info("leader is now %s", 3, extra={"event": "leader_changed", "leader": 3})
    token = request_id.set("42:7")
    try:
        log.warning("slow request", extra={"event": "slow_request", "seconds": 1.5})
    finally:
        request_id.reset(token)
    log.debug("not at info level")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["msg"] == "leader is now 3"
    assert (first["node"], first["node_id"], first["term"]) == ("n2", 2, 7)
    assert (first["event"], first["leader"], first["level"]) == ("leader_changed", 3, "info")
    assert "request_id" not in first
    assert (second["request_id"], second["event"], second["seconds"]) == (
        "42:7",
        "slow_request",
        1.5,
    )


def test_text_format_is_one_readable_line(restore_root_logging: None) -> None:
    out = capture("text", term=4)
    logging.getLogger("accord.api").error("boom %d", 1)
    line = out.getvalue().strip()
    assert "n2 term=4 ERROR accord.api: boom 1" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_logging_keys_are_validated_and_layered() -> None:
    assert load_config(env={}, overrides=BASE).log_format == "json"
    config = load_config(
        env={"ACCORD_LOG_FORMAT": "text", "ACCORD_LOG_LEVEL": "debug"},
        overrides={**BASE, "log_level": "warning"},
    )
    assert (config.log_format, config.log_level, config.tracing) == ("text", "warning", "off")
    with pytest.raises(ConfigError, match="log_format"):
        load_config(env={}, overrides={**BASE, "log_format": "xml"})
    with pytest.raises(ConfigError, match="tracing"):
        load_config(env={}, overrides={**BASE, "tracing": "jaeger"})


def test_otlp_tracing_needs_its_exporter_package(tmp_path: Path) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp"):
            load_config(env={}, overrides={**BASE, "tracing": "otlp"})
    else:
        assert load_config(env={}, overrides={**BASE, "tracing": "otlp"}).tracing == "otlp"
