#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: Fashion-MNIST, a virtual environment in .venv,
# handgrad with its test extra (pytest, PyTorch 2.13.0 CPU), then pytest.
source "$(dirname "$0")/setup.sh" "[test]"
exec .venv/bin/python -m pytest "$@"
