"""Build losses, optimizers, metrics and callbacks from their registered names and params.

``*_PARAMS`` go to the component as given, except ``LEARNING_RATE`` which becomes the
optimizer's ``learning_rate``. An argument the component does not take is an error, raised
before training starts, that lists the arguments it does take.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras

from kerapipe.config import Params
from kerapipe.errors import ConfigError
from kerapipe.registry import CALLBACKS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, Registry
from kerapipe.tasks.base import Task


def sparse_accuracy(name: str = "accuracy", **kwargs: Any) -> keras.metrics.Metric:
    """Accuracy for integer labels against per-class scores, logged as ``accuracy``."""
    return keras.metrics.SparseCategoricalAccuracy(name=name, **kwargs)


def accepted_arguments(factory: Any) -> tuple[set[str], bool]:
    """Keyword arguments ``factory`` takes, following ``**kwargs`` up a class's bases.

    Returns the names and whether anything else is accepted too (an open ``**kwargs``).
    """
    targets = (
        [c for c in inspect.getmro(factory) if c is not object]
        if inspect.isclass(factory)
        else [factory]
    )
    names: set[str] = set()
    for target in targets:
        init = target.__init__ if inspect.isclass(target) else target
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return names, True
        names |= {
            p.name
            for p in parameters
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names, False
    return names, not inspect.isclass(factory)


def build(registry: Registry, name: str, params: dict[str, Any], key: str) -> Any:
    """Instantiate the component registered as ``name`` with ``params``."""
    factory = registry.get(name)
    allowed, open_ended = accepted_arguments(factory)
    unknown = sorted(set(params) - allowed)
    if unknown and not open_ended:
        raise ConfigError(
            f"{key}: {registry.kind} {name!r} does not take {', '.join(unknown)}. "
            f"It takes: {', '.join(sorted(allowed)) or 'no arguments'}."
        )
    try:
        return factory(**params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {registry.kind} {name!r} rejected {params}: {err}") from None


def build_loss(params: Params, task: Task) -> Any:
    """``MODEL.LOSS_NAME`` with its params, or the task's default loss."""
    name = params.MODEL.LOSS_NAME or task.default_loss
    return build(LOSSES, name, params.MODEL.LOSS_PARAMS, "MODEL.LOSS_PARAMS")


def build_optimizer(params: Params) -> keras.optimizers.Optimizer:
    """The optimizer; ``LEARNING_RATE`` is a number or ``{SCHEDULE_NAME, SCHEDULE_PARAMS}``."""
    key = "MODEL.OPTIMIZER_PARAMS"
    arguments = dict(params.MODEL.OPTIMIZER_PARAMS)
    if "LEARNING_RATE" in arguments:
        rate = arguments.pop("LEARNING_RATE")
        if isinstance(rate, dict):
            rate = build_schedule(rate, f"{key}.LEARNING_RATE")
        arguments["learning_rate"] = rate
    return build(OPTIMIZERS, params.MODEL.OPTIMIZER_NAME, arguments, key)


def build_schedule(
    spec: dict[str, Any], key: str
) -> keras.optimizers.schedules.LearningRateSchedule:
    """A learning-rate schedule from ``{SCHEDULE_NAME: name, SCHEDULE_PARAMS: {...}}``."""
    unknown = set(spec) - {"SCHEDULE_NAME", "SCHEDULE_PARAMS"}
    if unknown or "SCHEDULE_NAME" not in spec:
        raise ConfigError(
            f"{key}: a schedule is {{SCHEDULE_NAME: name, SCHEDULE_PARAMS: {{...}}}}; got "
            f"{spec}. Known schedules: {', '.join(SCHEDULES.names())}."
        )
    SCHEDULES.check(spec["SCHEDULE_NAME"], f"{key}.SCHEDULE_NAME")
    return build(SCHEDULES, spec["SCHEDULE_NAME"], spec.get("SCHEDULE_PARAMS") or {}, key)


def epoch_schedule(
    SCHEDULE_NAME: str, SCHEDULE_PARAMS: dict[str, Any] | None = None, verbose: int = 0
) -> keras.callbacks.LearningRateScheduler:
    """``LearningRateScheduler`` that sets the rate from a named schedule at each epoch start
    (its steps are epochs)."""
    schedule = build_schedule(
        {"SCHEDULE_NAME": SCHEDULE_NAME, "SCHEDULE_PARAMS": SCHEDULE_PARAMS or {}},
        "TRAINING.CALLBACKS.learning_rate_scheduler",
    )
    return keras.callbacks.LearningRateScheduler(lambda epoch: float(schedule(epoch)), verbose)


def build_metrics(params: Params, task: Task) -> list[Any]:
    """``MODEL.METRICS``, or the task's default metrics when the key is absent."""
    if params.MODEL.METRICS is None:
        return [build(METRICS, name, {}, "MODEL.METRICS") for name in task.default_metrics]
    return [
        build(METRICS, spec.METRIC_NAME, spec.METRIC_PARAMS, f"MODEL.METRICS.{i}.METRIC_PARAMS")
        for i, spec in enumerate(params.MODEL.METRICS)
    ]


def build_callbacks(params: Params) -> list[keras.callbacks.Callback]:
    return [
        build(
            CALLBACKS,
            spec.CALLBACK_NAME,
            spec.CALLBACK_PARAMS,
            f"TRAINING.CALLBACKS.{i}.CALLBACK_PARAMS",
        )
        for i, spec in enumerate(params.TRAINING.CALLBACKS)
    ]
