"""The base class every registered model builds on.

A builder owns its ``MODEL_PARAMS`` schema (checked at validation time, without TensorFlow)
and builds an uncompiled Keras model whose output head the task chooses. Each model takes
raw pixel values (0-255) and does its own input scaling, so a saved model is self-contained.

The weights files a model starts from (``INITIAL_WEIGHTS``, a backbone's ``WEIGHTS``) are
fetched before it is built (``resolve_weights``; kerapipe/models/weights.py) and their sha256
recorded. A model with a pretrained base names that layer ``base``, and the output its head
starts from ``features``: fine-tuning freezes and unfreezes the one
(kerapipe/training/fine_tuning.py), and frozen epochs train the head on the cached other
(kerapipe/training/frozen_features.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from kerapipe.config import Group, Params, validate_group
from kerapipe.errors import ConfigError
from kerapipe.models.weights import WeightsFile, WeightsSpec, fetch_weights
from kerapipe.registry import MODELS

if TYPE_CHECKING:
    import keras

    from kerapipe.config import DataParams

BASE = "base"  # the layer name of a model's pretrained base
FEATURES = "features"  # the layer whose output the head starts from


@dataclass(frozen=True)
class Head:
    """What the task wants at the end of the network: ``units`` outputs with ``activation``.

    ``spatial`` asks for those outputs at every pixel, at the input's height and width
    (segmentation), instead of once per image; only builders with ``spatial_output`` can.
    """

    units: int
    activation: str | None
    spatial: bool = False


class BaseModelParams(Group):
    """``MODEL_PARAMS`` every model accepts."""

    INPUT_SHAPE: list[int] = Field(
        min_length=3,
        max_length=3,
        description="[height, width, channels] images are resized to; channels 1 (grey) or 3",
    )
    NUM_CLASSES: int | None = Field(
        None,
        ge=1,
        description="the number of outputs; null (or left out): derived from the task's classes "
        "or targets, which is where that fact lives",
    )
    INITIAL_WEIGHTS: str | None = Field(
        None,
        description="start from a previous run's model (.keras) or weights (.weights.h5): a "
        "path, or a URL on a data source (https://..., s3://...)",
    )
    INITIAL_WEIGHTS_SHA256: str | None = Field(
        None, description="the sha256 the INITIAL_WEIGHTS file must have; null: not checked"
    )

    @field_validator("INPUT_SHAPE")
    @classmethod
    def _positive(cls, shape: list[int]) -> list[int]:
        if any(size < 1 for size in shape) or shape[2] not in (1, 3, 4):
            raise ValueError("must be [height, width, channels] with channels 1, 3 or 4")
        return shape

    @field_validator("INITIAL_WEIGHTS")
    @classmethod
    def _blank_is_none(cls, path: str | None) -> str | None:
        return path or None


class ModelBuilder:
    """Subclass, set ``Params``, implement ``build``, and decorate with ``@register_model``."""

    Params: ClassVar[type[BaseModelParams]] = BaseModelParams
    min_input_size: ClassVar[int] = 1
    spatial_output: ClassVar[bool] = False  # can build a per-pixel head (Head.spatial)
    has_base: ClassVar[bool] = False  # a pretrained base (a layer named BASE) to freeze
    rgb_only: ClassVar[bool] = False  # a 4-channel INPUT_SHAPE refused (an RGB-trained base)

    def __init__(self, model_params: dict[str, Any], name: str = "") -> None:
        self.name = name
        self.params = validate_group(self.Params, model_params, "MODEL.MODEL_PARAMS")
        self.check_input_shape(tuple(self.params.INPUT_SHAPE))
        self.weights: dict[str, WeightsFile] = {}  # by key, once resolve_weights fetched them

    def check_input_shape(self, shape: tuple[int, int, int]) -> None:
        """Raise a ConfigError if this architecture cannot take ``shape``."""
        height, width, _ = shape
        if min(height, width) < self.min_input_size:
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.INPUT_SHAPE: {self.name} needs images of at least "
                f"{self.min_input_size}x{self.min_input_size} pixels, got {list(shape)}. "
                "Raise INPUT_SHAPE (images are resized to it) or choose another MODEL_NAME."
            )
        if self.rgb_only and shape[2] == 4:
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.INPUT_SHAPE: {self.name} takes RGB images, got 4 channels "
                f"({list(shape)}). Set the last entry to 3 (images are converted to RGB when "
                "decoded) or 1 (grey, repeated to 3 channels inside the model)."
            )

    @property
    def pretrained(self) -> bool:
        """Whether the model starts from weights files rather than at random."""
        return bool(self.weights_specs())

    def weights_specs(self) -> list[WeightsSpec]:
        """The weights files the params name; subclasses that read more add theirs."""
        given = self.params.INITIAL_WEIGHTS
        if not given:
            return []
        key = "MODEL.MODEL_PARAMS.INITIAL_WEIGHTS"
        return [WeightsSpec(key, given, self.params.INITIAL_WEIGHTS_SHA256)]

    def check_files(self) -> None:
        """Raise an error for a weights file the params name that is missing or misnamed,
        before any work starts (a URL is checked when it is fetched)."""
        for spec in self.weights_specs():
            spec.check()

    def resolve_weights(self, data: DataParams) -> dict[str, WeightsFile]:
        """Fetch every weights file the params name (``data``: the sources and the remote
        cache URLs are fetched through), keep them for ``build`` and return them by key."""
        self.weights = {spec.key: self.fetch(spec, data) for spec in self.weights_specs()}
        return self.weights

    def fetch(self, spec: WeightsSpec, data: DataParams | None) -> WeightsFile:
        """The local file of one weights spec, its sha256 checked."""
        return fetch_weights(spec, data)

    def weights_file(self, key: str) -> WeightsFile | None:
        """The weights file of ``key`` to load (fetched now, with the default remote cache,
        when ``resolve_weights`` has not been called), or None when the params name none."""
        if key not in self.weights:
            spec = next((s for s in self.weights_specs() if s.key == key), None)
            if spec is None:
                return None
            self.weights[key] = self.fetch(spec, None)
        return self.weights[key]

    def build(self, head: Head) -> keras.Model:
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, str]:
        """MODEL_PARAMS keys and their defaults, for ``kerapipe components``."""
        return {
            name: "required"
            if field.is_required()
            else repr(field.get_default(call_default_factory=True))
            for name, field in cls.Params.model_fields.items()
        }


def model_builder(params: Params) -> ModelBuilder:
    """The registered builder for ``MODEL.MODEL_NAME``, with its params validated."""
    builder_class = MODELS.get(params.MODEL.MODEL_NAME)
    return builder_class(params.MODEL.MODEL_PARAMS, name=params.MODEL.MODEL_NAME)
