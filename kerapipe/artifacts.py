"""Where a training run's files go, and how the final model is saved and loaded.

``TRAINING_MODEL_DIR/TRAINING_MODEL_NAME/`` on ``DATA.TRAINING_MODEL_SOURCE`` holds
``model.<FORMAT>`` (``model.tf`` is a SavedModel folder), ``training_log.csv``,
``run_info.json`` and ``checkpoints/``. On a remote source the model is saved locally, then
uploaded; ``run_info.json``, which says what made it, always comes last.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kerapipe.atomic import atomic_path
from kerapipe.config import Params
from kerapipe.errors import ModelError
from kerapipe.folders import WorkingCopy, join
from kerapipe.sources import DataSource, source_of

if TYPE_CHECKING:
    import keras

    from kerapipe.tasks.base import TaskLayout


@dataclass(frozen=True)
class ModelPaths:
    """The run folder on its source, and the names of the files in it."""

    source: DataSource
    run_dir: str
    format: str

    @classmethod
    def from_params(cls, params: Params) -> ModelPaths:
        data = params.DATA
        run_dir = join(data.TRAINING_MODEL_DIR, data.TRAINING_MODEL_NAME)
        return cls(source_of(data, "TRAINING_MODEL_DIR"), run_dir, data.TRAINING_MODEL_FORMAT)

    @property
    def model_name(self) -> str:
        return f"model.{self.format}"

    @property
    def model(self) -> str:
        return join(self.run_dir, self.model_name)

    @property
    def training_log(self) -> str:
        return join(self.run_dir, "training_log.csv")

    @property
    def run_info(self) -> str:
        return join(self.run_dir, "run_info.json")

    @property
    def checkpoints(self) -> str:
        return join(self.run_dir, "checkpoints")

    def working_copy(self) -> WorkingCopy:
        """The run folder with the local folder Keras writes in (itself, for local)."""
        return WorkingCopy.of(self.source, self.run_dir, "run")

    def lock_folder(self) -> Path:
        """The local folder whose lock keeps a second writer out: the run folder itself, or
        for a remote one, a folder named after its URL in the remote cache folder."""
        if self.source.is_local:
            return Path(self.run_dir)
        digest = hashlib.sha256(f"{self.source.name}|{self.run_dir}".encode()).hexdigest()
        return self.source.cache.folder / "locks" / digest[:24]

    def local_model(self) -> Path:
        """A local copy of the final model (downloaded from a remote source), to load."""
        if not self.source.exists(self.model):
            raise ModelError(
                f"model {self.model!r} not found. Train it first (`kerapipe train` or `dvc "
                "repro`), or check DATA.TRAINING_MODEL_DIR, TRAINING_MODEL_NAME and "
                "TRAINING_MODEL_FORMAT."
            )
        if self.source.is_local:
            return Path(self.model)
        local = self.source.cache.scratch("model") / self.model_name
        self.source.download(self.model, local)
        return local

    @property
    def outputs(self) -> str:
        """``outputs.json``: the names of the model's outputs (classes or targets) and its
        input, for anyone who loads the model."""
        return join(self.run_dir, "outputs.json")

    @property
    def validation_predictions(self) -> str:
        return join(self.run_dir, "validation_predictions.csv")

    @property
    def exports(self) -> str:
        """``export/``: the model in the formats of ``DATA.EXPORT.FORMATS``."""
        return join(self.run_dir, "export")

    @property
    def export_metrics(self) -> str:
        return join(self.run_dir, "export_metrics.json")


def read_run_info(paths: ModelPaths) -> dict:
    """The run's ``run_info.json``, or {} when it is missing or unreadable."""
    try:
        info = json.loads(paths.source.read_text(paths.run_info))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def check_model_matches(paths: ModelPaths, current: dict, layout: TaskLayout) -> None:
    """Refuse to predict with a model trained for other classes, targets or input shape than
    the params say (``current``: ``fingerprints.prediction_settings_of`` the params; its
    outputs would be read with the wrong names), as its run_info.json records them; what the
    params leave out (classes found in the data folder, a derived ``NUM_CLASSES``) is taken
    from that record (``layout`` adopts it). A model without one (trained elsewhere) is
    checked by shape when loaded."""
    from kerapipe import fingerprints

    info = read_run_info(paths)
    recorded = info.get("settings")
    if not recorded:
        return
    outputs = info.get("outputs") or {}
    layout.adopt(outputs)
    recorded = fingerprints.prediction_settings(recorded)
    both = recorded.keys() & current.keys()  # a key left out is resolved from the record
    recorded = {k: recorded[k] for k in both}
    current = {k: current[k] for k in both}
    if outputs.get("outputs") is not None:
        recorded["outputs"] = outputs["outputs"]
        current["outputs"] = layout.output_names
    if recorded != current:
        raise ModelError(
            f"{paths.model} was trained for other classes, targets or inputs than these params "
            f"say ({fingerprints.changes(recorded, current)}); its outputs would be read with "
            "the wrong names. Train it again with these params (`dvc repro`, or `kerapipe "
            "train` with TRAINING.FORCE: true), or restore the params it was trained with."
        )


def save_model(model: keras.Model, path: Path, model_format: str) -> None:
    """Save atomically: ``keras`` and ``h5`` via ``model.save``, ``tf`` via ``model.export``."""
    if model_format == "tf":
        with atomic_path(path) as tmp:
            model.export(str(tmp), format="tf_saved_model", verbose=False)
    else:
        with atomic_path(path, suffix=f".{model_format}") as tmp:
            model.save(str(tmp))


def load_model(path: Path, model_format: str, shown: str | None = None):
    """Load a saved model for inference with Keras' safe mode (no code from the file runs).

    A ``tf`` SavedModel calls its serving signature: through a ``keras.layers.TFSMLayer`` on
    TensorFlow, through TensorFlow itself on JAX (kerapipe/backend.py). Messages name the
    model as ``shown`` (its path on its source) when given.
    """
    import keras

    name = shown or str(path)
    if not Path(path).exists():
        raise ModelError(
            f"model {name!r} not found. Train it first (`kerapipe train` or `dvc repro`), "
            "or check DATA.TRAINING_MODEL_DIR, TRAINING_MODEL_NAME and TRAINING_MODEL_FORMAT."
        )
    try:
        if model_format == "tf":
            from kerapipe.backend import load_saved_model

            return load_saved_model(str(path))
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError) as err:
        raise ModelError(f"cannot load model {name!r}: {err}") from None
