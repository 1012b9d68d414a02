"""Shared test helpers: error measures, failure messages that show the inputs, and option sweeps."""

from __future__ import annotations

from itertools import product

import numpy as np


def rel_error(actual, expected, floor=0.0) -> float:
    """``max |actual - expected| / max(max |expected|, floor)`` (the absolute error where both are zero).

    ``floor`` is the scale below which values count as zero: a gradient that is zero in exact arithmetic
    (a bias before batch normalisation) holds only rounding noise, whose relative error means nothing.
    """
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return np.inf
    scale = max(np.max(np.abs(expected), initial=0.0), floor)
    return float(np.max(np.abs(actual - expected), initial=0.0) / (scale if scale > 0 else 1.0))


def describe(name, actual, expected, config) -> str:
    """What a failure shows: the configuration, both results and where they differ most."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    text = f"{name} differs for {config}: relative error {rel_error(actual, expected):.3g}"
    if actual.shape != expected.shape:
        return text + f"; shapes {actual.shape} vs {expected.shape}"
    if actual.size:
        worst = np.unravel_index(np.argmax(np.abs(actual - expected)), actual.shape)
        text += f"; worst at {tuple(map(int, worst))}: got {actual[worst]!r}, expected {expected[worst]!r}"
    return text + f"\nactual:\n{actual}\nexpected:\n{expected}"


def assert_close(actual, expected, rtol, name="value", config=None, floor=0.0) -> float:
    """Assert the relative error is below ``rtol`` and return it (tests report the worst one)."""
    error = rel_error(actual, expected, floor)
    assert error <= rtol, describe(name, actual, expected, config)
    return error


def unless_padding_only(call, *args, **kwargs):
    """``call(*args, **kwargs)``, or None when it refuses a window that holds only padding (a ValueError that
    test_errors checks); any other error is raised."""
    try:
        return call(*args, **kwargs)
    except ValueError as error:
        if "only padding" not in str(error):
            raise
        return None


def distinct_values(rng, shape, spacing=0.05) -> np.ndarray:
    """Values that are all different by at least ``spacing``, in random order (no max-pooling ties)."""
    size = int(np.prod(shape))
    values = (np.arange(size) - size / 2) * spacing
    return rng.permutation(values).reshape(shape)


def off_kinks(rng, shape, margin=0.05) -> np.ndarray:
    """``uniform(-1, 1)`` values kept at least ``margin`` away from 0 (the ReLU kink)."""
    x = rng.uniform(margin, 1, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


def window_size(kernel, stride, padding, remainder) -> int:
    """An input size with ``(H + 2P - K) mod S == remainder`` and at least two windows."""
    size = max(1, kernel - 2 * padding) + stride + remainder
    while (size + 2 * padding - kernel) % stride != remainder:
        size += 1
    return size


def random_window_config(rng, max_kernel=5, max_stride=3, max_padding=2, options=False) -> dict:
    """A random geometry: kernel, stride, padding, centre, mode, and an input size that fits it.

    With ``options``, also a dilation of 1 to 3 and paddings given per side, or as "same" or "valid".
    """
    kernel = tuple(int(k) for k in rng.integers(1, max_kernel + 1, size=2))
    stride = tuple(int(s) for s in rng.integers(1, max_stride + 1, size=2))
    dilation = tuple(int(d) for d in rng.integers(1, 4, size=2)) if options else (1, 1)
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    sides = tuple(tuple(int(p) for p in rng.integers(0, max_padding + 1, size=2)) for _ in range(2))
    if not options or rng.random() < 0.3:
        sides = tuple((p, p) for p in rng.integers(0, max_padding + 1, size=2).tolist())
        padding = tuple(p[0] for p in sides)
    elif rng.random() < 0.2:
        padding, sides = "valid", ((0, 0), (0, 0))
    elif rng.random() < 0.25:
        stride = (1, 1)
        padding = "same"
        sides = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for d, k in zip(dilation, kernel))
    else:
        padding = sides
    center = tuple(int(rng.integers(0, k)) for k in kernel)
    size = tuple(
        window_size(e, s, 0, int(rng.integers(0, s))) - sum(p) + int(rng.integers(0, 3))
        for e, s, p in zip(extent, stride, sides)
    )
    size = tuple(max(1, n, e - sum(p)) for n, e, p in zip(size, extent, sides))
    mode = str(rng.choice(["xcorr", "conv"]))
    config = {"kernel": kernel, "stride": stride, "padding": padding, "center": center, "mode": mode, "size": size}
    if options:
        config["dilation"] = dilation
    return config


def sweep_geometries(kernels=range(1, 6), strides=(1, 2, 3), paddings=(0, 1, 2)):
    """Every kernel shape (non-square too) x stride x padding x centre cell x mode, with sizes where
    ``(H + 2P - K) mod S`` is ``S - 1`` (never a multiple for S > 1) along H and 0 along W."""
    for kh, kw, s, p, mode in product(kernels, kernels, strides, paddings, ("xcorr", "conv")):
        size = (window_size(kh, s, p, s - 1), window_size(kw, s, p, 0))
        for center in product(range(kh), range(kw)):
            yield {
                "kernel": (kh, kw),
                "stride": (s, s),
                "padding": (p, p),
                "center": center,
                "mode": mode,
                "size": size,
            }


def one_line_error(capsys, *fragments) -> str:
    """The command's stderr: one line holding every fragment, and no traceback."""
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def forget_gradients(model) -> None:
    """Empty every layer's ``grads``: a compiled model shares its layers with the model it was compiled from, so
    after the model's own backward pass a step that writes no gradient would otherwise show the model's."""
    from handgrad.model import named_leaves

    for _, layer in named_leaves(model):
        layer.grads = {}
