"""Pictures of a derivation (``handgrad explain LAYER --figure PATH.png --animate PATH.gif``).

:func:`sections` turns an :class:`~handgrad.explain.Explanation` into frames of grids that hold the
derivation's own numbers (:mod:`.frames`, :mod:`.window`, :mod:`.tables`: data, no drawing); :mod:`.draw`
draws them with matplotlib, the key frames as one still PNG and every frame in turn as a GIF.
"""

from __future__ import annotations

from pathlib import Path

from ..explain.explanation import Explanation
from .frames import Frame, Grid, Section
from .tables import batchnorm_sections, linear_sections, softmax_sections
from .window import conv_sections, pool_sections

SECTIONS = {
    "conv": conv_sections,
    "pool": pool_sections,
    "linear": linear_sections,
    "softmax": softmax_sections,
    "batchnorm": batchnorm_sections,
}


def sections(e: Explanation) -> list[Section]:
    """The frames of ``e``, section by section (one section per step of the derivation)."""
    if e.layer not in SECTIONS:
        raise ValueError(f"explain {e.layer}: figures are drawn for {', '.join(SECTIONS)}; not for {e.layer}")
    return SECTIONS[e.layer](e)


def figure(e: Explanation, path, parts: list[Section] | None = None) -> Path:
    """The still: every section's key frames, as a PNG at ``path`` (``parts``: ``sections(e)``, if made)."""
    from .draw import save_figure

    return save_figure(e, sections(e) if parts is None else parts, path)


def animation(e: Explanation, path, parts: list[Section] | None = None) -> Path:
    """Every frame in turn, as a GIF at ``path`` (``parts``: ``sections(e)``, if made)."""
    from .draw import save_animation

    return save_animation(e, sections(e) if parts is None else parts, path)


__all__ = ["SECTIONS", "Frame", "Grid", "Section", "animation", "figure", "sections"]
