"""Decoding one image (or mask) inside a ``tf.data`` map: TensorFlow's own decoders for the
PNG and JPEG files they decode as Pillow does, Pillow (in a ``tf.numpy_function``) for the
others (BMP, GIF, CMYK JPEG, palette PNG, WebP, TIFF: see kerapipe/images.py); resized to the
input shape, turned by the EXIF orientation, as uint8. Graph code only: no Python runs per
image but Pillow's decoder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kerapipe.config import DEFAULT_MAX_IMAGE_PIXELS
from kerapipe.image_probe import (
    JPEG,
    JPEG_GRAY,
    PILLOW,
    PNG,
    PNG_16,
    PNG_GRAY,
    ROUTES,
    ImageInfo,
)
from kerapipe.images import decode_with_pillow


@dataclass(frozen=True)
class Decoding:
    """What the images of one dataset need from the decode, read from their header probes.

    Every op of every branch in the tf.data map runs for every image (as a dead branch when
    not taken), so the map holds only the decoders these images take, and the EXIF turn
    only when one of them is turned. The defaults serve any image.

    Args:
        routes: the decode routes present (``kerapipe.images.JPEG``, ``PNG``, ...).
        turned: whether any image has an EXIF orientation other than 1.
        max_pixels: ``PIPELINE.MAX_IMAGE_PIXELS``, checked again by the Pillow decode.
    """

    routes: tuple[int, ...] = ROUTES
    turned: bool = True
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS

    @classmethod
    def of(cls, infos: Sequence[ImageInfo], max_pixels: int | None) -> Decoding:
        routes = tuple(sorted({info.route for info in infos})) or (PNG,)
        return cls(routes, any(info.orientation != 1 for info in infos), max_pixels)


@tf.autograph.experimental.do_not_convert  # plain graph code: tracing it is then faster
def decode_image(
    path: tf.Tensor,
    input_shape: Sequence[int],
    route: tf.Tensor | int,
    orientation: tf.Tensor | int = 1,
    decoding: Decoding | None = None,
) -> tf.Tensor:
    """Read, decode and resize one image to ``input_shape``, as uint8.

    ``route`` and ``orientation`` come from the file's header probe
    (``kerapipe.images.probe_image``): TensorFlow's own decoders for the PNG and JPEG files
    they decode as Pillow does, Pillow (in a ``tf.numpy_function``) for the others. Either
    way the pixels are Pillow's, converted to the wanted channel count as Pillow's
    ``convert`` does and turned by the EXIF orientation (after the resize, on the small
    image: the two commute). ``decoding`` says which routes and turns can occur (default:
    any); one switch picks the decoder, nothing else branches per image. The resized pixels
    are rounded back to uint8: a quarter of float32's size to cache and to move between
    threads.
    """
    decoding = decoding or Decoding()
    height, width, channels = input_shape
    orientation = tf.cast(orientation, tf.int32)
    stored: tf.Tensor | tuple[int, int] = (height, width)
    if decoding.turned:  # decoded and resized as stored: 5-8 turn it a quarter afterwards
        stored = tf.where(orientation >= 5, [width, height], [height, width])
    decoders = _decoders(path, stored, channels, decoding.max_pixels)
    present = [decoders[route_id] for route_id in decoding.routes]
    if len(present) == 1:
        image = present[0]()
    else:  # the route's place among those present
        places = [decoding.routes.index(r) if r in decoding.routes else 0 for r in ROUTES]
        image = tf.switch_case(tf.gather(places, tf.cast(route, tf.int32)), present)
    image = orient(image, orientation) if decoding.turned else image
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape((height, width, channels))
    return image


JPEG_RATIOS = (1, 2, 4, 8)  # the scales libjpeg can decode at


def _decoders(path: tf.Tensor, size, channels: int, max_pixels: int | None):
    """The decoder of each route: the image resized to ``size`` (float32, as stored) with
    ``channels`` channels as Pillow's ``convert("L"/"RGB"/"RGBA")`` gives them.

    Channels are made after the resize, on the small image, where they cost least: gray is
    tiled to RGB, an opaque alpha added, colour turned gray with Pillow's own formula
    (``luma``; libjpeg and libpng weigh the colours their own way). Resizing works on each
    channel alone and the formula is linear, so the order changes nothing at the input's own
    size. libpng drops alpha, and adds an opaque one, as Pillow does. A JPEG much larger than
    the input is decoded at 1/2, 1/4 or 1/8 scale (libjpeg scales in the DCT domain), several
    times faster than a full decode and still leaving at least ``size`` pixels; JPEGs use
    libjpeg's accurate integer DCT, as Pillow does.
    """

    def finish(image: tf.Tensor, gray: bool) -> tf.Tensor:
        image = tf.image.resize(image, size)
        if channels == 1:
            return image if gray else luma(image)
        if gray:
            image = tf.concat([image, image, image], -1)
        if channels == 4 and image.shape[-1] == 3:
            image = tf.concat([image, tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), 255.0)], -1)
        return image

    def jpeg(gray: bool) -> tf.Tensor:
        contents = tf.io.read_file(path)
        stored = tf.image.extract_jpeg_shape(contents)
        scale = tf.minimum(stored[0] // size[0], stored[1] // size[1])
        branch = tf.reduce_sum(tf.cast(scale >= tf.constant(JPEG_RATIOS[1:]), tf.int32))
        decoders = [
            lambda ratio=ratio: tf.io.decode_jpeg(
                contents, channels=1 if gray else 3, ratio=ratio, dct_method="INTEGER_ACCURATE"
            )
            for ratio in JPEG_RATIOS
        ]
        return finish(tf.switch_case(branch, decoders), gray)

    def png(gray: bool) -> tf.Tensor:
        contents = tf.io.read_file(path)
        if gray and channels != 4:  # gray, or gray+alpha (whose alpha goes)
            return finish(tf.io.decode_png(contents, channels=1), gray=True)
        return finish(tf.io.decode_png(contents, channels=max(channels, 3)), gray=False)

    def png_16() -> tf.Tensor:
        """A 16-bit PNG, scaled to 8 bits first (value / 257, rounded: 65535 is 255)."""
        image = tf.io.decode_png(tf.io.read_file(path), channels=max(channels, 3), dtype=tf.uint16)
        return finish(tf.round(tf.cast(image, tf.float32) / 257.0), gray=False)

    def pillow() -> tf.Tensor:  # Pillow converts the channels itself
        return tf.image.resize(_pillow(path, size, channels, max_pixels), size)

    return {
        JPEG: lambda: jpeg(gray=False),
        JPEG_GRAY: lambda: jpeg(gray=True),
        PNG: lambda: png(gray=False),
        PNG_GRAY: lambda: png(gray=True),
        PNG_16: png_16,
        PILLOW: pillow,
    }


def luma(rgb: tf.Tensor) -> tf.Tensor:
    """Gray from RGB (float 0-255) as Pillow's ``convert("L")``: ITU-R 601-2 luma with
    Pillow's integer weights and rounding; exact for whole values, as float32 holds every
    weighted sum of them exactly."""
    weighted = tf.reduce_sum(rgb * tf.constant([19595.0, 38470.0, 7471.0]), -1, keepdims=True)
    return tf.floor(weighted / 65536.0 + 0.5)


def _pillow(path: tf.Tensor, least: tf.Tensor, channels: int, max_pixels: int | None):
    """Pillow's decoding (``kerapipe.images.decode_with_pillow``), in the parallel map.

    A file Pillow cannot decode gives an empty image, which the resize that follows refuses
    with an InvalidArgumentError, as a failed native decode gives one (training then names
    the files; prediction drops the element and names it). No assertion op: a stateful op
    would make tf.data run the whole map on one thread under op determinism (which training
    turns on).
    """

    def run(name: bytes, size: np.ndarray) -> np.ndarray:
        path = os.fsdecode(np.asarray(name).item())  # bytes (a 0-d array when eager)
        try:
            return decode_with_pillow(path, channels, (int(size[0]), int(size[1])), max_pixels)
        except ValueError:
            return np.zeros((0, 0, channels), np.uint8)

    image = tf.numpy_function(run, [path, least], tf.uint8, stateful=False)
    image.set_shape((None, None, channels))
    return image


# EXIF orientations 1-8 as a transpose, then strides that flip rows and/or columns (as
# Pillow's exif_transpose: 2 mirrors left-right, 3 turns 180, 6 turns 90 clockwise, ...).
_PERMS = ((0, 1, 2),) * 4 + ((1, 0, 2),) * 4
_STRIDES = ((1, 1, 1), (1, -1, 1), (-1, -1, 1), (-1, 1, 1)) * 2


def orient(image: tf.Tensor, orientation: tf.Tensor | int) -> tf.Tensor:
    """``image`` turned by its EXIF orientation (1-8), as ``PIL.ImageOps.exif_transpose``
    does: a transpose and a strided slice chosen by table, without branching."""
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    image = tf.transpose(image, tf.gather(_PERMS, index))
    strides = tf.gather(_STRIDES, index)
    return tf.strided_slice(image, [0, 0, 0], [0, 0, 0], strides, begin_mask=7, end_mask=7)


def load_image(path: tf.Tensor, input_shape: Sequence[int], route, orientation=1) -> tf.Tensor:
    """:func:`decode_image` as float32 0-255, the models' input."""
    return tf.cast(decode_image(path, input_shape, route, orientation), tf.float32)


def load_mask(path, size, dtype=None):
    """Read a mask PNG, resize it with nearest neighbour to ``size``: ``(h, w)`` of ``dtype``
    (uint8 by default; the values are the PNG's class indices, unchanged)."""
    height, width = size
    mask = tf.io.decode_png(tf.io.read_file(path), channels=1)
    mask = tf.image.resize(mask, (height, width), method="nearest")
    mask = tf.cast(mask[:, :, 0], dtype or tf.uint8)
    mask.set_shape((height, width))
    return mask
