"""The run's HTML report: one self-contained file (inline SVG and CSS, no scripts
from elsewhere) with the verdict, the checker's explanation, the figures, and a
timeline: one lane per client with each operation drawn from its call to its
answer (green ok, red failed, orange unknown), and the fault intervals as bands
across all lanes, with one lane per fault family on top (families overlap in
time). Hovering an operation or a fault shows its details (SVG `<title>`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accord.chaos.faults import FaultRecord
from accord.chaos.record import OpRecord

WIDTH_PX = 1400
LANE_PX = 16
LABEL_PX = 90
COLORS = {"ok": "#2e9e44", "fail": "#d43c3c", "unknown": "#f0a020"}
FAULT_COLORS = {
    "kill": "#7f1d1d",
    "pause": "#4338ca",
    "partition": "#a16207",
    "latency": "#0e7490",
    "move": "#15803d",
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } .valid { color: #2e9e44; } .invalid { color: #d43c3c; }
pre { background: #f6f6f6; padding: 12px; overflow-x: auto; font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.legend span { display: inline-block; margin-right: 16px; font-size: 13px; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle;
  margin-right: 4px; }
svg text { font-size: 11px; font-family: system-ui, sans-serif; }
"""


def write_report(
    path: Path,
    summary: dict[str, Any],
    ops: Sequence[OpRecord],
    faults: Sequence[FaultRecord],
) -> None:
    path.write_text(render_report(summary, ops, faults))


def render_report(
    summary: dict[str, Any], ops: Sequence[OpRecord], faults: Sequence[FaultRecord]
) -> str:
    verdict = summary["verdict"]
    valid = bool(summary["valid"])
    title = f"accord chaos: {summary['workload']} - {verdict['summary']}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1 class='{'valid' if valid else 'invalid'}'>{html.escape(verdict['summary'])}</h1>",
        _figures(summary),
    ]
    if verdict.get("details"):
        heading = "Checker" if valid else "Why the checker says INVALID"
        text = "\n".join(str(line) for line in verdict["details"])
        parts += [f"<h2>{heading}</h2><pre>{html.escape(text)}</pre>"]
    parts += [
        "<h2>Timeline</h2>",
        _legend(),
        _timeline(ops, faults),
        "<h2>Faults</h2>",
        _fault_table(faults),
        "</body></html>",
    ]
    return "\n".join(parts)


def _figures(summary: dict[str, Any]) -> str:
    shards = summary["shards"]
    moves = summary["moves"] if "move" in summary["faults"] else None
    rows = [
        ("workload", summary["workload"]),
        ("faults", ", ".join(summary["faults"]) or "none"),
        ("nodes", summary["nodes"]),
        ("shards", f"{shards}, {summary['replicas']} replicas each" if shards > 1 else 1),
        ("network", summary["network"]),
        ("seed", summary["seed"]),
        ("deliberate bugs", ", ".join(summary["bugs"]) or "none"),
        ("operations", json.dumps(summary["operations"])),
        ("faults injected", json.dumps(summary["faults_injected"])),
        *([("replica moves", json.dumps(moves))] if moves is not None else []),
        ("checker figures", json.dumps(summary["verdict"].get("stats", {}), default=str)),
        ("wall time", f"{summary['duration_s']} s"),
    ]
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _legend() -> str:
    items = [(f"op {name}", color) for name, color in COLORS.items()]
    items += [(f"fault: {name}", color) for name, color in FAULT_COLORS.items()]
    spans = "".join(
        f"<span><i class='swatch' style='background:{c}'></i>{html.escape(n)}</span>"
        for n, c in items
    )
    return f"<p class='legend'>{spans}</p>"


def _timeline(ops: Sequence[OpRecord], faults: Sequence[FaultRecord]) -> str:
    families = sorted({f.family for f in faults})
    fault_lane = {family: i for i, family in enumerate(families)}  # concurrent faults
    clients = sorted({op.client for op in ops})  # show side by side, one lane each
    lane = {client: i + len(families) for i, client in enumerate(clients)}
    end_s = max(
        [1.0] + [op.ret_s or op.call_s for op in ops] + [f.end_s or f.start_s for f in faults]
    )
    plot_px = WIDTH_PX - LABEL_PX
    height = (len(clients) + len(families)) * LANE_PX + 24

    def x(t: float) -> float:
        return LABEL_PX + t / end_s * plot_px

    out = [f"<svg width='{WIDTH_PX}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"]
    for f in faults:
        color = FAULT_COLORS.get(f.family, "#555")
        x0, x1 = x(f.start_s), x(f.end_s if f.end_s is not None else end_s)
        tip = html.escape(f"{f.description} [{f.start_s:.2f}s .. {(f.end_s or end_s):.2f}s]")
        out.append(
            f"<rect x='{x0:.1f}' y='0' width='{max(x1 - x0, 1):.1f}' height='{height - 20}' "
            f"fill='{color}' opacity='0.12'/>"
        )
        y = fault_lane[f.family] * LANE_PX + 2
        out.append(
            f"<rect x='{x0:.1f}' y='{y}' width='{max(x1 - x0, 1):.1f}' height='{LANE_PX - 4}' "
            f"fill='{color}'><title>{tip}</title></rect>"
        )
    names = [(i, family) for family, i in fault_lane.items()]
    names += [(i, "final" if c < 0 else f"client {c}") for c, i in lane.items()]
    for i, name in names:
        out.append(f"<text x='2' y='{(i + 1) * LANE_PX - 4}'>{html.escape(name)}</text>")
    for op in ops:
        status = op.status or "unknown"
        y = lane[op.client] * LANE_PX + 2
        x0 = x(op.call_s)
        x1 = x(op.ret_s if op.ret_s is not None else end_s)
        tip = html.escape(_describe(op))
        out.append(
            f"<rect x='{x0:.1f}' y='{y}' width='{max(x1 - x0, 1.5):.1f}' "
            f"height='{LANE_PX - 4}' fill='{COLORS[status]}'><title>{tip}</title></rect>"
        )
    for tick in range(0, int(end_s) + 1, max(1, int(end_s) // 20)):
        out.append(f"<text x='{x(tick):.1f}' y='{height - 6}'>{tick}s</text>")
    out.append("</svg>")
    return "\n".join(out)


def _describe(op: OpRecord) -> str:
    ret = f"{op.ret_s:.3f}s" if op.ret_s is not None else "?"
    text = f"#{op.id} client {op.client} {op.f} {op.key} {op.value!r} [{op.call_s:.3f}s .. {ret}]"
    text += f" {op.status}"
    if op.status == "ok" and op.output is not None:
        text += f" -> {op.output!r}"
    if op.error:
        text += f" ({op.error})"
    return text


def _fault_table(faults: Sequence[FaultRecord]) -> str:
    if not faults:
        return "<p>No faults were injected.</p>"
    rows = "".join(
        f"<tr><td>{f.start_s:.2f}</td><td>{'' if f.end_s is None else f'{f.end_s:.2f}'}</td>"
        f"<td>{html.escape(f.family)}</td><td>{html.escape(f.description)}</td>"
        f"<td>{html.escape(f.outcome or 'healed')}</td></tr>"
        for f in faults
    )
    head = (
        "<tr><th>start (s)</th><th>end (s)</th><th>family</th><th>fault</th><th>outcome</th></tr>"
    )
    return f"<table>{head}{rows}</table>"
