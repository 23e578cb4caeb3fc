"""Losses, optimizers, metrics, callbacks and schedules built by name from params."""

import keras
import pytest

from kerapipe.components import build, build_callbacks, build_optimizer
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError
from kerapipe.registry import LOSSES, METRICS, OPTIMIZERS


def params_with(default_params, group, **values):
    default_params[group].update(values)
    return validate_params(default_params)


def test_params_are_passed_as_given():
    loss = build(LOSSES, "huber", {"delta": 2.5, "name": "my_huber"}, "MODEL.LOSS_PARAMS")
    assert isinstance(loss, keras.losses.Huber) and loss.name == "my_huber"
    assert float(loss([[0.0]], [[10.0]])) == pytest.approx(2.5 * (10 - 1.25))  # delta used


def test_an_argument_the_component_does_not_take_lists_the_ones_it_does():
    with pytest.raises(ConfigError) as caught:
        build(LOSSES, "huber", {"deltaa": 2.5}, "MODEL.LOSS_PARAMS")
    message = str(caught.value)
    assert "MODEL.LOSS_PARAMS: loss 'huber' does not take deltaa" in message
    assert "delta" in message and "reduction" in message


def test_arguments_of_base_classes_count_too():
    optimizer = build(OPTIMIZERS, "sgd", {"momentum": 0.9, "clipnorm": 1.0}, "k")
    assert optimizer.clipnorm == 1.0 and optimizer.momentum == 0.9
    with pytest.raises(ConfigError, match="does not take momentumm"):
        build(OPTIMIZERS, "sgd", {"momentumm": 0.9}, "k")


def test_learning_rate_maps_to_the_optimizer(default_params):
    params = params_with(
        default_params, "MODEL", OPTIMIZER_NAME="rmsprop", OPTIMIZER_PARAMS={"LEARNING_RATE": 0.05}
    )
    optimizer = build_optimizer(params)
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert float(optimizer.learning_rate) == pytest.approx(0.05)


def test_learning_rate_schedule_by_name(default_params):
    schedule = {
        "SCHEDULE_NAME": "cosine_decay",
        "SCHEDULE_PARAMS": {"initial_learning_rate": 0.1, "decay_steps": 100},
    }
    params = params_with(default_params, "MODEL", OPTIMIZER_PARAMS={"LEARNING_RATE": schedule})
    optimizer = build_optimizer(params)
    assert isinstance(optimizer._learning_rate, keras.optimizers.schedules.CosineDecay)
    assert float(optimizer._learning_rate(100)) == pytest.approx(0.0)


def test_unknown_schedule_is_named(default_params):
    params = params_with(
        default_params, "MODEL", OPTIMIZER_PARAMS={"LEARNING_RATE": {"SCHEDULE_NAME": "cosine"}}
    )
    with pytest.raises(ConfigError, match=r"LEARNING_RATE.SCHEDULE_NAME: .*cosine_decay"):
        build_optimizer(params)


def test_callbacks_by_name(default_params):
    params = params_with(
        default_params,
        "TRAINING",
        CALLBACKS=[
            {"CALLBACK_NAME": "early_stopping", "CALLBACK_PARAMS": {"patience": 3}},
            {"CALLBACK_NAME": "reduce_lr_on_plateau", "CALLBACK_PARAMS": {"factor": 0.5}},
            {"CALLBACK_NAME": "terminate_on_nan"},
            {"CALLBACK_NAME": "tensorboard", "CALLBACK_PARAMS": {"log_dir": "tb"}},
            {
                "CALLBACK_NAME": "learning_rate_scheduler",
                "CALLBACK_PARAMS": {
                    "SCHEDULE_NAME": "exponential_decay",
                    "SCHEDULE_PARAMS": {
                        "initial_learning_rate": 0.01,
                        "decay_steps": 1,
                        "decay_rate": 0.5,
                    },
                },
            },
        ],
    )
    callbacks = build_callbacks(params)
    kinds = [type(c).__name__ for c in callbacks]
    assert kinds == [
        "EarlyStopping",
        "ReduceLROnPlateau",
        "TerminateOnNaN",
        "TensorBoard",
        "LearningRateScheduler",
    ]
    assert callbacks[0].patience == 3
    assert callbacks[4].schedule(2) == pytest.approx(0.0025)


@pytest.mark.parametrize("name", ["sparse_dice", "sparse_focal"])
def test_custom_losses_are_keras_serializable(name):
    loss = LOSSES.get(name)()
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(restored) is type(loss)


def test_accuracy_metric_is_named_accuracy():
    assert METRICS.get("accuracy")().name == "accuracy"
