"""matplotlib, optional (``handgrad[plot]``): imported on first use, drawing to files (the Agg backend)."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend; without matplotlib, an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("figures need matplotlib: pip install 'handgrad[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
