#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: a virtual environment in .venv,
# handgrad with its test extra (pytest, PyTorch 2.13.0 CPU), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
exec .venv/bin/python -m pytest "$@"
