"""What a run logs while it trains, every ``log_every`` steps: a row of ``steps.csv``, TensorBoard scalars in
``tensorboard/`` (when the tensorboard package is installed: ``.venv/bin/pip install -e '.[tensorboard]'``), and a progress
line when there is no progress bar (the output goes to a file or a pipe).

``steps.csv`` has the columns ``step`` (counted over the whole run, from 1), ``epoch``, ``loss`` and ``accuracy``
(over the training images of the steps since the row before), ``lr`` and ``images_per_second`` (over those
steps).  TensorBoard gets the same under ``train/`` at each such step, each epoch's figures under ``epoch/`` and
the test figures under ``test/``.  A resumed run first drops what was logged after its checkpoint: the rows of
steps.csv past its step, and in TensorBoard the steps from there on (a ``SessionLog.START`` event, which
TensorBoard reads as "forget what follows").
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

STEPS = "steps.csv"
TENSORBOARD = "tensorboard"
COLUMNS = ("step", "epoch", "loss", "accuracy", "lr", "images_per_second")


class StepLog:
    """Counts the steps of a run and logs every ``every``-th (see the module's docstring).

    ``run_dir=None`` writes no files; ``line`` (a function taking a string, or None) gets the progress lines.
    ``step`` is the number of steps already taken (a resumed run's).
    """

    def __init__(self, run_dir, every: int, step: int = 0, line=None):
        self.every, self.step, self.line = every, step, line
        self._csv = self._writer = self._tensorboard = None
        if run_dir is not None:
            path = Path(run_dir) / STEPS
            fresh = _keep_rows_until(path, step)
            self._csv = open(path, "a", newline="")  # noqa: SIM115 - open for the run, closed by close()
            self._writer = csv.writer(self._csv)
            if fresh:
                self._writer.writerow(COLUMNS)
            self._tensorboard = _tensorboard(Path(run_dir) / TENSORBOARD, step)
        self._where = ""
        self._restart()

    def _restart(self) -> None:
        self._loss = self._correct = self._seen = 0
        self._began = time.perf_counter()

    def begin_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        """Epoch ``epoch`` (from 1) of ``epochs`` begins, with ``steps`` steps."""
        self.epoch, self._where, self._first = epoch, f"epoch {epoch}/{epochs} step {{}}/{steps}", self.step
        self._restart()

    def add(self, loss_sum: float, correct: int, seen: int, lr: float) -> None:
        """One step over ``seen`` images: the sum of their losses and how many were classified right."""
        self.step += 1
        self._loss, self._correct, self._seen = self._loss + loss_sum, self._correct + correct, self._seen + seen
        if self.step % self.every:
            return
        rate = self._seen / max(time.perf_counter() - self._began, 1e-9)
        row = {"loss": self._loss / self._seen, "accuracy": self._correct / self._seen, "lr": lr}
        if self._writer is not None:
            self._writer.writerow([self.step, self.epoch, *row.values(), rate])
            self._csv.flush()
        self.scalars("train", {**row, "images_per_second": rate})
        if self.line is not None:
            where = self._where.format(self.step - self._first)
            figures = f"loss {row['loss']:.4f} accuracy {row['accuracy']:.4f} lr {lr:.4g}"
            self.line(f"{where}: {figures} | {rate:.0f} images/s")
        self._restart()

    def scalars(self, group: str, values: dict) -> None:
        """TensorBoard scalars ``group/name`` at the current step (nothing without tensorboard)."""
        if self._tensorboard is None:
            return
        event, summary = self._tensorboard[1:]
        tagged = [summary.Value(tag=f"{group}/{name}", simple_value=float(v)) for name, v in values.items()]
        self._tensorboard[0].add_event(event(wall_time=time.time(), step=self.step, summary=summary(value=tagged)))

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._tensorboard is not None:
            self._tensorboard[0].close()


def _keep_rows_until(path: Path, step: int) -> bool:
    """Drop the rows of ``path`` past ``step`` (and any row that is not one); True when there is no file left."""
    if not path.exists() or not step:
        path.unlink(missing_ok=True)
        return True
    kept = []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if row == list(COLUMNS) or (len(row) == len(COLUMNS) and row[0].isdigit() and int(row[0]) <= step):
                kept.append(row)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    return not kept


def _tensorboard(folder: Path, step: int):
    """``(writer, Event, Summary)`` of the tensorboard package, or None when it is not installed."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        return None
    writer = EventFileWriter(str(folder))
    if step:  # forget what an interrupted session logged after the checkpoint
        writer.add_event(Event(wall_time=time.time(), step=step + 1, session_log=SessionLog(status=SessionLog.START)))
    return writer, Event, Summary
