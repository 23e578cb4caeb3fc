"""Contract tests over the registries: a component is tested the moment it registers.

Every model builds for each task it supports, trains a step, and round-trips each save
format (of the 40 keras.applications backbones, a sample of each kind, for classification
and two of them for each other task: all 40 build in tests/test_backbones.py); every loss,
metric, optimizer, callback, schedule and augmentation builds from its defaults (plus the
arguments it requires) and rejects a misspelt argument by its name.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from kerapipe.augmentations import augment
from kerapipe.checks import check_params
from kerapipe.components import accepted_arguments, build
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError
from kerapipe.models.base import model_builder
from kerapipe.models.keras_backbones import BACKBONES as KERAS_BACKBONES
from kerapipe.registry import (
    AUGMENTATIONS,
    CALLBACKS,
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    SCHEDULES,
    TASKS,
)
from kerapipe.tasks.base import get_task
from tests.helpers import REPO

# The arguments a component cannot do without (everything else keeps its default).
DECAY = {"initial_learning_rate": 0.1, "decay_steps": 10}
REQUIRED = {
    ("metric", "iou"): {"num_classes": 3, "target_class_ids": [0]},
    ("metric", "one_hot_iou"): {"num_classes": 3, "target_class_ids": [0]},
    ("metric", "mean_iou"): {"num_classes": 3},
    ("metric", "one_hot_mean_iou"): {"num_classes": 3},
    ("metric", "precision_at_recall"): {"recall": 0.5},
    ("metric", "recall_at_precision"): {"precision": 0.5},
    ("metric", "sensitivity_at_specificity"): {"specificity": 0.5},
    ("metric", "specificity_at_sensitivity"): {"sensitivity": 0.5},
    ("callback", "learning_rate_scheduler"): {
        "SCHEDULE_NAME": "cosine_decay",
        "SCHEDULE_PARAMS": DECAY,
    },
    ("learning-rate schedule", "cosine_decay"): DECAY,
    ("learning-rate schedule", "polynomial_decay"): DECAY,
    ("learning-rate schedule", "exponential_decay"): {**DECAY, "decay_rate": 0.5},
    ("learning-rate schedule", "inverse_time_decay"): {**DECAY, "decay_rate": 0.5},
    ("learning-rate schedule", "cosine_decay_restarts"): {
        "initial_learning_rate": 0.1,
        "first_decay_steps": 10,
    },
    ("learning-rate schedule", "piecewise_constant_decay"): {
        "boundaries": [10],
        "values": [0.1, 0.01],
    },
    ("augmentation", "rotation"): {"FACTOR": 0.1},
    ("augmentation", "zoom"): {"FACTOR": 0.1},
    ("augmentation", "contrast"): {"FACTOR": 0.1},
}
KERAS_KINDS = [LOSSES, METRICS, OPTIMIZERS, CALLBACKS, SCHEDULES]
COMPONENTS = [
    pytest.param(registry, name, id=f"{registry.kind}-{name}")
    for registry in KERAS_KINDS
    for name in registry.names()
]


def required(registry, name: str) -> dict:
    return copy.deepcopy(REQUIRED.get((registry.kind, name), {}))


@pytest.mark.parametrize(("registry", "name"), COMPONENTS)
def test_every_keras_component_builds_from_its_defaults(registry, name):
    component = build(registry, name, required(registry, name), "KEY")
    assert component is not None
    missing = registry.entry(name).missing_packages()
    if missing:  # it builds, but the params check says what to install before training
        with pytest.raises(ConfigError, match=f"pip install {missing[0]}"):
            registry.check(name, "KEY")


@pytest.mark.parametrize(("registry", "name"), COMPONENTS)
def test_every_keras_component_rejects_a_misspelt_argument(registry, name):
    accepted, open_ended = accepted_arguments(registry.get(name))
    assert not open_ended, f"{name} takes any argument: misspellings could not be caught"
    argument = sorted(accepted)[0]
    misspelt = argument + "x"
    with pytest.raises(ConfigError) as caught:
        build(registry, name, {**required(registry, name), misspelt: 1}, "KEY")
    assert f"KEY.{misspelt}: {registry.kind} {name!r} has no such argument." in str(caught.value)
    assert f"Did you mean {argument!r}?" in str(caught.value)


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_augmentation_builds_runs_and_rejects_a_misspelt_param(name):
    import tensorflow as tf

    augmentation = AUGMENTATIONS.get(name)(required(AUGMENTATIONS, name), "KEY")
    image = tf.random.stateless_uniform((8, 8, 3), (1, 2), maxval=255.0)
    mask = tf.zeros((8, 8), tf.int32)
    out, moved = augment(image, tf.constant([3, 4]), [augmentation], mask=mask)
    assert out.shape == (8, 8, 3) and moved.shape == (8, 8) and moved.dtype == tf.int32
    key = sorted(augmentation.Params.model_fields)[0]
    with pytest.raises(ConfigError, match=rf"KEY.{key}x: unknown key. Did you mean '{key}'\?"):
        AUGMENTATIONS.get(name)({**required(AUGMENTATIONS, name), key + "x": 1}, "KEY")


# --- models ------------------------------------------------------------------------------------

TASK_PARAMS = {
    "classification": {"CLASS_NAMES": ["a", "b", "c"], "CLASS_LABELS": [0, 1, 2]},
    "segmentation": {"CLASS_NAMES": ["background", "a", "b"]},
    "regression": {"TARGET_COLUMNS": ["x", "y"]},
}


def model_params(model: str, task: str) -> dict:
    """The sample params set up for ``task`` with ``model`` at the smallest size it takes."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["PIPELINE"] = {"TASK_NAME": task, "TASK_PARAMS": TASK_PARAMS[task]}
    minimum = MODELS.get(model).min_input_size  # a class attribute, or a property of params
    size = max(32, minimum) if isinstance(minimum, int) else 32
    outputs = 2 if task == "regression" else 3
    params["MODEL"] = {
        "MODEL_NAME": model,
        "MODEL_PARAMS": {"INPUT_SHAPE": [size, size, 3], "NUM_CLASSES": outputs},
    }
    return params


def batch(task: str, shape: list[int], count: int = 4):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (count, *shape)).astype("float32")
    if task == "classification":
        return images, rng.integers(0, 3, count).astype("int32")
    if task == "segmentation":
        return images, rng.integers(0, 3, (count, *shape[:2])).astype("int32")
    return images, rng.normal(size=(count, 2)).astype("float32")


# Every model that is not one of the 40 keras.applications backbones (kerapipe's own and any
# plug-in), and backbones of each kind of preprocessing and stem: all 40 are built at their
# smallest input by tests/test_backbones.py.
BACKBONES = {name for name, *_ in KERAS_BACKBONES}
SAMPLED_BACKBONES = [
    "xception", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_b0",
    "resnet50",
]  # fmt: skip
CONTRACT_MODELS = [name for name in MODELS.names() if name not in BACKBONES] + SAMPLED_BACKBONES
# Four backbones through each Keras file format; a SavedModel export (the same code for any
# model, 8-15 s a backbone) takes one of them.
ROUND_TRIP_MODELS = [name for name in MODELS.names() if name not in BACKBONES] + [
    "xception", "mobilenet_v2", "efficientnet_b0", "resnet50",
]  # fmt: skip
EXPORTED_BACKBONE = "mobilenet_v2"
ROUND_TRIPS = [
    pytest.param(model, model_format, id=f"{model_format}-{model}")
    for model_format in ("keras", "h5", "tf")
    for model in ROUND_TRIP_MODELS
    if model_format != "tf" or model not in BACKBONES or model == EXPORTED_BACKBONE
]
# A sampled backbone's features meet each task's head the same way (pooled for
# classification and regression, a 1x1 convolution for segmentation): every sampled
# backbone trains a classification step, two of them each other task's.
OTHER_TASKS_SAMPLED = {"regression": ["efficientnet_b0", "xception"],
                       "segmentation": ["mobilenet_v3_small", "resnet50"]}  # fmt: skip
MODEL_TASKS = [
    pytest.param(model, task, id=f"{model}-{task}")
    for model in CONTRACT_MODELS
    for task in TASKS.names()
    if model not in SAMPLED_BACKBONES
    or task == "classification"
    or model in OTHER_TASKS_SAMPLED.get(task, ())
]


@pytest.fixture
def required_model_params(request) -> dict:
    """What a model cannot do without, by name (keras_hub: a preset, saved offline)."""
    if request.node.callspec.params["model"] == "keras_hub":
        return {"PRESET": str(request.getfixturevalue("tiny_preset"))}
    return {}


@pytest.mark.parametrize(("model", "task"), MODEL_TASKS)
def test_every_model_builds_and_trains_a_step_for_each_task_it_supports(
    model, task, required_model_params
):
    from kerapipe.components import build_loss, build_metrics

    params = model_params(model, task)
    params["MODEL"]["MODEL_PARAMS"].update(required_model_params)
    params = validate_params(params)
    if task == "segmentation" and not MODELS.get(model).spatial_output:
        with pytest.raises(ConfigError, match="gives one output per image"):
            check_params(params)
        return
    check_params(params)
    the_task = get_task(params)
    network = model_builder(params).build(the_task.head.output_head())
    network.compile(
        optimizer="adam",
        loss=build_loss(params.MODEL, the_task.head),
        metrics=build_metrics(params.MODEL, the_task.head),
        run_eagerly=True,  # one real step; tracing a large graph would cost far more
    )
    images, targets = batch(task, params.MODEL.MODEL_PARAMS["INPUT_SHAPE"])
    logs = network.train_on_batch(images, targets, return_dict=True)
    assert np.isfinite(logs["loss"]), logs
    expected = targets.shape + ((3,) if task != "regression" else ())
    assert network(images).shape == expected


@pytest.mark.e2e  # exporting a SavedModel of each backbone takes a while
@pytest.mark.parametrize(("model", "model_format"), ROUND_TRIPS)
def test_every_model_round_trips_each_format(model, model_format, tmp_path, required_model_params):
    from kerapipe.artifacts import load_model, save_model
    from kerapipe.backend import _as_array

    params = model_params(model, "classification")
    params["MODEL"]["MODEL_PARAMS"].update(required_model_params)
    params = validate_params(params)
    network = model_builder(params).build(get_task(params).head.output_head())
    images, _ = batch("classification", params.MODEL.MODEL_PARAMS["INPUT_SHAPE"], count=2)
    path = tmp_path / f"model.{model_format}"
    save_model(network, path, model_format)
    loaded = load_model(path, model_format)
    again = _as_array(loaded(images))
    np.testing.assert_allclose(again, network(images), rtol=1e-4, atol=1e-5)
