"""The base class every registered model builds on.

A builder owns its ``MODEL_PARAMS`` schema (checked at validation time, without TensorFlow)
and builds an uncompiled Keras model whose output head the task chooses. Each model takes
raw pixel values (0-255) and does its own input scaling, so a saved model is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from kerapipe.config import Group, Params, validate_group
from kerapipe.errors import ConfigError, ModelError
from kerapipe.registry import MODELS

if TYPE_CHECKING:
    import keras


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

    INPUT_SHAPE: list[int] = Field(min_length=3, max_length=3)
    NUM_CLASSES: int | None = Field(
        None,
        ge=1,
        description="the number of outputs; null (or left out): derived from the task's classes "
        "or targets, which is where that fact lives",
    )
    INITIAL_WEIGHTS: str | None = None

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

    def __init__(self, model_params: dict[str, Any], name: str = "") -> None:
        self.name = name
        self.params = validate_group(self.Params, model_params, "MODEL.MODEL_PARAMS")
        self.check_input_shape(tuple(self.params.INPUT_SHAPE))

    def check_input_shape(self, shape: tuple[int, int, int]) -> None:
        """Raise a ConfigError if this architecture cannot take ``shape``."""
        height, width, _ = shape
        if min(height, width) < self.min_input_size:
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.INPUT_SHAPE: {self.name} needs images of at least "
                f"{self.min_input_size}x{self.min_input_size} pixels, got {list(shape)}. "
                "Raise INPUT_SHAPE (images are resized to it) or choose another MODEL_NAME."
            )

    def check_files(self) -> None:
        """Raise a ModelError if a file the params name is missing (before any work starts).

        Subclasses that read more files (pretrained weights) extend it."""
        path = self.params.INITIAL_WEIGHTS
        if path and not Path(path).is_file():
            raise ModelError(
                f"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS: file {path!r} not found. Give a .keras "
                "model or .weights.h5 file from an earlier run, or set it to null."
            )

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
