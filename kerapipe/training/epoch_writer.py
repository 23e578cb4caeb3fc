"""The checkpoints' writer: a background thread that saves each epoch's model while the
training goes on, and the callback that hands it the epochs (see kerapipe/training/checkpoints.py
for the files and the crash-safety they give)."""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from kerapipe import atomic
from kerapipe.folders import SetAside

if TYPE_CHECKING:
    from kerapipe.training.checkpoints import Checkpoints, CheckpointState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochJob:
    """What the writer records for one epoch: the state, whether the epoch's model is the
    new best, and the model's variables as they were (None: its file is already written)."""

    state: CheckpointState
    improved: bool
    values: tuple[list[np.ndarray], list[np.ndarray]] | None


class EpochRecorder(keras.callbacks.Callback):
    """Decides each epoch's state on the training thread and hands it to the writer.

    ``snapshot`` (the first callback of the epoch) copies the model's and the optimizer's
    variables to host memory, a few milliseconds, once the writer holds its own copy of the
    model to write them with; until then (the run's first epoch) it saves the checkpoint
    itself. This callback (the last) picks the best model so far, as ``ModelCheckpoint(
    save_best_only=True)`` does (``monitor`` lower than any before), and queues the epoch.
    """

    def __init__(
        self, checkpoints: Checkpoints, writer: EpochWriter, state: CheckpointState | None
    ) -> None:
        super().__init__()
        self.checkpoints = checkpoints
        self.writer = writer
        self.best = state.best if state else None
        self.best_value = state.best_value if state else None
        self.snapshot = keras.callbacks.LambdaCallback(on_epoch_end=self._take_snapshot)
        self.values: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self.tracked: keras.Model | None = None  # see Checkpoints.track

    @property
    def saved(self) -> keras.Model:
        """The model each checkpoint holds."""
        return self.tracked or self.model

    def _take_snapshot(self, epoch: int, logs: dict | None = None) -> None:
        if self.writer.takes(self.saved):
            self.values = variable_values(self.saved)
            return
        self.values = None
        path = self.checkpoints.folder.local_file(f"epoch_{epoch + 1:04d}.keras")
        with atomic.atomic_path(path, suffix=".keras") as tmp:
            self.saved.save(str(tmp))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = (logs or {}).get(self.checkpoints.monitor)
        improved = (
            current is not None
            and not math.isnan(current)
            and (self.best_value is None or current < self.best_value)
        )
        if improved:
            self.best, self.best_value = f"best_{epoch + 1:04d}.keras", float(current)
        state = self.checkpoints.state_after(epoch + 1, self.best, self.best_value)
        self.writer.submit(EpochJob(state, improved, self.values))
        self.values = None

    def on_train_end(self, logs: dict | None = None) -> None:
        self.checkpoints.flush()


def variable_values(model: keras.Model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Copies of the model's variables and its optimizer's, in host memory."""
    return (
        [keras.ops.convert_to_numpy(v) for v in model.variables],
        [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables],
    )


class EpochWriter:
    """Writes the checkpoints in a background thread, one epoch after the other, so the
    training waits for none of it (``model.save`` walks every layer in Python and writes
    HDF5 inside a zip: tenths of a second a file, more for big models).

    The thread keeps its own copy of the model on the CPU, loaded from the run's first
    checkpoint (with ``load``, as a resume would). Each later epoch's variables, copied on
    the training thread, are set into that copy and saved from it: the same file the
    training model would give. A model whose copy cannot be made or does not match (a
    plugin's own model class, say) is saved on the training thread, as before.

    At most one epoch waits while another is written, so memory holds at most two copies
    of the variables. The first error stops the writing (``state.json`` stays at the last
    complete epoch) and is raised on the training thread at the next epoch end, or by
    ``close``, which waits for the queue to empty.
    """

    def __init__(
        self,
        checkpoints: Checkpoints,
        load: Callable[[Path], keras.Model],
        set_asides: tuple[SetAside, ...],
    ) -> None:
        self.checkpoints = checkpoints
        self.load = load
        self.set_asides = set_asides
        self.copy: keras.Model | None = None
        self.copy_failed = False
        self.error: BaseException | None = None
        self.queue: queue.Queue[EpochJob | None] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="kerapipe-checkpoints", daemon=True)
        self.thread.start()

    def takes(self, model: keras.Model) -> bool:
        """Whether this epoch's checkpoint can be written from a snapshot of ``model``."""
        return self.copy is not None and _shapes(self.copy) == _shapes(model)

    def submit(self, job: EpochJob) -> None:
        self._raise()
        self.queue.put(job)

    def close(self) -> None:
        """Wait for every queued epoch and stop the thread; raise the first error."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self._raise()

    def drain(self) -> None:
        """Wait for every queued epoch; raise the first error."""
        self.queue.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _run(self) -> None:
        failed = False
        while (job := self.queue.get()) is not None:
            try:
                if not failed:
                    self._write(job)
            except BaseException as err:  # noqa: BLE001 - raised on the training thread
                self.error, failed = err, True
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def _write(self, job: EpochJob) -> None:
        save = None if job.values is None else self._save_from_copy(job.values)
        self.checkpoints.write_epoch(job, save)
        if self.set_asides:  # an epoch of this run is recorded: what was set aside can go
            for set_aside in self.set_asides:
                set_aside.discard()
            self.set_asides = ()
        if self.copy is None and not self.copy_failed:
            self._make_copy(self.checkpoints.folder.local_file(job.state.last))

    def _save_from_copy(self, values) -> Callable[[Path], None]:
        model_values, optimizer_values = values

        def save(path: Path) -> None:
            for variable, value in zip(self.copy.variables, model_values, strict=True):
                variable.assign(value)
            for variable, value in zip(
                self.copy.optimizer.variables, optimizer_values, strict=True
            ):
                variable.assign(value)
            self.copy.save(str(path))

        return save

    def _make_copy(self, path: Path) -> None:
        try:
            with keras.device("cpu:0"):
                self.copy = self.load(path)
        except Exception as err:  # noqa: BLE001 - the checkpoints are then saved as before
            self.copy_failed = True
            log.debug("Checkpoints are saved on the training thread: %s", err)
            return
        log.debug("Checkpoints after %s are written in the background.", path.name)


def _shapes(model: keras.Model) -> list[tuple]:
    """The shapes of a model's and its optimizer's variables, in order."""
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.variables, *(optimizer.variables if optimizer is not None else [])]
    return [tuple(v.shape) for v in variables]
