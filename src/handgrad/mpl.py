"""matplotlib, optional (``handgrad[plot]``): imported on first use, drawing to files (the Agg backend)."""

from __future__ import annotations

from ._extras import install_command


def pyplot(command: str = "plot"):
    """``matplotlib.pyplot`` on the Agg backend; without matplotlib, an ImportError that says that ``handgrad
    command`` needs it and how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"handgrad {command} needs matplotlib: {install_command('plot')}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
