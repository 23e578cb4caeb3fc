"""The files a training run leaves in its run folder: the final model, its training log,
``outputs.json``, ``validation_predictions.csv`` and, last, ``run_info.json``, which says what
made the model (and so vouches for the rest). A run folder on a remote source is written in a
local working copy and uploaded file by file (kerapipe/folders.py)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from kerapipe import fingerprints
from kerapipe.artifacts import ModelPaths, read_run_info, save_model
from kerapipe.atomic import atomic_path, storage_errors
from kerapipe.errors import ModelError
from kerapipe.folders import WorkingCopy
from kerapipe.reproducibility import environment_info

log = logging.getLogger(__name__)


def write_model_files(
    run: WorkingCopy, paths: ModelPaths, model: keras.Model, log_file: Path, outputs: dict
) -> None:
    """The final model, its training log (a copy of the checkpoints' ``log_file``) and
    ``outputs.json`` (``outputs``: what each model output is)."""
    with storage_errors(f"the model in {paths.run_dir}"):
        save_final_model(model, run, paths)
        with atomic_path(run.local_file("training_log.csv")) as tmp:
            shutil.copyfile(log_file, tmp)
        run.upload("training_log.csv")
        run.write_text("outputs.json", json.dumps(outputs, indent=2) + "\n")


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


def write_run_info(run: WorkingCopy, facts: dict[str, Any], weights: dict, outputs: dict) -> None:
    """What made the model: ``facts`` about the run (the seed, the devices, the resume,
    the weights files), the versions, the ``weights`` settings that shape it (compared on
    the next run, and by predict) and its ``outputs`` (predict reads the classes from here
    when the params leave them out). Written last of the run's files."""
    info = {
        **facts,
        "final_epochs": len(pd.read_csv(run.local_file("training_log.csv"))),
        **environment_info(),
        "settings": weights,
        "outputs": outputs,
    }
    run.write_text("run_info.json", json.dumps(info, indent=2) + "\n")


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
