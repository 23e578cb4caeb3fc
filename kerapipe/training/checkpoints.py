"""Crash-safe checkpoints, so a run killed at any moment resumes with ``LOAD_CHECKPOINT``.

Everything lives in ``checkpoints/`` (not a DVC output, so DVC's cleanup of outputs before a
stage runs never touches it, and it is neither cached nor pushed):

- ``epoch_NNNN.keras``: the whole model with its optimizer state after epoch NNNN (Keras'
  ``model.save``, under a temporary name renamed into place), a new file each epoch (the last
  two are kept);
- ``best_NNNN.keras``: the best model so far, a hard link to its epoch's file;
- ``training_log.csv``: Keras' ``CSVLogger``, appended each epoch;
- ``state.json``: written atomically *after* the others at each epoch end; it names the last
  complete epoch file, the best file and value, and the settings the run was made with
  (kerapipe/fingerprints.py).

The files are written by a background thread (``EpochWriter``), epoch after epoch, so the
training does not wait for them; the training thread only copies the variables at each
epoch's end. A kill before ``state.json`` is renamed into place leaves the previous state
pointing at complete files (the next run deletes the unfinished temporary ones); on resume,
log rows after that epoch are dropped, so none is duplicated, and a checkpoint that does not
load (truncated) gives way to the newest one that does.
Checkpoints written under other settings are never resumed, and never deleted before the new
run has its own: they are set aside beside the folder until the new run's first epoch is
recorded, and put back if the new run fails before that.

The folder may be on a remote source (``DATA.TRAINING_MODEL_SOURCE``): Keras then writes in
a local working copy (kerapipe/folders.py), and at each epoch end the writer uploads the new
checkpoint files and the log before ``state.json``, so the remote folder too only ever names
complete files; a resume downloads the files it loads.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

from kerapipe import atomic
from kerapipe.fingerprints import changes, digest
from kerapipe.folders import SetAside, WorkingCopy
from kerapipe.training.epoch_writer import EpochJob, EpochRecorder, EpochWriter

log = logging.getLogger(__name__)
CHECKPOINT_FILE = re.compile(r"^(epoch|best)_(\d{4})\.keras$")
STATE = "state.json"


@dataclass(frozen=True)
class CheckpointState:
    fingerprint: str
    epoch: int  # epochs completed
    last: str
    best: str | None
    best_value: float | None
    settings: dict[str, Any] = field(default_factory=dict)


class Checkpoints:
    """The checkpoint folder of one training run, made with ``settings``."""

    def __init__(self, folder: WorkingCopy, settings: dict[str, Any], monitor: str) -> None:
        self.folder = folder
        self.settings = settings
        self.fingerprint = digest(settings)
        self.monitor = monitor
        self.set_aside = SetAside(folder.path, folder.source)
        self.writer: EpochWriter | None = None
        self.recorder: EpochRecorder | None = None

    @property
    def directory(self) -> str:
        """The folder, as its source names it (for messages)."""
        return self.folder.path

    @property
    def log_file(self) -> Path:
        """The running CSV log, in the local working copy."""
        return self.folder.local_file("training_log.csv")

    def recover(self) -> None:
        """Undo what a run killed before its first epoch left: put set-aside checkpoints back
        (or drop them, if that run got as far as recording an epoch of its own)."""
        atomic.remove_temporaries(self.folder.local)  # a killed run's unfinished files
        if not self.set_aside.holds_something():
            return
        if self.read_state() is not None:
            self.set_aside.discard()
        else:
            log.info("Restoring the checkpoints an interrupted run had set aside.")
            self.set_aside.restore()

    def read_state(self) -> CheckpointState | None:
        """``state.json``, or None when it is missing or unreadable (saying why)."""
        try:
            text = self.folder.read_text(STATE)
        except FileNotFoundError:
            return None
        try:
            return CheckpointState(**json.loads(text))
        except (ValueError, TypeError) as err:
            log.warning(
                "%s cannot be read (%s); its checkpoints are not resumed.",
                self.folder.on_source(STATE),
                err,
            )
            return None

    def resume(
        self, load: Callable[[Path], keras.Model]
    ) -> tuple[CheckpointState, keras.Model] | None:
        """The state and model to resume from, or None (saying why) when there are none to
        trust. ``load`` loads one checkpoint file; a file that does not load (truncated by a
        crash or a full disk) gives way to the newest earlier one that does."""
        state = self.read_state()
        if state is None:
            log.info(
                "LOAD_CHECKPOINT: no readable checkpoint in %s; starting fresh.", self.directory
            )
            return None
        if state.fingerprint != self.fingerprint:
            log.warning(
                "LOAD_CHECKPOINT: the checkpoints in %s were written under other settings (%s); "
                "starting fresh (they are kept until this run has its own).",
                self.directory,
                changes(state.settings, self.settings),
            )
            return None
        for name, epoch in self._candidates(state):
            try:
                model = load(self.folder.download(name))
            except Exception as err:  # noqa: BLE001 - any unreadable file: try an older one
                log.warning(
                    "LOAD_CHECKPOINT: %s does not load (%s); trying an older one.", name, err
                )
                continue
            if epoch != state.epoch:
                state = CheckpointState(state.fingerprint, epoch, name, None, None, state.settings)
            log.info("LOAD_CHECKPOINT: resuming after epoch %d from %s.", epoch, name)
            return state, model
        log.warning("LOAD_CHECKPOINT: no checkpoint in %s loads; starting fresh.", self.directory)
        return None

    def _candidates(self, state: CheckpointState) -> list[tuple[str, int]]:
        """Checkpoint files up to the state's epoch, newest first, the recorded one first."""
        found = []
        for name in self.folder.names():
            match = CHECKPOINT_FILE.match(name)
            if match and int(match[2]) <= state.epoch and name != state.last:
                found.append((name, int(match[2])))
        found.sort(key=lambda item: (item[1], item[0].startswith("epoch")), reverse=True)
        return [(state.last, state.epoch), *found]

    def start_fresh(self) -> None:
        """Make an empty folder, setting earlier checkpoints aside (not deleting them)."""
        if self.folder.names():
            self.set_aside.move()
        self.folder.local.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.local.iterdir() if self.folder.remote else ():
            stale.unlink()  # a remote run's scratch copy: what a resume downloaded

    def after_failure(self) -> None:
        """Clean up after a run that failed: let the writer finish the epochs queued, drop
        checkpoint files no state names (a partial write, or an upload that state.json never
        named), and put set-aside checkpoints back if this run recorded no epoch."""
        try:
            self.finish()
        except Exception as err:  # noqa: BLE001 - the error that stopped the run comes first
            log.warning("Could not write the last checkpoint: %s", err)
        state = self.read_state()
        keep = {state.last, state.best} if state else set()
        names = set(self.folder.names())
        if self.folder.remote:
            names |= {path.name for path in self.folder.local.glob("*.keras")}
        for name in names:
            if not name.endswith(".keras") or name in keep:
                continue
            if state is None or checkpoint_epoch(name) > state.epoch:
                self.folder.remove(name)
        self.recover()

    def clean_up_after_failure(self) -> None:
        """``after_failure``, where a failure of its own (a remote source gone, say) is
        logged, never hiding the error that stopped the run."""
        try:
            self.after_failure()
        except Exception as err:  # noqa: BLE001 - the original error is the one to report
            log.warning("Could not clean up the checkpoints in %s: %s", self.directory, err)

    def trim_log(self, epochs: int) -> list[dict[str, str]]:
        """Keep only complete log rows of the first ``epochs`` epochs; return them. A remote
        folder's log is downloaded first, for CSVLogger to go on appending to."""
        if self.folder.remote and self.folder.exists("training_log.csv"):
            self.folder.download("training_log.csv")
        if not self.log_file.is_file():
            return []
        with open(self.log_file, encoding="utf-8", newline="") as handle:  # keep line ends
            lines = handle.read().splitlines(keepends=True)
        if not lines:
            return []
        header, rows = lines[0], [line for line in lines[1:] if line.endswith("\n")]
        kept = [row for row in rows if int(row.split(",", 1)[0]) < epochs]
        if len(kept) < len(lines) - 1:
            atomic.write_text(self.log_file, header + "".join(kept))
            self.folder.upload("training_log.csv")
        names = header.strip().split(",")
        return [dict(zip(names, row.strip().split(","), strict=True)) for row in kept]

    def callbacks(
        self,
        state: CheckpointState | None,
        others: list[keras.callbacks.Callback],
        load: Callable[[Path], keras.Model],
        set_asides: tuple[SetAside, ...] = (),
        background: bool = True,
    ) -> list[keras.callbacks.Callback]:
        """The epoch's snapshot first, Keras' CSVLogger, ``others``, and last the recorder,
        which hands the epoch to the background writer (see ``EpochWriter``): the checkpoint
        holds the model as it was before ``others`` ran, as Keras' ModelCheckpoint did, and
        the state names an epoch only once its log row is written. ``load`` loads a
        checkpoint file (for the writer's copy of the model); ``set_asides`` are deleted,
        with this folder's, once the first epoch is recorded. Without ``background`` every
        checkpoint is saved on the training thread (the writer still writes ``state.json``)."""
        self.writer = EpochWriter(self, load, (self.set_aside, *set_asides))
        self.writer.copy_failed = not background
        self.recorder = EpochRecorder(self, self.writer, state)
        return [
            self.recorder.snapshot,
            keras.callbacks.CSVLogger(str(self.log_file), append=True),
            *others,
            self.recorder,
        ]

    def track(self, model: keras.Model | None) -> None:
        """Checkpoint ``model`` whatever model ``fit`` trains (the whole model while its head
        trains on cached features); None: the model ``fit`` trains."""
        self.recorder.tracked = model

    def model_changed(self) -> None:
        """The model's trainable variables or its optimizer changed (fine-tuning unfroze its
        base): the writer's copy no longer matches, and is made again from the next epoch."""
        self.writer.copy = None

    def finish(self) -> None:
        """Wait until every epoch handed to the writer is on disk and stop it; raise the
        first error it met (a full disk, say)."""
        if self.writer is not None:
            self.writer.close()

    def flush(self) -> None:
        """Wait until every epoch handed to the writer is on disk (it goes on for the next
        ``fit``); raise the first error it met."""
        if self.writer is not None:
            self.writer.drain()

    def state_after(
        self, epoch: int, best: str | None, best_value: float | None
    ) -> CheckpointState:
        """The state naming ``epoch``'s file and the best so far."""
        return CheckpointState(
            self.fingerprint, epoch, f"epoch_{epoch:04d}.keras", best, best_value, self.settings
        )

    def write_epoch(self, job: EpochJob, save: Callable[[Path], None] | None) -> None:
        """Write one epoch's files, then ``state.json`` naming them, then prune (in the
        writer's thread). ``save`` writes the model's checkpoint to a path; None: the
        training thread has already written it."""
        folder, state = self.folder, job.state
        if save is not None:
            with atomic.atomic_path(folder.local_file(state.last), suffix=".keras") as tmp:
                save(tmp)
        if job.improved:  # the same model as the epoch's file: a link, not a second save
            atomic.link_or_copy(folder.local_file(state.last), folder.local_file(state.best))
        # A remote folder gets the epoch's files first; state.json, naming them, comes last.
        for name in (state.last, state.best if job.improved else None, "training_log.csv"):
            if name:
                folder.upload(name)
        folder.write_text(STATE, json.dumps(asdict(state), indent=2))
        # The last two epochs and the best: an older epoch to fall back on if the last is
        # damaged after it was recorded. A later epoch's file may already be there (the
        # training thread saves the epochs before the writer has its copy): never touched.
        keep = {state.last, f"epoch_{state.epoch - 1:04d}.keras", state.best}
        names = set(folder.names())
        if folder.remote:
            names |= {path.name for path in folder.local.glob("*.keras")}
        for name in names:
            old = checkpoint_epoch(name) < state.epoch
            if CHECKPOINT_FILE.match(name) and name not in keep and old:
                folder.remove(name)


def checkpoint_epoch(name: str) -> int:
    """The epochs done when the checkpoint file ``name`` was written (a huge number for a
    name that is not a checkpoint's)."""
    match = CHECKPOINT_FILE.match(name)
    return int(match[2]) if match else 1 << 30
