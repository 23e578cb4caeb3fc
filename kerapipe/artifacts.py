"""Where a training run's files go, and how the final model is saved and loaded.

``models/<TRAINING_MODEL_NAME>/`` holds ``model.<FORMAT>`` (``model.tf`` is a SavedModel
folder), ``training_log.csv``, ``run_info.json`` and ``checkpoints/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kerapipe.atomic import atomic_path
from kerapipe.config import Params
from kerapipe.errors import ModelError

if TYPE_CHECKING:
    import keras

    from kerapipe.tasks.base import Task


@dataclass(frozen=True)
class ModelPaths:
    run_dir: Path
    format: str

    @classmethod
    def from_params(cls, params: Params) -> ModelPaths:
        data = params.DATA
        return cls(
            Path(data.TRAINING_MODEL_DIR) / data.TRAINING_MODEL_NAME, data.TRAINING_MODEL_FORMAT
        )

    @property
    def model(self) -> Path:
        return self.run_dir / f"model.{self.format}"

    @property
    def training_log(self) -> Path:
        return self.run_dir / "training_log.csv"

    @property
    def run_info(self) -> Path:
        return self.run_dir / "run_info.json"

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def outputs(self) -> Path:
        """``outputs.json``: the names of the model's outputs (classes or targets) and its
        input, for anyone who loads the model."""
        return self.run_dir / "outputs.json"

    @property
    def validation_predictions(self) -> Path:
        return self.run_dir / "validation_predictions.csv"

    @property
    def exports(self) -> Path:
        """``export/``: the model in the formats of ``DATA.EXPORT.FORMATS``."""
        return self.run_dir / "export"

    @property
    def export_metrics(self) -> Path:
        return self.run_dir / "export_metrics.json"


def read_run_info(paths: ModelPaths) -> dict:
    """The run's ``run_info.json``, or {} when it is missing or unreadable."""
    try:
        info = json.loads(paths.run_info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def check_model_matches(paths: ModelPaths, params: Params, task: Task) -> None:
    """Refuse to predict with a model trained for other classes, targets or input shape than
    the params say (its outputs would be read with the wrong names), as its run_info.json
    records them; what the params leave out (classes found in the data folder, a derived
    ``NUM_CLASSES``) is taken from that record. A model without one (trained elsewhere) is
    checked by shape when loaded."""
    from kerapipe import fingerprints

    info = read_run_info(paths)
    recorded = info.get("settings")
    if not recorded:
        return
    outputs = info.get("outputs") or {}
    task.adopt_layout(outputs)
    current = fingerprints.settings(params, fingerprints.PREDICTION_KEYS, [])
    current = {
        k: v for k, v in current.items() if k.rsplit(".", 1)[-1] not in task.display_only_params
    }
    recorded = fingerprints.prediction_settings(recorded)
    both = recorded.keys() & current.keys()  # a key left out is resolved from the record
    recorded = {k: recorded[k] for k in both}
    current = {k: current[k] for k in both}
    if outputs.get("outputs") is not None:
        recorded["outputs"] = outputs["outputs"]
        current["outputs"] = task.output_names
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


def load_model(path: Path, model_format: str):
    """Load a saved model for inference with Keras' safe mode (no code from the file runs).

    A ``tf`` SavedModel is wrapped in a ``keras.layers.TFSMLayer`` calling its serving signature.
    """
    import keras

    if not path.exists():
        raise ModelError(
            f"model {str(path)!r} not found. Train it first (`kerapipe train` or `dvc repro`), "
            "or check DATA.TRAINING_MODEL_DIR, TRAINING_MODEL_NAME and TRAINING_MODEL_FORMAT."
        )
    try:
        if model_format == "tf":
            return keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError) as err:
        raise ModelError(f"cannot load model {str(path)!r}: {err}") from None
