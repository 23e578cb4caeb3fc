"""keras-hub presets (issue 23, item 3): a preset's backbone with the task's head, tested offline
with a small preset this test saves (a ResNet backbone and its image converter)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from kerapipe.checks import check_params
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError
from kerapipe.models.base import Head, model_builder
from kerapipe.registry import Registry
from tests.helpers import REPO, context

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture
def preset(tiny_preset) -> Path:
    return tiny_preset


def hub_params(preset: Path, **updates) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["MODEL"]["MODEL_NAME"] = "keras_hub"
    params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": [32, 32, 1], "PRESET": str(preset)}
    for dotted, value in updates.items():
        group, key = dotted.split(".", 1)
        params[group][key] = value
    return params


def test_a_preset_backbone_takes_the_tasks_head_and_its_own_scaling(preset):
    builder = model_builder(validate_params(hub_params(preset)))
    model = builder.build(Head(3, "softmax"))
    assert model.get_layer("base").__class__.__name__ == "ResNetBackbone"
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    import keras

    scaled = keras.Model(model.inputs, model.get_layer("preprocess").output)(pixels)
    rgb = np.repeat(pixels, 3, axis=-1)
    expected = (rgb / 255.0 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(scaled, expected, rtol=1e-4, atol=1e-4)
    assert model(pixels).shape == (2, 3)


def test_a_missing_preset_folder_is_named_at_the_door(tmp_path):
    with pytest.raises(ConfigError, match="PRESET: folder .*nowhere' not found"):
        check_params(validate_params(hub_params(tmp_path / "nowhere")))


def test_rgba_is_refused_at_the_door(preset):
    rgba = hub_params(preset)
    rgba["MODEL"]["MODEL_PARAMS"]["INPUT_SHAPE"] = [32, 32, 4]
    with pytest.raises(ConfigError, match="keras_hub takes RGB images, got 4 channels"):
        check_params(validate_params(rgba))


def test_a_missing_package_names_the_install_that_works():
    registry = Registry("model")
    registry.register(
        "x", "a:b", requires=("kerapipe_not_installed",), install="pip install --no-deps y"
    )
    with pytest.raises(ConfigError, match=r"Install them \(pip install --no-deps y\)"):
        registry.check("x", "MODEL.MODEL_NAME")


@pytest.mark.e2e
def test_fine_tune_a_preset_then_load_and_predict(preset, make_params, tmp_path, digits):
    """Train a preset's backbone fine-tuned (one frozen epoch, then its top 6 layers
    unfrozen) on three of the digits' classes, resume it for a third epoch in the unfrozen
    phase (the layers left frozen stay so: a keras-hub backbone's config does not say which
    they are, so the checkpoint is loaded into the model built from the params, optimizer
    state included), save, and load the model back with Keras alone to predict."""
    import warnings

    import keras

    from kerapipe.steps.inventory import run_inventory
    from kerapipe.steps.train import run_training

    data = tmp_path / "three"
    for name in ("zero", "one", "two"):
        shutil.copytree(digits / "train" / name, data / name)
    params, _ = make_params()
    params = copy.deepcopy(params)
    params["DATA"].update(INVENTORY_DATA_DIR=str(data), PREDICTION_LABELS=None)
    params["PIPELINE"]["TASK_PARAMS"] = {}
    params["MODEL"] = hub_params(preset)["MODEL"]
    params["TRAINING"].update(NUM_EPOCHS=2, FINE_TUNING={"FROZEN_EPOCHS": 1, "UNFREEZE": 6})
    params["TRAINING"].update(LOAD_CHECKPOINT=True)
    ctx = context(validate_params(params))
    run_inventory(ctx)
    run_training(ctx)
    params["TRAINING"].update(NUM_EPOCHS=3, FORCE=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_training(context(validate_params(params))).initial_epoch == 2
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    run_dir = tmp_path / "models" / "digits_cnn"
    second, third = (
        keras.saving.load_model(run_dir / "checkpoints" / f"epoch_000{n}.keras", compile=False)
        for n in (2, 3)
    )
    layers = list(zip(second.get_layer("base").layers, third.get_layer("base").layers, strict=True))
    changed = [i for i, (a, b) in enumerate(layers)
               if not all(map(np.array_equal, a.get_weights(), b.get_weights()))]  # fmt: skip
    assert changed and min(changed) >= len(layers) - 6
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    images = np.zeros((2, 32, 32, 1), "float32")
    assert model.predict(images, verbose=0).shape == (2, 3)
    info = json.loads((run_dir / "run_info.json").read_text())
    recorded = info["weights_files"]["MODEL.MODEL_PARAMS.PRESET"]
    assert recorded["given"].endswith("model.weights.h5") and len(recorded["sha256"]) == 64
