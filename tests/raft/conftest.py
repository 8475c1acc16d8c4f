"""Options for the Raft core tests.

`pytest tests/raft --rewrite-golden` regenerates the interaction transcripts under
`tests/raft/golden/` from the current behaviour; review the diff before committing.
The option exists only when this directory is named on the command line (pytest
reads options from the conftest files of the paths it is given); from elsewhere,
set ACCORD_REWRITE_GOLDEN=1 instead.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite-golden",
        action="store_true",
        default=False,
        help="regenerate tests/raft/golden/*.txt instead of comparing against them",
    )


@pytest.fixture
def rewrite_golden(request: pytest.FixtureRequest) -> bool:
    option = bool(request.config.getoption("--rewrite-golden", default=False))
    return option or os.environ.get("ACCORD_REWRITE_GOLDEN") == "1"
