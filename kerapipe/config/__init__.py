"""Load and validate ``params.yaml`` (or an old-style ``config.json``) into typed groups: DATA
(config/data.py), PIPELINE, INVENTORY, MODEL and TRAINING (config/training.py).

Every group is a pydantic model that forbids unknown keys; every problem found is reported in
one ConfigError that names the key path, the value received and what is allowed, with a
close-match suggestion for typos. Validation imports no TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from kerapipe.config.data import FOLDER_SOURCES, DataParams, ExportParams
from kerapipe.config.groups import (
    DEFAULT_CACHE_MAX_GB,
    DEFAULT_MAX_IMAGE_PIXELS,
    MAX_SEED,
    Group,
    require_unique,
    resolve_seed,
    validate_group,
)
from kerapipe.config.training import (
    BUILT_IN_CALLBACKS,
    AugmentationSpec,
    CallbackSpec,
    FineTuningParams,
    TrainingParams,
)
from kerapipe.errors import ConfigError
from kerapipe.folder_rules import on_source, overlapping_folders
from kerapipe.param_messages import summarise_problems, validation_messages
from kerapipe.params_file import read_params_file
from kerapipe.registry import (
    AUGMENTATIONS,
    CALLBACKS,
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    SOURCES,
    TASKS,
)

__all__ = [
    "BUILT_IN_CALLBACKS",
    "DEFAULT_CACHE_MAX_GB",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "FOLDER_SOURCES",
    "MAX_SEED",
    "AugmentationSpec",
    "CallbackSpec",
    "DataParams",
    "ExportParams",
    "FineTuningParams",
    "Group",
    "InventoryParams",
    "MetricSpec",
    "ModelParams",
    "Params",
    "PipelineParams",
    "TrainingParams",
    "load_params",
    "require_unique",
    "resolve_seed",
    "validate_group",
    "validate_params",
]


class PipelineParams(Group):
    """The task, and what every stage reads images with."""

    TASK_NAME: str = Field("classification", description="a registered task")
    TASK_PARAMS: dict[str, Any] = Field(default_factory=dict, description="the task's own params")
    MAX_IMAGE_PIXELS: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS,
        ge=1,
        description="the most pixels an image may have; larger ones are refused from their "
        "header (inventory: a bad image; predict: a status row)",
    )


class InventoryParams(Group):
    """The listing and the train/validation split."""

    VALIDATION_SPLIT: float = Field(
        0.2, gt=0.0, lt=1.0, description="share of the data held out for validation"
    )
    SEED: int = Field(
        0, le=MAX_SEED, description="seed of the split; <= 0 draws one, kept in inventory.json"
    )
    FORCE: bool = Field(
        False, description="rewrite an existing inventory; false reuses one made alike"
    )
    CHECK_IMAGES: Literal["decode", "header", "names"] = Field(
        "decode",
        description="how far each image is checked: decoded fully, its header read, or its "
        "file name only (bad images are then found when training starts)",
    )
    BAD_IMAGES: Literal["skip", "fail"] = Field(
        "skip",
        description="an image that cannot be read: skipped with a warning (listed in "
        "inventory.json), or the inventory fails naming it",
    )


class MetricSpec(Group):
    """A metric by name, with its arguments."""

    METRIC_NAME: str = Field(description="a registered metric")
    METRIC_PARAMS: dict[str, Any] = Field(
        default_factory=dict, description="the metric's arguments, by their Keras names"
    )


class ModelParams(Group):
    """The network and what it is trained with."""

    MODEL_NAME: str = Field(description="a registered model")
    MODEL_PARAMS: dict[str, Any] = Field(
        default_factory=dict,
        description="INPUT_SHAPE, NUM_CLASSES, INITIAL_WEIGHTS and the model's own params",
    )
    LOSS_NAME: str | None = Field(None, description="a registered loss; null: the task's")
    LOSS_PARAMS: dict[str, Any] = Field(
        default_factory=dict, description="the loss's arguments, by their Keras names"
    )
    OPTIMIZER_NAME: str = Field("adam", description="a registered optimizer")
    OPTIMIZER_PARAMS: dict[str, Any] = Field(
        default_factory=dict,
        description="the optimizer's arguments; LEARNING_RATE is a number or a schedule "
        "{SCHEDULE_NAME, SCHEDULE_PARAMS}",
    )
    METRICS: list[MetricSpec] | None = Field(
        None, description="metrics logged every epoch; null: the task's"
    )


class Params(Group):
    """The whole params file."""

    DATA: DataParams
    PIPELINE: PipelineParams = Field(default_factory=PipelineParams)
    INVENTORY: InventoryParams = Field(default_factory=InventoryParams)
    MODEL: ModelParams
    TRAINING: TrainingParams = Field(default_factory=TrainingParams)

    @model_validator(mode="after")
    def _cache_apart_from_data(self) -> Params:
        caches = {}
        if self.TRAINING.CACHE_DIR:
            cache_dir = os.path.expanduser(self.TRAINING.CACHE_DIR)
            caches["TRAINING.CACHE_DIR"] = on_source("local", cache_dir)
        if self.DATA.REMOTE_CACHE_DIR:
            remote = os.path.expanduser(self.DATA.REMOTE_CACHE_DIR)
            caches["DATA.REMOTE_CACHE_DIR"] = on_source("local", remote)
        folders = {**self.DATA.input_folders(), **self.DATA.output_folders()}
        problems = [
            problem
            for key, folder in caches.items()  # each apart from the data (not from each other)
            for problem in overlapping_folders(folders, {key: folder})
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read, parse and validate a params file against the schema; raise one ConfigError
    listing all problems. ``kerapipe.checks.load_checked_params`` also runs the components'
    own checks, as every stage does."""
    return validate_params(read_params_file(path), source=str(path))


def validate_params(data: dict[str, Any], source: str = "params") -> Params:
    """Validate the keys, values and registered names. The params of the components named
    are checked by each component itself, a step above this one (kerapipe.checks)."""
    try:
        params = Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(summarise_problems(source, validation_messages(err, Params))) from None
    problems = _registry_problems(params)
    if problems:
        raise ConfigError(summarise_problems(source, problems))
    return params


def _registry_problems(params: Params) -> list[str]:
    checks = [
        (SOURCES, f"DATA.{key}", getattr(params.DATA, key))
        for key in DataParams.model_fields
        if key.endswith("_SOURCE") and getattr(params.DATA, key) is not None
    ]

    checks += [
        (TASKS, "PIPELINE.TASK_NAME", params.PIPELINE.TASK_NAME),
        (MODELS, "MODEL.MODEL_NAME", params.MODEL.MODEL_NAME),
        (OPTIMIZERS, "MODEL.OPTIMIZER_NAME", params.MODEL.OPTIMIZER_NAME),
    ]
    if params.MODEL.LOSS_NAME is not None:
        checks.append((LOSSES, "MODEL.LOSS_NAME", params.MODEL.LOSS_NAME))
    checks += [
        (METRICS, f"MODEL.METRICS.{i}.METRIC_NAME", spec.METRIC_NAME)
        for i, spec in enumerate(params.MODEL.METRICS or [])
    ]
    checks += [
        (CALLBACKS, f"TRAINING.CALLBACKS.{i}.CALLBACK_NAME", spec.CALLBACK_NAME)
        for i, spec in enumerate(params.TRAINING.CALLBACKS)
    ]
    checks += [
        (AUGMENTATIONS, f"TRAINING.AUGMENTATIONS.{i}.AUGMENTATION_NAME", spec.AUGMENTATION_NAME)
        for i, spec in enumerate(params.TRAINING.AUGMENTATIONS)
    ]
    problems = [  # settings of a source that is not used need no package installed
        f"DATA.STORAGE_OPTIONS.{name}: {SOURCES.unknown_message(name)}"
        for name in params.DATA.STORAGE_OPTIONS
        if name not in SOURCES
    ]
    for registry, key, name in checks:
        try:
            registry.check(name, key)
        except ConfigError as err:
            problems.append(str(err))
    return problems
