"""Batch normalisation as plain loops over each channel's M values."""

from __future__ import annotations

import math

import numpy as np


def _channel_values(x):
    """For each channel c, the list of index tuples of its values."""
    return [[index for index in np.ndindex(x.shape) if index[1] == c] for c in range(x.shape[1])]


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Returns (y, new running mean, new running var), with the formulas of the fast kernel."""
    y = np.zeros(x.shape)
    new_mean, new_var = np.array(running_mean, dtype=float), np.array(running_var, dtype=float)
    for c, cells in enumerate(_channel_values(x)):
        m = len(cells)
        if training:
            mean = sum(x[i] for i in cells) / m
            var = sum((x[i] - mean) ** 2 for i in cells) / m
            new_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
            new_var[c] = (1 - momentum) * running_var[c] + momentum * var * m / (m - 1)
        else:
            mean, var = running_mean[c], running_var[c]
        for i in cells:
            x_hat = (x[i] - mean) / math.sqrt(var + eps)
            y[i] = x_hat if gamma is None else gamma[c] * x_hat + beta[c]
    return y, new_mean, new_var


def batchnorm_backward(dy, x, gamma, running_mean, running_var, training, eps=1e-5):
    """``dX_i = (1/sigma) (dX_hat_i - (1/M) sum_j dX_hat_j - X_hat_i (1/M) sum_j dX_hat_j X_hat_j)`` in training,
    ``dX_hat_i / sigma`` in evaluation; ``dgamma = sum dY X_hat``, ``dbeta = sum dY``.  Returns (dx, dgamma, dbeta)."""
    dx = np.zeros(x.shape)
    channels = x.shape[1]
    dgamma, dbeta = np.zeros(channels), np.zeros(channels)
    for c, cells in enumerate(_channel_values(x)):
        m = len(cells)
        if training:
            mean = sum(x[i] for i in cells) / m
            var = sum((x[i] - mean) ** 2 for i in cells) / m
        else:
            mean, var = running_mean[c], running_var[c]
        sigma = math.sqrt(var + eps)
        x_hat = {i: (x[i] - mean) / sigma for i in cells}
        scale = 1.0 if gamma is None else gamma[c]
        dx_hat = {i: dy[i] * scale for i in cells}
        for i in cells:
            dgamma[c] += dy[i] * x_hat[i]
            dbeta[c] += dy[i]
        mean_dx_hat = sum(dx_hat.values()) / m
        mean_dx_hat_x_hat = sum(dx_hat[i] * x_hat[i] for i in cells) / m
        for i in cells:
            if training:
                dx[i] = (dx_hat[i] - mean_dx_hat - x_hat[i] * mean_dx_hat_x_hat) / sigma
            else:
                dx[i] = dx_hat[i] / sigma
    return dx, (None if gamma is None else dgamma), (None if gamma is None else dbeta)
