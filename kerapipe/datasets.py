"""tf.data input pipelines that stream images from disk: parallel decode and resize, an
optional cache of the decoded images, seeded shuffle and augmentation, batch and prefetch.
No Python code runs per image.

Order of the training pipeline: file names -> [shuffle] -> decode + resize to uint8 ->
[augment] -> batch -> float32 -> prefetch. With a cache the decoded uint8 images are cached
and the shuffle moves after the cache (so each epoch still gets a new order):
file names -> decode -> cache -> shuffle -> [augment] -> ... . Augmentation always runs after
the cache, so cached images stay small and every epoch gets fresh random transforms.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from kerapipe.augmentations import Augmentation, augment, build_augmentations

if TYPE_CHECKING:
    from kerapipe.config import TrainingParams

AUTOTUNE = tf.data.AUTOTUNE
CACHE_FORMAT = "kerapipe-cache-1"  # part of every cache file name: change it to drop old caches
FILE_CACHE_SHUFFLE_BUFFER = 1024  # default buffer of decoded images with a cache on disk


@dataclass(frozen=True)
class DatasetOptions:
    """How a dataset is cached, shuffled, augmented and parallelised (``TRAINING.*``).

    Args:
        cache: ``"none"``, ``"memory"``, or a folder for cache files.
        shuffle_buffer: elements in the shuffle buffer; None: all of them (with a cache on
            disk, ``FILE_CACHE_SHUFFLE_BUFFER`` decoded images, so memory stays bounded).
        augmentations: applied in order to each image (and mask) after decoding.
        num_parallel_calls: parallel decode/augment calls; None: tf.data autotunes it.
    """

    cache: str = "none"
    shuffle_buffer: int | None = None
    augmentations: tuple[Augmentation, ...] = ()
    num_parallel_calls: int | None = None

    @classmethod
    def from_params(cls, training: TrainingParams) -> DatasetOptions:
        """The options for the training set, from the validated ``TRAINING`` group."""
        return cls(
            cache=training.CACHE or "none",
            shuffle_buffer=training.SHUFFLE_BUFFER,
            augmentations=tuple(build_augmentations(training.AUGMENTATIONS)),
            num_parallel_calls=training.NUM_PARALLEL_CALLS,
        )

    def for_evaluation(self) -> DatasetOptions:
        """The same options without augmentation, for validation data."""
        return replace(self, augmentations=())

    @property
    def parallel_calls(self) -> int:
        return self.num_parallel_calls or AUTOTUNE


def decode_image(path: tf.Tensor, input_shape: Sequence[int]) -> tf.Tensor:
    """Read, decode (PNG/JPEG/GIF/BMP) and resize one image to ``input_shape``, as uint8.

    Decoding straight to the wanted channel count converts grayscale, RGB and RGBA alike.
    The resized pixels are rounded back to uint8: a quarter of float32's size to cache and to
    move between threads.
    """
    height, width, channels = input_shape
    image = _decode(tf.io.read_file(path), height, width, channels)
    image = tf.image.resize(image, (height, width))
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape((height, width, channels))
    return image


JPEG_RATIOS = (1, 2, 4, 8)  # the scales libjpeg can decode at


def _decode(contents: tf.Tensor, height: int, width: int, channels: int) -> tf.Tensor:
    """Decode any supported format; a JPEG much larger than the input is decoded at 1/2,
    1/4 or 1/8 scale (libjpeg scales in the DCT domain), which is several times faster than a
    full decode and still leaves at least ``height`` x ``width`` pixels to resize from."""

    def any_format() -> tf.Tensor:
        return tf.io.decode_image(contents, channels=channels, expand_animations=False)

    def scaled_jpeg() -> tf.Tensor:
        size = tf.image.extract_jpeg_shape(contents)
        scale = tf.minimum(size[0] // height, size[1] // width)
        branch = tf.reduce_sum(tf.cast(scale >= tf.constant(JPEG_RATIOS[1:]), tf.int32))
        colours = min(channels, 3)  # JPEG has no alpha: RGBA input gets an opaque one
        decoders = [
            lambda ratio=ratio: tf.io.decode_jpeg(contents, channels=colours, ratio=ratio)
            for ratio in JPEG_RATIOS
        ]
        image = tf.switch_case(branch, decoders)
        if channels == 4:
            opaque = tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), tf.constant(255, tf.uint8))
            image = tf.concat([image, opaque], axis=-1)
        return image

    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")
    return tf.cond(is_jpeg, scaled_jpeg, any_format)


def load_image(path: tf.Tensor, input_shape: Sequence[int]) -> tf.Tensor:
    """:func:`decode_image` as float32 0-255, the models' input."""
    return tf.cast(decode_image(path, input_shape), tf.float32)


def image_dataset(
    paths: Sequence[str],
    targets: np.ndarray | None,
    input_shape: Sequence[int],
    batch_size: int,
    shuffle_seed: int | None = None,
    options: DatasetOptions | None = None,
) -> tf.data.Dataset:
    """Batches of ``(image, target)``, or of images alone when ``targets`` is None.

    With ``shuffle_seed`` the order is reshuffled every epoch, reproducibly, and the
    augmentations in ``options`` draw their per-image seeds from the same seed (different
    every epoch, the same in every run). Without a cache the shuffle runs over file names,
    before decoding, so even a full buffer costs no image memory. Images are float32 0-255.
    """
    options = options or DatasetOptions()
    paths = [str(p) for p in paths]
    has_targets = targets is not None
    elements = tf.constant(paths, dtype=tf.string)
    dataset = tf.data.Dataset.from_tensor_slices((elements, targets) if has_targets else elements)

    def on_image(fn):
        return (lambda image, target: (fn(image), target)) if has_targets else fn

    decode = on_image(lambda path: decode_image(path, input_shape))
    shuffle = shuffle_seed is not None
    if options.cache == "none":
        if shuffle:
            dataset = _shuffle(dataset, options.shuffle_buffer or len(paths), shuffle_seed)
        dataset = dataset.map(decode, num_parallel_calls=options.parallel_calls)
    else:
        dataset = dataset.map(decode, num_parallel_calls=options.parallel_calls)
        if options.cache == "memory":
            dataset, default_buffer = dataset.cache(), len(paths)
        else:
            prefix = cache_prefix(options.cache, paths, targets, input_shape)
            dataset, default_buffer = dataset.cache(prefix), FILE_CACHE_SHUFFLE_BUFFER
        if shuffle:
            buffer = options.shuffle_buffer or min(default_buffer, len(paths))
            dataset = _shuffle(dataset, buffer, shuffle_seed)

    if options.augmentations:
        seeds = tf.data.Dataset.random(
            seed=shuffle_seed or 0, rerandomize_each_iteration=True
        ).batch(2, drop_remainder=True)
        augmentations = options.augmentations

        def apply(element, seed):
            image, target = element if has_targets else (element, None)
            image = augment(image, seed, augmentations)[0]
            return (image, target) if has_targets else image

        dataset = tf.data.Dataset.zip(dataset, seeds)
        dataset = dataset.map(apply, num_parallel_calls=options.parallel_calls)

    dataset = dataset.batch(batch_size)
    dataset = dataset.map(on_image(lambda batch: tf.cast(batch, tf.float32)))
    return dataset.prefetch(AUTOTUNE)


def repeated(dataset: tf.data.Dataset) -> tuple[tf.data.Dataset, int | None]:
    """``dataset`` repeated without end, and its batches per pass, for
    ``fit(steps_per_epoch=...)`` or ``validation_steps``.

    Keras makes a new iterator over a finite dataset every epoch: freeing the old one before
    its end can wait for tf.data's autotuning thread to wake (its sleep doubles from 10 ms up
    to a minute), and every buffer refills. One endless iterator stays warm from epoch to
    epoch; each epoch still covers every element once, reshuffled, as repeat comes after the
    batching.
    A dataset of unknown length is returned as it is, with None.
    """
    batches = int(dataset.cardinality())
    if batches <= 0:
        return dataset, None
    return dataset.repeat(), batches


def single_pass(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` without tf.data's autotuning thread, for one pass over it (prediction).

    The autotuner needs seconds of a pass to settle, and the end of the pass waits for its
    thread's next wake-up (its sleep doubles from 10 ms up to a minute): in
    benchmarks/run.py that made a 2 s prediction take 2.6 s in about half the runs. Without
    it, map calls left to AUTOTUNE run on one thread per core (at most 16).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _shuffle(dataset: tf.data.Dataset, buffer: int, seed: int) -> tf.data.Dataset:
    return dataset.shuffle(max(1, buffer), seed=seed, reshuffle_each_iteration=True)


def cache_prefix(
    folder: str, paths: Sequence[str], targets: np.ndarray | None, input_shape: Sequence[int]
) -> str:
    """The cache file prefix in ``folder`` for these images, targets and input shape.

    The name is a hash of the file list (with each file's size and modification time), the
    targets and ``input_shape``, so a changed data set or INPUT_SHAPE never reads a stale
    cache. A cache left incomplete by a crashed run is removed.
    """
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{list(input_shape)}".encode())
    for path in paths:
        try:
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\n".encode())
    if targets is not None:
        targets = np.ascontiguousarray(targets)
        digest.update(f"{targets.dtype}{targets.shape}".encode() + targets.tobytes())
    os.makedirs(folder, exist_ok=True)
    name = f"cache-{digest.hexdigest()[:24]}"
    if not os.path.exists(os.path.join(folder, f"{name}.index")):
        for entry in os.scandir(folder):  # a crashed run's partial files and lock files
            if entry.name.startswith((f"{name}.", f"{name}_")):
                os.remove(entry.path)
    return os.path.join(folder, name)
