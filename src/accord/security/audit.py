"""The audit log: one JSON document per line on the `accord.audit` logger, for logins,
failed logins, permission denials and administration. Route that logger to its own
file (or SIEM) with ordinary logging configuration."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

logger = logging.getLogger("accord.audit")


def audit(event: str, **fields: Any) -> None:
    document = {"ts": round(time.time(), 3), "event": event, **fields}
    logger.info(json.dumps(document, sort_keys=True, default=repr))
