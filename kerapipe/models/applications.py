"""Every ``keras.applications`` backbone by name (the table kerapipe/models/keras_backbones.py,
derived from Keras), with the task's head on top: pooling, dropout and a dense layer, or for
segmentation a per-pixel head on the backbone's last feature map (FCN-style; coarse, at 1/32
of the input, resized bilinearly to it).

Each model takes raw 0-255 pixels and scales them itself as its pretrained weights expect:
Keras' own ``preprocess_input`` of the backbone, measured once and built in as a frozen 1x1
convolution (or nothing, for the backbones that scale inside themselves), so the saved model
loads in safe mode and predicts without kerapipe. A backbone takes RGB: with a 1-channel
``INPUT_SHAPE`` the grey image is repeated to 3 channels inside the model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from kerapipe.errors import ModelError
from kerapipe.models.base import BASE, FEATURES, BaseModelParams, Head, ModelBuilder
from kerapipe.models.keras_backbones import BACKBONES
from kerapipe.models.weights import WeightsFile, WeightsSpec, checked
from kerapipe.registry import MODELS

if TYPE_CHECKING:
    import keras
    import numpy as np

    from kerapipe.config import DataParams

log = logging.getLogger(__name__)
IMAGENET = "imagenet"


class ApplicationParams(BaseModelParams):
    WEIGHTS: str | None = Field(
        None,
        description="the backbone's starting weights: null (random), imagenet (the file Keras "
        "publishes, downloaded once into Keras' cache), a path, or a URL on a data source "
        "(https://..., s3://...) of a weights file of the backbone without its top",
    )
    WEIGHTS_SHA256: str | None = Field(
        None, description="the sha256 the WEIGHTS file must have; null: not checked"
    )
    DROPOUT: float = Field(0.2, ge=0.0, lt=1.0, description="dropout before the head")
    FREEZE_BASE: bool = Field(
        False,
        description="keep the backbone frozen for the whole run (TRAINING.FINE_TUNING "
        "unfreezes it after some epochs instead)",
    )

    @field_validator("WEIGHTS")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class ApplicationBuilder(ModelBuilder):
    """A ``keras.applications`` backbone without its top, called as a frozen base is
    (``training=False``, as Keras' transfer-learning guide prescribes) when it starts from
    pretrained weights, and the task's head."""

    Params = ApplicationParams
    spatial_output = True
    has_base = True
    rgb_only = True
    constructor: ClassVar[str]  # attribute of keras.applications
    module: ClassVar[str]  # keras.applications.<module>.preprocess_input
    min_input_size: ClassVar[int] = 32

    def weights_specs(self) -> list[WeightsSpec]:
        specs = super().weights_specs()
        if self.params.WEIGHTS:
            key = "MODEL.MODEL_PARAMS.WEIGHTS"
            specs.append(WeightsSpec(key, self.params.WEIGHTS, self.params.WEIGHTS_SHA256))
        return specs

    def fetch(self, spec: WeightsSpec, data: DataParams | None) -> WeightsFile:
        if spec.given == IMAGENET:
            return self.imagenet_weights(spec)
        return super().fetch(spec, data)

    def imagenet_weights(self, spec: WeightsSpec) -> WeightsFile:
        """The ImageNet weights file Keras publishes for this backbone, fetched as Keras
        fetches it: into its cache (``$KERAS_HOME/models``, ``~/.keras/models``), once per
        machine, checked against Keras' own hash where it has one, with a progress bar on a
        terminal; a file already there touches no network."""
        from kerapipe.upstream import keras_downloads

        with keras_downloads() as calls:
            try:
                self.backbone(weights=IMAGENET)
            except Exception as err:  # noqa: BLE001 - Keras raises a bare Exception offline
                raise ModelError(_unfetched(spec, calls, err)) from None
        fetched = [call for call in calls if call.path]
        if not fetched:
            raise ModelError(f"{spec.key}: Keras fetched no weights file for {self.name}.")
        return checked(spec, fetched[-1].path)

    def backbone(self, weights: str | None = None) -> keras.Model:
        """The Keras backbone without its top, for 3-channel images of ``INPUT_SHAPE``."""
        import keras

        height, width, _ = self.params.INPUT_SHAPE
        constructor = getattr(keras.applications, self.constructor)
        base = constructor(include_top=False, weights=weights, input_shape=(height, width, 3))
        base.name = BASE  # renamed after: some constructors look their weights up by name
        return base

    def build(self, head: Head) -> keras.Model:
        import keras
        from keras import layers

        inputs = keras.Input(shape=tuple(self.params.INPUT_SHAPE), name="image")
        x = grey_to_rgb(inputs) if self.grey else inputs
        x = preprocessing_layer(*affine_map(self.module))(x)
        base = self.backbone()
        weights = self.weights_file("MODEL.MODEL_PARAMS.WEIGHTS")
        if weights is not None:
            self.load_base_weights(base, weights)
        base.trainable = not self.params.FREEZE_BASE
        # A pretrained or frozen base keeps its BatchNorm layers in inference mode, and any
        # dropout inside it off, even once unfrozen (Keras' transfer-learning guide).
        frozen_mode = self.pretrained or self.params.FREEZE_BASE
        x = base(x, training=False if frozen_mode else None)
        if head.spatial:
            x = layers.Identity(name=FEATURES)(x)
            x = layers.Dropout(self.params.DROPOUT)(x)
            x = layers.Conv2D(head.units, 1, name="pixel_logits")(x)
            height, width = self.params.INPUT_SHAPE[:2]
            x = layers.Resizing(height, width, interpolation="bilinear")(x)
            outputs = layers.Activation(head.activation, dtype="float32", name="pixel_scores")(x)
            return keras.Model(inputs, outputs, name=self.name)
        x = layers.GlobalAveragePooling2D(name=FEATURES)(x)
        x = layers.Dropout(self.params.DROPOUT)(x)
        outputs = layers.Dense(head.units, activation=head.activation, dtype="float32")(x)
        return keras.Model(inputs, outputs, name=self.name)

    @property
    def grey(self) -> bool:
        return self.params.INPUT_SHAPE[2] == 1

    def load_base_weights(self, base: keras.Model, weights: WeightsFile) -> None:
        try:
            base.load_weights(weights.path)
        except (ValueError, OSError) as err:
            raise ModelError(
                f"{weights.spec.key}: {weights.spec.given!r} does not fit a headless "
                f"{self.name}: {err}"
            ) from None


def grey_to_rgb(x: Any) -> Any:
    """A grey image repeated to three channels (a built-in layer: safe to load)."""
    from keras import layers

    log.info("INPUT_SHAPE has 1 channel: each grey image is repeated to 3 inside the model.")
    return layers.Concatenate(name="grey_to_rgb")([x, x, x])


def preprocessing_layer(matrix: np.ndarray | None, offset: np.ndarray) -> Any:
    """A frozen float32 1x1 convolution computing ``x @ matrix + offset`` on RGB pixels (a
    backbone's own scaling, in the model), or nothing for the identity (``matrix`` None)."""
    from keras import layers

    if matrix is None:
        return lambda x: x

    def scale(x: Any) -> Any:
        convert = layers.Conv2D(3, 1, trainable=False, dtype="float32", name="preprocess")
        outputs = convert(x)
        convert.set_weights([matrix.reshape(1, 1, 3, 3), offset])
        return outputs

    return scale


def affine_map(module: str) -> tuple[np.ndarray | None, np.ndarray]:
    """``(matrix, offset)`` with ``preprocess_input(x) == x @ matrix + offset`` for the RGB
    pixels ``x`` (0-255) of ``keras.applications.<module>``, measured from that function;
    ``(None, 0)`` for the identity. Checked on random pixels: a function that is not affine
    is an error, never a guess."""
    import keras
    import numpy as np

    preprocess = getattr(keras.applications, module).preprocess_input
    corners = np.array([[[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]]], np.float32)
    out = np.asarray(preprocess(corners.copy()), np.float64)[0, 0]
    offset, matrix = out[0], (out[1:] - out[0]) / 255.0
    probe = np.random.default_rng(0).uniform(0, 255, (1, 4, 4, 3)).astype(np.float32)
    expected = np.asarray(preprocess(probe.copy()), np.float64)
    if not np.allclose(probe.astype(np.float64) @ matrix + offset, expected, atol=1e-3):
        raise ModelError(f"keras.applications.{module}.preprocess_input is not affine")
    if np.allclose(matrix, np.eye(3)) and np.allclose(offset, 0.0):
        return None, np.zeros(3, np.float32)
    return matrix.astype(np.float32), offset.astype(np.float32)


def _unfetched(spec: WeightsSpec, calls: list, err: Exception) -> str:
    """The message for ImageNet weights that could not be fetched: the URL, and where to
    put the file by hand."""
    if not calls:
        return f"{spec.key}: {spec.given}: {err}"
    call = calls[-1]
    reason = str(err).replace(f"URL fetch failure on {call.origin}: ", "").replace("None -- ", "")
    return (
        f"{spec.key}: imagenet needs {call.fname}, which could not be downloaded from "
        f"{call.origin} ({reason.strip() or type(err).__name__}). Download it on a machine "
        f"with network access and put it at {call.target} (KERAS_HOME moves that folder), or "
        "set WEIGHTS to the path or URL of the file, or to null."
    )


def _register_every_backbone() -> None:
    """One registered model per ``keras.applications`` backbone, each its own builder class
    (named for its constructor), registered by this module's name so nothing is imported
    until it is used."""
    for name, constructor, module, min_size in BACKBONES:
        builder = type(
            constructor,
            (ApplicationBuilder,),
            {"constructor": constructor, "module": module, "min_input_size": min_size},
        )
        globals()[constructor] = builder
        MODELS.register(
            name,
            builder,
            summary=f"keras.applications.{constructor} backbone (inputs >= {min_size}x{min_size})",
        )


_register_every_backbone()
