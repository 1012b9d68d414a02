"""Build the tutorials' CNN, take one SGD step on random images, and gradient-check the whole model.

Run: python examples/check_seed_cnn.py
"""

import numpy as np

import handgrad
from handgrad.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU
from handgrad.losses import SoftmaxCrossEntropy

rng = np.random.default_rng(0)
model = handgrad.Sequential(
    [
        Conv2D(1, 8, 5, dtype=np.float64, rng=rng),  # (N, 1, 28, 28) -> (N, 8, 24, 24)
        ReLU(),
        MaxPool2D(2),  # -> (N, 8, 12, 12)
        Conv2D(8, 16, 5, dtype=np.float64, rng=rng),  # -> (N, 16, 8, 8)
        ReLU(),
        MaxPool2D(2),  # -> (N, 16, 4, 4)
        Flatten(),  # -> (N, 256)
        Linear(256, 128, dtype=np.float64, rng=rng),
        ReLU(),
        Linear(128, 10, dtype=np.float64, rng=rng),
    ]
)
print(model)

x, labels = rng.standard_normal((4, 1, 28, 28)), rng.integers(0, 10, size=4)
loss = SoftmaxCrossEntropy()
before = loss.forward(model.forward(x), labels)
model.backward(loss.backward())
for name, value in model.params.items():
    value -= 0.05 * model.grads[name]
after = loss.forward(model.forward(x), labels)
print(f"one SGD step (lr 0.05) on 4 random images: loss {before:.6f} -> {after:.6f}")

# A smaller input keeps the check quick: every weight of the model is still checked.
small = handgrad.Sequential(list(model)[:6] + [Flatten()])
result = handgrad.gradcheck(small, rng.standard_normal((2, 1, 20, 20)))
print("central-difference check of dX and every parameter gradient of the convolutional part:")
print(result)
result = handgrad.gradcheck(handgrad.Sequential(list(model)[7:]), rng.standard_normal((2, 256)))
print("and of the fully connected part:")
print(result)
