"""A column of an element's files (images, or masks) read through the decoded image cache
inside ``tf.data``: each file's entry is read back with graph ops, checked against its
fingerprint, and decoded again only when damaged. The cache itself (keys, bounds, the memo of
digests) is kerapipe/decoded_cache.py; this is its reader and filler on TensorFlow's side.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kerapipe.decoded_cache import TRAILER, DecodedCache

log = logging.getLogger(__name__)
AUTOTUNE = tf.data.AUTOTUNE
FILL_BATCH = 16  # images decoded into the decoded image cache per Python step


@dataclass(frozen=True)
class FileColumn:
    """One column of an element's files and how each becomes uint8 pixels of ``shape``.

    ``sources`` are per-file tensors (the path first) that ``decode`` takes as arguments;
    ``kind`` names what is decoded, for the cache key."""

    kind: str
    shape: tuple[int, ...]
    paths: list[str]
    sources: tuple[tf.Tensor, ...]
    decode: Callable[..., tf.Tensor]
    cached: bool = True  # False: ``decode`` itself reads a cache (a frozen base's features)

    def loader(
        self, store: DecodedCache | None, calls: int
    ) -> tuple[Callable[..., tf.Tensor], tuple[tf.Tensor, ...]]:
        """The map function that gives one file's pixels, and its per-file tensors: the
        decode, or, with a decoded cache that holds (or can hold) these files, the read of
        their entries (filled now where missing), the decode standing by for a damaged one."""
        if store is None or not self.cached:
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
