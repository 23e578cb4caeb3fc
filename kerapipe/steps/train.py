"""Stage 2: train the model the params describe on the inventory, log every epoch to DVCLive,
and save the final model atomically in the chosen format.

With ``TRAINING.LOAD_CHECKPOINT`` an interrupted run continues from its last complete epoch
(kerapipe/training/checkpoints.py): epoch count, optimizer state, CSV log, DVCLive steps and
the best-so-far checkpoint all carry on. Nothing on disk changes until the checks pass, the
data and the model are ready and training is about to start; a failure before the first
epoch is recorded puts earlier checkpoints and DVCLive logs back as they were.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from kerapipe import backend, distribution, fingerprints
from kerapipe.artifacts import ModelPaths
from kerapipe.atomic import storage_errors
from kerapipe.backend import require_backend
from kerapipe.components import build_callbacks
from kerapipe.config import resolve_seed, validate_params
from kerapipe.context import RunContext
from kerapipe.distribution import Distribution
from kerapipe.folders import SetAside
from kerapipe.inventory_file import read_matching_inventory
from kerapipe.locks import exclusive
from kerapipe.reproducibility import seed_everything, set_precision
from kerapipe.sources import LocalSource
from kerapipe.steps.inventory import inventory_settings
from kerapipe.training import fine_tuning
from kerapipe.training import live as dvclive
from kerapipe.training.checkpoints import Checkpoints, checkpoint_epoch
from kerapipe.training.inputs import TrainingInputs, evaluation_data, training_inputs
from kerapipe.training.model import load_checkpoint, new_model, unfreeze_and_compile
from kerapipe.training.outputs import (
    keep_existing_model,
    write_model_files,
    write_run_info,
    write_validation_predictions,
)
from kerapipe.training.phases import Phases
from kerapipe.training.processes import local_copy, resume_on_every_process

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingResult:
    model_path: str  # as its source names it
    seed: int | None  # None when an existing model was kept
    history: dict[str, list[float]] = field(default_factory=dict)
    skipped: bool = False
    initial_epoch: int = 0


@dataclass
class Run:
    """One training run under way: where it writes, how it is distributed, its seed and the
    settings that shape its weights."""

    ctx: RunContext
    paths: ModelPaths
    dist: Distribution
    live_dir: str
    seed: int = 0
    weights: dict = field(default_factory=dict)

    def build(self, epochs_done: int = 0):
        """A new model, compiled (kerapipe/training/model.py), as the phase that ran epoch
        ``epochs_done`` left it (0: as a run starts): under a fine-tuning schedule, the base
        frozen for the frozen epochs, then unfrozen at the scaled learning rate."""
        schedule = self.ctx.params.TRAINING.FINE_TUNING
        frozen, unfrozen = fine_tuning.base_state(schedule, epochs_done)
        head, settings = self.ctx.task.head, self.ctx.params.MODEL
        model = new_model(self.ctx.builder, head, settings, frozen)
        if unfrozen:
            unfreeze_and_compile(model, schedule, head, settings)
        return model

    def load(self, path: Path):
        """A checkpoint of this run, loaded into a new model in the phase that wrote it."""
        return load_checkpoint(path, self.build(checkpoint_epoch(path.name)))


def run_training(ctx: RunContext) -> TrainingResult:
    """Train under the model folder's lock (one writer per folder). Under a multi-process
    ``data_parallel`` every process joins first; process 0's params (what DVC ran it with)
    hold for all, and the others write only in a scratch folder."""
    require_backend(ctx.params.TRAINING.BACKEND)
    dist = distribution.start(ctx.params.TRAINING.DISTRIBUTION, backend.current())
    if dist.multi_process:
        shared = dist.from_writer(ctx.params.model_dump(mode="json"))
        ctx = RunContext.from_params(validate_params(shared))
    if not dist.writer:
        with tempfile.TemporaryDirectory(prefix="kerapipe-process-") as scratch:
            paths = ModelPaths(LocalSource(), f"{scratch}/run", ctx.model.format)
            return _train(Run(ctx, paths, dist, f"{scratch}/{dvclive.DVCLIVE_DIR}"))
    with exclusive(ctx.model.lock_folder(), "kerapipe train", shown=ctx.model.run_dir):
        return _train(Run(ctx, ctx.model, dist, dvclive.DVCLIVE_DIR))


def _train(run: Run) -> TrainingResult:
    """Train on this process's part of the data. Every decision that changes what Keras does
    (skip, resume) is process 0's, shared with the others, so all run the same steps."""
    ctx, dist = run.ctx, run.dist
    table, inventory_csv = read_matching_inventory(
        ctx.inventory, inventory_settings(ctx), ctx.task.layout
    )
    files = ctx.builder.resolve_weights(ctx.params.DATA)  # fetched now: their sha256 count
    run.weights = fingerprints.weights_settings(
        ctx.params,
        inventory_csv,
        ctx.task.layout.display_only_params,
        {key: file.sha256 for key, file in files.items()},
    )
    if dist.from_writer(run.paths.source.exists(run.paths.model) and not ctx.params.TRAINING.FORCE):
        if dist.writer:
            keep_existing_model(run.paths, run.weights)
        return TrainingResult(run.paths.model, seed=None, skipped=True)
    run.seed = dist.from_writer(resolve_seed(ctx.params.TRAINING.SEED))  # one drawn seed for all
    seed_everything(run.seed)
    set_precision(ctx.params.TRAINING.MIXED_PRECISION)
    inputs = training_inputs(
        ctx.task, table, ctx.data.source, ctx.params.TRAINING, ctx.params.DATA.REMOTE_CACHE_DIR,
        run.seed, dist,
    )  # fmt: skip
    working = run.paths.working_copy()
    monitor = "val_loss" if inputs.fit.validation is not None else "loss"
    checkpoints = Checkpoints(
        working.sub("checkpoints"), fingerprints.checkpoint_settings(run.weights), monitor
    )
    checkpoints.recover()
    live_set_aside = SetAside(run.live_dir)
    live_set_aside.restore()  # left by a run killed before its first epoch
    state, model = _starting_model(run, checkpoints)
    initial_epoch = state.epoch if state else 0
    # From here on files change: earlier checkpoints and logs are set aside, not deleted.
    if state is None:
        checkpoints.start_fresh()
    checkpoints.folder.local.mkdir(parents=True, exist_ok=True)  # another process's resume
    live_set_aside.move()
    log.info(
        "Training %s on %d images (%d for validation), batch %d on %d device(s).",
        model.name, len(inputs.train_rows), len(inputs.validation_rows), inputs.batch_size,
        dist.replicas,
    )  # fmt: skip
    history, live = _epochs(run, model, inputs, checkpoints, state, live_set_aside)
    if dist.multi_process:  # saving and evaluation run on process 0 alone
        epochs_done = initial_epoch + len(next(iter(history.values()), []))
        model = local_copy(dist, model, partial(run.build, epochs_done), run.seed)
        if not dist.writer:
            live.end()
            dist.wait_for_all()  # for process 0's outputs: exiting first would time out
            return TrainingResult(run.paths.model, run.seed, history, initial_epoch=initial_epoch)
    try:
        _write_outputs(run, working, model, inputs, checkpoints, live, initial_epoch)
    finally:
        dist.wait_for_all()  # lets the other processes end
    log.info("Saved %s", run.paths.model)
    return TrainingResult(run.paths.model, run.seed, history, initial_epoch=initial_epoch)


def _starting_model(run: Run, checkpoints: Checkpoints):
    """``(state, model)``: the checkpoint to resume from (``LOAD_CHECKPOINT``) and its
    model, or ``(None, a new model)``."""
    load = run.ctx.params.TRAINING.LOAD_CHECKPOINT
    if run.dist.multi_process:
        return resume_on_every_process(run.dist, checkpoints, load, run.build, run.load, run.seed)
    with run.dist.scope():
        resumed = checkpoints.resume(run.load) if load else None
        return resumed if resumed else (None, run.build())


def _epochs(run: Run, model, inputs: TrainingInputs, checkpoints, state, live_set_aside):
    """Fit the epochs left, phase by phase (kerapipe/training/phases.py); ``(history, the
    DVCLive logger)``. A failure undoes the run's partial checkpoints and puts the set-aside
    DVCLive folder back."""
    ctx, training = run.ctx, run.ctx.params.TRAINING
    initial_epoch = state.epoch if state else 0
    logger = None
    try:
        past_epochs = checkpoints.trim_log(initial_epoch)
        logged = {**ctx.params.model_dump(), "RESOLVED_SEED": run.seed}
        logger = dvclive.EpochLogger(partial(dvclive.open_live, logged, past_epochs, run.live_dir))
        # Under a multi-process distribution every process takes part in each save, on the
        # training thread; otherwise a background thread writes the checkpoints.
        callbacks = checkpoints.callbacks(
            state, [logger, *build_callbacks(training.CALLBACKS)], run.load,
            (live_set_aside,), background=not run.dist.multi_process,
        )  # fmt: skip
        steps = backend.steps_per_execution(training.STEPS_PER_EXECUTION, training.DISTRIBUTION)
        phases = Phases(
            ctx.task, ctx.builder, ctx.params.MODEL, training, inputs, checkpoints, run.dist
        )
        with storage_errors(
            f"the checkpoints in {run.paths.checkpoints}",
            "rerun with TRAINING.LOAD_CHECKPOINT: true to continue after the last epoch",
        ):
            history = phases.run(model, initial_epoch, callbacks, steps)
            checkpoints.finish()
    except BaseException:
        if logger is not None:
            logger.settle()
        checkpoints.clean_up_after_failure()
        live_set_aside.restore()
        raise
    return history, logger.opened()


def _write_outputs(run: Run, working, model, inputs: TrainingInputs, checkpoints, live, initial):
    """The model and its files, the evaluation pass over the validation set, and last
    ``run_info.json``."""
    task, paths = run.ctx.task, run.paths
    write_model_files(
        working, paths, task.head.finalize_model(model), checkpoints.log_file,
        task.describe_outputs(),
    )  # fmt: skip
    evaluation = None
    if inputs.fit.validation is not None:
        data = evaluation_data(task, inputs, run.ctx.params.TRAINING.BATCH_SIZE)
        evaluation = task.head.log_evaluation(live, model, inputs.local_validation, data)
    with storage_errors(f"the model in {paths.run_dir}"):
        named = inputs.fit.named
        write_validation_predictions(working, evaluation, named)
        live.end()
        facts = {
            "seed": run.seed,
            "replicas": run.dist.replicas,
            "distribution": run.dist.name,
            "processes": run.dist.process_count,
            "resumed_after_epoch": initial,
            "weights_files": {k: f.record() for k, f in run.ctx.builder.weights.items()},
        }
        write_run_info(working, facts, run.weights, task.describe_outputs())
