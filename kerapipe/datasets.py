"""tf.data input pipelines that stream images from disk: parallel decode, resize, seeded
shuffle, batch and prefetch. No Python code runs per image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def load_image(path: tf.Tensor, input_shape: Sequence[int]) -> tf.Tensor:
    """Read, decode (PNG/JPEG/GIF/BMP) and resize one image to ``input_shape``, as float32 0-255.

    Decoding straight to the wanted channel count converts grayscale, RGB and RGBA alike.
    """
    height, width, channels = input_shape
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    image = tf.image.resize(image, (height, width))
    image.set_shape((height, width, channels))
    return image


def image_dataset(
    paths: Sequence[str],
    targets: np.ndarray | None,
    input_shape: Sequence[int],
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``(image, target)``, or of images alone when ``targets`` is None.

    With ``shuffle_seed`` the file order is reshuffled every epoch, reproducibly; the shuffle
    runs over file names, before decoding, so its buffer costs no image memory.
    """
    paths = tf.constant(list(paths), dtype=tf.string)
    elements = paths if targets is None else (paths, targets)
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    if targets is None:
        dataset = dataset.map(lambda p: load_image(p, input_shape), num_parallel_calls=AUTOTUNE)
    else:
        dataset = dataset.map(
            lambda p, y: (load_image(p, input_shape), y), num_parallel_calls=AUTOTUNE
        )
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
