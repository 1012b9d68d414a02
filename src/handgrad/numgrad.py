"""Numerical gradients by central differences, and the gradient checker built on them (float64 only).

For a layer ``y = f(x; θ)`` and a fixed upstream gradient ``dY`` drawn at random, the scalar
``L = sum(dY * f(x; θ))`` has ``dL/dx = backward(dY)`` and ``dL/dθ = grads``; each is compared with::

    dL/du_i ≈ (L(u + ε e_i) - L(u - ε e_i)) / (2ε)       (error O(ε²) plus rounding O(1e-16 |L| / ε))

element by element, where ``|analytic - numeric| <= atol + rtol * |numeric|`` must hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-6  # step: balances the O(ε²) truncation error against O(1e-16/ε) rounding in float64
RTOL = 1e-6
ATOL = 1e-8


def numerical_gradient(f, u: np.ndarray, eps: float = EPS) -> np.ndarray:
    """``df/du`` of a scalar function ``f()`` that reads ``u``; ``u`` is perturbed in place and restored exactly."""
    grad = np.zeros(u.shape)
    for index in np.ndindex(u.shape):
        original = u[index]
        u[index] = original + eps
        plus = f()
        u[index] = original - eps
        minus = f()
        u[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@dataclass
class TensorCheck:
    """One gradient compared with its numerical estimate."""

    name: str
    analytic: np.ndarray
    numeric: np.ndarray
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.analytic.shape == self.numeric.shape and bool(
            np.all(np.abs(self.analytic - self.numeric) <= self.atol + self.rtol * np.abs(self.numeric))
        )

    @property
    def max_abs_error(self) -> float:
        return float(np.max(np.abs(self.analytic - self.numeric), initial=0.0))

    @property
    def max_rel_error(self) -> float:
        scale = np.maximum(np.abs(self.numeric), self.atol / self.rtol)
        return float(np.max(np.abs(self.analytic - self.numeric) / scale, initial=0.0))

    def __str__(self) -> str:
        if self.analytic.shape != self.numeric.shape:
            return f"{self.name}: FAIL, analytic shape {self.analytic.shape} != numeric shape {self.numeric.shape}"
        line = f"{self.name}: {'ok' if self.ok else 'FAIL'}, max abs error {self.max_abs_error:.3g}, "
        line += f"max rel error {self.max_rel_error:.3g}"
        if self.analytic.size:
            worst = np.unravel_index(np.argmax(np.abs(self.analytic - self.numeric)), self.analytic.shape)
            line += f" (at {tuple(map(int, worst))}: analytic {self.analytic[worst]:.10g}, "
            line += f"numeric {self.numeric[worst]:.10g})"
        return line


@dataclass
class GradcheckResult:
    """Every gradient checked; true when all pass.  ``str()`` gives one line per gradient."""

    checks: list[TensorCheck]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, name: str) -> TensorCheck:
        return next(check for check in self.checks if check.name == name)

    def __str__(self) -> str:
        return "\n".join(map(str, self.checks))


def _require_float64(arrays: dict, where: str) -> None:
    for name, a in arrays.items():
        if np.asarray(a).dtype != np.float64:
            raise ValueError(
                f"{where}: {name} must be float64 for a meaningful numerical gradient, got {np.asarray(a).dtype}; "
                f"build the layer with dtype=np.float64"
            )


def gradcheck(layer, x, dy=None, *, eps=EPS, rtol=RTOL, atol=ATOL, seed=0) -> GradcheckResult:
    """Check ``layer.backward`` (dX) and every gradient in ``layer.grads`` against central differences.

    Works on any object with ``forward``, ``backward``, ``params`` and ``grads`` (a layer, a ``Sequential``).
    ``dy`` defaults to ``uniform(-1, 1)`` noise from ``seed``: all-ones would hide swapped axes.  Layers
    with state (``state()``/``load_state()``: BatchNorm's running statistics, Dropout's random generator) are
    put back into the same state before every forward pass, so each one draws the same masks and sees the
    same statistics, and are left in the state they had.  The parameters are restored exactly, and the cache
    and gradients are those of ``forward(x); backward(dy)``.
    """
    where = "gradcheck"
    x = np.array(x, copy=True)  # perturbed here, never the caller's array
    _require_float64({"x": x, **{f"params[{k!r}]": v for k, v in layer.params.items()}}, where)
    snapshot = layer.state() if hasattr(layer, "state") else None

    def forward():
        if snapshot is not None:
            layer.load_state(snapshot)
        return layer.forward(x)

    y = forward()
    if dy is None:
        dy = np.random.default_rng(seed).uniform(-1, 1, size=y.shape)
    dy = np.asarray(dy, dtype=np.float64)

    def objective():
        return float(np.sum(dy * forward()))

    numeric = {"x": numerical_gradient(objective, x, eps)}
    for name, value in layer.params.items():
        numeric[name] = numerical_gradient(objective, value, eps)

    forward()
    analytic = {"x": layer.backward(dy), **layer.grads}
    if snapshot is not None:
        layer.load_state(snapshot)
    missing = set(numeric) - set(analytic)
    if missing:
        raise ValueError(f"{where}: backward set no gradient for {sorted(missing)}")
    return GradcheckResult([TensorCheck(k, np.asarray(analytic[k]), numeric[k], rtol, atol) for k in numeric])


def gradcheck_loss(loss, prediction, target, *, eps=EPS, rtol=RTOL, atol=ATOL) -> GradcheckResult:
    """Check ``loss.backward()`` against the central-difference gradient of ``loss.forward(prediction, target)``."""
    prediction = np.array(prediction, copy=True)
    _require_float64({"prediction": prediction}, "gradcheck_loss")
    numeric = numerical_gradient(lambda: loss.forward(prediction, target), prediction, eps)
    loss.forward(prediction, target)
    return GradcheckResult([TensorCheck("prediction", np.asarray(loss.backward()), numeric, rtol, atol)])
