"""handgrad and PyTorch side by side: the same network, the same initial weights, the same batches in the
same order, the same optimiser; after every step the losses, the gradients and the parameters are compared.

For each step s (before the update, then after it)::

    loss difference   |L_handgrad - L_torch| / |L_torch|
    gradient          max over tensors of  max|dW_handgrad - dW_torch| / max|dW_torch|
    parameter         max over tensors of  max|W_handgrad - W_torch| / max|W_torch|     (after the update)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np

from . import presets
from ._checks import positive_int
from .data import Normalizer, batch_indices
from .data import load as load_dataset
from .fast.head import compile_with_loss
from .layers import Dropout
from .model import named_leaves
from .mpl import pyplot
from .optim import check_momentum, check_rates, make_optimizer

# (loss per step, parameters after every step) by dtype: float64 agrees to rounding; float32 is looser
TOLERANCES = {"float64": (1e-10, 1e-8), "float32": (1e-4, None)}
CSV, PLOT = "compare.csv", "compare.png"  # what a comparison writes into its folder
COLUMNS = ("step", "loss_handgrad", "loss_torch", "loss_rel_diff", "grad_rel_diff", "param_rel_diff")


@dataclass
class CompareConfig:
    model: str = "seed-cnn"
    dataset: str = "fashion-mnist"
    steps: int = 200
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    dtype: str = "float64"
    seed: int = 0
    normalization: str = "standard"
    train_limit: int | None = None

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            positive_int(getattr(self, name), name, "CompareConfig")
        if self.train_limit is not None:
            positive_int(self.train_limit, "train_limit", "CompareConfig")
        check_rates(self.lr, self.weight_decay, "CompareConfig")
        check_momentum(self.momentum, "CompareConfig")


@dataclass
class CompareResult:
    rows: list[dict] = field(default_factory=list)
    loss_tolerance: float = 0.0
    param_tolerance: float | None = None

    @property
    def worst(self) -> dict[str, float]:
        return {k: max(row[k] for row in self.rows) for k in ("loss_rel_diff", "grad_rel_diff", "param_rel_diff")}

    @property
    def passed(self) -> bool:
        worst = self.worst
        params_ok = self.param_tolerance is None or worst["param_rel_diff"] <= self.param_tolerance
        return worst["loss_rel_diff"] <= self.loss_tolerance and params_ok

    def verdict(self) -> str:
        worst = self.worst
        limits = f"loss within {self.loss_tolerance:g}" + (
            f", parameters within {self.param_tolerance:g}" if self.param_tolerance is not None else ""
        )
        found = ", ".join(f"{k.removesuffix('_rel_diff')} {v:.2e}" for k, v in worst.items())
        if self.passed:
            return f"PASS: {len(self.rows)} steps, {limits} at every step (worst: {found})"
        first = next(
            r
            for r in self.rows
            if r["loss_rel_diff"] > self.loss_tolerance
            or (self.param_tolerance is not None and r["param_rel_diff"] > self.param_tolerance)
        )
        return f"FAIL: the trajectories part at step {first['step']}; required {limits} (worst: {found})"


def rel_diff(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> float:
    """``max_k max|a_k - b_k| / max|b_k|`` over named arrays."""
    return max(float(np.max(np.abs(ours[k] - theirs[k])) / max(np.max(np.abs(theirs[k])), 1e-300)) for k in ours)


def _batches(n, batch_size, rng):
    while True:  # as many epochs as the steps need, each shuffled by the one generator
        yield from batch_indices(n, batch_size, rng)


def compare(config: CompareConfig, dataset=None, data_dir=None, log=print) -> CompareResult:
    """Train handgrad and PyTorch in lockstep for ``config.steps`` steps and measure how far they part."""
    from . import torch_bridge as tb  # without PyTorch, it says how to install it

    torch = tb.torch

    dtype = np.dtype(config.dtype)
    data = dataset if dataset is not None else load_dataset(config.dataset, data_dir)
    data.check()
    images = data.train_images[: config.train_limit]
    labels = data.train_labels[: config.train_limit]
    normalizer = Normalizer.fit(images, config.normalization)

    rng = np.random.default_rng(config.seed)
    model, loss = presets.build(config.model, rng, dtype)
    dropout = [name for name, layer in named_leaves(model) if isinstance(layer, Dropout) and layer.p > 0]
    if dropout:
        raise ValueError(
            f"compare: {config.model} has dropout ({', '.join(dropout)}): PyTorch draws its own masks, so the two "
            f"cannot follow one trajectory; compare a model without dropout"
        )
    compiled, objective = compile_with_loss(model, loss)  # as `handgrad train` runs it
    module = tb.to_torch_module(model)  # the same network with the same initial weights
    optimizer = make_optimizer(config.optimizer, model.params, config.lr, config.momentum, config.weight_decay)
    torch_optimizer = tb.torch_optimizer(optimizer, model, module)
    torch_loss = tb.torch_loss(loss)
    log(
        f"{config.model} in handgrad and in PyTorch {torch.__version__}, {config.dtype}, {config.optimizer} lr {config.lr}"
    )

    loss_tol, param_tol = TOLERANCES[config.dtype]
    result = CompareResult(loss_tolerance=loss_tol, param_tolerance=param_tol)
    batches = _batches(len(images), config.batch_size, rng)
    for step in range(1, config.steps + 1):
        index = next(batches)
        x, y = normalizer(images[index], dtype), labels[index].astype(np.int64)

        ours = objective.forward(compiled.forward(x), y)
        compiled.backward(objective.backward(), input_grad=False)
        torch_optimizer.zero_grad()
        theirs = torch_loss(module(torch.from_numpy(x)), torch.from_numpy(y))
        theirs.backward()
        grad_diff = rel_diff(model.grads, tb.grads_from_torch(model, module))

        optimizer.step(model.grads)
        torch_optimizer.step()
        row = {
            "step": step,
            "loss_handgrad": ours,
            "loss_torch": theirs.item(),
            "loss_rel_diff": abs(ours - theirs.item()) / abs(theirs.item()),
            "grad_rel_diff": grad_diff,
            "param_rel_diff": rel_diff(model.params, tb.params_from_torch(model, module)),
        }
        result.rows.append(row)
        if step == 1 or step % 50 == 0 or step == config.steps:
            log(
                f"step {step:>4}: loss {ours:.6f} (handgrad) {row['loss_torch']:.6f} (torch) | relative differences: "
                f"loss {row['loss_rel_diff']:.1e} gradients {grad_diff:.1e} parameters {row['param_rel_diff']:.1e}"
            )
    return result


def write_csv(result: CompareResult, path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(result.rows)


def plot(result: CompareResult, path, title: str) -> None:
    """Write :func:`figure` to ``path`` (PNG)."""
    plt = pyplot("compare")
    fig = figure(result, title, plt)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure(result: CompareResult, title: str, plt):
    """Both losses per step, and the relative differences on a log scale with the tolerances they must stay
    under (the loss's, and in float64 the parameters')."""
    steps = [r["step"] for r in result.rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, layout="constrained")
    top.plot(steps, [r["loss_torch"] for r in result.rows], label="PyTorch", linewidth=3, alpha=0.5)
    top.plot(steps, [r["loss_handgrad"] for r in result.rows], label="handgrad", linestyle="--")
    top.set_ylabel("training loss")
    top.set_title(title)
    top.legend()
    lines = {}
    for key, label in (("loss_rel_diff", "loss"), ("grad_rel_diff", "gradients"), ("param_rel_diff", "parameters")):
        (lines[label],) = bottom.semilogy(steps, [max(r[key], 1e-18) for r in result.rows], label=label)
    limits = [("loss", result.loss_tolerance), ("parameter", result.param_tolerance)]
    for (name, tolerance), curve in zip(limits, (lines["loss"], lines["parameters"])):
        if tolerance is not None:
            bottom.axhline(tolerance, color=curve.get_color(), linestyle=":", label=f"{name} tolerance {tolerance:g}")
    bottom.set_xlabel("step")
    bottom.set_ylabel("relative difference (0 drawn at 1e-18)")
    bottom.legend(loc="center right", fontsize=8)  # the tolerances run along the top
    return fig
