"""What a picture of a derivation shows, as data: grids of the derivation's own numbers, which cells to
highlight, the products to write in them, grouped into frames and sections.  No drawing happens here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..explain.explanation import Explanation, Step

MARKS = ("met", "used", "new", "winner", "centre")  # what a highlighted cell is; the drawing gives each a colour


@dataclass
class Grid:
    """One array of the derivation drawn as a grid of numbers.

    ``name`` is its name in :attr:`Explanation.arrays` (``"W^T"`` for a transpose); ``values`` is that array
    as a 2-D grid, NaN where a cell is not worked out yet (drawn empty).  ``outline`` lists cells, inside the
    grid or outside it (padding), that a placed kernel or window covers; ``margin`` cells are kept free around
    the grid for them (above, below, left, right).  ``before`` is an operator written in front of the grid ("=", "@", "+").  A ``partial``
    grid holds sums still being added up (its last frame holds the array's values).
    """

    name: str
    values: np.ndarray
    caption: str = ""
    marks: dict[tuple[int, int], str] = field(default_factory=dict)
    notes: dict[tuple[int, int], str] = field(default_factory=dict)  # small text under a cell's number
    outline: list[tuple[int, int]] = field(default_factory=list)
    rows: list[str] | None = None  # index labels; None: 0, 1, 2, ...
    cols: list[str] | None = None
    margin: tuple[int, int, int, int] = (0, 0, 0, 0)
    before: str = ""
    partial: bool = False

    def __post_init__(self):
        self.values = np.atleast_2d(np.asarray(self.values, dtype=np.float64))
        if not self.caption:
            so_far = ", so far" if self.partial else ""
            self.caption = f"{self.name} ({self.values.shape[0]}x{self.values.shape[1]}{so_far})"
        unknown = set(self.marks.values()) - set(MARKS)
        if unknown:
            raise ValueError(f"Grid {self.name}: marks must be among {MARKS}, got {sorted(unknown)}")

    def row_labels(self) -> list[str]:
        return self.rows if self.rows is not None else [str(i) for i in range(self.values.shape[0])]

    def col_labels(self) -> list[str]:
        return self.cols if self.cols is not None else [str(j) for j in range(self.values.shape[1])]


@dataclass
class Frame:
    """One picture: a title (the worked line of the derivation it shows) over grids side by side.  ``key``
    frames make the still figure; the animation shows every frame."""

    title: str
    grids: list[Grid]
    key: bool = True


@dataclass
class Section:
    """The frames of one step of the derivation, under its formula."""

    heading: str
    frames: list[Frame]


def upto(full: np.ndarray, cells) -> np.ndarray:
    """``full`` where ``cells`` are already worked out, NaN elsewhere: a result filling in cell by cell."""
    shown = np.full(np.atleast_2d(full).shape, np.nan)
    for cell in cells:
        shown[cell] = np.atleast_2d(full)[cell]
    return shown


def step(e: Explanation, name: str) -> Step:
    """The step of ``e`` that works out ``name``."""
    return next(s for s in e.steps if s.name == name)


def heading(s: Step) -> str:
    """A section's heading: the step's formula, as the text derivation writes it."""
    return f"{s.name}: {s.formula}"


def worked_line(s: Step, start: str) -> str:
    """The worked line of ``s`` that begins with ``start``: a frame's title is the text derivation's line."""
    return next(line for line in s.lines if line.startswith(start))
