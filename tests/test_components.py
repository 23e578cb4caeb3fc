"""Losses, optimizers, metrics, callbacks and schedules built by name from params."""

import keras
import pytest

from kerapipe.components import build, build_callbacks, build_optimizer
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError
from kerapipe.registry import CALLBACKS, LOSSES, METRICS, OPTIMIZERS


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
    assert "MODEL.LOSS_PARAMS.deltaa: loss 'huber' has no such argument." in message
    assert "Did you mean 'delta'?" in message
    assert "takes: delta, dtype, name, reduction" in message


def test_arguments_of_base_classes_count_too():
    optimizer = build(OPTIMIZERS, "sgd", {"momentum": 0.9, "clipnorm": 1.0}, "k")
    assert optimizer.clipnorm == 1.0 and optimizer.momentum == 0.9
    with pytest.raises(ConfigError, match=r"k.momentumm: .* Did you mean 'momentum'\?"):
        build(OPTIMIZERS, "sgd", {"momentumm": 0.9}, "k")


@pytest.mark.parametrize(
    ("value", "expected"), [("2", "a number"), (True, "a number"), ([2], "a number")]
)
def test_a_value_of_the_wrong_type_is_refused_before_training(value, expected):
    with pytest.raises(ConfigError) as caught:
        build(CALLBACKS, "early_stopping", {"patience": value}, "CB")
    assert f"CB.patience: must be {expected}, like its default 0 (got {value!r})" in str(
        caught.value
    )


def test_numbers_where_a_number_is_expected_pass_int_or_float():
    stopping = build(CALLBACKS, "early_stopping", {"patience": 2, "min_delta": 0.01}, "CB")
    assert stopping.patience == 2 and stopping.min_delta == pytest.approx(0.01)


def test_a_component_that_needs_a_missing_package_says_which(default_params):
    default_params["TRAINING"]["CALLBACKS"] = [{"CALLBACK_NAME": "tensorboard"}]
    with pytest.raises(ConfigError) as caught:
        validate_params(default_params)
    assert "TRAINING.CALLBACKS.0.CALLBACK_NAME: callback 'tensorboard' needs" in str(caught.value)
    assert "pip install tensorboard" in str(caught.value)


def test_learning_rate_maps_to_the_optimizer(default_params):
    params = params_with(
        default_params, "MODEL", OPTIMIZER_NAME="rmsprop", OPTIMIZER_PARAMS={"LEARNING_RATE": 0.05}
    )
    optimizer = build_optimizer(params.MODEL)
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert float(optimizer.learning_rate) == pytest.approx(0.05)


def test_learning_rate_schedule_by_name(default_params):
    schedule = {
        "SCHEDULE_NAME": "cosine_decay",
        "SCHEDULE_PARAMS": {"initial_learning_rate": 0.1, "decay_steps": 100},
    }
    params = params_with(default_params, "MODEL", OPTIMIZER_PARAMS={"LEARNING_RATE": schedule})
    optimizer = build_optimizer(params.MODEL)
    assert isinstance(optimizer._learning_rate, keras.optimizers.schedules.CosineDecay)
    assert float(optimizer._learning_rate(100)) == pytest.approx(0.0)


def test_unknown_schedule_is_named(default_params):
    params = params_with(
        default_params, "MODEL", OPTIMIZER_PARAMS={"LEARNING_RATE": {"SCHEDULE_NAME": "cosine"}}
    )
    with pytest.raises(ConfigError, match=r"LEARNING_RATE.SCHEDULE_NAME: .*cosine_decay"):
        build_optimizer(params.MODEL)


def test_callbacks_by_name(default_params):
    params = params_with(
        default_params,
        "TRAINING",
        CALLBACKS=[
            {"CALLBACK_NAME": "early_stopping", "CALLBACK_PARAMS": {"patience": 3}},
            {"CALLBACK_NAME": "reduce_lr_on_plateau", "CALLBACK_PARAMS": {"factor": 0.5}},
            {"CALLBACK_NAME": "terminate_on_nan"},
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
    callbacks = build_callbacks(params.TRAINING.CALLBACKS)
    kinds = [type(c).__name__ for c in callbacks]
    assert kinds == [
        "EarlyStopping",
        "ReduceLROnPlateau",
        "TerminateOnNaN",
        "LearningRateScheduler",
    ]
    assert callbacks[0].patience == 3
    assert callbacks[3].schedule(2) == pytest.approx(0.0025)


@pytest.mark.parametrize("name", ["sparse_dice", "sparse_focal"])
def test_custom_losses_are_keras_serializable(name):
    loss = LOSSES.get(name)()
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(restored) is type(loss)


def test_accuracy_metric_is_named_accuracy():
    assert METRICS.get("accuracy")().name == "accuracy"
