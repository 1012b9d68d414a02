"""The ``handgrad`` command: train, evaluate, predict, export to ONNX, and compare with PyTorch."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import distributed, runs
from .allocator import keep_freed_memory
from .checkpoint import CheckpointError
from .data import DATASETS, NORMALIZATIONS, image_files, read_images
from .data.augment import KINDS as AUGMENTS
from .evaluate import TTAS
from .explain import EXPLAINERS
from .init import INITIALIZERS
from .model import text_table
from .optim import OPTIMIZERS, SCHEDULES
from .presets import DEFAULTS, PRESETS

MAX_SIZE = 16  # explain's largest size, kernel, stride, padding or count: it works numbers out by hand, to read


def _split(text: str):
    """An argparse type: a fraction in [0, 1) (``0.1``) or a count of images (``500``)."""
    try:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        value = None
    if value is None or value < 0 or (isinstance(value, float) and value >= 1):
        expected = "a fraction in [0, 1) such as 0.1 or a count such as 500"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _image_size(text: str) -> list[int]:
    """An argparse type: 'HxW' -> [H, W]."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"expected a size HxW such as 32x32, got {text!r}")
    return [int(p) for p in parts]


# train options that are TrainConfig fields, with the type argparse converts them with
TRAIN_OPTIONS = {
    "model": {"choices": list(PRESETS), "help": "architecture (default: seed-cnn)"},
    "dataset": {
        "metavar": "DATA",
        "help": f"{', '.join(DATASETS)}, a folder with a sub-folder of images per class, or an .npz file "
        "(default: fashion-mnist)",
    },
    "image_size": {"type": _image_size, "metavar": "HxW", "help": "a folder's images resized (default: the first's)"},
    "channels": {"type": int, "choices": (1, 3), "help": "a folder's images as grey or colour (default: the first's)"},
    "test_split": {"type": _split, "help": "test share of data without a test set of its own (default: 0.2)"},
    "val_split": {"type": _split, "help": "validation share of the training images, 0 for none (default: 0.1)"},
    "epochs": {"type": int, "help": "epochs in all; with --resume, raise it to train longer"},
    "early_stopping": {"type": int, "metavar": "N", "help": "stop after N epochs without a better validation epoch"},
    "batch_size": {"type": int, "help": "images per step"},
    "lr": {"type": float, "help": "learning rate"},
    "optimizer": {"choices": OPTIMIZERS, "help": "sgd, momentum, nesterov or adam"},
    "momentum": {"type": float, "help": "momentum of momentum and nesterov"},
    "weight_decay": {"type": float, "help": "L2 weight decay"},
    "schedule": {"choices": SCHEDULES, "help": "learning-rate schedule over epochs"},
    "step_size": {"type": int, "help": "epochs between decays of the step schedule (default: 1)"},
    "gamma": {"type": float, "help": "decay factor of the step schedule (default: 0.1)"},
    "augment": {
        "choices": AUGMENTS,
        "nargs": "?",
        "const": "auto",
        "help": "random crops of padded images, horizontal flips, or both; alone: auto, flips unless digits",
    },
    "label_smoothing": {
        "type": float,
        "metavar": "E",
        "help": "train on targets (1 - E) one-hot + E / classes instead of one-hot (default: 0)",
    },
    "tta": {
        "choices": TTAS,
        "help": "test-time augmentation: flip averages the class probabilities of each image and its mirror in "
        "validation, test and predictions",
    },
    "seed": {"type": int, "help": "seed of the one generator behind weights, shuffling, augmentation (default: 0)"},
    "init": {
        "choices": list(INITIALIZERS),
        "help": "weight initialiser (default: the model's own: PyTorch's, He for fashion-cnn)",
    },
    "normalization": {"choices": NORMALIZATIONS, "help": "standard: zero mean, unit variance (default); unit: x/255"},
    "dtype": {"choices": runs.DTYPES, "help": "parameter and activation dtype (default: float32)"},
    "train_limit": {"type": int, "metavar": "N", "help": "train (and validate) on the first N training images only"},
    "test_limit": {"type": int, "metavar": "N", "help": "test on the first N test images only"},
    "log_every": {"type": int, "metavar": "N", "help": "steps between steps.csv rows, progress lines (default: 100)"},
}


def _defaults_table() -> str:
    """Each model's training settings when the command line does not give them."""
    names = list(DEFAULTS)
    rows = [["model", *names]] + [[name, *map(str, preset.settings().values())] for name, preset in PRESETS.items()]
    return "each model's defaults:\n  " + text_table(rows).replace("\n", "\n  ")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line: ``handgrad train: error: argument --lr: ...`` and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="handgrad", description="Train and inspect CNNs whose gradients are derived by hand.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train a model; a checkpoint after every epoch",
        epilog=_defaults_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, options in TRAIN_OPTIONS.items():
        train.add_argument(runs.option(name), dest=name, default=None, **options)
    train.add_argument("--out", type=Path, help="run directory (default: runs/MODEL-DATASET-seedSEED)")
    train.add_argument(
        "--resume", type=Path, metavar="RUN", help="continue the run in RUN exactly where its checkpoint left it"
    )
    train.add_argument("--data-dir", type=Path, help="where to look for the data set first")
    train.add_argument("--no-progress", action="store_true", help="no progress bar, no progress lines")
    train.add_argument(
        "--workers",
        type=_integer(1),
        metavar="K",
        help=f"train data-parallel on K processes of this machine: starts mpiexec ({distributed.INSTALL})",
    )

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, per-class accuracy and confusion matrix of a run's chosen model on its test set"
    )
    evaluate.add_argument("run", type=Path)
    evaluate.add_argument("--data-dir", type=Path)
    evaluate.add_argument("--limit", type=_integer(1), metavar="N", help="the first N test images only")

    predict = commands.add_parser("predict", help="classify PNG and JPEG images, IDX files, folders of images")
    predict.add_argument("run", type=Path, help="a run's folder, or a classifier's file (.safetensors)")
    predict.add_argument("files", type=Path, nargs="+", metavar="FILE", help="a PNG, JPEG or IDX file, or a folder")
    predict.add_argument(
        "--invert", action="store_true", help="invert grey levels (dark objects on a light background)"
    )
    export = commands.add_parser("export", help="write a run's model as an ONNX file that takes raw pixels")
    export.add_argument("run", type=Path)
    export.add_argument("out", type=Path, metavar="FILE", help="the ONNX file to write, such as model.onnx")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    plot = commands.add_parser("plot", help="PNG figures of a run: curves, confusion matrix, filters, feature maps")
    plot.add_argument("run", type=Path)
    plot.add_argument("--data-dir", type=Path)
    plot.add_argument(
        "--limit", type=_integer(1), metavar="N", help="the confusion matrix on the first N test images only"
    )

    explain = commands.add_parser("explain", help="a layer's forward and backward pass worked out on small numbers")
    explain.add_argument("layer", choices=list(EXPLAINERS))
    explain.add_argument(
        "--input",
        type=_size(1),
        help="conv, pool: HxW (default 3x3, 4x4); linear, batchnorm, residual: NxC; activations, softmax: K",
    )
    explain.add_argument("--kernel", type=_size(1), help="conv, pool: the kernel or window, kHxkW (default 2x2)")
    explain.add_argument("--output", type=_integer(1, MAX_SIZE), help="linear: output features (default 2)")
    explain.add_argument(
        "--stride", type=_size(1, "S or h,w"), help="conv, pool: S or 'h,w' (default 1 for conv, the window for pool)"
    )
    explain.add_argument("--padding", type=_size(0, "P or h,w"), default=0, help="conv, pool: P or 'h,w' (both sides)")
    explain.add_argument("--mode", choices=["xcorr", "conv"], default="xcorr")
    explain.add_argument("--center", type=_size(0), help="the kernel's centre element, as 'h,w' or 'hxw' (default 0,0)")
    explain.add_argument(
        "--dilation",
        type=_size(1, "D or h,w"),
        default=1,
        help="conv, pool: spacing of the kernel's cells, D or 'h,w' (1: none)",
    )
    explain.add_argument("--markdown", action="store_true", help="Markdown with LaTeX formulas instead of text")
    explain.add_argument(
        "--figure", type=Path, metavar="PATH.png", help="draw the derivation's key frames into one PNG (matplotlib)"
    )
    explain.add_argument(
        "--animate", type=Path, metavar="PATH.gif", help="draw every frame of the derivation in turn into a GIF"
    )

    compare = commands.add_parser("compare", help="train handgrad and the identical PyTorch model side by side")
    compare.add_argument("--model", choices=list(PRESETS), default="seed-cnn")
    compare.add_argument("--dataset", choices=list(DATASETS), default="fashion-mnist")
    compare.add_argument("--steps", type=_integer(1), default=200)
    compare.add_argument("--batch-size", type=_integer(1), default=64)
    compare.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    compare.add_argument("--lr", type=float, help="learning rate (default: 0.01, and 0.001 for adam)")
    compare.add_argument("--momentum", type=float, default=0.9)
    compare.add_argument("--weight-decay", type=float, default=0.0)
    compare.add_argument("--dtype", choices=runs.DTYPES, default="float64")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument(
        "--train-limit", type=_integer(1), metavar="N", help="draw batches from the first N training images"
    )
    compare.add_argument(
        "--out", type=Path, help="where the CSV and the plot go (default: runs/compare-MODEL-OPTIMIZER-DTYPE)"
    )
    compare.add_argument("--data-dir", type=Path)
    return parser


def _compare(args) -> int:
    from .compare import CSV, PLOT, CompareConfig, compare, plot, write_csv
    from .mpl import pyplot

    pyplot("compare")  # without matplotlib, say so before the work
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else 0.01)
    config = CompareConfig(
        model=args.model,
        dataset=args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        dtype=args.dtype,
        seed=args.seed,
        train_limit=args.train_limit,
    )
    out = args.out or Path("runs") / f"compare-{args.model}-{args.optimizer}-{args.dtype}"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: expected a folder for the comparison, found a file")
    if (out / CSV).exists():
        raise FileExistsError(f"{out} already holds a comparison ({CSV}): choose another --out")
    result = compare(config, data_dir=args.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result, out / CSV)
    plot(result, out / PLOT, f"{args.model}, {args.optimizer} lr {lr:g}, {args.dtype}: handgrad vs PyTorch")
    print(f"curves: {out / CSV}, {out / PLOT}")
    print(result.verdict())
    return 0 if result.passed else 1


def _integer(least: int, most: int | None = None):
    """An argparse type: an int in [least, most]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least or (most is not None and value > most):
            bounds = f"from {least} to {most}" if most is not None else f">= {least}"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}")
        return value

    return parse


def _size(least: int, like: str = "a size like 3x3 or 3"):
    """An argparse type: 'HxW' or 'H,W' -> (H, W), 'K' -> K, each value from ``least`` to ``MAX_SIZE``
    (explain works numbers out by hand: its output grows with the product of the sizes); ``like`` shows the
    form in the error."""

    def parse(text: str):
        parts = text.replace(",", "x").split("x")
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) not in (1, 2) or not all(least <= v <= MAX_SIZE for v in values):
            raise argparse.ArgumentTypeError(f"expected {like}, each value from {least} to {MAX_SIZE}, got {text!r}")
        return values[0] if len(values) == 1 else values

    return parse


def _explain(args) -> int:
    from . import explain

    def pair(value, default):
        value = default if value is None else value
        return (value, value) if isinstance(value, int) else value

    if args.layer in ("conv", "pool"):
        size = pair(args.input, (3, 3) if args.layer == "conv" else (4, 4))
        kwargs = {
            "input_size": size,
            "kernel_size": pair(args.kernel, (2, 2)),
            "padding": args.padding,
            "mode": args.mode,
            "dilation": args.dilation,
        }
        kwargs.update(
            stride=args.stride if args.stride is not None else (1 if args.layer == "conv" else None), center=args.center
        )
    elif args.layer in ("linear", "batchnorm", "residual"):
        batch, features = pair(args.input, {"linear": (2, 3), "batchnorm": (4, 2), "residual": (2, 3)}[args.layer])
        kwargs = {"batch": batch, ("in_features" if args.layer == "linear" else "features"): features}
        if args.layer == "linear":
            kwargs["out_features"] = args.output or 2
    else:
        kwargs = {"size": args.input if isinstance(args.input, int) else {"softmax": 3, "activations": 5}[args.layer]}
    pictures = {path: suffix for path, suffix in ((args.figure, ".png"), (args.animate, ".gif")) if path}
    for path, suffix in pictures.items():
        _check_output(path, suffix, "--figure" if suffix == ".png" else "--animate")
    result = explain.EXPLAINERS[args.layer](**kwargs)
    if pictures:
        from . import figures
        from .mpl import pyplot

        parts = figures.sections(result)  # a layer without figures, or no matplotlib: fail before printing
        pyplot("explain")
    print(result.markdown() if args.markdown else result.text())
    for path, suffix in pictures.items():
        print((figures.figure if suffix == ".png" else figures.animation)(result, path, parts))
    return 0 if result.ok else 1


def _check_output(path: Path, suffix: str, option: str) -> None:
    """A file to write: the suffix its format needs, in a directory that exists."""
    if path.suffix.lower() != suffix:
        raise ValueError(f"{option}: expected a {suffix} file, got {str(path)!r}")
    if not path.parent.is_dir():
        raise ValueError(f"{option}: directory {str(path.parent)!r} does not exist (for {str(path)!r})")
    if path.is_dir():
        raise ValueError(f"{option}: {str(path)!r} is a directory, expected a {suffix} file")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise ValueError(f"{option}: {str(path)!r} cannot be written (permission denied)")


def _plot(args) -> int:
    from .plots import plot_run

    for path in plot_run(args.run, args.data_dir, args.limit):
        print(path)
    return 0


def _train(args) -> int:
    from .train import TrainingDiverged, train

    if args.workers is not None and args.workers > 1:
        return _launch(args)
    world = distributed.world()  # the ranks of mpiexec, or this process alone
    run_dir = None
    try:
        with world.guard():  # an error on one rank ends every rank, rank 0 reporting it
            with world.together():
                config, run_dir = _train_config(args)
            resume, progress = bool(args.resume), not args.no_progress
            result = train(config, run_dir, resume=resume, data_dir=args.data_dir, progress=progress, world=world)
    except TrainingDiverged as error:
        print(f"handgrad: training stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nhandgrad: interrupted; {_saved(run_dir)}" if run_dir else "\nhandgrad: interrupted", file=sys.stderr)
        return 130
    if not world.root:
        return 0
    history = result.history
    if result.resumed_after == history.epoch:
        how = f"stopped early ({history.stopped})" if history.stopped else f"all {config.epochs} epochs done"
        print(
            f"{run_dir}: complete, {how}; to train further, raise --epochs: "
            f"handgrad train --resume {run_dir} --epochs N, with N > {config.epochs}"
        )
        return 0
    test = history.test
    chosen = f"the best validation epoch, {history.best}" if history.best else f"the last epoch, {history.epoch}"
    print(
        f"\ndone: {config.model} on {config.dataset}, {history.epoch} epochs"
        f" ({result.seconds / 60:.1f} min this session)\n"
        f"  test accuracy {test['test_accuracy']:.4f} on {test['test_images']:,} images, the model of {chosen}\n"
        f"  run: {run_dir}  (best model {runs.BEST}, last checkpoint {runs.CHECKPOINT}, metrics {runs.METRICS})\n"
        f"  next: handgrad evaluate {run_dir}"
    )
    return 0


def _as_options(message: str) -> str:
    """A configuration's error with the settings it names written as the options that give them
    (``early_stopping`` as ``--early-stopping``; a one-word name only where it begins the message)."""
    message = message.removeprefix("TrainConfig: ")
    for name in TRAIN_OPTIONS:
        if "_" in name:
            message = re.sub(rf"\b{name}\b", runs.option(name), message)
        elif message.startswith(f"{name} "):
            message = runs.option(name) + message[len(name) :]
    return message


def _train_config(args) -> tuple[runs.TrainConfig, Path]:
    """The configuration and run folder that the train command's options give."""
    given = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    if args.resume:
        if args.out:
            raise ValueError("--resume continues a run in its own folder; --out may not be given with it")
        run_dir = args.resume.parent if args.resume.name == runs.CHECKPOINT and args.resume.is_file() else args.resume
        return runs.resumed_config(runs.load_state(run_dir).config, given), run_dir
    dataset = given.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:  # a path: kept absolute, so that evaluate finds it from any folder
        given["dataset"] = str(Path(dataset).resolve())
    try:
        config = runs.TrainConfig(**given)
    except ValueError as error:
        raise ValueError(_as_options(str(error))) from None
    if "momentum" in given and config.optimizer not in ("momentum", "nesterov"):
        raise ValueError(
            f"--momentum applies to --optimizer momentum or nesterov, not {config.optimizer}: "
            f"drop --momentum or choose one of those"
        )
    for name in ("gamma", "step_size"):
        if name in given and config.schedule != "step":
            flag = runs.option(name)
            raise ValueError(
                f"{flag} applies to --schedule step, not {config.schedule}: drop {flag} or give --schedule step"
            )
    name = dataset if dataset in DATASETS else Path(dataset).stem
    return config, args.out or Path("runs") / f"{config.model}-{name}-seed{config.seed}"


# the train command's options that a rank started by --workers is given again
RANK_OPTIONS = (*TRAIN_OPTIONS, "out", "resume", "data_dir")


def _rank_arguments(args) -> list[str]:
    """The train command line that each rank of ``--workers`` runs: the options given, but ``--workers``."""
    argv = ["train"]
    for name in RANK_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            text = "x".join(map(str, value)) if name == "image_size" else str(value)
            argv.append(f"--{name.replace('_', '-')}={text}")
    return argv + (["--no-progress"] if args.no_progress else [])


def _launch(args) -> int:
    """``--workers K``: the same training on K ranks, started by ``mpiexec`` on this machine; its exit status."""
    if distributed.launched():
        raise ValueError("--workers starts mpiexec itself: leave it out under mpiexec, or run without mpiexec")
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
    if not threads.isdigit() or int(threads) < 1:
        raise ValueError(f"--workers: OPENBLAS_NUM_THREADS must be a count >= 1 (BLAS threads a rank), got {threads!r}")
    _, run_dir = _train_config(args)  # the options and the run folder checked before MPI starts
    runs.open_run(run_dir, bool(args.resume))  # a folder that already holds a run is refused here
    cores, workers = distributed.cores(), args.workers
    if workers > cores:
        print(f"handgrad: {workers} ranks on {cores} cores: each rank gets less than a core", file=sys.stderr)
    rank = [sys.executable, "-m", "handgrad", *_rank_arguments(args)]
    command = distributed.mpiexec_command(workers, rank, int(threads), oversubscribe=workers > cores)
    print(shlex.join(command), flush=True)
    with subprocess.Popen(command) as launched:
        try:
            return launched.wait()
        except KeyboardInterrupt:  # mpiexec had the signal too: it ends every rank
            launched.wait()
    print(f"\nhandgrad: interrupted; {_saved(run_dir)}", file=sys.stderr)
    return 130


def _saved(run_dir: Path) -> str:
    """What an interrupted training left: its last checkpoint, or none."""
    try:
        epoch = runs.load_state(run_dir).epoch
    except CheckpointError:
        return f"no checkpoint was written in {run_dir}: nothing to resume"
    return f"the checkpoint after epoch {epoch} is intact: continue with handgrad train --resume {run_dir}"


def _evaluate(args) -> int:
    from .evaluate import evaluate_run, report

    result = evaluate_run(args.run, args.data_dir, args.limit)
    state = result.state
    epoch = state.history.best or state.epoch
    flip = ", each image with its mirror (tta flip)" if state.config.tta == "flip" else ""
    print(
        f"{args.run}: {state.config.model}, the model of epoch {epoch} of {state.epoch}, on the {result.title} "
        f"test set{flip}; loss {result.loss:.4f}"
    )
    print(report(result.labels, result.predictions, state.classes))
    return 0


def _predict(args) -> int:
    from .classifier import load

    classifier = load(args.run)  # a run's chosen model, or a classifier's file
    files = [file for path in args.files for file in image_files(path)]  # every folder checked before any output
    channels, size = classifier.input_shape[0], classifier.input_shape[1:]
    for path in files:
        images = read_images(path, size, args.invert, channels)
        for note in images.notes:
            print(note, file=sys.stderr)
        probs = classifier.probabilities(images.pixels)
        for name, p in zip(images.names, probs):
            top = int(np.argmax(p))
            print(f"{name}: {top} {classifier.classes[top]} (p={p[top]:.3f})")
    return 0


FLOAT32_ONLY = {"Conv", "AveragePool", "Elu"}  # ONNX Runtime's CPU kernels of these take no double


def _export(args) -> int:
    from .classifier import load
    from .losses import SoftmaxCrossEntropy
    from .onnx_export import IR_VERSION, OPSET, OUTPUT, PIXELS, export

    if args.out.is_dir():
        raise IsADirectoryError(f"{args.out} is a directory; expected the .onnx file to write")
    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; give --force to replace it")
    if not args.out.parent.is_dir():
        raise FileNotFoundError(f"{args.out}: the directory {args.out.parent} does not exist")
    classifier = load(args.run)
    shape = classifier.input_shape
    logits = isinstance(classifier.loss, SoftmaxCrossEntropy)
    c = classifier
    proto = export(c.model, args.out, shape, c.normalizer, c.classes, c.tta, logits)
    output = "logits (a softmax gives handgrad predict's probabilities)" if logits else "probabilities"
    if c.tta == "flip":
        output += "; with tta flip, ln of each image's and its mirror's probabilities averaged"
    pixels = ", ".join(map(str, shape[1:] if shape[0] == 1 else shape))
    print(
        f"{args.out}: {args.run}'s model ({classifier.dtype}), ONNX opset {OPSET}, IR version {IR_VERSION}\n"
        f"  input '{PIXELS}': uint8 pixels (N, {pixels}), as handgrad predict reads them\n"
        f"  output '{OUTPUT}': {output} of {len(classifier.classes)} classes, named in the metadata ('classes')"
    )
    single = sorted({node.op_type for node in proto.graph.node} & FLOAT32_ONLY)
    if classifier.dtype == np.float64 and single:
        print(
            f"note: a float64 graph is valid ONNX, but ONNX Runtime's CPU kernels for {', '.join(single)} take "
            f"float32 only: train with --dtype float32 to run the file there (docs/onnx.md)",
            file=sys.stderr,
        )
    return 0


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "export": _export,
    "plot": _plot,
    "explain": _explain,
    "compare": _compare,
}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    keep_freed_memory()  # the command owns its process: freed memory stays for the next step (see allocator)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, ImportError, OSError, distributed.RankFailed) as error:  # CheckpointError... are ValueErrors
        print(f"handgrad: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhandgrad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
