"""Helpers for the segmentation and regression tests: params that point into a temporary
folder, and small images written as PNG."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from kerapipe.checks import check_params
from kerapipe.config import Params, validate_params
from tests.helpers import REPO


def task_params(name: str, tmp_path: Path, updates: dict[str, Any] | None = None) -> dict:
    """``params/<name>.yaml`` with its outputs under ``tmp_path`` and dotted-key ``updates``."""
    params = copy.deepcopy(yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text()))
    params["DATA"].update(
        INVENTORY_CSV_DIR=str(tmp_path / "inventory"),
        TRAINING_MODEL_DIR=str(tmp_path / "models"),
        PREDICTION_OUTPUT_DIR=str(tmp_path / "predictions"),
        PREDICTION_LABELS=None,  # tests that score predictions point it at their labels
    )
    for dotted, value in (updates or {}).items():
        *keys, last = dotted.split(".")
        target = params
        for key in keys:
            target = target[key]
        target[last] = value
    return params


def validated(params: dict) -> Params:
    """``params`` through every check a stage runs first."""
    return check_params(validate_params(copy.deepcopy(params), source="test params"))


def save_png(path: Path, pixels: np.ndarray) -> Path:
    """Write a uint8 array as PNG (grayscale for 2-D arrays, RGB for 3 channels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path
