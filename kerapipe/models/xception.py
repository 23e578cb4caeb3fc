"""Backbones from ``keras.applications`` with a pooled dense head.

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
    """A ``keras.applications`` network without its top, plus pooling, dropout and the head."""

    Params = ApplicationParams
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

    def build(self, head: Head):
        import keras
        from keras import layers

        weights = self.weights_path()
        inputs = keras.Input(shape=tuple(self.params.INPUT_SHAPE), name="image")
        x = layers.Rescaling(self.scale, offset=self.offset)(inputs)
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
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(self.params.DROPOUT)(x)
        outputs = layers.Dense(head.units, activation=head.activation, dtype="float32")(x)
        return keras.Model(inputs, outputs, name=self.name)


@register_model("xception", summary="keras.applications.Xception backbone (inputs >= 71x71)")
class Xception(ApplicationBuilder):
    application = "Xception"
    imagenet_file = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    min_input_size = 71
