"""Data augmentation by name (``TRAINING.AUGMENTATIONS``), as seeded stateless TensorFlow ops.

Each augmentation is registered with ``@register_augmentation`` and owns a params schema that
is checked without TensorFlow (``kerapipe validate``). At training time :func:`augment` runs
the list in order on one image, inside the parallel ``tf.data`` map: every random draw comes
from ``tf.random.stateless_*`` with a per-element seed, so results depend only on the seed and
never on thread scheduling, and decoding stays parallel.

A segmentation mask passed beside the image gets the same geometric transforms (flip,
rotation, zoom) with nearest-neighbour sampling, so it keeps its integer labels; photometric
ones (contrast) touch the image only.

Example (params.yaml):
    TRAINING:
      AUGMENTATIONS:
        - {AUGMENTATION_NAME: flip, AUGMENTATION_PARAMS: {MODE: horizontal}}
        - {AUGMENTATION_NAME: rotation, AUGMENTATION_PARAMS: {FACTOR: 0.05}}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from kerapipe.config import Group, validate_group
from kerapipe.registry import AUGMENTATIONS, register_augmentation

if TYPE_CHECKING:
    import tensorflow as tf

FillMode = Literal["reflect", "wrap", "constant", "nearest"]


class Augmentation:
    """Base class: set ``Params`` and ``geometric``, implement ``apply``."""

    Params: ClassVar[type[Group]] = Group
    geometric: ClassVar[bool] = True  # False: the mask is left alone

    def __init__(self, params: dict[str, Any] | None = None, key: str = "AUGMENTATION_PARAMS"):
        self.params: Any = validate_group(self.Params, params, key)

    def apply(
        self, image: tf.Tensor, mask: tf.Tensor | None, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Transform a float32 ``[h, w, c]`` image (and its ``[h, w, k]`` mask) with ``seed``."""
        raise NotImplementedError


class FlipParams(Group):
    MODE: Literal["horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "horizontal", description="the axes flipped, each with probability 1/2"
    )


@register_augmentation("flip", summary="random left-right and/or up-down flip (MODE)")
class Flip(Augmentation):
    """Flip with probability 1/2 along each axis that ``MODE`` names."""

    Params = FlipParams

    def apply(self, image, mask, seed):
        import tensorflow as tf

        axes = {"horizontal": [1], "vertical": [0], "horizontal_and_vertical": [1, 0]}
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        for i, axis in enumerate(axes[self.params.MODE]):
            flip = tf.random.stateless_uniform([], seeds[i]) < 0.5
            image = tf.where(flip, tf.reverse(image, [axis]), image)
            if mask is not None:
                mask = tf.where(flip, tf.reverse(mask, [axis]), mask)
        return image, mask


class TransformParams(Group):
    FILL_MODE: FillMode = Field(
        "reflect", description="how points outside the image are filled (as Keras' layers)"
    )
    FILL_VALUE: float = Field(0.0, description="the pixel value used by FILL_MODE: constant")


class RotationParams(TransformParams):
    FACTOR: float = Field(
        gt=0.0,
        le=1.0,
        description="the largest rotation, as a fraction of a full turn (0.05 = 18 degrees)",
    )


@register_augmentation(
    "rotation", summary="random rotation by up to FACTOR of a full turn (FILL_MODE, FILL_VALUE)"
)
class Rotation(Augmentation):
    """Rotate about the centre by an angle drawn from ``[-FACTOR, FACTOR] * 2 pi``."""

    Params = RotationParams

    def apply(self, image, mask, seed):
        import tensorflow as tf

        limit = self.params.FACTOR * 2 * math.pi
        angle = tf.random.stateless_uniform([], seed, -limit, limit)
        height, width = _size(image)
        cos, sin = tf.cos(angle), tf.sin(angle)
        x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
        y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
        transform = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])
        return _transform(image, mask, transform, self.params)


class ZoomParams(TransformParams):
    FACTOR: float = Field(
        gt=0.0,
        lt=1.0,
        description="the field of view is scaled by a factor in [1 - FACTOR, 1 + FACTOR]",
    )


@register_augmentation(
    "zoom", summary="random zoom in/out by up to FACTOR of the size (FILL_MODE, FILL_VALUE)"
)
class Zoom(Augmentation):
    """Scale the field of view about the centre: below 1 zooms in, above 1 zooms out."""

    Params = ZoomParams

    def apply(self, image, mask, seed):
        import tensorflow as tf

        factor = self.params.FACTOR
        scale = tf.random.stateless_uniform([], seed, 1.0 - factor, 1.0 + factor)
        height, width = _size(image)
        x_offset = (width - 1) / 2 * (1 - scale)
        y_offset = (height - 1) / 2 * (1 - scale)
        transform = tf.stack([scale, 0.0, x_offset, 0.0, scale, y_offset, 0.0, 0.0])
        return _transform(image, mask, transform, self.params)


class ContrastParams(Group):
    FACTOR: float = Field(
        gt=0.0,
        le=1.0,
        description="the contrast is multiplied by a factor in [1 - FACTOR, 1 + FACTOR]",
    )


@register_augmentation("contrast", summary="random contrast change by up to FACTOR (image only)")
class Contrast(Augmentation):
    """Scale each channel's distance from its mean, then clip to 0-255. Masks are untouched."""

    Params = ContrastParams
    geometric = False

    def apply(self, image, mask, seed):
        import tensorflow as tf

        factor = self.params.FACTOR
        scale = tf.random.stateless_uniform([], seed, 1.0 - factor, 1.0 + factor)
        mean = tf.reduce_mean(image, axis=(0, 1), keepdims=True)
        return tf.clip_by_value((image - mean) * scale + mean, 0.0, 255.0), mask


def build_augmentations(specs: Sequence[Any], key: str = "TRAINING.AUGMENTATIONS") -> list:
    """Augmentation objects from ``{AUGMENTATION_NAME, AUGMENTATION_PARAMS}`` specs (checked)."""
    return [
        AUGMENTATIONS.get(spec.AUGMENTATION_NAME)(
            spec.AUGMENTATION_PARAMS, f"{key}.{i}.AUGMENTATION_PARAMS"
        )
        for i, spec in enumerate(specs)
    ]


def augment(
    image: tf.Tensor,
    seed: tf.Tensor,
    augmentations: Sequence[Augmentation],
    mask: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """Apply ``augmentations`` in order to one ``[h, w, c]`` image (and mask), seeded.

    ``seed`` is a shape-[2] integer tensor (each element of a dataset gets its own); each
    augmentation draws from its own split of it. The image comes back as float32 0-255; the
    mask (``[h, w]`` or ``[h, w, k]``, any integer or float dtype) keeps its shape and dtype
    and is only moved by geometric transforms, with nearest-neighbour sampling.
    """
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    if not augmentations:
        return image, mask
    flat_mask = mask is not None and mask.shape.rank == 2
    if flat_mask:
        mask = mask[..., None]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), len(augmentations))
    for i, augmentation in enumerate(augmentations):
        image, mask = augmentation.apply(image, mask, seeds[i])
    if flat_mask:
        mask = mask[..., 0]
    return image, mask


def _size(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    import tensorflow as tf

    shape = tf.shape(image)
    return tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)


def _transform(image, mask, transform, params: TransformParams):
    """Apply one projective transform to the image (bilinear) and the mask (nearest)."""
    import tensorflow as tf

    def warp(x, interpolation: str, fill_value: float):
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=x[None],
            transforms=transform[None],
            output_shape=tf.shape(x)[:2],
            fill_value=tf.cast(fill_value, tf.float32),
            interpolation=interpolation,
            fill_mode=params.FILL_MODE.upper(),
        )
        return tf.ensure_shape(out[0], x.shape)

    image = warp(image, "BILINEAR", params.FILL_VALUE)
    if mask is not None:
        mask = warp(mask, "NEAREST", 0.0)
    return image, mask
