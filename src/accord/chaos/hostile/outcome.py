"""One reproducer's result: what was done, whether the cluster held, the figures."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Outcome:
    klass: int
    """The class of attack (1..8, as numbered in docs/chaos.md)."""
    name: str
    action: str
    held: bool
    why: str = ""
    """Why it broke (empty when it held)."""
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "held" if self.held else f"BROKE: {self.why}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def judge(klass: int, name: str, action: str, failures: list[str], **figures: Any) -> Outcome:
    """An outcome that held when no criterion failed; the failures say why not."""
    return Outcome(klass, name, action, not failures, "; ".join(failures), figures)


def figures_text(figures: dict[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in figures.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value).replace(" ", "")
    return text if len(text) <= 80 else text[:77] + "..."


def table(outcomes: list[Outcome]) -> str:
    """One row per reproducer, by class: name, action, verdict, figures."""
    lines = []
    for o in sorted(outcomes, key=lambda o: o.klass):
        lines.append(f"[{o.klass}] {o.name:<24} {o.verdict}")
        lines.append(f"      did: {o.action}")
        if o.figures:
            lines.append(f"      figures: {figures_text(o.figures)}")
    held = sum(o.held for o in outcomes)
    lines.append(f"{held} of {len(outcomes)} held, {len(outcomes) - held} broke")
    return "\n".join(lines)
