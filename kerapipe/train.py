"""Stage 2: train the model described by the params on the inventory, log every epoch to
DVCLive, and save the final model atomically in the chosen format."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from kerapipe import atomic
from kerapipe.artifacts import ModelPaths, save_model
from kerapipe.components import build_callbacks, build_loss, build_metrics, build_optimizer
from kerapipe.config import Params, resolve_seed
from kerapipe.errors import DataError, ModelError
from kerapipe.images import undecodable_images
from kerapipe.inventory import read_inventory
from kerapipe.models.base import model_builder
from kerapipe.reproducibility import environment_info, seed_everything
from kerapipe.tasks.base import get_task

log = logging.getLogger(__name__)
DVCLIVE_DIR = "dvclive"


@dataclass(frozen=True)
class TrainingResult:
    model_path: Path
    seed: int | None  # None when an existing model was kept
    history: dict[str, list[float]]
    skipped: bool = False


class EpochLogger(DVCLiveCallback):
    """DVCLive's Keras callback, left open at the end of ``fit`` for the evaluation plots."""

    def on_train_end(self, logs=None):
        pass


def run_training(params: Params) -> TrainingResult:
    paths = ModelPaths.from_params(params)
    if paths.model.exists() and not params.TRAINING.FORCE:
        log.info("Keeping the existing model %s (TRAINING.FORCE is false).", paths.model)
        return TrainingResult(paths.model, seed=None, history={}, skipped=True)

    seed = resolve_seed(params.TRAINING.SEED)
    seed_everything(seed)
    task = get_task(params)
    builder = model_builder(params)
    table = read_inventory(params)
    train_rows, val_rows = (table[table.split == s] for s in ("train", "validation"))
    if train_rows.empty:
        raise DataError("the inventory has no 'train' rows. Rerun `kerapipe inventory`.")
    batch_size = params.TRAINING.BATCH_SIZE
    train_data = task.dataset(train_rows, batch_size, shuffle_seed=seed)
    val_data = task.dataset(val_rows, batch_size, shuffle_seed=None) if len(val_rows) else None

    task.prepare(train_rows)
    model = builder.build(task.head())
    load_initial_weights(model, builder.params.INITIAL_WEIGHTS)
    model.compile(
        optimizer=build_optimizer(params),
        loss=build_loss(params, task),
        metrics=build_metrics(params, task),
    )
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    monitor = "val_loss" if val_data is not None else "loss"
    live = Live(DVCLIVE_DIR, dvcyaml=None, save_dvc_exp=False, report=None)
    live.log_params({**params.model_dump(), "RESOLVED_SEED": seed})
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            paths.best_checkpoint, monitor=monitor, save_best_only=True
        ),
        keras.callbacks.ModelCheckpoint(paths.last_checkpoint),
        keras.callbacks.CSVLogger(str(paths.training_log)),
        EpochLogger(live=live),
        *build_callbacks(params),
    ]
    try:
        history = model.fit(
            train_data,
            validation_data=val_data,
            epochs=params.TRAINING.NUM_EPOCHS,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, seeded
            verbose=1 if sys.stdout.isatty() else 2,
        )
    except tf.errors.InvalidArgumentError as err:
        bad = undecodable_images(list(table.filepath))
        if not bad:
            raise
        raise DataError(
            f"{len(bad)} image(s) in the inventory cannot be decoded: {', '.join(bad[:5])}. "
            "Re-export or remove them, then rerun inventory and train."
        ) from err

    save_model(task.finalize_model(model), paths.model, paths.format)
    if val_data is not None:
        task.log_evaluation(live, model, val_rows, val_data)
    live.end()
    write_run_info(paths, seed)
    log.info("Saved %s", paths.model)
    return TrainingResult(paths.model, seed, history.history)


def load_initial_weights(model: keras.Model, path: str | None) -> None:
    """Start from a previous ``.keras`` model or ``.weights.h5`` file (safe mode, no pickle)."""
    if not path:
        return
    if not Path(path).is_file():
        raise ModelError(
            f"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS: file {path!r} not found. Give a .keras model "
            "or .weights.h5 file from an earlier run, or set it to null."
        )
    try:
        if path.endswith(".keras"):
            source = keras.saving.load_model(path, compile=False, safe_mode=True)
            model.set_weights(source.get_weights())
        else:
            model.load_weights(path)
    except (ValueError, OSError) as err:
        raise ModelError(
            f"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS: {path!r} does not match the model "
            f"{model.name!r}: {err}"
        ) from None


def write_run_info(paths: ModelPaths, seed: int) -> None:
    info = {"seed": seed, **environment_info()}
    atomic.write_text(paths.run_info, json.dumps(info, indent=2) + "\n")
