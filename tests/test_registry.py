"""The one registry mechanism: decorator and lazy registration, clear errors for unknown names,
and every built-in name resolving in the installed Keras."""

import pytest

from kerapipe.errors import ConfigError
from kerapipe.registry import ALL, CALLBACKS, LOSSES, METRICS, MODELS, OPTIMIZERS, Registry


def test_decorator_registers_and_returns_the_object():
    registry = Registry("widget")

    @registry.register("round", summary="a round one")
    class Round:
        pass

    assert registry.get("round") is Round
    assert "round" in registry and registry.names() == ["round"]


def test_lazy_entries_import_on_first_use():
    registry = Registry("widget")
    registry.register("ordered", "collections:OrderedDict")
    from collections import OrderedDict

    assert registry.get("ordered") is OrderedDict


def test_unknown_name_lists_the_known_ones_and_suggests():
    registry = Registry("widget")
    registry.register("square", object)
    registry.register("circle", object)
    with pytest.raises(ConfigError) as caught:
        registry.get("squre")
    message = str(caught.value)
    assert "unknown widget 'squre'" in message
    assert "Did you mean 'square'?" in message
    assert "circle, square" in message


def test_duplicate_names_are_refused():
    registry = Registry("widget")
    registry.register("a", object)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", dict)


def test_all_kinds_have_entries():
    kinds = {"models", "losses", "optimizers", "metrics", "callbacks", "sources", "tasks"}
    assert kinds | {"schedules"} <= set(ALL)
    for registry in ALL.values():
        assert registry.names(), registry.kind
    assert {"simple_cnn", "xception"} <= set(MODELS.names())
    assert {"early_stopping", "reduce_lr_on_plateau", "tensorboard", "terminate_on_nan"} <= set(
        CALLBACKS.names()
    )


@pytest.mark.parametrize("registry", [LOSSES, OPTIMIZERS, METRICS, CALLBACKS], ids=lambda r: r.kind)
def test_every_built_in_name_resolves_in_keras(registry):
    for entry in registry:
        assert callable(registry.get(entry.name)), entry.name


def test_every_keras_loss_optimizer_and_callback_is_registered():
    """The lazy tables in catalog.py must not fall behind the installed Keras."""
    import keras

    not_configurable = {
        "Loss",
        "Optimizer",
        "LossScaleOptimizer",
        "MultiOptimizer",
        "OptimizerMap",
        "Muon",
        "ScheduleFreeAdamW",
        "Callback",
        "CallbackList",
        "History",
        "ProgbarLogger",
        "LambdaCallback",
        "RemoteMonitor",
        "OrbaxCheckpoint",
        "BackupAndRestore",
        "CSVLogger",
        "ModelCheckpoint",
        "LearningRateScheduler",
    }  # base classes, the two built-in callbacks, and ones that need code or a network
    for module, registry in [
        (keras.losses, LOSSES),
        (keras.optimizers, OPTIMIZERS),
        (keras.callbacks, CALLBACKS),
    ]:
        registered = {registry.get(name) for name in registry.names()}
        public = {
            getattr(module, name)
            for name in dir(module)
            if name[0].isupper()
            and name not in not_configurable
            and isinstance(getattr(module, name), type)
        }
        missing = {cls.__name__ for cls in public - registered}
        assert not missing, f"{registry.kind}s not registered: {missing}"
