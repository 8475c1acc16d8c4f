#!/usr/bin/env bash
# Installs Accord with its dev extras into a fresh virtual environment and runs every
# check: ruff (lint + format), mypy, and the whole pytest suite (which includes the
# deterministic simulator over 500 seeds, the injected-bug tests, and the chaos runs
# against real node processes in tests/chaos, about 4 minutes; those over network
# namespaces run only as root).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ACCORD_VENV:-.venv-test}"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -e '.[dev]'
echo "== ruff"
"$venv/bin/ruff" check src tests bench
"$venv/bin/ruff" format --check src tests bench
echo "== mypy"
"$venv/bin/mypy"
echo "== pytest"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
