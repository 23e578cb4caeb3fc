"""keras-hub presets as backbones (``MODEL_NAME: keras_hub``): a preset's backbone (ResNet, ViT,
EfficientNet, DINOv2, ...) with the task's head on top: pooling over its feature map (or its
tokens), dropout and a dense layer.

``PRESET`` is a keras-hub preset name (``resnet_18_imagenet``), a handle (``kaggle://...``,
``hf://...``) or a local preset folder. keras-hub downloads a handle into its own cache, once.
The preset's image converter (its scale and offset) is built into the model as a frozen 1x1
convolution, as a ``keras.applications`` backbone's preprocessing is, so the model takes raw
0-255 pixels; loading the saved model needs keras-hub installed (its backbone classes), not
kerapipe.

keras-hub 0.32 requires ``tensorflow-text``, which requires the full ``tensorflow`` package, a
second TensorFlow build beside the ``cpu`` extra's ``tensorflow-cpu``; its image models do not
use it. Install: ``pip install -e ".[cpu,hub]" && pip install --no-deps "keras-hub==0.32.0"``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pydantic import Field

from kerapipe.errors import ConfigError, ModelError
from kerapipe.models.applications import grey_to_rgb, preprocessing_layer
from kerapipe.models.base import BASE, FEATURES, BaseModelParams, Head, ModelBuilder
from kerapipe.models.weights import WeightsSpec
from kerapipe.registry import register_model

if TYPE_CHECKING:
    import keras
    import numpy as np

INSTALL = 'pip install -e ".[cpu,hub]" && pip install --no-deps "keras-hub==0.32.0"'


class HubParams(BaseModelParams):
    PRESET: str = Field(
        description="a keras-hub preset: its name (resnet_18_imagenet), a handle "
        "(kaggle://..., hf://...) or a local preset folder"
    )
    DROPOUT: float = Field(0.2, ge=0.0, lt=1.0, description="dropout before the head")
    FREEZE_BASE: bool = Field(
        False,
        description="keep the preset's backbone frozen for the whole run (TRAINING.FINE_TUNING "
        "unfreezes it after some epochs instead)",
    )


@register_model(
    "keras_hub",
    summary="a keras-hub preset's backbone (PRESET: a name, kaggle://, hf:// or a folder) "
    "with the task's head (needs keras-hub)",
    requires=("keras_hub",),
    install=INSTALL,
)
class HubBuilder(ModelBuilder):
    """A keras-hub backbone from ``PRESET``, called as a pretrained base is
    (``training=False``), and the task's head."""

    Params = HubParams
    has_base = True
    rgb_only = True

    @property
    def pretrained(self) -> bool:
        return True  # a preset is its weights

    def check_files(self) -> None:
        super().check_files()
        preset = self.params.PRESET
        if (os.sep in preset or preset.startswith(".")) and not os.path.isdir(preset):
            raise ModelError(
                f"MODEL.MODEL_PARAMS.PRESET: folder {preset!r} not found. Give a keras-hub "
                "preset name, a kaggle:// or hf:// handle, or a preset folder."
            )

    def weights_specs(self) -> list[WeightsSpec]:
        """A local preset's weights file is recorded by its sha256 like any weights file; a
        name or handle names its version itself (it is in the params)."""
        specs = super().weights_specs()
        local = os.path.join(self.params.PRESET, "model.weights.h5")
        if os.path.isfile(local):
            specs.append(WeightsSpec("MODEL.MODEL_PARAMS.PRESET", local))
        return specs

    def build(self, head: Head) -> keras.Model:
        import keras
        from keras import layers

        if head.spatial:
            raise ConfigError(
                f"MODEL.MODEL_NAME: {self.name} gives one output per image, not per pixel."
            )
        hub = _keras_hub()
        try:
            backbone = hub.models.Backbone.from_preset(self.params.PRESET)
            converter = hub.layers.ImageConverter.from_preset(self.params.PRESET)
        except (ValueError, OSError, FileNotFoundError) as err:
            raise ModelError(f"MODEL.MODEL_PARAMS.PRESET: {self.params.PRESET!r}: {err}") from None
        backbone.name = BASE
        inputs = keras.Input(shape=tuple(self.params.INPUT_SHAPE), name="image")
        x = grey_to_rgb(inputs) if self.params.INPUT_SHAPE[2] == 1 else inputs
        x = preprocessing_layer(*converter_map(converter))(x)
        backbone.trainable = not self.params.FREEZE_BASE
        x = backbone(x, training=False)
        pool = layers.GlobalAveragePooling2D if len(x.shape) == 4 else layers.GlobalAveragePooling1D
        x = pool(name=FEATURES)(x)
        x = layers.Dropout(self.params.DROPOUT)(x)
        outputs = layers.Dense(head.units, activation=head.activation, dtype="float32")(x)
        return keras.Model(inputs, outputs, name=self.name)


def converter_map(converter: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix, offset)`` of a keras-hub image converter's ``x * scale + offset`` (scalars
    or one per channel) on RGB pixels."""
    import numpy as np

    scale = np.broadcast_to(np.asarray(converter.scale or 1.0, np.float32), (3,))
    offset = np.broadcast_to(np.asarray(converter.offset or 0.0, np.float32), (3,))
    return np.diag(scale).astype(np.float32), offset.astype(np.float32)


def _keras_hub() -> Any:
    try:
        import keras_hub
    except ImportError:
        raise ModelError(f"MODEL.MODEL_NAME: keras_hub needs keras-hub: {INSTALL}") from None
    return keras_hub
