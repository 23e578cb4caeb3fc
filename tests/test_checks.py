"""`kerapipe validate` checks every component the params name before any work: a typo in a
component's arguments, a wrong type, a monitor nobody logs or a missing weights file each end
in one message naming the key, with a "did you mean"."""

import pytest

from kerapipe.cli import main
from tests.test_cli import kerapipe

SCHEDULE = {"SCHEDULE_NAME": "cosine_decay", "SCHEDULE_PARAMS": {"initial_learning_rate": 0.1}}


def validate(make_params, capsys, updates):
    """Exit code and stderr of `kerapipe validate` on the sample params with ``updates``."""
    _, path = make_params(updates)
    code = main(["validate", "--params", str(path)])
    return code, capsys.readouterr().err


def callback(name, **params):
    return [{"CALLBACK_NAME": name, "CALLBACK_PARAMS": params}]


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        (
            {"MODEL.OPTIMIZER_PARAMS": {"beta_11": 0.9}},
            "MODEL.OPTIMIZER_PARAMS.beta_11: optimizer 'adam' has no such argument. "
            "Did you mean 'beta_1'?",
        ),
        (
            {"MODEL.OPTIMIZER_PARAMS": {"LEARNING_RAT": 0.001}},
            "MODEL.OPTIMIZER_PARAMS.LEARNING_RAT: optimizer 'adam' has no such argument. "
            "Did you mean 'LEARNING_RATE'?",
        ),
        (
            {"TRAINING.CALLBACKS": callback("early_stopping", patiense=3)},
            "TRAINING.CALLBACKS.0.CALLBACK_PARAMS.patiense: callback 'early_stopping' has no "
            "such argument. Did you mean 'patience'?",
        ),
        (
            {"TRAINING.CALLBACKS": callback("early_stopping", patience="2")},
            "TRAINING.CALLBACKS.0.CALLBACK_PARAMS.patience: must be a number, like its default 0 "
            "(got '2')",
        ),
        (
            {"TRAINING.CALLBACKS": callback("reduce_lr_on_plateau", monitor="val_acuracy")},
            "TRAINING.CALLBACKS.0.CALLBACK_PARAMS.monitor: 'val_acuracy' is not logged by this "
            "model. Did you mean 'val_accuracy'? Logged each epoch: loss, accuracy, val_loss, "
            "val_accuracy.",
        ),
        (
            {"MODEL.LOSS_PARAMS": {"from_logit": True}},
            "MODEL.LOSS_PARAMS.from_logit: loss 'sparse_categorical_crossentropy' has no such "
            "argument. Did you mean 'from_logits'?",
        ),
        (
            {"MODEL.METRICS": [{"METRIC_NAME": "accuracy", "METRIC_PARAMS": {"nam": "acc"}}]},
            "MODEL.METRICS.0.METRIC_PARAMS.nam: metric 'accuracy' has no such argument. "
            "Did you mean 'name'?",
        ),
        (
            {"MODEL.OPTIMIZER_PARAMS": {"LEARNING_RATE": -0.1}},
            "MODEL.OPTIMIZER_PARAMS.LEARNING_RATE: must be a number > 0",
        ),
        (
            {
                "MODEL.OPTIMIZER_PARAMS": {
                    "LEARNING_RATE": {**SCHEDULE, "SCHEDULE_PARAMS": {"decay_step": 10}}
                }
            },
            "MODEL.OPTIMIZER_PARAMS.LEARNING_RATE.SCHEDULE_PARAMS.decay_step: learning-rate "
            "schedule 'cosine_decay' has no such argument. Did you mean 'decay_steps'?",
        ),
        (
            {
                "TRAINING.CALLBACKS": callback(
                    "learning_rate_scheduler",
                    SCHEDULE_NAME="exponential_decay",
                    SCHEDULE_PARAMS={"decay_rat": 0.5},
                )
            },
            "TRAINING.CALLBACKS.0.CALLBACK_PARAMS.SCHEDULE_PARAMS.decay_rat: learning-rate "
            "schedule 'exponential_decay' has no such argument. Did you mean 'decay_rate'?",
        ),
    ],
    ids=[
        "optimizer-argument",
        "learning-rate-key",
        "callback-argument",
        "callback-type",
        "monitor",
        "loss-argument",
        "metric-argument",
        "negative-rate",
        "schedule-argument",
        "epoch-schedule-argument",
    ],
)
def test_validate_names_the_bad_component_argument(make_params, capsys, updates, expected):
    code, err = validate(make_params, capsys, updates)
    assert code == 1
    assert expected in err, err


def test_several_component_problems_are_reported_together(make_params, capsys):
    code, err = validate(
        make_params,
        capsys,
        {
            "MODEL.OPTIMIZER_PARAMS": {"beta_11": 0.9},
            "TRAINING.CALLBACKS": callback("early_stopping", patiense=3),
        },
    )
    assert code == 1
    assert "beta_11" in err and "patiense" in err


def test_pretrained_weights_that_are_not_on_disk(make_params, capsys, tmp_path, monkeypatch):
    """imagenet passes validate (the train stage fetches it: validate reaches no network);
    a local weights file that is not there is named."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no Keras cache there
    updates = {
        "MODEL.MODEL_NAME": "mobilenet_v2",
        "MODEL.MODEL_PARAMS": {
            "INPUT_SHAPE": [32, 32, 3],
            "NUM_CLASSES": 10,
            "WEIGHTS": "imagenet",
        },
    }
    code, err = validate(make_params, capsys, updates)
    assert code == 0, err
    updates["MODEL.MODEL_PARAMS"]["WEIGHTS"] = str(tmp_path / "missing.h5")
    code, err = validate(make_params, capsys, updates)
    assert code == 1 and "missing.h5' not found" in err


def test_good_component_arguments_pass(make_params, capsys):
    code, err = validate(
        make_params,
        capsys,
        {
            "MODEL.OPTIMIZER_PARAMS": {"LEARNING_RATE": SCHEDULE | {"SCHEDULE_PARAMS": {
                "initial_learning_rate": 0.1, "decay_steps": 10}}, "beta_1": 0.8},
            "TRAINING.CALLBACKS": callback("early_stopping", monitor="val_accuracy", patience=2),
        },
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_the_command_exits_non_zero_with_one_message(make_params):
    _, path = make_params({"TRAINING.CALLBACKS": callback("early_stopping", patiense=3)})
    result = kerapipe("validate", "--params", str(path))
    assert result.returncode == 1
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert "Did you mean 'patience'?" in result.stderr
