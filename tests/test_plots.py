"""handgrad plot: every figure is written, is a valid PNG and has its expected size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from handgrad import cli, runs
from handgrad.plots import DPI, SIZES
from handgrad.train import train


def test_every_plot_is_a_png_of_the_expected_size(tmp_path, capsys):
    config = runs.TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=2e-3, train_limit=256, test_limit=64)
    train(config, tmp_path, progress=False, log=lambda *a: None)
    assert cli.main(["plot", str(tmp_path), "--limit", "200"]) == 0
    written = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in written] == ["curves.png", "confusion.png", "filters.png", "feature_maps.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG"
            name = path.rsplit("/", 1)[-1].removesuffix(".png")
            assert image.size == (SIZES[name][0] * DPI, SIZES[name][1] * DPI)
            pixels = np.asarray(image.convert("L"))
            assert pixels.std() > 5  # something was drawn
