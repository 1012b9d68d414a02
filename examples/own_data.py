"""Write the two kinds of data of your own that ``handgrad train --dataset`` takes, from Fashion-MNIST, so that
the README's commands have something to train on:

    photos/      a folder with one sub-folder of PNG images per class (three classes, 200 images each, colour)
    arrays.npz   arrays x (N, 28, 28) uint8 and y (N,), with the class names in ``classes``

Run:  .venv/bin/python examples/own_data.py        (in the checkout, after ./scripts/train.sh set it up)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import handgrad

CLASSES = (0, 1, 7)  # T-shirt/top, Trouser, Sneaker
PER_CLASS = 200


def main() -> None:
    data = handgrad.data.load("fashion-mnist")
    chosen = np.concatenate([np.flatnonzero(data.train_labels == k)[:PER_CLASS] for k in CLASSES])
    tint = np.array([1.0, 0.8, 0.6])  # a colour of their own, so that --channels 3 has three different planes
    for index in chosen:
        folder = Path("photos") / data.classes[data.train_labels[index]].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        rgb = (data.train_images[index][..., None] * tint).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{index}.png")
    names = np.array([data.classes[k] for k in CLASSES])
    labels = np.searchsorted(CLASSES, data.train_labels[chosen])
    np.savez("arrays.npz", x=data.train_images[chosen], y=labels, classes=names)
    print(f"photos/ ({len(CLASSES)} classes, {len(chosen)} images) and arrays.npz written")


if __name__ == "__main__":
    main()
