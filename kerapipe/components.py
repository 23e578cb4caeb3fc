"""Build losses, optimizers, metrics and callbacks from their registered names and params.

``*_PARAMS`` go to the component as given, except ``LEARNING_RATE`` which becomes the
optimizer's ``learning_rate``. An argument the component does not take is an error, raised
before training starts, that lists the arguments it does take.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras

from kerapipe.config import CallbackSpec, ModelParams
from kerapipe.config.training import scaled_learning_rate
from kerapipe.errors import ConfigError
from kerapipe.registry import (
    CALLBACKS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    SCHEDULES,
    Registry,
    suggest,
)
from kerapipe.tasks.base import TaskHead


def sparse_accuracy(name: str = "accuracy", dtype: Any = None) -> keras.metrics.Metric:
    """Accuracy for integer labels against per-class scores, logged as ``accuracy``."""
    return keras.metrics.SparseCategoricalAccuracy(name=name, dtype=dtype)


NO_DEFAULT = inspect.Parameter.empty


def accepted_arguments(factory: Any) -> tuple[dict[str, Any], bool]:
    """Keyword arguments ``factory`` takes with their defaults (``NO_DEFAULT`` if none),
    following ``**kwargs`` up a class's bases.

    Returns them and whether anything else is accepted too (an open ``**kwargs``).
    """
    targets = (
        [c for c in inspect.getmro(factory) if c is not object]
        if inspect.isclass(factory)
        else [factory]
    )
    arguments: dict[str, Any] = {}
    for target in targets:
        init = target.__init__ if inspect.isclass(target) else target
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return arguments, True
        for p in parameters:
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                arguments.setdefault(p.name, p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return arguments, False
    return arguments, not inspect.isclass(factory)


def wrong_type(value: Any, default: Any) -> str | None:
    """What ``value`` should be, judged by the argument's default, or None if it may be it.

    Only YAML scalars are judged, and only where the default says clearly: a number where
    the default is a number (``patience: "2"`` is caught), a boolean where it is a boolean.
    """
    if value is None or default is NO_DEFAULT or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int | float):
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if is_number or not _is_scalar(value) else "a number"
    if isinstance(default, str) and isinstance(value, bool | list | dict):
        return "a string"
    return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict)


def build(
    registry: Registry,
    name: str,
    params: dict[str, Any],
    key: str,
    also_known: tuple[str, ...] = (),
) -> Any:
    """Instantiate the component registered as ``name`` with ``params``, after checking
    every argument's name (with a "did you mean") and, where its default tells, its type.

    ``key`` is the params key holding ``params``; ``also_known`` are kerapipe's own keys that
    were taken out of them (e.g. ``LEARNING_RATE``), offered as suggestions too.
    """
    factory = registry.get(name)
    accepted, open_ended = accepted_arguments(factory)
    problems = []
    if not open_ended:
        for argument in sorted(set(params) - set(accepted)):
            hint = suggest(argument, [*accepted, *also_known])
            problems.append(
                f"{key}.{argument}: {registry.kind} {name!r} has no such argument.{hint}"
            )
    for argument, value in params.items():
        expected = wrong_type(value, accepted.get(argument, NO_DEFAULT))
        if expected:
            default = accepted[argument]
            problems.append(
                f"{key}.{argument}: must be {expected}, like its default {default!r} "
                f"(got {value!r})."
            )
    if problems:
        takes = ", ".join(sorted(accepted)) or "no arguments"
        raise ConfigError(
            " ".join(problems) + f" {registry.kind.capitalize()} {name!r} takes: {takes}."
        )
    try:
        return factory(**params)
    except ConfigError as err:  # raised by a component that builds others (a schedule)
        raise ConfigError(f"{key}.{err}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        raise ConfigError(f"{key}: {registry.kind} {name!r} rejected {params}: {err}") from None


def build_loss(model: ModelParams, head: TaskHead) -> Any:
    """``MODEL.LOSS_NAME`` with its params, or the task's default loss."""
    name = model.LOSS_NAME or head.default_loss
    return build(LOSSES, name, model.LOSS_PARAMS, "MODEL.LOSS_PARAMS")


def build_optimizer(model: ModelParams, factor: float = 1.0) -> keras.optimizers.Optimizer:
    """The optimizer; ``LEARNING_RATE`` is a number or ``{SCHEDULE_NAME, SCHEDULE_PARAMS}``,
    multiplied by ``factor`` (fine-tuning's ``LEARNING_RATE_FACTOR``)."""
    key = "MODEL.OPTIMIZER_PARAMS"
    arguments = dict(model.OPTIMIZER_PARAMS)
    if "LEARNING_RATE" in arguments:
        rate = arguments.pop("LEARNING_RATE")
        rate = rate if factor == 1.0 else scaled_learning_rate(rate, factor)
        if isinstance(rate, dict):
            rate = build_schedule(rate, f"{key}.LEARNING_RATE")
        arguments["learning_rate"] = rate
    elif factor != 1.0:
        default = accepted_arguments(OPTIMIZERS.get(model.OPTIMIZER_NAME))[0]["learning_rate"]
        arguments["learning_rate"] = float(default) * factor
    return build(OPTIMIZERS, model.OPTIMIZER_NAME, arguments, key, ("LEARNING_RATE",))


def build_schedule(
    spec: dict[str, Any], key: str
) -> keras.optimizers.schedules.LearningRateSchedule:
    """A learning-rate schedule from ``{SCHEDULE_NAME: name, SCHEDULE_PARAMS: {...}}``."""
    unknown = set(spec) - {"SCHEDULE_NAME", "SCHEDULE_PARAMS"}
    if unknown or "SCHEDULE_NAME" not in spec:
        raise ConfigError(
            f"{key or 'schedule'}: a schedule is {{SCHEDULE_NAME: name, SCHEDULE_PARAMS: "
            f"{{...}}}}; got {spec}. Known schedules: {', '.join(SCHEDULES.names())}."
        )
    SCHEDULES.check(spec["SCHEDULE_NAME"], _at(key, "SCHEDULE_NAME"))
    arguments = spec.get("SCHEDULE_PARAMS") or {}
    return build(SCHEDULES, spec["SCHEDULE_NAME"], arguments, _at(key, "SCHEDULE_PARAMS"))


def _at(key: str, part: str) -> str:
    """``key.part``, or ``part`` alone for a component that does not know its key (its
    builder adds it: see ``build``)."""
    return f"{key}.{part}" if key else part


def epoch_schedule(
    SCHEDULE_NAME: str, SCHEDULE_PARAMS: dict[str, Any] | None = None, verbose: int = 0
) -> keras.callbacks.LearningRateScheduler:
    """``LearningRateScheduler`` that sets the rate from a named schedule at each epoch start
    (its steps are epochs)."""
    schedule = build_schedule(
        {"SCHEDULE_NAME": SCHEDULE_NAME, "SCHEDULE_PARAMS": SCHEDULE_PARAMS or {}}, ""
    )
    return keras.callbacks.LearningRateScheduler(lambda epoch: float(schedule(epoch)), verbose)


def build_metrics(model: ModelParams, head: TaskHead) -> list[Any]:
    """``MODEL.METRICS``, or the task's default metrics when the key is absent."""
    if model.METRICS is None:
        return [build(METRICS, name, {}, "MODEL.METRICS") for name in head.default_metrics]
    return [
        build(METRICS, spec.METRIC_NAME, spec.METRIC_PARAMS, f"MODEL.METRICS.{i}.METRIC_PARAMS")
        for i, spec in enumerate(model.METRICS)
    ]


def logged_names(model: ModelParams, head: TaskHead) -> list[str]:
    """What ``fit`` logs each epoch: the loss and every metric, then the same for validation."""
    names = ["loss", *(metric.name for metric in build_metrics(model, head))]
    return names + [f"val_{name}" for name in names]


def build_callbacks(specs: list[CallbackSpec]) -> list[keras.callbacks.Callback]:
    return [
        build(
            CALLBACKS,
            spec.CALLBACK_NAME,
            spec.CALLBACK_PARAMS,
            f"TRAINING.CALLBACKS.{i}.CALLBACK_PARAMS",
        )
        for i, spec in enumerate(specs)
    ]
