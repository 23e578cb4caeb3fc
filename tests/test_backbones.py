"""Every ``keras.applications`` backbone by name (issue 23, item 2): the list derived from the
installed Keras, each registered and listed by ``kerapipe components``, its smallest input and
channel rule checked before any work, its own preprocessing inside the model, and every one
built with random weights at its smallest input."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from kerapipe.checks import check_params
from kerapipe.config import validate_params
from kerapipe.errors import ConfigError
from kerapipe.models.base import Head, model_builder
from kerapipe.models.derive_backbones import backbone_name, derive_backbones, table_text
from kerapipe.models.keras_backbones import BACKBONES
from kerapipe.registry import MODELS, describe_all
from tests.helpers import REPO

NAMES = [name for name, *_ in BACKBONES]


def backbone(default_params: dict, name: str, shape: list[int], **extra) -> dict:
    params = copy.deepcopy(default_params)
    params["MODEL"]["MODEL_NAME"] = name
    params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": shape, **extra}
    return params


def test_the_table_is_keras_own():
    """The committed table is what the installed Keras says: a Keras that adds, renames or
    resizes a backbone fails here (``python -m kerapipe.models.derive_backbones``)."""
    table = REPO / "kerapipe" / "models" / "keras_backbones.py"
    assert table.read_text() == table_text(derive_backbones())
    assert len(BACKBONES) == 40  # Keras 3.15's keras.applications


def test_names_follow_the_constructors():
    assert [backbone_name(c) for c in ("MobileNetV3Small", "ResNet101V2", "EfficientNetV2S")] == [
        "mobilenet_v3_small", "resnet101_v2", "efficientnet_v2_s"
    ]  # fmt: skip
    assert {"xception", "mobilenet_v2", "efficientnet_b0", "resnet50"} <= set(NAMES)  # as before


def test_every_backbone_is_registered_and_listed():
    listed = describe_all()
    for name, constructor, _, size in BACKBONES:
        assert name in MODELS
        assert f"keras.applications.{constructor} backbone (inputs >= {size}x{size})" in listed


def test_smallest_input_and_channels_are_checked_before_any_work(default_params):
    small = validate_params(backbone(default_params, "inception_v3", [74, 74, 3]))
    with pytest.raises(ConfigError, match=r"inception_v3 needs images of at least 75x75"):
        check_params(small)
    check_params(validate_params(backbone(default_params, "inception_v3", [75, 75, 3])))
    rgba = validate_params(backbone(default_params, "resnet50", [32, 32, 4]))
    with pytest.raises(ConfigError, match="resnet50 takes RGB images, got 4 channels"):
        check_params(rgba)


def test_grey_images_are_repeated_to_three_channels_inside_the_model(default_params, caplog):
    """A 1-channel INPUT_SHAPE: the model takes grey images and gives the backbone the grey
    repeated to RGB, so ImageNet weights see the colour images they were trained on; the
    run's log says so."""
    grey = model_builder(validate_params(backbone(default_params, "mobilenet_v2", [32, 32, 1])))
    rgb = model_builder(validate_params(backbone(default_params, "mobilenet_v2", [32, 32, 3])))
    caplog.set_level("INFO")
    grey_model = grey.build(Head(3, "softmax"))
    assert "each grey image is repeated to 3 inside the model" in caplog.text
    rgb_model = rgb.build(Head(3, "softmax"))
    rgb_model.set_weights(grey_model.get_weights())
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(
        grey_model(pixels), rgb_model(np.repeat(pixels, 3, axis=-1)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("name", "module"),
    [("resnet50", "resnet"), ("densenet121", "densenet"), ("xception", "xception")],
)
def test_each_backbone_scales_pixels_as_its_keras_preprocess_input(default_params, name, module):
    """Caffe (BGR, mean), torch (mean, std) and tf (-1..1) scaling, built into the model."""
    import keras

    size = MODELS.get(name).min_input_size
    builder = model_builder(validate_params(backbone(default_params, name, [size, size, 3])))
    model = builder.build(Head(3, "softmax"))
    pixels = np.random.default_rng(2).uniform(0, 255, (2, size, size, 3)).astype("float32")
    scaled = keras.Model(model.inputs, model.get_layer("preprocess").output)(pixels)
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    np.testing.assert_allclose(scaled, expected, rtol=1e-5, atol=1e-3)
    assert not model.get_layer("preprocess").trainable


def test_backbones_that_scale_inside_themselves_get_no_preprocessing(default_params):
    builder = model_builder(validate_params(backbone(default_params, "efficientnet_b0", [32] * 2
                                                     + [3])))  # fmt: skip
    names = [layer.name for layer in builder.build(Head(3, "softmax")).layers]
    assert "preprocess" not in names and "base" in names and "features" in names


@pytest.mark.e2e  # 40 builds, up to ConvNeXt XLarge's 348 million weights
@pytest.mark.parametrize(("name", "size"), [(name, size) for name, _, _, size in BACKBONES])
def test_every_backbone_builds_at_its_smallest_input(default_params, name, size):
    """Built as the train stage builds it, grey input and preprocessing included, its
    weights initialised; the sampled contract models (tests/test_contracts.py) also train a
    step and predict, and four go through save, load and predict."""
    import keras

    params = validate_params(backbone(default_params, name, [size, size, 1]))
    model = model_builder(check_params(params)).build(Head(3, "softmax"))
    assert model.input_shape == (None, size, size, 1) and model.output_shape == (None, 3)
    assert model.get_layer("base").count_params() > 0
    keras.backend.clear_session()
