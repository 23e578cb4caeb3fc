"""A small convolutional network: the fast default for small images such as the digits sample."""

from __future__ import annotations

from pydantic import Field

from kerapipe.models.base import BaseModelParams, Head, ModelBuilder
from kerapipe.registry import register_model


class SimpleCNNParams(BaseModelParams):
    FILTERS: list[int] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        description="filters of each conv block; each block halves the image size",
    )
    DENSE_UNITS: int = Field(128, ge=1, description="units of the dense layer before the head")
    DROPOUT: float = Field(0.3, ge=0.0, lt=1.0, description="dropout before the head")


@register_model(
    "simple_cnn", summary="conv blocks (two 3x3 convs + max-pool each) and a dense head"
)
class SimpleCNN(ModelBuilder):
    """Each entry of ``FILTERS`` adds a block that halves the image size."""

    Params = SimpleCNNParams

    @property
    def min_input_size(self) -> int:  # type: ignore[override]
        return 2 ** len(self.params.FILTERS)

    def build(self, head: Head):
        import keras
        from keras import layers

        inputs = keras.Input(shape=tuple(self.params.INPUT_SHAPE), name="image")
        x = layers.Rescaling(1.0 / 255)(inputs)
        for filters in self.params.FILTERS:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(self.params.DENSE_UNITS, activation="relu")(x)
        x = layers.Dropout(self.params.DROPOUT)(x)
        outputs = layers.Dense(head.units, activation=head.activation, dtype="float32")(x)
        return keras.Model(inputs, outputs, name=self.name or "simple_cnn")
