"""How to install one of handgrad's optional extras: handgrad is installed from its checkout, not the package index."""

from __future__ import annotations


def install_command(extra: str) -> str:
    """The command that installs ``extra`` (plot, compare, onnx, mpi, tensorboard) beside handgrad."""
    return f".venv/bin/pip install -e '.[{extra}]' (in the handgrad checkout)"
