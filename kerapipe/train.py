"""Stage 2: train the model described by the params on the inventory, log every epoch to
DVCLive, and save the final model atomically in the chosen format.

With ``TRAINING.LOAD_CHECKPOINT`` an interrupted run continues from its last complete epoch
(see kerapipe/checkpoints.py): epoch count, optimizer state, CSV log, DVCLive steps and the
best-so-far checkpoint all carry on.

Images on a remote source are fetched into the local remote cache before the first epoch, so
every epoch reads local disk; a model folder on a remote source is written in a local working
copy and uploaded file by file, ``run_info.json`` last (kerapipe/folders.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from concurrent import futures
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from dvclive import Live
from dvclive.utils import standardize_metric_name

from kerapipe import backend, distribution, fingerprints
from kerapipe.artifacts import ModelPaths, read_run_info, save_model
from kerapipe.atomic import atomic_path, storage_errors
from kerapipe.backend import use_backend
from kerapipe.checkpoints import Checkpoints, CheckpointState
from kerapipe.checks import check_params
from kerapipe.components import build_callbacks, build_loss, build_metrics, build_optimizer
from kerapipe.config import Params, resolve_seed, validate_params
from kerapipe.datasets import DatasetOptions
from kerapipe.decoded_cache import DecodedCache
from kerapipe.distribution import Distribution
from kerapipe.errors import DataError, ModelError
from kerapipe.folders import SetAside, WorkingCopy
from kerapipe.images import first, undecodable_images
from kerapipe.inventory import read_matching_inventory
from kerapipe.locks import exclusive
from kerapipe.models.base import model_builder
from kerapipe.reproducibility import environment_info, seed_everything, set_precision
from kerapipe.sources import DataSource, LocalSource, source_of
from kerapipe.tasks.base import Task, get_task

log = logging.getLogger(__name__)
DVCLIVE_DIR = "dvclive"


@dataclass(frozen=True)
class TrainingResult:
    model_path: str  # as its source names it
    seed: int | None  # None when an existing model was kept
    history: dict[str, list[float]]
    skipped: bool = False
    initial_epoch: int = 0


class RunLive(Live):
    """DVCLive's logger, minus the DVC Studio update it builds at every step when no
    Studio is set up to receive it: DVCLive re-reads every metric file and the params to
    build it, then drops it (work that grows with the epochs); with Studio set up
    (``DVC_STUDIO_TOKEN``, or ``studio`` in DVC's config) it is sent as before."""

    def post_data_to_studio(self) -> None:
        if "data" not in getattr(self, "_studio_events_to_skip", ()):
            super().post_data_to_studio()


class EpochLogger(keras.callbacks.Callback):
    """Logs every epoch to DVCLive, its logger opened in a background thread once the first
    epoch has ended. Opening it imports DVC and opens the repository (for DVC Studio's
    settings): a second of Python that, during the first epoch, would hold up Keras'
    tracing of the training step (Python too); later epochs run in TensorFlow's threads
    beside it. Epochs are logged, in order, as soon as the logger is open; ``opened`` waits
    for it and logs the rest. It is left open at the end of ``fit`` for the evaluation."""

    def __init__(self, open_logger: Callable[[], Live]) -> None:
        super().__init__()
        self.open_logger = open_logger
        self.opening: futures.Future[Live] | None = None
        self.pending: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.pending.append(dict(logs or {}))
        if self._start().done():
            self.opened()

    def opened(self) -> Live:
        """The logger, once open, with every epoch ended so far logged."""
        live = self._start().result()
        while self.pending:
            log_epoch(live, self.pending.pop(0))
        return live

    def settle(self) -> None:
        """Wait until an opening under way is done (DVCLive writes in its folder until then)."""
        if self.opening is not None:
            futures.wait([self.opening])

    def _start(self) -> futures.Future[Live]:
        if self.opening is None:
            pool = futures.ThreadPoolExecutor(1, thread_name_prefix="kerapipe-dvclive")
            self.opening = pool.submit(self.open_logger)
            pool.shutdown(wait=False)
        return self.opening


def log_epoch(live: Live, logs: dict) -> None:
    """One epoch's Keras logs as a DVCLive step, named as DVCLive's Keras callback names them."""
    for name, value in logs.items():
        if name != "epoch":
            live.log_metric(standardize_metric_name(name, "dvclive.keras"), float(value))
    live.next_step()


def run_training(params: Params) -> TrainingResult:
    """Check everything, then train under the model folder's lock (one writer per folder).

    Nothing on disk changes until the checks pass, the data and the model are ready and
    training is about to start; a failure before the first epoch is recorded puts earlier
    checkpoints and DVCLive logs back as they were.
    """
    check_params(params)
    use_backend(params.TRAINING.BACKEND)  # or one error: Keras runs on another
    # Before anything computes: jax.distributed joins the processes first.
    dist = distribution.start(params.TRAINING.DISTRIBUTION, backend.current())
    if dist.multi_process:  # process 0's params (what DVC ran it with) hold for every process
        params = check_params(validate_params(dist.from_writer(params.model_dump(mode="json"))))
    paths = ModelPaths.from_params(params)
    if not dist.writer:  # computes beside process 0, writing only in a scratch folder
        with tempfile.TemporaryDirectory(prefix="kerapipe-process-") as scratch:
            scratch_paths = ModelPaths(LocalSource(), f"{scratch}/run", paths.format)
            return _train(params, scratch_paths, dist, f"{scratch}/{DVCLIVE_DIR}")
    with exclusive(paths.lock_folder(), "kerapipe train", shown=paths.run_dir):
        return _train(params, paths, dist, DVCLIVE_DIR)


def _train(params: Params, paths: ModelPaths, dist: Distribution, live_dir: str) -> TrainingResult:
    """Train on this process's part of the data. Under a multi-process ``data_parallel`` every
    decision that changes what Keras does (skip, resume) is process 0's, shared with the others,
    so all run the same steps and the same collective saves."""
    task = get_task(params)
    table, inventory_bytes = read_matching_inventory(params, task)
    weights = fingerprints.weights_settings(params, inventory_bytes, task.display_only_params)
    if dist.from_writer(paths.source.exists(paths.model) and not params.TRAINING.FORCE):
        if dist.writer:
            keep_existing_model(paths, weights)
        return TrainingResult(paths.model, seed=None, history={}, skipped=True)

    seed = dist.from_writer(resolve_seed(params.TRAINING.SEED))  # one drawn seed for all
    seed_everything(seed)
    set_precision(params.TRAINING.MIXED_PRECISION)
    train_rows, val_rows = (table[table.split == s] for s in ("train", "validation"))
    if train_rows.empty:
        raise DataError("the inventory has no 'train' rows. Rerun `kerapipe inventory`.")
    task.prepare(train_rows)
    # Remote images are fetched now, in parallel, so that every epoch reads local disk.
    images = source_of(params.DATA, "INVENTORY_DATA_DIR")
    local_rows = local_files(task, table, images)
    named = {  # each file read (images, masks) to its path on its source: for messages
        local: source
        for column in task.file_columns
        for local, source in zip(local_rows[column], table[column], strict=True)
    }
    local_train, local_val = (local_rows[table.split == s] for s in ("train", "validation"))
    # BATCH_SIZE is per replica; the global batch grows with the number of devices.
    batch_size = params.TRAINING.BATCH_SIZE * dist.replicas
    inputs = DatasetOptions.from_params(params.TRAINING, params.DATA.REMOTE_CACHE_DIR)
    inputs = replace(inputs, shard=dist.shard())  # data_parallel: this process's slices
    train_data = task.dataset(local_train, batch_size, shuffle_seed=seed, options=inputs)
    val_data = (
        task.dataset(local_val, batch_size, shuffle_seed=None, options=inputs.for_evaluation())
        if len(val_rows)
        else None
    )

    def evaluation_data(data):  # every validation image, on this process alone
        if inputs.shard is None:
            return data
        options = replace(inputs.for_evaluation(), shard=None)
        return task.dataset(local_val, params.TRAINING.BATCH_SIZE, None, options=options)

    run = paths.working_copy()
    monitor = "val_loss" if val_data is not None else "loss"
    settings = fingerprints.checkpoint_settings(weights)
    checkpoints = Checkpoints(run.sub("checkpoints"), settings, monitor)
    checkpoints.recover()
    live_set_aside = SetAside(live_dir)
    live_set_aside.restore()  # left by a run killed before its first epoch
    if dist.multi_process:
        state, model = resume_on_every_process(dist, checkpoints, params, task, seed)
    else:
        with dist.scope():
            load = params.TRAINING.LOAD_CHECKPOINT
            resumed = checkpoints.resume(load_checkpoint) if load else None
            state, model = resumed if resumed else (None, new_model(params, task))
    initial_epoch = state.epoch if state else 0

    # From here on files change: earlier checkpoints and logs are set aside, not deleted.
    if state is None:
        checkpoints.start_fresh()
    checkpoints.folder.local.mkdir(parents=True, exist_ok=True)  # another process's resume
    live_set_aside.move()
    log.info(
        "Training %s on %d images (%d for validation), batch %d on %d device(s).",
        model.name,
        len(train_rows),
        len(val_rows),
        batch_size,
        dist.replicas,
    )
    logger: EpochLogger | None = None
    try:
        past_epochs = checkpoints.trim_log(initial_epoch)
        logger = EpochLogger(partial(open_live, params, seed, past_epochs, live_dir))
        others = [logger, *build_callbacks(params)]
        # Under a multi-process distribution every process takes part in each save, on the
        # training thread; otherwise a background thread writes the checkpoints.
        callbacks = checkpoints.callbacks(
            state, others, load_checkpoint, (live_set_aside,), background=not dist.multi_process
        )
        with storage_errors(
            f"the checkpoints in {paths.checkpoints}",
            "rerun with TRAINING.LOAD_CHECKPOINT: true to continue after the last epoch",
        ):
            history = fit(
                model,
                (train_data, val_data),
                params,
                initial_epoch,
                callbacks,
                named,
                task.class_weights(train_rows),
                cache=inputs.store(),
            )
    except BaseException:
        if logger is not None:
            logger.settle()
        clean_up_after_failure(checkpoints)
        live_set_aside.restore()
        raise
    live = logger.opened()
    if dist.multi_process:  # saving and evaluation run on process 0 alone
        model = local_copy(dist, model, params, task, seed)
        if not dist.writer:
            live.end()
            dist.wait_for_all()  # for process 0's outputs: exiting first would time out
            return TrainingResult(paths.model, seed, history.history, initial_epoch=initial_epoch)
    try:
        write_outputs(run, paths, model, task, checkpoints, live)
        evaluation = (
            task.log_evaluation(live, model, local_val, evaluation_data(val_data))
            if val_data is not None
            else None
        )
        with storage_errors(f"the model in {paths.run_dir}"):
            write_validation_predictions(run, evaluation, named)
            live.end()
            write_run_info(run, seed, dist, initial_epoch, weights, task)
    finally:
        dist.wait_for_all()  # lets the other processes end
    log.info("Saved %s", paths.model)
    return TrainingResult(paths.model, seed, history.history, initial_epoch=initial_epoch)


def write_outputs(
    run: WorkingCopy, paths: ModelPaths, model: keras.Model, task: Task, checkpoints, live
) -> None:
    """The final model, its training log and ``outputs.json``."""
    with storage_errors(f"the model in {paths.run_dir}"):
        save_final_model(task.finalize_model(model), run, paths)
        with atomic_path(run.local_file("training_log.csv")) as tmp:
            shutil.copyfile(checkpoints.log_file, tmp)
        run.upload("training_log.csv")
        run.write_text("outputs.json", json.dumps(task.describe_outputs(), indent=2) + "\n")


def local_files(task: Task, table: pd.DataFrame, source: DataSource) -> pd.DataFrame:
    """``table`` with its file columns (``task.file_columns``) turned into local paths:
    fetched into the remote cache for a remote source, as they are for the local one. A
    file the inventory lists but the source no longer holds is an error naming it."""
    if source.is_local:
        return table
    table = table.copy()
    missing: list[str] = []
    for column in task.file_columns:
        remote = list(table[column])
        local = source.local_paths(remote)
        missing += [r for r, path in zip(remote, local, strict=True) if not os.path.isfile(path)]
        table[column] = local
    if missing:
        raise DataError(
            f"{len(missing)} file(s) of the inventory are no longer on "
            f"{source.key or source.name}: {first(missing)}. Rerun the inventory "
            "(`kerapipe inventory` with INVENTORY.FORCE: true, or `dvc repro`)."
        )
    return table


def clean_up_after_failure(checkpoints: Checkpoints) -> None:
    """Undo a failed run's partial checkpoints; a failure here (a remote source gone, say)
    is logged, never hiding the error that stopped the run."""
    try:
        checkpoints.after_failure()
    except Exception as err:  # noqa: BLE001 - the original error is the one to report
        log.warning("Could not clean up the checkpoints in %s: %s", checkpoints.directory, err)


def save_final_model(model: keras.Model, run: WorkingCopy, paths: ModelPaths) -> None:
    """Save the model in the working copy, atomically, and upload it. A model folder
    (``tf``) cannot be replaced on a remote source in one step: its stale run_info.json is
    removed first, so an interrupted upload never sits beside settings that vouch for it."""
    if run.remote and paths.format == "tf" and run.exists("run_info.json"):
        run.remove("run_info.json")
    save_model(model, run.local_file(paths.model_name), paths.format)
    if run.remote and paths.format == "tf":
        run.source.remove_folder(paths.model)
    run.upload(paths.model_name)


def fit(
    model,
    data,
    params: Params,
    initial_epoch: int,
    callbacks,
    named,
    class_weight=None,
    cache: DecodedCache | None = None,
):
    """``model.fit``, running ``TRAINING.STEPS_PER_EXECUTION`` batches per compiled call, with
    undecodable images named. ``data`` is (training, validation or None), each a finite
    dataset that Keras iterates once per epoch (the last call of an epoch runs the batches
    left); ``named`` maps each file read (a local copy, for a remote source) to its path
    on its source; ``class_weight`` is Keras' ``{label: weight}``
    (``TRAINING.CLASS_WEIGHT``), or None; ``cache`` the decoded image cache the datasets
    read, if any (named when its entries are deleted under the run)."""
    train_data, val_data = data
    if class_weight:
        log.info("Class weights (by label): %s", {k: round(v, 4) for k, v in class_weight.items()})
    training = params.TRAINING
    steps = backend.steps_per_execution(training.STEPS_PER_EXECUTION, training.DISTRIBUTION)
    try:
        with_steps_per_execution(model, steps)
        return model.fit(
            train_data,
            validation_data=val_data,
            epochs=training.NUM_EPOCHS,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, seeded
            class_weight=class_weight,
            verbose=fit_verbosity(),
        )
    except tf.errors.InvalidArgumentError as err:
        bad = [named[path] for path in undecodable_images(list(named))]
        if not bad:
            raise
        raise DataError(
            f"{len(bad)} image(s) in the inventory cannot be decoded: {', '.join(bad[:5])}. "
            "Re-export or remove them, or let the inventory find and skip them "
            "(INVENTORY.CHECK_IMAGES: decode with BAD_IMAGES: skip), then rerun inventory "
            "and train."
        ) from err
    except tf.errors.NotFoundError as err:
        error = files_gone(named, cache)
        if error is None:
            raise
        raise error from err
    finally:
        # predict would trace the model once per batch of an execution: one at a time again
        with_steps_per_execution(model, 1)


def files_gone(named: dict[str, str], store: DecodedCache | None) -> DataError | None:
    """The error for files deleted while the epochs read them (TensorFlow's names no file):
    images or masks of the inventory (``named`` maps each local path to its source's: a
    remote file's local copy is in the remote cache), else entries of the decoded image
    cache ``store``; None when nothing is missing."""
    resume = "TRAINING.LOAD_CHECKPOINT: true continues after the last finished epoch"
    gone = [(path, source) for path, source in named.items() if not os.path.isfile(path)]
    copies = bool(gone) and gone[0][0] != gone[0][1]  # one source: all copies, or none
    if gone and not copies:
        return DataError(
            f"{len(gone)} file(s) of the inventory disappeared while training read them: "
            f"{', '.join(source for _, source in gone[:5])}. Put them back, or rerun the "
            f"inventory without them; then rerun train ({resume})."
        )
    if copies:
        return DataError(
            f"the local copies of {len(gone)} file(s) were deleted from the remote cache "
            f"while training read them ({gone[0][0]}, of {gone[0][1]}). Delete the cache "
            f"only while no training reads it. Rerun train: they are fetched again, and {resume}."
        )
    lost = store.lost() if store else []
    if lost:
        return DataError(
            f"the decoded image cache {store.folder} lost {len(lost)} of the entries training "
            f"reads ({lost[0]}): they were deleted while it ran. Delete the cache only while "
            f"no training reads it. Rerun train: the missing entries are decoded again, and "
            f"{resume}."
        )
    return None


def with_steps_per_execution(model: keras.Model, steps: int) -> None:
    """Run ``steps`` batches per compiled call from now on (Keras makes its functions anew)."""
    model.steps_per_execution = steps
    model.train_function = model.test_function = model.predict_function = None


def fit_verbosity() -> int:
    """Keras' progress bar on a terminal, a line per epoch otherwise, none with ``-q``."""
    if not log.isEnabledFor(logging.INFO):
        return 0
    return 1 if sys.stdout.isatty() else 2


def keep_existing_model(paths: ModelPaths, weights: dict) -> None:
    """With FORCE false an existing model is kept only if it was trained with these settings."""
    recorded = read_run_info(paths).get("settings")
    if recorded == weights:
        log.info("Keeping the existing model %s (TRAINING.FORCE is false).", paths.model)
        return
    what = (
        fingerprints.changes(recorded, weights)
        if recorded
        else "it has no run_info.json with its settings"
    )
    raise ModelError(
        f"{paths.model} was trained with other settings than these params ({what}). Set "
        "TRAINING.FORCE: true to train it again (with LOAD_CHECKPOINT: true it continues from "
        "its checkpoints where they match), or set DATA.TRAINING_MODEL_NAME to train a new "
        "one beside it."
    )


def load_checkpoint(path: Path) -> keras.Model:
    """A checkpoint with its optimizer state (kerapipe's custom losses and metrics known)."""
    import kerapipe.losses  # noqa: F401  (registers kerapipe's serializable losses
    import kerapipe.metrics  # noqa: F401  and metrics, which a checkpoint may use)

    return keras.saving.load_model(path, safe_mode=True)


def new_model(params: Params, task: Task) -> keras.Model:
    """Build the registered model, load INITIAL_WEIGHTS, and compile it from the registries."""
    builder = model_builder(params)
    model = builder.build(task.head())
    load_initial_weights(model, builder.params.INITIAL_WEIGHTS)
    model.compile(
        optimizer=build_optimizer(params),
        loss=build_loss(params, task),
        metrics=build_metrics(params, task),
    )
    return model


def open_live(
    params: Params, seed: int, past_epochs: list[dict[str, str]], folder: str = DVCLIVE_DIR
) -> Live:
    """A fresh DVCLive run with the params, replaying the epochs a resumed run already did.

    Replaying from the checkpointed CSV log (rather than trusting ``dvclive/``, which DVC
    deletes before a stage runs) keeps the steps continuous and free of duplicates.
    """
    live = RunLive(folder, dvcyaml=None, save_dvc_exp=False, report=None)
    live.log_params({**params.model_dump(), "RESOLVED_SEED": seed})
    for row in past_epochs:
        log_epoch(live, row)
    return live


def load_initial_weights(model: keras.Model, path: str | None) -> None:
    """Start from a previous ``.keras`` model or ``.weights.h5`` file (safe mode, no pickle)."""
    if not path:
        return
    try:
        if path.endswith(".keras"):
            source = keras.saving.load_model(path, compile=False, safe_mode=True)
            copy_weights(source, model)
        else:
            model.load_weights(path)
    except (ValueError, OSError) as err:
        raise ModelError(
            f"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS: {path!r} does not match the model "
            f"{model.name!r}: {err}"
        ) from None


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy weights variable by variable; name the first one whose shape differs."""
    if len(source.weights) != len(target.weights):
        raise ValueError(
            f"it holds {len(source.weights)} weight tensors, the model has {len(target.weights)}"
        )
    for theirs, ours in zip(source.weights, target.weights, strict=True):
        if tuple(theirs.shape) != tuple(ours.shape):
            raise ValueError(
                f"weight {theirs.path} has shape {tuple(theirs.shape)}, but {ours.path} "
                f"in the model has {tuple(ours.shape)}"
            )
    target.set_weights(source.get_weights())


def write_run_info(
    run: WorkingCopy, seed: int, dist: Distribution, initial_epoch: int, weights: dict, task: Task
) -> None:
    """What made the model: the seed, the devices, the versions, the settings that shape
    its weights (compared on the next run, and by predict) and the names of its outputs
    (predict reads the classes from here when the params leave them out). Written last of
    the run's files."""
    info = {
        "seed": seed,
        "replicas": dist.replicas,
        "distribution": dist.name,
        "processes": dist.process_count,
        "resumed_after_epoch": initial_epoch,
        "final_epochs": len(pd.read_csv(run.local_file("training_log.csv"))),
        **environment_info(),
        "settings": weights,
        "outputs": task.describe_outputs(),
    }
    run.write_text("run_info.json", json.dumps(info, indent=2) + "\n")


def write_validation_predictions(
    run: WorkingCopy, table: pd.DataFrame | None, named: dict[str, str]
) -> None:
    """``validation_predictions.csv``: one row per validation image, from the evaluation
    pass (an empty file when there is no validation set), named by their paths on their
    source (``named``: local copy to source path)."""
    if table is None:
        run.write_text("validation_predictions.csv", "")
        return
    table = table.assign(filepath=[named.get(path, path) for path in table.filepath])
    text = table.to_csv(index=False, lineterminator="\n")
    run.write_text("validation_predictions.csv", text)


def model_state(model: keras.Model) -> list[np.ndarray]:
    """Every weight and optimizer variable of ``model``, as arrays."""
    variables = [*model.weights, *model.optimizer.variables]
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in variables]


def set_model_state(model: keras.Model, arrays: list[np.ndarray]) -> None:
    """Assign what ``model_state`` returned to a model of the same build."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    variables = [*model.weights, *model.optimizer.variables]
    if len(variables) != len(arrays):
        raise ModelError(
            f"the model holds {len(variables)} variables, the state to load {len(arrays)}"
        )
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def resume_on_every_process(
    dist: Distribution, checkpoints: Checkpoints, params: Params, task: Task, seed: int
) -> tuple[CheckpointState | None, keras.Model]:
    """The model on every process of a multi-process run, with process 0's resume (its
    checkpoint state, weights and optimizer state): only process 0 reads the checkpoints,
    on its own (a load computes, and a computation on the global arrays would wait for the
    others); every process then builds the model alike and takes those values."""
    state, arrays = None, None
    if dist.writer and params.TRAINING.LOAD_CHECKPOINT:
        with dist.paused():
            resumed = checkpoints.resume(load_checkpoint)
        if resumed:
            state, arrays = resumed[0], model_state(resumed[1])
    shared = dist.from_writer(asdict(state) if state else None)
    if shared is not None:  # the load drew from process 0's generator: all start alike again
        keras.utils.set_random_seed(seed)
    model = new_model(params, task)
    if shared is None:
        return None, model
    model.optimizer.build(model.trainable_variables)
    if arrays is None:  # the others send arrays of the right shapes, which process 0 replaces
        variables = [*model.weights, *model.optimizer.variables]
        arrays = [np.zeros(v.shape, keras.backend.standardize_dtype(v.dtype)) for v in variables]
    set_model_state(model, dist.from_writer(arrays))
    return CheckpointState(**shared), model


def local_copy(dist: Distribution, model: keras.Model, params, task, seed: int) -> keras.Model:
    """After a multi-process fit: the trained model, optimizer state included, rebuilt on
    this process alone (the global arrays cannot be predicted with, and saving them needs
    every process), with the distribution unset. Every process makes it, alike."""
    arrays = model_state(model)
    dist.end()
    keras.utils.set_random_seed(seed)  # a new, local, random generator for the new model
    local = new_model(params, task)
    set_model_state(local, arrays)
    return local
