#!/usr/bin/env bash
# Set up and run the main job on a fresh machine: train the tutorials' CNN on Fashion-MNIST for 3 epochs,
# with the model's own settings, a progress bar, a checkpoint per epoch and the test accuracy; extra arguments
# go to handgrad train.
source "$(dirname "$0")/setup.sh" ""  # no extras (an explicit argument, so ours are not passed on)
exec .venv/bin/handgrad train --model seed-cnn --dataset fashion-mnist --epochs 3 \
  --out "runs/seed-cnn-$(date +%Y%m%d-%H%M%S)" "$@"
