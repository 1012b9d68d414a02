"""Optimisers and learning-rate schedules, with PyTorch's conventions so that runs can be compared.

An optimiser holds the parameter dict it updates in place (``model.params``) and per-parameter buffers;
``step(grads)`` applies one update.  ``state_dict()`` returns ``(tensors, meta)``: the buffers as named
arrays and the scalars as JSON-ready values, which is what a checkpoint stores.

Notation: W a parameter, g its gradient, eta the learning rate, lambda the weight decay, t the step (from 1).
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import is_int, is_number


def check_rates(lr: float, weight_decay: float, where: str) -> None:
    """A learning rate must be a finite number > 0 and a weight decay a finite number >= 0."""
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"{where}: lr must be a finite number > 0, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"{where}: weight_decay must be a finite number >= 0, got {weight_decay}")


def check_momentum(momentum: float, where: str) -> None:
    if not 0 <= momentum < 1:  # False for NaN
        raise ValueError(f"{where}: momentum must be in [0, 1), got {momentum}")


def check_gamma(gamma: float, where: str) -> None:
    """The step schedule's factor: a finite number > 0 (a negative one turns the learning rate negative)."""
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"{where}: gamma must be a finite number > 0, got {gamma}")


class Optimizer:
    slots: tuple[str, ...] = ()  # names of the per-parameter buffers

    def __init__(self, params: dict[str, np.ndarray], lr: float, weight_decay: float = 0.0):
        check_rates(lr, weight_decay, type(self).__name__)
        self.params, self.lr, self.weight_decay = params, float(lr), float(weight_decay)
        self.buffers: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.slots}
        self.t = 0
        self._temporaries: dict = {}  # (dtype, k) -> one flat array for every parameter's k-th temporary

    def _temporary(self, like: np.ndarray, k: int = 0) -> np.ndarray:
        """Scratch shaped like ``like`` for an update's intermediate values: the front of one flat array per
        dtype and k that every parameter shares, so that a step allocates nothing (a large temporary costs
        fresh pages from the operating system at every step)."""
        key = (like.dtype, k)
        flat = self._temporaries.get(key)
        if flat is None or flat.size < like.size:
            flat = self._temporaries[key] = np.empty(max(p.size for p in self.params.values()), like.dtype)
        return flat[: like.size].reshape(like.shape)

    def step(self, grads: dict[str, np.ndarray]) -> None:
        missing = set(self.params) - set(grads)
        if missing:
            raise ValueError(f"{type(self).__name__}.step: no gradient for {sorted(missing)}; run backward first")
        self.t += 1
        for name, w in self.params.items():
            g = grads[name]
            if self.weight_decay:  # the L2 term in the gradient, as torch.optim does: g + lambda W
                g = np.add(g, np.multiply(w, self.weight_decay, out=self._temporary(w, 1)), out=self._temporary(w, 1))
            self._update(name, w, g)

    def _update(self, name: str, w: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def slots_in_use(self) -> tuple[str, ...]:
        """The slots every parameter has a buffer in once a step was taken."""
        return self.slots

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        tensors = {f"{slot}.{name}": a for slot, arrays in self.buffers.items() for name, a in arrays.items()}
        return tensors, {"type": type(self).__name__, "t": self.t, "lr": self.lr}

    def load_state_dict(self, tensors: dict[str, np.ndarray], meta: dict) -> None:
        """Restore buffers, step count and learning rate; everything is checked before anything changes.

        After t > 0 steps every parameter has a buffer in every slot in use (momentum, Adam's m and v), so a
        missing buffer, which would restart at zero and make a resumed run differ, is refused like an extra one.
        """
        name = type(self).__name__
        if not isinstance(meta, dict) or meta.get("type") != name:
            found = meta.get("type") if isinstance(meta, dict) else meta
            raise ValueError(f"optimiser state is for {found!r}, not {name!r}")
        t, lr = meta.get("t"), meta.get("lr")
        if not is_int(t) or t < 0:
            raise ValueError(f"optimiser state: step count t must be an int >= 0, got {t!r}")
        if not is_number(lr):
            raise ValueError(f"optimiser state: lr must be a number, got {lr!r}")
        check_rates(lr, self.weight_decay, f"optimiser state of {name}")
        expected = {f"{slot}.{p}" for slot in self.slots_in_use() for p in self.params} if t else set()
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        if missing or extra:
            raise ValueError(
                f"optimiser state after {t} steps of {name}: missing buffers {missing}, unexpected {extra}"
            )
        buffers = {slot: {} for slot in self.slots}
        for key, value in tensors.items():
            slot, _, param = key.partition(".")
            if value.shape != self.params[param].shape:
                raise ValueError(
                    f"optimiser state: {key!r} has shape {value.shape}, expected {self.params[param].shape}"
                )
            buffers[slot][param] = np.array(value, dtype=self.params[param].dtype)
        self.buffers, self.t, self.lr = buffers, t, float(lr)


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum ``mu``::

    g = dW + lambda W
    v = mu v + g                  (v = g at the first step)
    d = g + mu v  (Nesterov)  or  v  (momentum)  or  g  (mu = 0)
    W = W - eta d
    """

    slots = ("momentum",)

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        check_momentum(momentum, "SGD")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov needs a momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def slots_in_use(self):
        return self.slots if self.momentum else ()

    def _update(self, name, w, g):
        if self.momentum:
            v = self.buffers["momentum"].get(name)
            if v is None:
                v = self.buffers["momentum"][name] = g.copy()
            else:
                v *= self.momentum
                v += g
            if self.nesterov:
                g = np.add(g, np.multiply(v, self.momentum, out=self._temporary(w, 2)), out=self._temporary(w, 2))
            else:
                g = v
        w -= np.multiply(g, self.lr, out=self._temporary(w))


class Adam(Optimizer):
    """Adam (Kingma and Ba)::

    g = dW + lambda W
    m = beta1 m + (1 - beta1) g
    v = beta2 v + (1 - beta2) g^2
    W = W - eta * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    """

    slots = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)

    def _update(self, name, w, g):
        beta1, beta2 = self.betas
        m = self.buffers["m"].setdefault(name, np.zeros_like(w))
        v = self.buffers["v"].setdefault(name, np.zeros_like(w))
        step = self._temporary(w)
        m *= beta1
        m += np.multiply(g, 1 - beta1, out=step)
        v *= beta2
        v += np.multiply(np.square(g, out=step), 1 - beta2, out=step)
        correction1, correction2 = 1 - beta1**self.t, 1 - beta2**self.t
        denominator = np.sqrt(v, out=step)  # sqrt(v / (1 - beta2^t)) + eps
        denominator /= math.sqrt(correction2)
        denominator += self.eps
        step = np.divide(m, denominator, out=step)
        step *= self.lr / correction1
        w -= step


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> Optimizer:
    """By name: ``sgd``, ``momentum`` (SGD with momentum), ``nesterov``, ``adam``."""
    if name == "sgd":
        return SGD(params, lr, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        return SGD(params, lr, momentum=momentum, nesterov=name == "nesterov", weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: expected one of {OPTIMIZERS}")


def constant_lr(base_lr: float):
    return lambda epoch: base_lr


def step_lr(base_lr: float, step_size: int, gamma: float = 0.1):
    """``eta_e = eta_0 * gamma ^ floor(e / step_size)`` for epoch e (from 0), as ``torch.optim.lr_scheduler.StepLR``."""
    if step_size < 1:
        raise ValueError(f"step schedule: step_size must be >= 1, got {step_size}")
    check_gamma(gamma, "step schedule")
    return lambda epoch: base_lr * gamma ** (epoch // step_size)


def cosine_lr(base_lr: float, t_max: int, eta_min: float = 0.0):
    """``eta_e = eta_min + (eta_0 - eta_min) (1 + cos(pi e / T)) / 2``, as ``CosineAnnealingLR``."""
    if t_max < 1:
        raise ValueError(f"cosine schedule: t_max must be >= 1, got {t_max}")
    return lambda epoch: eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2


SCHEDULES = ("constant", "step", "cosine")


def make_schedule(name: str, base_lr: float, epochs: int, step_size: int = 1, gamma: float = 0.1):
    """A function epoch -> learning rate: ``constant``, ``step`` (every ``step_size`` epochs times
    ``gamma``) or ``cosine`` (to 0 over ``epochs``).  A function of the epoch alone resumes exactly."""
    if name == "constant":
        return constant_lr(base_lr)
    if name == "step":
        return step_lr(base_lr, step_size, gamma)
    if name == "cosine":
        return cosine_lr(base_lr, epochs)
    raise ValueError(f"unknown schedule {name!r}: expected one of {SCHEDULES}")
