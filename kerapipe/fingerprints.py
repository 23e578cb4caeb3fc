"""What shaped an artifact: the whitelist of settings behind the inventory, the model and its
checkpoints, so an artifact is reused only when it still matches, and a mismatch is explained
key by key.

Only settings that change an artifact are listed. Output paths, FORCE flags, cache and
parallelism settings do not change the weights, so changing them discards nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from kerapipe.config import Params

# What changes the inventory: which files are listed (and how they are checked) and the split.
INVENTORY_KEYS = (
    "DATA.INVENTORY_DATA_SOURCE",
    "DATA.INVENTORY_DATA_DIR",
    "PIPELINE.TASK_NAME",
    "PIPELINE.TASK_PARAMS",
    "PIPELINE.MAX_IMAGE_PIXELS",
    "INVENTORY.VALIDATION_SPLIT",
    "INVENTORY.SEED",
    "INVENTORY.CHECK_IMAGES",
    "INVENTORY.BAD_IMAGES",
)
# What changes the trained weights, besides the inventory's content.
WEIGHTS_KEYS = ("PIPELINE.TASK_NAME", "PIPELINE.TASK_PARAMS", "MODEL", "TRAINING")
# Settings in TRAINING that do not change the weights: how the run is driven and how fast.
NOT_WEIGHTS = ("TRAINING.LOAD_CHECKPOINT", "TRAINING.FORCE", "TRAINING.CACHE",
               "TRAINING.CACHE_DIR", "TRAINING.CACHE_MAX_GB",
               "TRAINING.NUM_PARALLEL_CALLS", "TRAINING.STEPS_PER_EXECUTION",
               "TRAINING.DEVICES")  # fmt: skip
# What a model's predictions are read with: the classes or targets and the input.
PREDICTION_KEYS = (
    "PIPELINE.TASK_NAME",
    "PIPELINE.TASK_PARAMS",
    "MODEL.MODEL_PARAMS.INPUT_SHAPE",
    "MODEL.MODEL_PARAMS.NUM_CLASSES",
)


def settings(params: Params, keys: Iterable[str], ignored: Iterable[str] = ()) -> dict[str, Any]:
    """The values of ``keys`` (dotted paths into the params) as a flat ``{path: value}`` dict,
    leaving out ``ignored`` paths. Groups are flattened to their leaves."""
    dumped = params.model_dump()
    flat: dict[str, Any] = {}
    for key in keys:
        value: Any = dumped
        for part in key.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if value is not _MISSING:  # a key left out of a free-form group is not recorded
            flat.update(_leaves(key, value))
    for key in ignored:
        flat.pop(key, None)
    return flat


def _leaves(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value and key.count(".") < 2:
        return {
            k: v
            for name, child in value.items()
            for k, v in _leaves(f"{key}.{name}", child).items()
        }
    return {key: value}


def inventory_settings(params: Params, display_only: Iterable[str] = ()) -> dict[str, Any]:
    """The settings that shape the inventory; ``display_only`` are task params that do not."""
    return settings(params, INVENTORY_KEYS, _task_keys(display_only))


def weights_settings(
    params: Params,
    inventory_csv: bytes,
    display_only: Iterable[str] = (),
    weights_files: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The settings that shape the trained model, a digest of the inventory it read, and
    the sha256 of each weights file it started from (``weights_files``, by param)."""
    found = settings(params, WEIGHTS_KEYS, [*NOT_WEIGHTS, *_task_keys(display_only)])
    found["inventory"] = hashlib.sha256(inventory_csv).hexdigest()
    for key, sha256 in sorted((weights_files or {}).items()):
        found[f"{key}:sha256"] = sha256
    return found


def checkpoint_settings(weights: dict[str, Any]) -> dict[str, Any]:
    """What checkpoints must share with a run to be resumed by it: the weights settings bar
    the epoch count, so raising NUM_EPOCHS continues a finished run."""
    return {k: v for k, v in weights.items() if k != "TRAINING.NUM_EPOCHS"}


def prediction_settings_of(params: Params, display_only: Iterable[str] = ()) -> dict[str, Any]:
    """The settings of ``params`` that a model's outputs are read with (to compare with
    ``prediction_settings`` of what the model recorded)."""
    return settings(params, PREDICTION_KEYS, _task_keys(display_only))


def prediction_settings(weights: dict[str, Any]) -> dict[str, Any]:
    """The part of a model's settings that its outputs are read with."""
    return {k: v for k, v in weights.items() if any(_under(k, p) for p in PREDICTION_KEYS)}


def digest(found: dict[str, Any]) -> str:
    """A short stable hash of settings, for file names and quick comparison."""
    text = json.dumps(found, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changes(recorded: dict[str, Any], current: dict[str, Any], limit: int = 5) -> str:
    """'KEY: old -> new' for each setting that differs, for error messages."""
    keys = sorted(set(recorded) | set(current))
    lines = [
        f"{key}: {_show(recorded, key)} -> {_show(current, key)}"
        for key in keys
        if recorded.get(key, _MISSING) != current.get(key, _MISSING)
    ]
    more = f"; and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


_MISSING = object()


def _show(found: dict[str, Any], key: str) -> str:
    if key not in found:
        return "(not recorded)"
    value = found[key]
    return "the inventory's content" if key == "inventory" else json.dumps(value, default=str)


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def _task_keys(names: Iterable[str]) -> list[str]:
    return [f"PIPELINE.TASK_PARAMS.{name}" for name in names]
