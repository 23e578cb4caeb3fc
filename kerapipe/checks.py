"""Check the params against every component they name, before any stage does any work.

The params schema (kerapipe/config.py) knows the keys and the registered names but no
plug-in. This step, above it, asks each named component to check its own params: the task
its ``TASK_PARAMS``, the model its ``MODEL_PARAMS`` and weights files, each augmentation its
params, and each Keras loss, optimizer, schedule, metric and callback its arguments (by name,
with a "did you mean", and by type), plus every callback ``monitor`` against the names the
model will log. All problems are reported together in one ConfigError.

Keras (and so TensorFlow) is imported only when a Keras component has arguments to check, so
``kerapipe validate`` on params that only name components stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kerapipe.config import FOLDER_SOURCES, Params, load_params
from kerapipe.errors import ConfigError, KerapipeError
from kerapipe.param_messages import summarise_problems
from kerapipe.registry import suggest

if TYPE_CHECKING:
    from kerapipe.models.base import ModelBuilder
    from kerapipe.tasks.base import Task


def load_checked_params(path: str | Path) -> Params:
    """Read a params file and run every check on it (what each stage does first)."""
    return check_params(load_params(path), source=str(path))


def check_params(params: Params, source: str = "params") -> Params:
    """Run every component's own checks; raise one ConfigError listing all problems."""
    checked_parts(params, source)
    return params


def checked_parts(params: Params, source: str = "params") -> tuple[Task, ModelBuilder]:
    """The task and the model builder of ``params``, each built once and checked with
    every other component; one ConfigError listing all problems found."""
    from kerapipe.models.base import model_builder
    from kerapipe.tasks.base import get_task

    problems: list[str] = []
    task = _attempt(lambda: get_task(params), problems)
    builder = _attempt(lambda: model_builder(params), problems)
    if builder is not None:
        _attempt(builder.check_files, problems)
    _attempt(lambda: _check_sources(params), problems)
    _attempt(lambda: _check_augmentations(params), problems)
    if not problems:  # the cross-checks need each part valid on its own
        _attempt(lambda: _check_task_and_model(params, task, builder), problems)
        _attempt(lambda: _check_keras_components(params, task), problems)
    if problems:
        raise ConfigError(summarise_problems(source, problems))
    return task, builder


def _attempt(check: Callable[[], Any], problems: list[str]) -> Any:
    """``check()``, or None with its error added to ``problems``."""
    try:
        return check()
    except KerapipeError as err:
        problems.append(str(err))
        return None


def _check_sources(params: Params) -> None:
    """The folders kerapipe writes must be on sources that can be written."""
    from kerapipe.registry import SOURCES

    problems = []
    for dir_key, what in (
        ("INVENTORY_CSV_DIR", "the inventory"),
        ("TRAINING_MODEL_DIR", "the model"),
        ("PREDICTION_OUTPUT_DIR", "the predictions"),
    ):
        name = params.DATA.source_name(dir_key)
        if SOURCES.get(name).read_only:
            source_key = FOLDER_SOURCES[dir_key]
            problems.append(
                f"DATA.{source_key}: the {name} source is read-only (kerapipe lists and reads "
                f"over {name}, it cannot write), so {what} cannot go to DATA.{dir_key}. Set "
                f"DATA.{source_key} to a source that can be written (local, s3, ...)."
            )
    if problems:
        raise ConfigError("\n  - ".join(problems))


def _check_augmentations(params: Params) -> None:
    from kerapipe.augmentations import build_augmentations

    build_augmentations(params.TRAINING.AUGMENTATIONS)


def _check_task_and_model(params: Params, task: Task, builder: ModelBuilder) -> None:
    task.layout.check_num_classes(builder.params.NUM_CLASSES)
    task.head.check_model(params.MODEL.MODEL_NAME, builder.spatial_output)
    task.data.check_class_weight(params.TRAINING.CLASS_WEIGHT)
    _check_fine_tuning(params, builder)


def _check_fine_tuning(params: Params, builder: ModelBuilder) -> None:
    """``TRAINING.FINE_TUNING`` needs a pretrained base to freeze, and a learning rate it
    can scale."""
    if params.TRAINING.FINE_TUNING is None:
        return
    key, name = "TRAINING.FINE_TUNING", params.MODEL.MODEL_NAME
    if not builder.has_base:
        raise ConfigError(
            f"{key}: the model {name!r} has no pretrained base to freeze and unfreeze. Choose "
            "a keras.applications backbone (`kerapipe components` lists them) or remove it."
        )
    if not builder.pretrained:
        raise ConfigError(
            f"{key}: {name} starts from random weights, so there is nothing to fine-tune. Set "
            "MODEL.MODEL_PARAMS.WEIGHTS (imagenet, a path or a URL) or INITIAL_WEIGHTS, or "
            "remove it."
        )
    if getattr(builder.params, "FREEZE_BASE", False):
        raise ConfigError(
            f"{key}: MODEL.MODEL_PARAMS.FREEZE_BASE keeps the base frozen for the whole run, "
            "FINE_TUNING unfreezes it after FROZEN_EPOCHS: keep one of the two."
        )
    from kerapipe.config.training import scaled_learning_rate

    scaled_learning_rate(params.MODEL.OPTIMIZER_PARAMS.get("LEARNING_RATE"), 1.0)


def _check_keras_components(params: Params, task: Task) -> None:
    """Build every Keras component as training will, and check each callback's monitor."""
    _check_learning_rate(params.MODEL.OPTIMIZER_PARAMS.get("LEARNING_RATE"))
    if not needs_keras(params):
        return
    from kerapipe.native_logs import import_tensorflow

    import_tensorflow()
    from kerapipe import components

    model, head = params.MODEL, task.head
    problems: list[str] = []
    _attempt(lambda: components.build_loss(model, head), problems)
    _attempt(lambda: components.build_optimizer(model), problems)
    _attempt(lambda: components.build_callbacks(params.TRAINING.CALLBACKS), problems)
    _attempt(lambda: check_monitors(params, components.logged_names(model, head)), problems)
    if problems:
        raise ConfigError("\n  - ".join(problems))


def needs_keras(params: Params) -> bool:
    """Whether any Keras component gets arguments that only Keras can check."""
    model = params.MODEL
    optimizer_params = dict(model.OPTIMIZER_PARAMS)
    rate = optimizer_params.pop("LEARNING_RATE", None)
    return bool(
        model.LOSS_PARAMS
        or optimizer_params
        or isinstance(rate, dict)
        or any(spec.METRIC_PARAMS for spec in model.METRICS or [])
        or params.TRAINING.CALLBACKS
    )


def _check_learning_rate(rate: Any) -> None:
    key = "MODEL.OPTIMIZER_PARAMS.LEARNING_RATE"
    if rate is None or isinstance(rate, dict):
        return  # a schedule is checked with Keras
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ConfigError(
            f"{key}: must be a number > 0 or a schedule {{SCHEDULE_NAME, SCHEDULE_PARAMS}} "
            f"(got {rate!r})."
        )


def check_monitors(params: Params, logged: list[str]) -> None:
    """Each callback's ``monitor`` must be a value that ``fit`` logs."""
    for i, spec in enumerate(params.TRAINING.CALLBACKS):
        monitor = spec.CALLBACK_PARAMS.get("monitor")
        if monitor is not None and monitor not in logged:
            raise ConfigError(
                f"TRAINING.CALLBACKS.{i}.CALLBACK_PARAMS.monitor: {monitor!r} is not logged "
                f"by this model.{suggest(monitor, logged)} Logged each epoch: "
                f"{', '.join(logged)}."
            )
