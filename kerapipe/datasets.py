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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from kerapipe.augmentations import Augmentation, augment, build_augmentations
from kerapipe.config import DEFAULT_CACHE_MAX_GB, DEFAULT_MAX_IMAGE_PIXELS
from kerapipe.decoded_cache import (
    TRAILER,
    DecodedCache,
    decoded_cache,
    default_cache_folder,
)
from kerapipe.errors import DataError
from kerapipe.images import (
    JPEG,
    JPEG_GRAY,
    PILLOW,
    PNG,
    PNG_16,
    PNG_GRAY,
    ROUTES,
    ImageInfo,
    decode_with_pillow,
    describe_problems,
    probe_images,
)

if TYPE_CHECKING:
    from kerapipe.config import TrainingParams
    from kerapipe.distribution import Shard

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
    """

    cache: str = "none"
    cache_dir: str | None = None
    cache_max_gb: float = DEFAULT_CACHE_MAX_GB
    shuffle_buffer: int | None = None
    augmentations: tuple[Augmentation, ...] = ()
    num_parallel_calls: int | None = None
    shard: Shard | None = None

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


@dataclass(frozen=True)
class _Files:
    """One column of an element's files and how each becomes uint8 pixels of ``shape``.

    ``sources`` are per-file tensors (the path first) that ``decode`` takes as arguments;
    ``kind`` names what is decoded, for the cache key."""

    kind: str
    shape: tuple[int, ...]
    paths: list[str]
    sources: tuple[tf.Tensor, ...]
    decode: Callable[..., tf.Tensor]

    def loader(
        self, store: DecodedCache | None, calls: int
    ) -> tuple[Callable[..., tf.Tensor], tuple[tf.Tensor, ...]]:
        """The map function that gives one file's pixels, and its per-file tensors: the
        decode, or, with a decoded cache that holds (or can hold) these files, the read of
        their entries (filled now where missing), the decode standing by for a damaged one."""
        if store is None:
            return self.decode, self.sources
        entries = store.entry_paths(store.digests(self.paths), self.kind, self.shape)
        size = int(np.prod(self.shape))
        if not store.prepare(entries, size, lambda at: self._fill(store, entries, at, calls)):
            return self.decode, self.sources

        @tf.autograph.experimental.do_not_convert
        def load(*args: tf.Tensor) -> tf.Tensor:
            *sources, entry = args
            return read_entry(entry, self.shape, lambda: self._rewrite(store, entry, sources))

        return load, (*self.sources, tf.constant(entries, dtype=tf.string))

    def _fill(
        self, store: DecodedCache, entries: list[str], positions: list[int], calls: int
    ) -> bool:
        """Decode the files at ``positions`` in parallel and write their entries; False if
        one of them does not decode."""
        first_of = {entries[i]: i for i in reversed(positions)}  # a file's copies share one
        chosen = sorted(first_of.values())
        sources = tuple(tf.gather(source, chosen) for source in self.sources)
        names = tf.constant([entries[i] for i in chosen], dtype=tf.string)

        @tf.autograph.experimental.do_not_convert
        def decode(entry, *args):
            pixels = self.decode(*args)
            return entry, pixels, fingerprint(pixels)

        data = tf.data.Dataset.from_tensor_slices((names, *sources))
        data = data.map(decode, num_parallel_calls=calls, deterministic=False)
        data = data.batch(FILL_BATCH).prefetch(AUTOTUNE)  # batches: less Python per image
        log.info("Decoding %d %s(s) into the cache %s.", len(chosen), self.kind, store.folder)
        try:
            for batch in data.as_numpy_iterator():
                for entry, pixels, print_ in zip(*batch, strict=True):
                    store.write(os.fsdecode(entry), pixels, print_)
                    store.filled += 1
        except tf.errors.InvalidArgumentError:  # a file that does not decode
            log.debug("A decode failed: these files are decoded each epoch.", exc_info=True)
            return False  # the epoch meets it, and the train stage names the file
        return True

    def _rewrite(self, store: DecodedCache, entry: tf.Tensor, sources) -> tf.Tensor:
        """The file decoded again, its damaged entry written anew (in Python: rare)."""
        pixels = self.decode(*sources)

        def write(name: bytes, data: np.ndarray, print_: np.ndarray) -> np.ndarray:
            store.write(os.fsdecode(np.asarray(name).item()), data, print_)
            store.rebuilt += 1
            return data

        out = tf.numpy_function(
            write, [entry, pixels, fingerprint(pixels)], tf.uint8, stateful=False
        )
        out.set_shape(self.shape)
        return out


def fingerprint(pixels: tf.Tensor) -> tf.Tensor:
    """The 8-byte FarmHash fingerprint of ``pixels``' bytes (uint8 ``[8]``)."""
    return tf.fingerprint(tf.reshape(pixels, [1, -1]))[0]


def read_entry(entry: tf.Tensor, shape: Sequence[int], fallback: Callable[[], tf.Tensor]):
    """The pixels of a decoded cache entry, or ``fallback()`` when the entry is damaged (the
    wrong length, or pixels that do not match their fingerprint). Graph ops only."""
    size = int(np.prod(shape))
    contents = tf.io.read_file(entry)
    raw = tf.io.decode_raw(contents, tf.uint8, fixed_length=size + TRAILER)
    pixels, stored = raw[:size], raw[size:]
    whole = tf.equal(tf.strings.length(contents), size + TRAILER)
    sound = tf.logical_and(whole, tf.reduce_all(tf.equal(fingerprint(pixels), stored)))
    image = tf.cond(sound, lambda: tf.reshape(pixels, shape), fallback)
    image.set_shape(shape)
    return image


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
    store = options.store()
    infos = readable_images(paths, max_pixels, store)
    routes, turns = _routes(infos)
    decoding = Decoding.of(infos, max_pixels)
    height, width, channels = input_shape

    @tf.autograph.experimental.do_not_convert
    def decode(path, route, orientation):
        return decode_image(path, input_shape, route, orientation, decoding)

    @tf.autograph.experimental.do_not_convert
    def decode_mask(path):
        return load_mask(path, (height, width))

    image_sources = (_strings(paths), routes, turns)
    columns = [_Files("image", (height, width, channels), paths, image_sources, decode)]
    if masks is not None:
        masks = [str(m) for m in masks]
        columns.append(_Files("mask", (height, width), masks, (_strings(masks),), decode_mask))
    loaders = [column.loader(store, options.parallel_calls) for column in columns]
    files = tuple(sources for _, sources in loaders)
    extra = () if targets is None or masks is not None else (targets,)
    dataset = tf.data.Dataset.from_tensor_slices((*files, *extra))

    @tf.autograph.experimental.do_not_convert
    def load(*element):
        loaded = [fn(*sources) for (fn, _), sources in zip(loaders, element, strict=False)]
        return (*loaded, *element[len(loaders) :])

    shuffle = shuffle_seed is not None
    seeds = augmentation_seeds(shuffle_seed) if options.augmentations else None
    buffer = options.shuffle_buffer or len(paths)
    if options.shard is not None:  # data_parallel: file names -> shuffle -> seeds -> slice
        if shuffle:
            dataset = _shuffle(dataset, buffer, shuffle_seed)
        dataset, batch_size = take_shard(dataset, options.shard, batch_size, seeds)
        if seeds is not None:
            load, seeds = with_seed(load), None  # the seeds travel with the file names
        dataset = dataset.map(load, num_parallel_calls=options.parallel_calls)
    else:
        in_memory = options.cache == "memory" and _fits_in_memory(columns, len(paths))
        if shuffle and not in_memory:
            dataset = _shuffle(dataset, buffer, shuffle_seed)
        dataset = dataset.map(load, num_parallel_calls=options.parallel_calls)
        if in_memory:
            dataset = dataset.cache()
            if shuffle:
                dataset = _shuffle(dataset, buffer, shuffle_seed)

    if options.augmentations:
        augmentations = options.augmentations
        has_mask = masks is not None

        @tf.autograph.experimental.do_not_convert
        def apply(element, seed):
            image, *rest = element
            image, mask = augment(image, seed, augmentations, mask=rest[0] if has_mask else None)
            return (image, mask) if has_mask else (image, *rest)

        if seeds is not None:
            dataset = tf.data.Dataset.zip(dataset, seeds)
        dataset = dataset.map(apply, num_parallel_calls=options.parallel_calls)

    dataset = dataset.batch(batch_size)
    dataset = dataset.map(_to_model_types)
    return without_autotune(dataset.prefetch(AUTOTUNE))


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


def _fits_in_memory(columns: Sequence[_Files], count: int) -> bool:
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


def load_mask(path, size, dtype=None):
    """Read a mask PNG, resize it with nearest neighbour to ``size``: ``(h, w)`` of ``dtype``
    (uint8 by default; the values are the PNG's class indices, unchanged)."""
    height, width = size
    mask = tf.io.decode_png(tf.io.read_file(path), channels=1)
    mask = tf.image.resize(mask, (height, width), method="nearest")
    mask = tf.cast(mask[:, :, 0], dtype or tf.uint8)
    mask.set_shape((height, width))
    return mask


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
    an error: ``kerapipe.predict`` starts there, and switches only then.
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


def _shuffle(dataset: tf.data.Dataset, buffer: int, seed: int) -> tf.data.Dataset:
    return dataset.shuffle(max(1, buffer), seed=seed, reshuffle_each_iteration=True)
