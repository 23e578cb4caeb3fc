"""Crash-safe checkpoints, so a run killed at any moment resumes with ``LOAD_CHECKPOINT``.

Everything lives in ``checkpoints/`` (a ``persist: true`` DVC output, so it survives DVC's
cleanup of outputs before a stage runs):

- ``epoch_NNNN.keras``: the whole model with its optimizer state after epoch NNNN, written by
  Keras' ``ModelCheckpoint``, a new file each epoch;
- ``best_NNNN.keras``: the best model so far (``ModelCheckpoint(save_best_only=True)``);
- ``training_log.csv``: Keras' ``CSVLogger``, appended each epoch;
- ``state.json``: written atomically *after* the others at each epoch end; it names the last
  complete epoch file, the best file and value, and a fingerprint of the params and data.

A kill before ``state.json`` is renamed into place leaves the previous state pointing at
complete files; on resume, log rows after that epoch are dropped, so none is duplicated.
Checkpoints written under other params or data are never resumed: the run starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import keras

from kerapipe import atomic
from kerapipe.config import Params

log = logging.getLogger(__name__)

# Params that may change between a run and its resumption.
RESUMABLE_CHANGES = {"NUM_EPOCHS", "LOAD_CHECKPOINT", "FORCE"}


@dataclass(frozen=True)
class CheckpointState:
    fingerprint: str
    epoch: int  # epochs completed
    last: str
    best: str | None
    best_value: float | None


def fingerprint(params: Params, inventory_csv: bytes) -> str:
    """A hash of everything that shapes the weights: params (bar RESUMABLE_CHANGES) and data."""
    settings = params.model_dump()
    for key in RESUMABLE_CHANGES:
        settings["TRAINING"].pop(key)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(inventory_csv)
    return digest.hexdigest()


class Checkpoints:
    """The checkpoint folder of one training run."""

    def __init__(self, directory: Path, fingerprint: str, monitor: str) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.monitor = monitor

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def log_file(self) -> Path:
        return self.directory / "training_log.csv"

    def resume_state(self) -> CheckpointState | None:
        """The state to resume from, or None (saying why) when there is none to trust."""
        if not self.state_file.is_file():
            log.info("LOAD_CHECKPOINT: no checkpoint in %s; starting fresh.", self.directory)
            return None
        state = CheckpointState(**json.loads(self.state_file.read_text()))
        if state.fingerprint != self.fingerprint:
            log.warning(
                "LOAD_CHECKPOINT: the checkpoints in %s were written under different params or "
                "data; starting fresh instead of resuming them.",
                self.directory,
            )
            return None
        if not (self.directory / state.last).is_file():
            log.warning("LOAD_CHECKPOINT: %s is missing; starting fresh.", state.last)
            return None
        log.info("LOAD_CHECKPOINT: resuming after epoch %d from %s.", state.epoch, state.last)
        return state

    def start_fresh(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)

    def load_model(self, state: CheckpointState) -> keras.Model:
        """The model, compiled with its optimizer state, as it was after ``state.epoch``."""
        import kerapipe.losses  # noqa: F401  (registers kerapipe's serializable losses
        import kerapipe.metrics  # noqa: F401  and metrics, which a checkpoint may use)

        return keras.saving.load_model(self.directory / state.last, safe_mode=True)

    def trim_log(self, epochs: int) -> list[dict[str, str]]:
        """Keep only complete log rows of the first ``epochs`` epochs; return them."""
        if not self.log_file.is_file():
            return []
        lines = self.log_file.read_text().splitlines(keepends=True)
        header, rows = lines[0], [line for line in lines[1:] if line.endswith("\n")]
        kept = [row for row in rows if int(row.split(",", 1)[0]) < epochs]
        atomic.write_text(self.log_file, header + "".join(kept))
        names = header.strip().split(",")
        return [dict(zip(names, row.strip().split(","), strict=True)) for row in kept]

    def callbacks(
        self, state: CheckpointState | None, others: list[keras.callbacks.Callback]
    ) -> list[keras.callbacks.Callback]:
        """Keras' ModelCheckpoint (last and best) and CSVLogger, ``others``, and last the
        state recorder, so the state names an epoch only once everything for it is written."""
        best = keras.callbacks.ModelCheckpoint(
            str(self.directory / "best_{epoch:04d}.keras"),
            monitor=self.monitor,
            save_best_only=True,
            initial_value_threshold=state.best_value if state else None,
        )
        return [
            keras.callbacks.ModelCheckpoint(str(self.directory / "epoch_{epoch:04d}.keras")),
            best,
            keras.callbacks.CSVLogger(str(self.log_file), append=True),
            *others,
            StateRecorder(self, best, state),
        ]


class StateRecorder(keras.callbacks.Callback):
    """Runs after the checkpoint and log callbacks: records the epoch, then prunes old files."""

    def __init__(
        self,
        checkpoints: Checkpoints,
        best: keras.callbacks.ModelCheckpoint,
        state: CheckpointState | None,
    ) -> None:
        super().__init__()
        self.checkpoints = checkpoints
        self.best_checkpoint = best
        self.best = state.best if state else None
        self.best_value = state.best_value if state else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = float(self.best_checkpoint.best)
        if self.best_value is None or current != self.best_value:
            self.best, self.best_value = f"best_{epoch + 1:04d}.keras", current
        state = CheckpointState(
            self.checkpoints.fingerprint,
            epoch + 1,
            f"epoch_{epoch + 1:04d}.keras",
            self.best,
            self.best_value,
        )
        atomic.write_text(self.checkpoints.state_file, json.dumps(asdict(state), indent=2))
        keep = {state.last, state.best}
        for old in self.checkpoints.directory.glob("*_[0-9][0-9][0-9][0-9].keras"):
            if old.name not in keep:
                old.unlink()
