"""U-Net (Ronneberger et al., 2015): an encoder-decoder with skip connections that outputs one
class-score vector per pixel, the usual first choice for segmentation from scratch.

Only built-in Keras layers, so a saved model loads with ``safe_mode`` and without kerapipe.
"""

from __future__ import annotations

from pydantic import Field

from kerapipe.errors import ConfigError
from kerapipe.models.base import BaseModelParams, Head, ModelBuilder
from kerapipe.registry import register_model


class UNetParams(BaseModelParams):
    DEPTH: int = Field(
        3, ge=1, le=6, description="2x down-samplings; each level doubles the filters"
    )
    FILTERS: int = Field(16, ge=1, description="filters of the first (full-resolution) level")
    BATCH_NORM: bool = Field(True, description="batch normalisation after each conv")
    DROPOUT: float = Field(
        0.0, ge=0.0, lt=1.0, description="dropout before the bottleneck's last conv"
    )


@register_model(
    "unet",
    summary="U-Net: DEPTH down/up-sampling levels with skip connections; per-pixel head "
    "(segmentation) or pooled head",
)
class UNet(ModelBuilder):
    """``DEPTH`` encoder levels of two 3x3 convolutions and a 2x max-pool, a bottleneck, and
    ``DEPTH`` decoder levels that up-sample (transposed conv) and concatenate the encoder's
    features of the same size. Height and width must be multiples of ``2**DEPTH``."""

    Params = UNetParams
    spatial_output = True

    @property
    def min_input_size(self) -> int:  # type: ignore[override]
        return 2**self.params.DEPTH

    def check_input_shape(self, shape: tuple[int, int, int]) -> None:
        super().check_input_shape(shape)
        step = 2**self.params.DEPTH
        if shape[0] % step or shape[1] % step:
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.INPUT_SHAPE: unet with DEPTH {self.params.DEPTH} needs a "
                f"height and width that are multiples of {step}, got {list(shape)}. Change "
                "INPUT_SHAPE (images are resized to it) or DEPTH."
            )

    def build(self, head: Head):
        import keras
        from keras import layers

        p = self.params

        def conv_block(x, filters: int):
            for _ in range(2):
                x = layers.Conv2D(filters, 3, padding="same", use_bias=not p.BATCH_NORM)(x)
                if p.BATCH_NORM:
                    x = layers.BatchNormalization(momentum=0.9)(x)  # settles in few steps
                x = layers.Activation("relu")(x)
            return x

        inputs = keras.Input(shape=tuple(p.INPUT_SHAPE), name="image")
        x = layers.Rescaling(1.0 / 255)(inputs)
        skips = []
        for level in range(p.DEPTH):
            x = conv_block(x, p.FILTERS * 2**level)
            skips.append(x)
            x = layers.MaxPooling2D()(x)
        if p.DROPOUT:
            x = layers.Dropout(p.DROPOUT)(x)
        x = conv_block(x, p.FILTERS * 2**p.DEPTH)
        for level in reversed(range(p.DEPTH)):
            x = layers.Conv2DTranspose(p.FILTERS * 2**level, 2, strides=2, padding="same")(x)
            x = layers.Concatenate()([x, skips[level]])
            x = conv_block(x, p.FILTERS * 2**level)
        if head.spatial:
            outputs = layers.Conv2D(
                head.units, 1, activation=head.activation, dtype="float32", name="pixel_scores"
            )(x)
        else:
            x = layers.GlobalAveragePooling2D()(x)
            outputs = layers.Dense(head.units, activation=head.activation, dtype="float32")(x)
        return keras.Model(inputs, outputs, name=self.name or "unet")
