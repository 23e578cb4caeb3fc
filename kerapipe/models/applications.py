"""Backbones from ``keras.applications``: Xception, MobileNetV2, EfficientNetB0, ResNet50,
with a pooled dense head (or a per-pixel head for segmentation).

Weights are never downloaded: ``WEIGHTS`` is ``null`` (random init), a local ``.h5`` weights
file for the headless network, or ``imagenet`` if that file is already in Keras' cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from kerapipe.errors import ConfigError, ModelError
from kerapipe.models.base import BaseModelParams, Head, ModelBuilder
from kerapipe.registry import register_model


class ApplicationParams(BaseModelParams):
    WEIGHTS: str | None = None
    DROPOUT: float = Field(0.2, ge=0.0, lt=1.0)
    FREEZE_BASE: bool = False


class ApplicationBuilder(ModelBuilder):
    """A ``keras.applications`` network without its top, plus pooling, dropout and the head.

    A spatial head (segmentation) is instead a 1x1 convolution on the backbone's last feature
    map, resized bilinearly to the input size (FCN-style; coarse, at 1/32 of the input).
    """

    Params = ApplicationParams
    spatial_output = True
    application: ClassVar[str]  # attribute of keras.applications
    imagenet_file: ClassVar[str]  # the headless weights file Keras would download
    scale: ClassVar[float] = 1.0 / 127.5  # input scaling the pretrained weights expect
    offset: ClassVar[float] = -1.0

    def check_input_shape(self, shape: tuple[int, int, int]) -> None:
        super().check_input_shape(shape)
        if self.params.WEIGHTS and shape[2] != 3:
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.INPUT_SHAPE: pretrained {self.name} weights need 3 "
                f"channels, got {list(shape)}. Set the last entry to 3 (grayscale images "
                "are expanded) or set WEIGHTS to null."
            )

    def check_files(self) -> None:
        super().check_files()
        self.weights_path()

    def weights_path(self) -> str | None:
        weights = self.params.WEIGHTS
        if weights is None:
            return None
        if weights == "imagenet":
            cached = Path.home() / ".keras" / "models" / self.imagenet_file
            if cached.is_file():
                return str(cached)
            raise ModelError(
                f"MODEL.MODEL_PARAMS.WEIGHTS: 'imagenet' needs {self.imagenet_file}, which "
                "kerapipe never downloads. Copy that file to this machine and set WEIGHTS to "
                f"its path (or place it at {cached}), or set WEIGHTS to null."
            )
        if not Path(weights).is_file():
            raise ModelError(
                f"MODEL.MODEL_PARAMS.WEIGHTS: file {weights!r} not found. Give the path of a "
                f"local {self.name} weights file without the top, or set WEIGHTS to null."
            )
        return weights

    def preprocess(self, inputs):
        """Scale raw 0-255 pixels the way the pretrained weights expect, with built-in layers
        only, so the saved model loads in safe mode without kerapipe."""
        from keras import layers

        return layers.Rescaling(self.scale, offset=self.offset, name="preprocess")(inputs)

    def build(self, head: Head):
        import keras
        from keras import layers

        weights = self.weights_path()
        inputs = keras.Input(shape=tuple(self.params.INPUT_SHAPE), name="image")
        x = self.preprocess(inputs)
        base = getattr(keras.applications, self.application)(
            include_top=False, weights=None, input_shape=tuple(self.params.INPUT_SHAPE)
        )
        if weights:
            try:
                base.load_weights(weights)
            except (ValueError, OSError) as err:
                raise ModelError(
                    f"MODEL.MODEL_PARAMS.WEIGHTS: {weights!r} does not fit a headless "
                    f"{self.name}: {err}"
                ) from None
        base.trainable = not self.params.FREEZE_BASE
        x = base(x)
        if head.spatial:
            x = layers.Dropout(self.params.DROPOUT)(x)
            x = layers.Conv2D(head.units, 1, name="pixel_logits")(x)
            height, width = self.params.INPUT_SHAPE[:2]
            x = layers.Resizing(height, width, interpolation="bilinear")(x)
            outputs = layers.Activation(head.activation, dtype="float32", name="pixel_scores")(x)
            return keras.Model(inputs, outputs, name=self.name)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(self.params.DROPOUT)(x)
        outputs = layers.Dense(head.units, activation=head.activation, dtype="float32")(x)
        return keras.Model(inputs, outputs, name=self.name)


@register_model("xception", summary="keras.applications.Xception backbone (inputs >= 71x71)")
class Xception(ApplicationBuilder):
    application = "Xception"
    imagenet_file = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    min_input_size = 71


@register_model("mobilenet_v2", summary="keras.applications.MobileNetV2 backbone (inputs >= 32x32)")
class MobileNetV2(ApplicationBuilder):
    application = "MobileNetV2"
    imagenet_file = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    min_input_size = 32


@register_model("efficientnet_b0", summary="keras.applications.EfficientNetB0 backbone (>= 32x32)")
class EfficientNetB0(ApplicationBuilder):
    application = "EfficientNetB0"
    imagenet_file = "efficientnetb0_notop.h5"
    min_input_size = 32
    scale, offset = 1.0, 0.0  # EfficientNet rescales 0-255 inputs itself


@register_model("resnet50", summary="keras.applications.ResNet50 backbone (inputs >= 32x32)")
class ResNet50(ApplicationBuilder):
    application = "ResNet50"
    imagenet_file = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    min_input_size = 32
    imagenet_mean_bgr = (103.939, 116.779, 123.68)

    def preprocess(self, inputs):
        """Caffe-style: RGB to BGR and ImageNet mean subtraction, as a frozen 1x1 convolution."""
        import numpy as np
        from keras import layers

        channels = self.params.INPUT_SHAPE[2]
        if channels != 3:
            return layers.Rescaling(1.0, offset=-float(np.mean(self.imagenet_mean_bgr)))(inputs)
        convert = layers.Conv2D(3, 1, trainable=False, name="preprocess")
        outputs = convert(inputs)
        flip = np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)
        convert.set_weights([flip, -np.array(self.imagenet_mean_bgr, dtype="float32")])
        return outputs
