"""Models from keras.applications, local weight files, INITIAL_WEIGHTS, and the three save
formats loading where a user would load them."""

import copy
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerapipe.config import validate_params
from kerapipe.errors import ModelError
from kerapipe.models.base import Head, model_builder
from kerapipe.training.model import load_initial_weights

APPLICATIONS = ["mobilenet_v2", "efficientnet_b0", "resnet50"]


def builder(default_params, name, **model_params):
    default_params["MODEL"]["MODEL_NAME"] = name
    default_params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": [32, 32, 3], "NUM_CLASSES": 10}
    default_params["MODEL"]["MODEL_PARAMS"].update(model_params)
    return model_builder(validate_params(default_params))


def images(count=2, channels=3):
    return np.random.RandomState(0).uniform(0, 255, (count, 32, 32, channels)).astype("float32")


@pytest.mark.parametrize("name", APPLICATIONS)
def test_application_models_build_with_a_frozen_base(default_params, name):
    model = builder(default_params, name, FREEZE_BASE=True, DROPOUT=0.5).build(Head(10, "softmax"))
    assert model(images()).shape == (2, 10)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable < 25_000  # only the dense head


def test_local_weights_file_is_loaded(default_params, tmp_path):
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    weights = tmp_path / "mobilenet_v2_notop.weights.h5"
    base.save_weights(weights)
    model = builder(default_params, "mobilenet_v2", WEIGHTS=str(weights)).build(Head(10, "softmax"))
    loaded = model.get_layer("base")
    for ours, theirs in zip(loaded.get_weights(), base.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_weights_of_another_architecture_fail_clearly(default_params, tmp_path):
    other = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    weights = tmp_path / "efficientnet.weights.h5"
    other.save_weights(weights)
    with pytest.raises(ModelError, match="does not fit a headless mobilenet_v2"):
        builder(default_params, "mobilenet_v2", WEIGHTS=str(weights)).build(Head(10, "softmax"))


def test_missing_weights_file(default_params):
    with pytest.raises(ModelError, match="WEIGHTS: file 'nope.h5' not found"):
        builder(default_params, "resnet50", WEIGHTS="nope.h5").build(Head(10, "softmax"))


def simple_cnn(default_params, **model_params):
    params = copy.deepcopy(default_params)
    params["MODEL"]["MODEL_PARAMS"].update(model_params)
    return model_builder(validate_params(params)).build(Head(10, "softmax"))


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_initial_weights_from_a_previous_model(default_params, tmp_path, suffix):
    previous = simple_cnn(default_params)
    path = tmp_path / f"previous{suffix}"
    previous.save(path) if suffix == ".keras" else previous.save_weights(path)
    fresh = simple_cnn(default_params)
    load_initial_weights(fresh, str(path))
    for ours, theirs in zip(fresh.get_weights(), previous.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_initial_weights_that_do_not_match_name_the_layer(default_params, tmp_path):
    path = tmp_path / "wide.keras"
    simple_cnn(default_params, DENSE_UNITS=64).save(path)
    with pytest.raises(ModelError, match=r"weight dense(_\d+)?/kernel has shape \(1024, 64\)"):
        load_initial_weights(simple_cnn(default_params), str(path))


PLAIN_KERAS = """
import sys, numpy as np, keras
model = keras.saving.load_model(sys.argv[1], compile=False)
assert not any(name.startswith("kerapipe") for name in sys.modules), "kerapipe was imported"
print(model(np.zeros((1,) + model.input_shape[1:], "float32")).shape)
"""

SAVED_MODEL = """
import sys, numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
(spec,) = served.structured_input_signature[1].values()
output = served(tf.zeros([1, *spec.shape[1:]]))
assert not any(name.startswith("kerapipe") for name in sys.modules)
print(list(output.values())[0].shape)
"""


@pytest.mark.e2e  # TensorFlow in a process of its own
@pytest.mark.parametrize("name", ["simple_cnn", "resnet50"])
def test_keras_file_loads_without_kerapipe(default_params, tmp_path, name):
    if name == "simple_cnn":
        model = simple_cnn(default_params)
    else:
        model = builder(default_params, name).build(Head(10, "softmax"))
    path = tmp_path / "model.keras"
    model.save(path)
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "(1, 10)" in result.stdout


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_tf_export_serves_a_signature(default_params, tmp_path):
    from kerapipe.artifacts import save_model

    path = tmp_path / "model.tf"
    save_model(simple_cnn(default_params), path, "tf")
    result = subprocess.run(
        [sys.executable, "-c", SAVED_MODEL, str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "(1, 10)" in result.stdout


def test_h5_save_keeps_the_weights(default_params, tmp_path):
    from kerapipe.artifacts import load_model, save_model

    model = simple_cnn(default_params)
    save_model(model, tmp_path / "model.h5", "h5")
    again = load_model(tmp_path / "model.h5", "h5")
    x = images(channels=1)[:, :16, :16]
    np.testing.assert_allclose(again(x), model(x), rtol=1e-6)


def test_bad_model_file_is_a_clear_error(tmp_path):
    from kerapipe.artifacts import load_model

    (tmp_path / "model.keras").write_text("not a zip")
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(tmp_path / "model.keras", "keras")
    with pytest.raises(ModelError, match="not found. Train it first"):
        load_model(tmp_path / "absent.keras", "keras")


def test_params_file_round_trip_of_builder_defaults(default_params):
    """`kerapipe components` shows each model's MODEL_PARAMS with their defaults."""
    from kerapipe.registry import MODELS

    described = MODELS.get("resnet50").describe()
    assert described == {
        "INPUT_SHAPE": "required",
        "NUM_CLASSES": "None",  # derived from the task when left out
        "INITIAL_WEIGHTS": "None",
        "INITIAL_WEIGHTS_SHA256": "None",
        "WEIGHTS": "None",
        "WEIGHTS_SHA256": "None",
        "DROPOUT": "0.2",
        "FREEZE_BASE": "False",
    }
