"""The frames of the layers on (batch, features) tables: the matrices of the fully connected layer with their
shapes, softmax's Jacobian, and the steps of batch normalisation."""

from __future__ import annotations

from itertools import product

from ..explain.explanation import Explanation
from .frames import Frame, Grid, Section, heading, step, upto, worked_line


def linear_sections(e: Explanation) -> list[Section]:
    """Each product whole, then cell by cell: the row and the column it takes (the cells in the animation)."""
    x, w, b, dy = (e.arrays[name] for name in ("X", "W", "B", "dY"))
    db = e.arrays["dB"]
    products = [  # (result, left, right, extra term): result[r, c] from row r of left and column c of right
        ("Y", ("X", x), ("W", w), ("B", b)),
        ("dX", ("dY", dy), ("W^T", w.T), None),
        ("dW", ("X^T", x.T), ("dY", dy), None),
    ]
    sections = []
    for name, (left, a), (right, bb), extra in products:
        result, worked = e.arrays[name], step(e, name)
        grids = [Grid(left, a), Grid(right, bb, before="@")]
        whole = [*grids, *([Grid(extra[0], extra[1], before="+")] if extra else []), Grid(name, result, before="=")]
        frames, done = [Frame("", whole)], []
        for r, c in product(*map(range, result.shape)):
            done.append((r, c))
            cells = [
                Grid(left, a, marks={(r, k): "used" for k in range(a.shape[1])}),
                Grid(right, bb, marks={(k, c): "used" for k in range(bb.shape[0])}, before="@"),
                *([Grid(extra[0], extra[1], marks={(0, c): "used"}, before="+")] if extra else []),
                Grid(name, upto(result, done), marks={(r, c): "new"}, before="="),
            ]
            frames.append(Frame(worked_line(worked, f"{name}[{r},{c}] ="), cells, key=False))
        sections.append(Section(heading(worked), frames))
    whole = Frame("", [Grid("dY", dy), Grid("dB", db, before="sum of rows →")])
    return [*sections, Section(heading(step(e, "dB")), [whole])]


def softmax_sections(e: Explanation) -> list[Section]:
    """The scores and the probabilities, the Jacobian (its diagonal y(1-y), elsewhere -y_k y_j), dX = dY J."""
    x, dy, y, jac, dx = (e.arrays[name] for name in ("x", "dY", "y", "J", "dX"))
    terms = {(k, j): f"y{k}(1-y{k})" if k == j else f"-y{k}y{j}" for k, j in product(*map(range, jac.shape))}
    frames = [
        (step(e, "y"), [Grid("x", x), Grid("y", y, before="softmax →")]),
        (step(e, "J"), [Grid("y", y), Grid("J", jac, notes=terms, before="→")]),
        (step(e, "dX"), [Grid("dY", dy), Grid("J", jac, before="@"), Grid("dX", dx, before="=")]),
    ]
    return [Section(heading(worked), [Frame("", grids)]) for worked, grids in frames]


def batchnorm_sections(e: Explanation) -> list[Section]:
    """Statistics per feature (a column), normalise, scale and shift; then the three gradients."""
    x, gamma, beta, dy = (e.arrays[name] for name in ("X", "gamma", "beta", "dY"))
    mean, var, x_hat, y = (e.arrays[name] for name in ("mean", "var", "X_hat", "Y"))
    dbeta, dgamma, dx = (e.arrays[name] for name in ("dbeta", "dgamma", "dX"))
    frames = [
        (
            step(e, "X_hat"),
            [
                Grid("X", x),
                Grid("mean", mean, before="→"),
                Grid("var", var, before=","),
                Grid("X_hat", x_hat, before="→"),
            ],
        ),
        (
            step(e, "Y"),
            [
                Grid("gamma", gamma),
                Grid("X_hat", x_hat, before="×"),
                Grid("beta", beta, before="+"),
                Grid("Y", y, before="="),
            ],
        ),
        (step(e, "dbeta"), [Grid("dY", dy), Grid("dbeta", dbeta, before="sum of rows →")]),
        (
            step(e, "dgamma"),
            [Grid("dY", dy), Grid("X_hat", x_hat, before="×"), Grid("dgamma", dgamma, before="sum of rows →")],
        ),
        (
            step(e, "dX"),
            [
                Grid("dY", dy),
                Grid("X_hat", x_hat, before=","),
                Grid("dbeta", dbeta, before=","),
                Grid("dgamma", dgamma, before=","),
                Grid("dX", dx, before="→"),
            ],
        ),
    ]
    return [Section(heading(worked), [Frame("", grids)]) for worked, grids in frames]
