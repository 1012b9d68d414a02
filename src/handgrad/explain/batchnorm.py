"""Batch normalisation in training mode worked out on numbers."""

from __future__ import annotations

from itertools import product

import numpy as np

from .. import functional as F
from .explanation import Explanation, Step, number, readable, signed, times


def batchnorm(batch=4, features=2, eps=1e-5) -> Explanation:
    """Training-mode batch normalisation of a (batch, features) input, forward and backward."""
    x = readable((batch, features)) ** 1.5 // 1  # uneven integers, so the statistics differ per feature
    gamma, beta = np.arange(1, features + 1, dtype=np.float64), np.arange(features, dtype=np.float64)
    dy = signed((batch, features))
    m = batch
    mean, var = x.mean(axis=0), x.var(axis=0)
    x_hat = (x - mean) / np.sqrt(var + eps)
    y = gamma * x_hat + beta
    dbeta, dgamma = dy.sum(axis=0), (dy * x_hat).sum(axis=0)
    dx = gamma / np.sqrt(var + eps) * (dy - dbeta / m - x_hat * dgamma / m)
    lines_hat = [
        f"feature {c}: mean = ({' + '.join(number(v) for v in x[:, c])})/{m} = {number(mean[c])}, "
        f"var = ({' + '.join(f'({number(v)} - {number(mean[c])})^2' for v in x[:, c])})/{m} = {number(var[c])}"
        for c in range(features)
    ] + [
        f"X_hat[{n},{c}] = ({number(x[n, c])} - {number(mean[c])})/sqrt({number(var[c])} + eps) = {number(x_hat[n, c])}"
        for n, c in product(range(batch), range(features))
    ]
    lines_y = [
        f"Y[{n},{c}] = {times(gamma[c], x_hat[n, c])} + {number(beta[c])} = {number(y[n, c])}"
        for n, c in product(range(batch), range(features))
    ]
    lines_dx = [f"feature {c}: dbeta = {number(dbeta[c])}, dgamma = {number(dgamma[c])}" for c in range(features)]
    statistics = (np.zeros(features), np.ones(features), True, 0.1, eps)  # running mean, var; training, momentum
    hat_kernel = F.batchnorm_forward(x, None, None, *statistics)[0]  # no gamma and beta: X_hat itself
    y_kernel, cache, _ = F.batchnorm_forward(x, gamma, beta, *statistics)
    kdx, kdgamma, kdbeta = F.batchnorm_backward(dy, cache)
    return Explanation(
        layer="batchnorm",
        title=f"Batch normalisation of {batch} samples of {features} features (training mode)",
        notes=[f"eps = {eps}; the variance is the biased one (divided by M = {m})."],
        inputs=[("X", x), ("gamma", gamma), ("beta", beta), ("dY", dy)],
        steps=[
            Step(
                "X_hat",
                "X_hat = (X - mean) / sqrt(var + eps), mean and var per feature over the batch",
                r"\hat X = \frac{X - \mu}{\sqrt{\sigma^2 + \epsilon}}",
                x_hat,
                hat_kernel,
                lines_hat,
                "batchnorm_forward without gamma and beta",
                worked=[("mean", mean), ("var", var)],
            ),
            Step(
                "Y",
                "Y = gamma X_hat + beta",
                r"Y = \gamma \hat X + \beta",
                y,
                y_kernel,
                lines_y,
                "batchnorm_forward",
            ),
            Step(
                "dbeta",
                "dbeta = sum over the batch of dY",
                r"\partial\beta = \sum_n \partial Y_n",
                dbeta,
                kdbeta,
                [],
                "batchnorm_backward",
            ),
            Step(
                "dgamma",
                "dgamma = sum over the batch of dY * X_hat",
                r"\partial\gamma = \sum_n \partial Y_n \hat X_n",
                dgamma,
                kdgamma,
                [],
                "batchnorm_backward",
            ),
            Step(
                "dX",
                "dX = gamma/sqrt(var + eps) * (dY - dbeta/M - X_hat * dgamma/M)",
                r"\partial X = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}\Big(\partial Y - \frac{\partial\beta}{M} - \hat X \frac{\partial\gamma}{M}\Big)",
                dx,
                kdx,
                lines_dx,
                "batchnorm_backward",
            ),
        ],
        command=f"handgrad explain batchnorm --input {batch}x{features}",
    )
