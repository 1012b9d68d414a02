"""The output-size arithmetic, checked against PyTorch's formula and against counting windows by hand."""

from __future__ import annotations

from itertools import product

import pytest

from handgrad.shapes import Window, conv_output_size, pair


def test_output_size_is_pytorchs_formula():
    # PyTorch documents floor((H + 2P - dilation*(K - 1) - 1) / S + 1) with dilation 1.
    for h, k, s, p in product(range(1, 12), range(1, 6), range(1, 4), range(3)):
        if k <= h + 2 * p:
            assert conv_output_size(h, k, s, p) == (h + 2 * p - (k - 1) - 1) // s + 1


def test_output_size_counts_the_windows_that_fit():
    for h, k, s, p in product(range(1, 12), range(1, 6), range(1, 4), range(3)):
        if k <= h + 2 * p:
            starts = [i for i in range(0, h + 2 * p, s) if i + k <= h + 2 * p]
            assert conv_output_size(h, k, s, p) == len(starts)


def test_the_centre_does_not_change_the_output_size():
    for center in product(range(3), range(4)):
        window = Window.of((3, 4), 2, 1, "xcorr", center)
        assert window.output_size(9, 10) == (5, 5)


def test_convolution_reads_like_cross_correlation_with_the_flipped_centre():
    window = Window.of((3, 4), 2, 1, "conv", (0, 1))
    assert window.as_xcorr() == Window((3, 4), (2, 2), ((1, 1), (1, 1)), (2, 2), "xcorr")
    assert window.lead == (1 + 2, 1 + 2)


def test_pair():
    assert pair(3, "stride", "x") == (3, 3)
    assert pair((1, 2), "stride", "x") == (1, 2)
    for bad in [(1,), (1, 2, 3), 1.5, "2", True]:
        with pytest.raises(ValueError, match="stride must be an int or a pair of ints"):
            pair(bad, "stride", "x")
