"""The frames of a sliding window, drawn from the derivation's geometry (:class:`ConvWork`, :class:`PoolWork`):
the convolution's kernel placed for each output cell, its gradients, and max-pooling's winners."""

from __future__ import annotations

from itertools import product

import numpy as np

from ..explain.explanation import Explanation, factor, number, times
from .frames import Frame, Grid, Section, heading, step, upto, worked_line


def conv_sections(e: Explanation) -> list[Section]:
    """The kernel's coordinates, one frame per output cell, per kernel cell (dW), dX by full correlation, db."""
    return [_kernel(e), _conv_forward(e), _conv_dw(e), _conv_dx(e), _conv_db(e)]


def pool_sections(e: Explanation) -> list[Section]:
    """One frame per window: its winner, then the gradient routed back to it."""
    work, x, dy, y = e.work, *(e.arrays[name] for name in ("X", "dY", "Y"))
    margin = _placed_reach(work, x.shape)
    forward, done, notes = [], [], {}
    for i, j, r, q, _ in work.routes:  # in output order, each window's winner X[r, q]
        done.append((i, j))
        notes[i, j] = f"at {r},{q}"
        grids = [
            Grid(
                "X",
                x,
                marks={**{cell: "met" for cell in work.met(i, j)}, (r, q): "winner"},
                outline=[(r2, q2) for _, _, r2, q2 in work.placed[i, j]],
                margin=margin,
            ),
            Grid("Y", upto(y, done), marks={(i, j): "new"}, notes=dict(notes), before="max →"),
        ]
        forward.append(Frame(worked_line(step(e, "Y"), f"Y[{i},{j}] ="), grids))
    backward, totals = [], np.zeros(x.shape)
    for k, (i, j, r, q, total) in enumerate(work.routes):
        totals[r, q] = total
        grids = [
            Grid("dY", dy, marks={(i, j): "used"}),
            Grid(
                "X",
                x,
                marks={(r, q): "winner"},
                outline=[(r2, q2) for _, _, r2, q2 in work.placed[i, j]],
                margin=margin,
                before="to the winner →",
            ),
            Grid(
                "dX",
                totals.copy(),
                marks={(r, q): "new"},
                notes={(r, q): f"+{number(dy[i, j])}"},
                before="→",
                partial=k < len(work.routes) - 1,
            ),
        ]
        backward.append(Frame(worked_line(step(e, "dX"), f"dX[{r},{q}] += dY[{i},{j}]"), grids))
    return [Section(heading(step(e, "Y")), forward), Section(heading(step(e, "dX")), backward)]


def _reach(footprints, shape) -> tuple[int, int, int, int]:
    """How many cells the footprints reach outside a grid of ``shape``, above, below, left and right: the
    margin to keep around it."""
    rows = [r for footprint in footprints for r, _ in footprint]
    cols = [q for footprint in footprints for _, q in footprint]
    return (
        max(0, -min(rows)),
        max(0, max(rows) - shape[0] + 1),
        max(0, -min(cols)),
        max(0, max(cols) - shape[1] + 1),
    )


def _centred(size: int, centre: int) -> list[str]:
    """Index labels of a kernel axis counted from its centre: -c .. K-1-c."""
    return [str(a - centre) for a in range(size)]


def _placed_reach(work, shape) -> tuple[int, int, int, int]:
    """:func:`_reach` of every placement of the kernel or window (``work.placed``)."""
    return _reach([[(r, q) for _, _, r, q in placed] for placed in work.placed.values()], shape)


def _kernel_grid(e: Explanation) -> Grid:
    """The kernel that meets Xp, labelled in its centre's coordinates: W, or flip(W) in conv mode."""
    window = e.work.window
    (k_h, k_w), (c_h, c_w) = window.kernel, window.center
    if window.mode == "xcorr":
        return Grid("W", e.arrays["W"], rows=_centred(k_h, c_h), cols=_centred(k_w, c_w), marks={(c_h, c_w): "centre"})
    f_h, f_w = k_h - 1 - c_h, k_w - 1 - c_w  # the flipped kernel's centre
    return Grid(
        "flip(W)",
        e.arrays["flip(W)"],
        caption="flip(W): about the centre",
        rows=_centred(k_h, f_h),
        cols=_centred(k_w, f_w),
        marks={(f_h, f_w): "centre"},
    )


def _kernel(e: Explanation) -> Section:
    window, w = e.work.window, e.arrays["W"]
    (c_h, c_w) = window.center
    grids = [
        Grid("W", w, caption="W, indices from 0", marks={(c_h, c_w): "centre"}),
        Grid(
            "W",
            w,
            caption=f"W from its centre ({c_h},{c_w})",
            rows=_centred(w.shape[0], c_h),
            cols=_centred(w.shape[1], c_w),
            marks={(c_h, c_w): "centre"},
            before="→",
        ),
    ]
    if window.mode == "conv":
        grids.append(_kernel_grid(e))
        grids[-1].before = "flip →"
    coordinates = next(note for note in e.notes if note.startswith("The kernel's coordinates"))
    return Section("The kernel, its centre and its coordinates", [Frame(coordinates, grids)])


def _conv_forward(e: Explanation) -> Section:
    work, xp, w, b, y = e.work, *(e.arrays[name] for name in ("Xp", "W", "b", "Y"))
    margin = _placed_reach(work, xp.shape)
    frames, done = [], []
    for i, j in work.placed:
        met = work.met(i, j)
        done.append((i, j))
        grids = [
            _multiplied(
                "Xp",
                xp,
                {(r, q): w[a, bb] for a, bb, r, q in met},
                outline=[(r, q) for _, _, r, q in work.placed[i, j]],
                margin=margin,
            ),
            _kernel_grid(e),
            Grid("Y", upto(y, done), marks={(i, j): "new"}, before="="),
        ]
        values = " + ".join(times(w[a, bb], xp[r, q]) for a, bb, r, q in met) or "0"
        frames.append(Frame(f"Y[{i},{j}] = {number(b[0])} + {values} = {number(y[i, j])}", grids))
    return Section(heading(step(e, "Y")), frames)


def _conv_dw(e: Explanation) -> Section:
    work, xp, w, dy, dw = e.work, *(e.arrays[name] for name in ("Xp", "W", "dY", "dW"))
    frames, done = [], []
    for a, bb in product(*map(range, w.shape)):
        terms = work.meeting(a, bb)
        done.append((a, bb))
        grids = [
            _multiplied("Xp", xp, {(r, q): dy[i, j] for i, j, r, q in terms}),
            Grid("dY", dy, marks={(i, j): "used" for i, j, _, _ in terms}),
            Grid("dW", upto(dw, done), marks={(a, bb): "new"}, before="="),
        ]
        frames.append(Frame(worked_line(step(e, "dW"), f"dW[{a},{bb}] ="), grids))
    return Section(heading(step(e, "dW")), frames)


def _conv_dx(e: Explanation) -> Section:
    dx_step, work = step(e, "dX"), e.work
    dy, d, dp, rot, dxq, dx = (e.arrays[name] for name in ("dY", "D", "Dp", "rot180", "dXq", "dX"))
    (d_h, d_w), (k_h, k_w) = work.window.dilation, work.window.kernel
    prepare = Frame(
        f"{dx_step.lines[0]}; {dx_step.lines[1]}",
        [Grid("dY", dy), Grid("D", d, before="dilate →"), Grid("Dp", dp, before="pad →")],
    )
    slides, done = [], []
    for u, v in product(*map(range, dxq.shape)):
        cells = [(u + d_h * a, v + d_w * bb, rot[a, bb]) for a, bb in product(range(k_h), range(k_w))]
        terms = [(r, q, k) for r, q, k in cells if dp[r, q] != 0]
        done.append((u, v))
        grids = [
            _multiplied("Dp", dp, {(r, q): k for r, q, k in terms}, outline=[(r, q) for r, q, _ in cells]),
            Grid("rot180", rot),
            Grid("dXq", upto(dxq, done), marks={(u, v): "new"}, before="="),
        ]
        slides.append((len(terms), Frame(worked_line(dx_step, f"dXq[{u},{v}] ="), grids, key=False)))
    max(slides, key=lambda slide: slide[0])[1].key = True  # the still shows the slide with the most terms
    (lead_h, lead_w), (h, w) = work.lead, dx.shape
    crop_cells = [(lead_h + r, lead_w + q) for r, q in product(range(h), range(w))]
    crop = Frame(
        dx_step.lines[-1],
        [
            Grid("dXq", dxq, outline=crop_cells, margin=_reach([crop_cells], dxq.shape)),
            Grid("dX", dx, before="crop →"),
        ],
    )
    return Section(heading(dx_step), [prepare, *(frame for _, frame in slides), crop])


def _conv_db(e: Explanation) -> Section:
    db = step(e, "db")
    grids = [Grid("dY", e.arrays["dY"]), Grid("db", db.by_hand, before="sum →")]
    return Section(heading(db), [Frame(db.lines[0], grids)])


def _multiplied(name: str, values: np.ndarray, factors: dict, **options) -> Grid:
    """A grid whose cells in ``factors`` are read, each multiplied by its factor: the product is written under
    the cell's number, ``×factor=product``."""
    return Grid(
        name,
        values,
        marks={cell: "met" for cell in factors},
        notes={cell: f"×{factor(by)}={number(by * values[cell])}" for cell, by in factors.items()},
        **options,
    )
