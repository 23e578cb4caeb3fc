"""Components from other packages: a real package, pip-installed into a folder on the test
environment's path, adds a model, a loss and an augmentation through entry points; params.yaml
names them and `kerapipe train` trains with them, without any change to kerapipe."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import BIN, run, tool_env

pytestmark = pytest.mark.e2e

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "kerapipe-tiny-plugin"
version = "0.1"

[project.entry-points."kerapipe.models"]
tiny_mlp = "kerapipe_tiny_plugin.models:TinyMLP"
simple_cnn = "kerapipe_tiny_plugin.models:TinyMLP"

[project.entry-points."kerapipe.losses"]
smoothed_crossentropy = "kerapipe_tiny_plugin.losses:SmoothedCrossentropy"

[project.entry-points."kerapipe.augmentations"]
brightness = "kerapipe_tiny_plugin.augmentations:Brightness"
"""

MODELS = '''
from pydantic import Field

from kerapipe.models.base import BaseModelParams, ModelBuilder


class TinyParams(BaseModelParams):
    UNITS: int = Field(16, ge=1)


class TinyMLP(ModelBuilder):
    """One hidden layer."""

    Params = TinyParams

    def build(self, head):
        import keras

        inputs = keras.Input(tuple(self.params.INPUT_SHAPE))
        x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
        x = keras.layers.Dense(self.params.UNITS, activation="relu")(x)
        outputs = keras.layers.Dense(head.units, activation=head.activation)(x)
        return keras.Model(inputs, outputs, name="tiny_mlp")
'''

LOSSES = '''
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerapipe_tiny_plugin")
class SmoothedCrossentropy(keras.losses.Loss):
    """Sparse cross-entropy against labels smoothed by ``smoothing``."""

    def __init__(self, smoothing=0.1, reduction="sum_over_batch_size",
                 name="smoothed_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes)
        target = one_hot * (1 - self.smoothing) + self.smoothing / classes
        return -ops.sum(target * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}
'''

AUGMENTATIONS = '''
from pydantic import Field

from kerapipe.augmentations import Augmentation
from kerapipe.config import Group


class BrightnessParams(Group):
    DELTA: float = Field(gt=0, le=255)


class Brightness(Augmentation):
    """Adds a random offset in [-DELTA, DELTA] to every pixel (the mask stays)."""

    Params = BrightnessParams
    geometric = False

    def apply(self, image, mask, seed):
        import tensorflow as tf

        delta = self.params.DELTA
        offset = tf.random.stateless_uniform([], seed, -delta, delta)
        return tf.clip_by_value(image + offset, 0.0, 255.0), mask
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The plug-in package, built and installed (pip, no network) into its own folder."""
    source = tmp_path_factory.mktemp("plugin_source")
    (source / "pyproject.toml").write_text(PYPROJECT)
    package = source / "kerapipe_tiny_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in [("models", MODELS), ("losses", LOSSES), ("augmentations", AUGMENTATIONS)]:
        (package / f"{name}.py").write_text(textwrap.dedent(text))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return target


def kerapipe(args, cwd, plugin_path, check=True):
    env = tool_env()
    # The plug-in's folder first, and whatever PYTHONPATH the tests run under (a worktree's).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_path), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [str(BIN / "kerapipe"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_components_lists_the_plug_ins_and_keeps_built_in_names(plugin_path, tmp_path):
    result = kerapipe(["components"], tmp_path, plugin_path)
    assert "tiny_mlp" in result.stdout and "from kerapipe-tiny-plugin" in result.stdout
    assert "smoothed_crossentropy" in result.stdout and "brightness" in result.stdout
    assert "UNITS = 16" in result.stdout  # the plug-in model's own MODEL_PARAMS
    assert "registers model 'simple_cnn', which kerapipe already has" in result.stderr
    assert "conv blocks" in result.stdout  # the built-in simple_cnn kept its place


def test_train_and_predict_with_plug_in_components(plugin_path, make_params, tmp_path):
    _, path = make_params(
        {
            "MODEL.MODEL_NAME": "tiny_mlp",
            "MODEL.MODEL_PARAMS.UNITS": 32,
            "MODEL.LOSS_NAME": "smoothed_crossentropy",
            "MODEL.LOSS_PARAMS": {"smoothing": 0.05},
            "TRAINING.NUM_EPOCHS": 2,
            "TRAINING.AUGMENTATIONS": [
                {"AUGMENTATION_NAME": "brightness", "AUGMENTATION_PARAMS": {"DELTA": 10}}
            ],
        }
    )
    for command in ("validate", "inventory", "train", "predict"):
        kerapipe([command, "--params", str(path)], tmp_path, plugin_path)
    log = pd.read_csv(tmp_path / "models" / "digits_cnn" / "training_log.csv")
    assert list(log.epoch) == [0, 1] and log.val_accuracy.iloc[-1] > 0.5
    predictions = pd.read_csv(tmp_path / "predictions" / "predictions.csv")
    assert len(predictions) == 180

    # A misspelt plug-in argument is caught like a built-in one.
    _, bad = make_params(
        {
            "MODEL.MODEL_NAME": "tiny_mlp",
            "MODEL.LOSS_NAME": "smoothed_crossentropy",
            "MODEL.LOSS_PARAMS": {"smoothng": 0.05},
        }
    )
    result = kerapipe(["validate", "--params", str(bad)], tmp_path, plugin_path, check=False)
    assert result.returncode == 1 and "Did you mean 'smoothing'?" in result.stderr


def test_without_the_package_the_names_are_unknown(make_params, tmp_path):
    _, path = make_params({"MODEL.MODEL_NAME": "tiny_mlp"})
    result = run([str(BIN / "kerapipe"), "validate", "--params", str(path)], tmp_path, check=False)
    assert result.returncode == 1 and "unknown model 'tiny_mlp'" in result.stderr
