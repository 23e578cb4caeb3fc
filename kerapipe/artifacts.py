"""Where a training run's files go, and how the final model is saved and loaded.

``models/<TRAINING_MODEL_NAME>/`` holds ``model.<FORMAT>`` (``model.tf`` is a SavedModel
folder), ``training_log.csv``, ``run_info.json`` and ``checkpoints/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kerapipe.atomic import atomic_path
from kerapipe.config import Params
from kerapipe.errors import ModelError

if TYPE_CHECKING:
    import keras


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


def check_initial_weights(path: str | None) -> None:
    """Fail before any work starts when ``INITIAL_WEIGHTS`` names a file that is not there."""
    if path and not Path(path).is_file():
        raise ModelError(
            f"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS: file {path!r} not found. Give a .keras model "
            "or .weights.h5 file from an earlier run, or set it to null."
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
