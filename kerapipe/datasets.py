"""tf.data input pipelines that stream images from disk: parallel decode and resize, the
decoded image cache, seeded shuffle and augmentation, batch and prefetch; one pipeline for
every task (images with labels, targets or masks). No Python code runs per image, except
Pillow's decoder for the files TensorFlow's decoders would get wrong (BMP, GIF, CMYK JPEG,
palette PNG, WebP, TIFF: see kerapipe/images.py).

Order of the training pipeline: file names -> [shuffle] -> decode + resize to uint8 (or, with
the decoded image cache, read the decoded entry: see kerapipe/decoded_cache.py, filled before
the first epoch) -> [augment] -> batch -> float32 (masks int32) -> prefetch. With the memory
cache the images read are also held in memory and the shuffle moves after that cache (in the
same order: a shuffle's order depends on the seed and the count alone). Augmentation always
runs after the cache, so cached images stay small and every epoch gets fresh random transforms.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from kerapipe.augmentations import Augmentation, augment, build_augmentations
from kerapipe.config import DEFAULT_CACHE_MAX_GB, DEFAULT_MAX_IMAGE_PIXELS
from kerapipe.decoded_cache import (
    DecodedCache,
    decoded_cache,
    default_cache_folder,
)
from kerapipe.decoding import Decoding, decode_image, load_mask
from kerapipe.errors import DataError
from kerapipe.file_columns import FileColumn
from kerapipe.image_probe import ImageInfo, probe_images
from kerapipe.images import describe_problems

if TYPE_CHECKING:
    from kerapipe.config import TrainingParams
    from kerapipe.distribution import Shard
    from kerapipe.training.frozen_features import CachedFeatures

log = logging.getLogger(__name__)
AUTOTUNE = tf.data.AUTOTUNE
FILL_BATCH = 16  # images decoded into the decoded image cache per Python step


@dataclass(frozen=True)
class DatasetOptions:
    """How a dataset is cached, shuffled, augmented and parallelised (``TRAINING.*``).

    Args:
        cache: ``"none"``; ``"disk"``: the decoded image cache in ``cache_dir`` (see
            kerapipe/decoded_cache.py); ``"memory"``: that, and the decoded images held in
            memory from the first epoch on, when they fit (else a warning and disk alone).
        cache_dir: the decoded image cache's folder; None: ``default_cache_folder()``.
        cache_max_gb: the size the decoded image cache may take on disk, in GB.
        shuffle_buffer: elements in the shuffle buffer; None: all of them.
        augmentations: applied in order to each image (and mask) after decoding.
        num_parallel_calls: parallel decode/augment calls; None: one per core, at most 16
            (see ``without_autotune``).
        shard: under ``DISTRIBUTION: data_parallel``, the slice of every global batch this
            process decodes (see ``take_shard``); None: all of it.
        features: a frozen base's cached features (kerapipe/training/frozen_features.py),
            read in place of the images: the element's first part is then each image's
            features. None: the images.
    """

    cache: str = "none"
    cache_dir: str | None = None
    cache_max_gb: float = DEFAULT_CACHE_MAX_GB
    shuffle_buffer: int | None = None
    augmentations: tuple[Augmentation, ...] = ()
    num_parallel_calls: int | None = None
    shard: Shard | None = None
    features: CachedFeatures | None = None

    @classmethod
    def from_params(
        cls, training: TrainingParams, remote_cache_dir: str | None = None
    ) -> DatasetOptions:
        """The options for the training set, from the validated ``TRAINING`` group (and
        ``DATA.REMOTE_CACHE_DIR``, beside which the decoded image cache lives by default)."""
        return cls(
            cache=training.CACHE or "none",
            cache_dir=training.CACHE_DIR or str(default_cache_folder(remote_cache_dir)),
            cache_max_gb=training.CACHE_MAX_GB,
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

    def store(self) -> DecodedCache | None:
        """The decoded image cache these options use, or None."""
        if self.cache == "none":
            return None
        return decoded_cache(self.cache_dir or default_cache_folder(), self.cache_max_gb)


def readable_images(
    paths: Sequence[str],
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    store: DecodedCache | None = None,
) -> list[ImageInfo]:
    """The header probe of every image of a training or validation set, in order (through
    ``store``'s memo, when given); one DataError naming the files it refuses (before the
    first epoch, never a traceback)."""
    infos = store.probes(paths, max_pixels) if store else probe_images(paths, max_pixels)
    bad = {info.path: info.problem for info in infos if info.problem}
    if bad:
        raise DataError(
            f"{len(bad)} image(s) in the inventory cannot be decoded: {describe_problems(bad)}. "
            "Re-export or remove them, or let the inventory leave them out: "
            "INVENTORY.CHECK_IMAGES: decode (or header) with INVENTORY.BAD_IMAGES: skip, then "
            "rerun inventory and train."
        )
    return infos


def _routes(infos: Sequence[ImageInfo]) -> tuple[tf.Tensor, tf.Tensor]:
    """The decode route and EXIF orientation of each image, as int32 tensors."""
    routes = tf.constant([info.route for info in infos], dtype=tf.int32, shape=[len(infos)])
    turns = tf.constant([info.orientation for info in infos], dtype=tf.int32, shape=[len(infos)])
    return routes, turns


def memory_fits(nbytes: int) -> bool:
    """Whether ``nbytes`` of cached images take at most half the memory now available."""
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return True
    return nbytes <= available // 2


def image_dataset(
    paths: Sequence[str],
    targets: np.ndarray | None,
    input_shape: Sequence[int],
    batch_size: int,
    shuffle_seed: int | None = None,
    options: DatasetOptions | None = None,
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    masks: Sequence[str] | None = None,
) -> tf.data.Dataset:
    """Batches of ``(image, target)``, of ``(image, mask)`` when ``masks`` are given, or of
    images alone: the one input pipeline of every task.

    Every file's header is read first (in a thread pool), to pick its decoder and find its
    EXIF orientation; a file that cannot be read, or has more than ``max_pixels`` pixels,
    is one DataError here, before any training. With ``shuffle_seed`` the order is
    reshuffled every epoch, reproducibly, and the augmentations in ``options`` draw their
    per-image seeds from the same seed (different every epoch, the same in every run).
    The shuffle runs over file names, before decoding (or reading the decoded cache), so even
    a full buffer costs no image memory; with the memory cache it runs over the cached
    images, in the same order. Images are float32 0-255; masks (resized nearest-neighbour to
    ``input_shape``, their values class indices) int32 ``(h, w)``.
    """
    options = options or DatasetOptions()
    paths = [str(p) for p in paths]
    masks = None if masks is None else [str(m) for m in masks]
    store = options.store()
    infos = readable_images(paths, max_pixels, store)
    columns = _file_columns(paths, masks, input_shape, infos, max_pixels)
    if options.features is not None:  # each image's cached features in place of its pixels
        columns[0] = _features_column(paths, options.features)
    loaders = [column.loader(store, options.parallel_calls) for column in columns]
    files = tuple(sources for _, sources in loaders)
    extra = () if targets is None or masks is not None else (targets,)
    dataset = tf.data.Dataset.from_tensor_slices((*files, *extra))

    @tf.autograph.experimental.do_not_convert
    def load(*element):
        loaded = [fn(*sources) for (fn, _), sources in zip(loaders, element, strict=False)]
        return (*loaded, *element[len(loaders) :])

    seeds = augmentation_seeds(shuffle_seed) if options.augmentations else None
    if options.shard is not None:  # data_parallel: file names -> shuffle -> seeds -> slice
        dataset = _shuffle(dataset, options.shuffle_buffer or len(paths), shuffle_seed)
        dataset, batch_size = take_shard(dataset, options.shard, batch_size, seeds)
        if seeds is not None:
            load, seeds = with_seed(load), None  # the seeds travel with the file names
        dataset = dataset.map(load, num_parallel_calls=options.parallel_calls)
    else:
        in_memory = options.cache == "memory" and _fits_in_memory(columns, len(paths))
        dataset = _loaded_in_order(dataset, load, options, shuffle_seed, in_memory)
    if options.augmentations:
        dataset = _augmented(dataset, seeds, options, has_mask=masks is not None)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(_to_model_types)
    return without_autotune(dataset.prefetch(AUTOTUNE))


def _file_columns(
    paths: list[str],
    masks: list[str] | None,
    input_shape: Sequence[int],
    infos: Sequence[ImageInfo],
    max_pixels: int | None,
) -> list[FileColumn]:
    """The image column, decoded as each image's header probe (``infos``) says, and for
    segmentation the mask column."""
    routes, turns = _routes(infos)
    decoding = Decoding.of(infos, max_pixels)
    height, width, channels = input_shape

    @tf.autograph.experimental.do_not_convert
    def decode(path, route, orientation):
        return decode_image(path, input_shape, route, orientation, decoding)

    @tf.autograph.experimental.do_not_convert
    def decode_mask(path):
        return load_mask(path, (height, width))

    sources = (_strings(paths), routes, turns)
    columns = [FileColumn("image", (height, width, channels), paths, sources, decode)]
    if masks is not None:
        columns.append(FileColumn("mask", (height, width), masks, (_strings(masks),), decode_mask))
    return columns


def _features_column(paths: list[str], features: CachedFeatures) -> FileColumn:
    """A column reading each image's cached features (float32) from its entry."""
    entries = _strings([features.entries[path] for path in paths])
    read = tf.autograph.experimental.do_not_convert(features.read)
    return FileColumn("features", features.shape, paths, (entries,), read, cached=False)


def _loaded_in_order(dataset, load, options: DatasetOptions, seed: int | None, in_memory: bool):
    """File names -> [shuffle] -> load, or with the memory cache load -> cache -> [shuffle]
    (the same order: a shuffle's order depends on the seed and the count alone)."""
    buffer = options.shuffle_buffer or int(dataset.cardinality())
    if not in_memory:
        dataset = _shuffle(dataset, buffer, seed)
    dataset = dataset.map(load, num_parallel_calls=options.parallel_calls)
    if in_memory:
        dataset = _shuffle(dataset.cache(), buffer, seed)
    return dataset


def _augmented(dataset, seeds, options: DatasetOptions, has_mask: bool):
    """Each element (image, and its mask) through ``options.augmentations``, with its own
    seed (from ``seeds``, or carried by the element under ``data_parallel``)."""
    augmentations = options.augmentations

    @tf.autograph.experimental.do_not_convert
    def apply(element, seed):
        image, *rest = element
        image, mask = augment(image, seed, augmentations, mask=rest[0] if has_mask else None)
        return (image, mask) if has_mask else (image, *rest)

    if seeds is not None:
        dataset = tf.data.Dataset.zip(dataset, seeds)
    return dataset.map(apply, num_parallel_calls=options.parallel_calls)


def _strings(values: Sequence[str]) -> tf.Tensor:
    return tf.constant(values, dtype=tf.string, shape=[len(values)])


@tf.autograph.experimental.do_not_convert  # plain graph code
def _to_model_types(image, *rest):
    """A batch as the model takes it: images float32, masks int32, targets as they are."""
    image = tf.cast(image, tf.float32)
    if not rest:
        return image
    target = rest[0]
    if target.dtype == tf.uint8:  # a batch of masks
        target = tf.cast(target, tf.int32)
    return image, target


def _fits_in_memory(columns: Sequence[FileColumn], count: int) -> bool:
    nbytes = count * sum(int(np.prod(column.shape)) for column in columns)
    if memory_fits(nbytes):
        return True
    log.warning(
        "TRAINING.CACHE: memory: the %d decoded images take %.2f GB, more than half the "
        "memory available; reading them from the decoded image cache on disk instead.",
        count,
        nbytes / 1e9,
    )
    return False


def prediction_dataset(
    infos: Sequence[ImageInfo],
    input_shape: Sequence[int],
    batch_size: int,
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    start: int = 0,
    skip_errors: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(indices, images)`` for prediction: the images from position ``start``
    on whose header probe passed, each with its position in ``infos``, in order.

    With ``skip_errors`` an image that still fails to decode (a truncated JPEG, say) is
    dropped by ``ignore_errors`` before batching, so one bad file never stops the run and
    every batch holds good images only; the caller names the positions that never came.
    Without it tf.data fuses the decode into the batching (``ignore_errors`` in between
    prevents that, costing about 8% of the predict stage), and a bad file ends the pass with
    an error: ``kerapipe.steps.predict`` starts there, and switches only then.
    """
    keep = [i for i, info in enumerate(infos) if info.ok and i >= start]
    chosen = [infos[i] for i in keep]
    routes, turns = _routes(chosen)
    files = (
        tf.constant(keep, dtype=tf.int64, shape=[len(keep)]),
        tf.constant([info.path for info in chosen], dtype=tf.string, shape=[len(keep)]),
        routes,
        turns,
    )

    decoding = Decoding.of(chosen, max_pixels)

    def decode(index, path, route, orientation):
        return index, decode_image(path, input_shape, route, orientation, decoding)

    dataset = tf.data.Dataset.from_tensor_slices(files).map(decode, num_parallel_calls=AUTOTUNE)
    dataset = (dataset.ignore_errors() if skip_errors else dataset).batch(batch_size)
    dataset = dataset.map(lambda index, batch: (index, tf.cast(batch, tf.float32)))
    return without_autotune(dataset.prefetch(AUTOTUNE))


def augmentation_seeds(shuffle_seed: int | None) -> tf.data.Dataset:
    """Endless per-element augmentation seeds (pairs), drawn anew every epoch from the seed."""
    seeds = tf.data.Dataset.random(seed=shuffle_seed or 0, rerandomize_each_iteration=True)
    return seeds.batch(2, drop_remainder=True)


def take_shard(
    dataset: tf.data.Dataset,
    shard: Shard,
    batch_size: int,
    seeds: tf.data.Dataset | None = None,
) -> tuple[tf.data.Dataset, int]:
    """This process's slice of every global batch of ``batch_size`` elements, unbatched, and
    the batch size it feeds its own devices (``DISTRIBUTION: data_parallel``).

    Every process lists and shuffles the same file names alike (same seed); each then decodes
    only slice ``shard.index`` of each global batch, so the processes together feed exactly
    the batches one process would (kerapipe/distribution.py). ``seeds`` (augmentation seeds)
    are zipped on before the slicing, so an image gets the same random transform whichever
    process decodes it. The last incomplete global batch of each pass is left out: every
    device takes an equal part of a batch.
    """
    local = batch_size // shard.count
    batches = int(dataset.cardinality()) // batch_size
    if batches < 1:
        raise DataError(
            f"DISTRIBUTION: data_parallel needs at least one full global batch of {batch_size} "
            f"images (BATCH_SIZE x devices); this set has {int(dataset.cardinality())}. Lower "
            "TRAINING.BATCH_SIZE or add images."
        )
    if seeds is not None:
        dataset = tf.data.Dataset.zip(dataset, seeds)
    start = shard.index * local

    def part(*element):
        return tf.nest.map_structure(lambda tensor: tensor[start : start + local], element)

    dataset = dataset.batch(batch_size, drop_remainder=True).map(part).unbatch()
    return dataset.apply(tf.data.experimental.assert_cardinality(batches * local)), local


def with_seed(decode):
    """``decode`` for elements that carry their augmentation seed: ``(element, seed)``."""

    def run(element, seed):
        return (decode(*element) if isinstance(element, tuple) else decode(element)), seed

    return run


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` without tf.data's autotuning thread: map calls left to AUTOTUNE run on
    one thread per core (at most 16), as many as the autotuner gives a decode-bound pipeline.

    The thread costs more than it finds here. A pass waits for its next wake-up at the end
    (its sleep doubles from 10 ms up to a minute): in benchmarks/run.py that made a 2 s
    prediction take 2.6 s in about half the runs, and in training it made one epoch in three
    0.1 s longer, at random (the 16x16 digits, 2 cores). It also takes CPU time from the
    training it measures.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _shuffle(dataset: tf.data.Dataset, buffer: int, seed: int | None) -> tf.data.Dataset:
    """``dataset`` reshuffled every pass with ``seed``; as it is without a seed."""
    if seed is None:
        return dataset
    return dataset.shuffle(max(1, buffer), seed=seed, reshuffle_each_iteration=True)
