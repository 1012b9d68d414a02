"""Draw the gallery of derivations: docs/gallery.md and its pictures in docs/gallery/, the tutorials' own
examples drawn from the numbers ``handgrad explain`` works out and checks against the kernels.

    .venv/bin/python docs/gallery/make_gallery.py   # needs matplotlib: .venv/bin/pip install -e '.[plot]'
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from handgrad import explain, figures

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "gallery.md"

INTRO = """\
# Gallery: the derivations drawn

Each picture is drawn from the numbers `handgrad explain` works out by hand: the numbers its text prints and
the kernels compute, every one checked. Orange cells are read by the kernel or window (the product is
written under the number), blue ones are used for the cell being worked out, green is the cell being worked
out, red a pooling window's maximum, and the grey cell with a heavy border is the kernel's centre. Dashed
cells show where the kernel or window sits, outside the input too.

Made by `python docs/gallery/make_gallery.py`. Any derivation can be drawn with
`handgrad explain ... --figure PATH.png` (the key frames) or `--animate PATH.gif` (every frame).
"""


@dataclass
class Example:
    name: str  # of its files
    layer: str
    heading: str
    text: str  # what to look at
    arguments: dict = field(default_factory=dict)
    animated: bool = False  # a GIF as well

    def explanation(self) -> explain.Explanation:
        return explain.EXPLAINERS[self.layer](**self.arguments)


EXAMPLES = [
    Example(
        "conv-3x3-kernel-2x2",
        "conv",
        "A 3x3 input with a 2x2 kernel",
        """The example the tutorial on backpropagation in CNNs works by hand. The kernel is placed for each
output cell, the cells it meets hold the products, and the output fills in. dW takes one frame per kernel
cell: the input cells that kernel cell met, each times its dY. dX is the full correlation of dY, padded by
K-1, with the kernel rotated by 180 degrees, cut to the input.""",
        {"input_size": (3, 3), "kernel_size": (2, 2)},
        animated=True,
    ),
    Example(
        "conv-5x5-kernel-3x3-stride-2-centre-1-1",
        "conv",
        "5x5 with a 3x3 kernel, stride 2, centre (1, 1): cross-correlation",
        """The centre element is the origin of the kernel's coordinates: its indices run from -1 to 1 (the
"new" coordinates) instead of 0 to 2. Placed on the first output cell, the kernel reaches outside the input
(dashed cells, which read zero). At stride 2 the input cells one kernel cell meets lie two apart: in dW the
input "breaks apart", and dX starts from dY with a zero between its cells.""",
        {"input_size": (5, 5), "kernel_size": (3, 3), "stride": 2, "center": (1, 1)},
    ),
    Example(
        "conv-5x5-kernel-3x3-stride-2-centre-1-1-conv",
        "conv",
        "The same as a true convolution",
        """A true convolution flips the kernel about its centre (the first frame shows W as given, then
flipped): flip(W) is what meets the input, and the centre element stays where it was. In dX the rotation by
180 degrees undoes the flip, so the backward pass correlates with W as given.""",
        {"input_size": (5, 5), "kernel_size": (3, 3), "stride": 2, "center": (1, 1), "mode": "conv"},
    ),
    Example(
        "pool-4x4-window-2x2",
        "pool",
        "Max-pooling of a 4x4 input with a 2x2 window",
        """Each window's maximum is marked, and its position (the argmax) written under the output. The
gradient of each output goes back to its window's winner only; every other input cell gets 0.""",
        {"input_size": (4, 4), "kernel_size": (2, 2)},
        animated=True,
    ),
    Example(
        "pool-4x4-window-3x3-stride-1",
        "pool",
        "Overlapping windows: 3x3 with stride 1",
        "Where windows overlap, one input cell can win several of them, and the gradients it receives add up.",
        {"input_size": (4, 4), "kernel_size": (3, 3), "stride": 1},
    ),
    Example(
        "linear",
        "linear",
        "Fully connected layer",
        "Y = X W + B with each matrix's shape; dX = dY W^T, dW = X^T dY, and dB the sum of dY over the batch.",
    ),
    Example(
        "softmax",
        "softmax",
        "Softmax and its Jacobian",
        """Every output depends on every input: the Jacobian has y(1-y) on its diagonal and -y_k y_j
elsewhere, and dX = dY J.""",
    ),
    Example(
        "batchnorm",
        "batchnorm",
        "Batch normalisation",
        """Mean and variance per feature (a column) over the batch, X normalised, scaled by gamma and
shifted by beta; then dbeta, dgamma and dX.""",
    ),
]


def page() -> str:
    """The Markdown of docs/gallery.md."""
    out = [INTRO]
    for example in EXAMPLES:
        command = f"{example.explanation().command} --figure {example.name}.png"
        out += [f"## {example.heading}", "", example.text, "", f"`{command}`", ""]
        if example.animated:
            out += [f"![{example.heading}, frame by frame](gallery/{example.name}.gif)", ""]
        out += [f"![{example.heading}](gallery/{example.name}.png)", ""]
    return "\n".join(out)


def main() -> int:
    for example in EXAMPLES:
        e = example.explanation()
        if not e.ok:
            print(f"{example.name}: the derivation disagrees with the kernels", file=sys.stderr)
            return 1
        parts = figures.sections(e)
        print(figures.figure(e, HERE / f"{example.name}.png", parts))
        if example.animated:
            print(figures.animation(e, HERE / f"{example.name}.gif", parts))
    PAGE.write_text(page())
    print(PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
