"""placeholder"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(path: Path, summary: dict[str, Any], ops: Any, faults: Any) -> None:
    path.write_text("")
