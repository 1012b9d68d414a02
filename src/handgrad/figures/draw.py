"""Drawing the frames of a derivation with matplotlib: a still sheet of the key frames (PNG) and every frame
in turn (GIF, matplotlib's animation with the Pillow writer).

Everything is laid out in cell units on one set of axes without ticks: a grid cell is ``CELL`` inches high
and ``width`` cells wide (one width for the whole picture, wide enough for its longest number or product).
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import numpy as np

from ..explain.explanation import Explanation, number
from ..mpl import pyplot
from .frames import Frame, Grid, Section

CELL = 0.42  # inches per cell
DPI = {"png": 80, "gif": 72}
PALETTE = 64  # colours of the still
SECONDS_PER_FRAME = 1.5
STILL_FRAMES = 9  # frames of a section in the still, at most
SHEET_WIDTH = 56  # cells: the still wraps its frames at this width (or at its widest frame)
COLOURS = {  # a highlighted cell's fill, with what it means (the legend)
    "met": ("#ffd8a8", "read by the kernel or window"),
    "used": ("#d0ebff", "used for the cell being worked out"),
    "new": ("#b2f2bb", "being worked out"),
    "winner": ("#ff8787", "the window's maximum"),
    "centre": ("#dee2e6", "the kernel's centre element"),
}
OUTLINE = "#d9480f"  # the placed kernel or window, dashed
FONT = {"number": 9, "note": 6.5, "label": 6.5, "caption": 8, "operator": 10, "title": 8, "heading": 9.5, "top": 11}
CHAR = {size: 0.55 * points / 72 / CELL for size, points in FONT.items()}  # average character width, in cells
LABEL = 0.7  # room left of a grid for its row indices
ABOVE = 1.3  # room above a grid for its caption and column indices
GAP = 1.2  # cells between grids before the operator's width
TITLE_LINE = 0.42  # height of one line of a frame's title
SPACE = 1.2  # between frames and between sections


def save_figure(e: Explanation, sections: list[Section], path) -> Path:
    """The key frames of every section, section under section, as one PNG with a palette of PALETTE colours
    (flat fills and text: a third of the bytes of full colour, and no visible difference)."""
    from PIL import Image

    plt = pyplot()
    fig = sheet(e, sections, plt)
    drawn = io.BytesIO()
    fig.savefig(drawn, dpi=DPI["png"], format="png")
    plt.close(fig)
    with Image.open(drawn) as image:
        image.convert("RGB").quantize(colors=PALETTE, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return Path(path)


def save_animation(e: Explanation, sections: list[Section], path) -> Path:
    """Every frame in turn, each under its section's heading, as one GIF."""
    plt = pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, show, count = movie(e, sections, plt)
    animation = FuncAnimation(fig, show, frames=count, blit=False)
    animation.save(path, writer=PillowWriter(fps=1 / SECONDS_PER_FRAME), dpi=DPI["gif"])
    plt.close(fig)
    return Path(path)


def movie(e: Explanation, sections: list[Section], plt):
    """The figure the animation draws on, the function that draws its ``k``-th frame, and how many there are."""
    width = _width(sections)
    shown = [(section.heading, frame) for section in sections for frame in section.frames]
    wide = max(
        [_frame_size(frame, width, math.inf)[0] for _, frame in shown]
        + [len(e.title) * CHAR["top"]]
        + [(len(heading) + 10) * CHAR["heading"] for heading, _ in shown]
    )
    size = (wide + 0.6, max(_frame_size(frame, width, wide)[1] for _, frame in shown) + 2.2)
    fig = plt.figure(figsize=(size[0] * CELL, size[1] * CELL))
    ax = fig.add_axes((0, 0, 1, 1))

    def show(k: int) -> list:
        ax.clear()
        _axes(ax, size)
        heading, frame = shown[k]
        _text(ax, 0.3, 0.5, e.title, "top", ha="left", weight="bold")
        _text(ax, 0.3, 1.2, f"{heading}   ({k + 1}/{len(shown)})", "heading", ha="left")
        _frame(ax, frame, width, 0.3, 1.9, wide)
        return []

    return fig, show, len(shown)


def sheet(e: Explanation, sections: list[Section], plt):
    """The matplotlib figure of the still: the title, a legend, and each section's still frames in rows."""
    width = _width(sections)
    command = f"{e.command}    every number checked against the kernels: {'yes' if e.ok else 'NO'}"
    stills = list(map(still, sections))
    marks = {mark for _, frames in stills for f in frames for g in f.grids for mark in g.marks.values()}
    limit = max([SHEET_WIDTH] + [_frame_size(f, width, math.inf)[0] for _, frames in stills for f in frames])
    placed, y = [], 2.4  # below the title, the command and the legend
    used = max(len(e.title) * CHAR["top"], len(command) * CHAR["title"], _legend(None, marks, 0))
    for heading, frames in stills:
        placed.append(("heading", heading, 0.0, y))
        used = max(used, len(heading) * CHAR["heading"])
        y += 0.9
        x, row_height = 0.0, 0.0
        for frame in frames:
            w, h = _frame_size(frame, width, limit)
            if x > 0 and x + w > limit:
                x, y, row_height = 0.0, y + row_height + SPACE, 0.0
            placed.append(("frame", frame, x, y))
            used = max(used, x + w)
            x, row_height = x + w + SPACE, max(row_height, h)
        y += row_height + SPACE
    size = (used + 0.6, y)
    fig = plt.figure(figsize=(size[0] * CELL, size[1] * CELL))
    ax = fig.add_axes((0, 0, 1, 1))
    _axes(ax, size)
    _text(ax, 0.3, 0.5, e.title, "top", ha="left", weight="bold")
    _text(ax, 0.3, 1.2, command, "title", ha="left", family="monospace")
    _legend(ax, marks, 1.9)
    for kind, item, x, y in placed:
        if kind == "heading":
            _text(ax, 0.3 + x, y + 0.4, item, "heading", ha="left", weight="bold")
        else:
            _frame(ax, item, width, 0.3 + x, y, limit)
    return fig


def still(section: Section) -> tuple[str, list[Frame]]:
    """The heading and frames of a section in the still: its key frames, at most STILL_FRAMES of them spread
    evenly from the first to the last (the heading then says how many; the animation shows them all)."""
    key = [frame for frame in section.frames if frame.key]
    if len(key) <= STILL_FRAMES:
        return section.heading, key
    chosen = np.linspace(0, len(key) - 1, STILL_FRAMES).round().astype(int)
    return f"{section.heading}   ({STILL_FRAMES} of its {len(key)} frames)", [key[k] for k in chosen]


def _width(sections: list[Section]) -> float:
    """One cell width for the picture: its longest number (or product under a number) fits."""
    numbers, notes = [1], [1]
    for section in sections:
        for frame in section.frames:
            for grid in frame.grids:
                numbers += [len(number(v)) for v in grid.values.ravel() if np.isfinite(v)]
                notes += [len(note) for note in grid.notes.values()]
    return max(1.0, max(numbers) * CHAR["number"] + 0.3, max(notes) * CHAR["note"] + 0.2)


def _grid_box(grid: Grid, width: float) -> tuple[float, float]:
    """(width, height) a grid takes below the top of its frame's cells: captions and indices sit above."""
    (rows, cols), (_, bottom, left, right) = grid.values.shape, grid.margin
    caption = len(grid.caption) * CHAR["caption"]
    return LABEL + max((cols + left + right) * width, caption), rows + bottom


def _gap(grid: Grid) -> float:
    return GAP + len(grid.before) * CHAR["operator"]


def _title_lines(frame: Frame, wide: float) -> list[str]:
    if not frame.title:
        return []
    return textwrap.wrap(frame.title, max(20, int(wide / CHAR["title"])))


def _lead(frame: Frame) -> float:
    """Room above a frame's grids: their captions and indices, and the widest top margin (the grids' cells
    start level)."""
    return ABOVE + max(grid.margin[0] for grid in frame.grids)


def _frame_size(frame: Frame, width: float, limit: float) -> tuple[float, float]:
    """(width, height) of a frame in cells; its title wraps within ``limit``."""
    boxes = [_grid_box(grid, width) for grid in frame.grids]
    grids_wide = sum(w for w, _ in boxes) + sum(_gap(g) for g in frame.grids[1:])
    title_wide = len(frame.title) * CHAR["title"]
    wide = max(grids_wide, min(title_wide, limit))
    return wide, len(_title_lines(frame, wide)) * TITLE_LINE + 0.3 + _lead(frame) + max(h for _, h in boxes)


def _frame(ax, frame: Frame, width: float, x: float, y: float, limit: float) -> None:
    wide, _ = _frame_size(frame, width, limit)
    lines = _title_lines(frame, wide)
    for k, line in enumerate(lines):
        _text(ax, x, y + (k + 0.5) * TITLE_LINE, line, "title", ha="left")
    cells_top = y + len(lines) * TITLE_LINE + 0.3 + _lead(frame)
    for k, grid in enumerate(frame.grids):
        if k:
            gap = _gap(grid)
            rows = min(grid.values.shape[0], frame.grids[k - 1].values.shape[0])  # the shorter neighbour's middle
            _text(ax, x + gap / 2, cells_top + rows / 2, grid.before, "operator")
            x += gap
        _grid(ax, grid, width, x + LABEL + grid.margin[2] * width, cells_top)
        x += _grid_box(grid, width)[0]


def _grid(ax, grid: Grid, width: float, left: float, top: float) -> None:
    """``grid`` with its cells from ``(left, top)``; its margins, indices and caption around them."""
    from matplotlib.patches import Rectangle

    cols, (above, _, before, _) = grid.values.shape[1], grid.margin
    _text(ax, left + cols * width / 2, top - above - 1.0, grid.caption, "caption")
    for c, label in enumerate(grid.col_labels()):
        _text(ax, left + (c + 0.5) * width, top - above - 0.35, label, "label", color="grey")
    for r, label in enumerate(grid.row_labels()):
        _text(ax, left - before * width - 0.35, top + r + 0.5, label, "label", color="grey")
    for (r, c), value in np.ndenumerate(grid.values):
        mark = grid.marks.get((r, c))
        fill = COLOURS[mark][0] if mark else "white"
        ax.add_patch(
            Rectangle(
                (left + c * width, top + r),
                width,
                1,
                facecolor=fill,
                edgecolor="black" if mark == "centre" else "#adb5bd",
                linewidth=2 if mark == "centre" else 0.6,
            )
        )
        note = grid.notes.get((r, c))
        if np.isfinite(value):
            _text(
                ax,
                left + (c + 0.5) * width,
                top + r + (0.36 if note else 0.5),
                number(value),
                "number",
                weight="bold" if mark == "winner" else "normal",
            )
        if note:
            _text(ax, left + (c + 0.5) * width, top + r + 0.78, note, "note", color="#495057")
    for r, c in grid.outline:
        ax.add_patch(
            Rectangle(
                (left + c * width + 0.06, top + r + 0.06),
                width - 0.12,
                0.88,
                fill=False,
                edgecolor=OUTLINE,
                linestyle="--",
                linewidth=1.4,
            )
        )


def _legend(ax, marks: set[str], y: float) -> float:
    """A swatch and its meaning for each kind of highlighted cell; returns the width taken (``ax=None``: only
    measures)."""
    from matplotlib.patches import Rectangle

    x = 0.3
    for mark in (m for m in COLOURS if m in marks):
        colour, meaning = COLOURS[mark]
        if ax is not None:
            ax.add_patch(Rectangle((x, y - 0.25), 0.5, 0.5, facecolor=colour, edgecolor="#adb5bd"))
            _text(ax, x + 0.7, y, meaning, "label", ha="left")
        x += 1.2 + len(meaning) * CHAR["label"]
    return x


def _axes(ax, size) -> None:
    ax.set_xlim(0, size[0])
    ax.set_ylim(size[1], 0)  # rows go down
    ax.axis("off")


def _text(ax, x, y, text, kind, ha="center", **style) -> None:
    ax.text(x, y, text, fontsize=FONT[kind], ha=ha, va="center", **style)
