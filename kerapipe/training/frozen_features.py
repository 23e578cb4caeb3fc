"""Frozen epochs at the cost of the head. While the base is frozen and no augmentation applies,
the base gives every image the same features every epoch: they are computed once, kept in the
decoded image cache beside the images (kerapipe/decoded_cache.py), and the head trains on them.

An entry is one image's features, keyed as a decoded image is (its content and the input
shape) and by what made them: the backbone, the values of its weights as loaded (whichever
file, or seed, they came from), the precision policy, the backend and the Keras version.
Every run and experiment on the same machine shares them: a sweep over the head's learning
rate (``dvc exp run --queue``) pays the backbone once for all of them.

The head is the part of the model after its ``features`` layer (kerapipe/models/base.py), the
same layers, so what it learns is the model's; it is fed the same examples in the same
order as the whole model would be (the datasets shuffle file names, with the same seed), so
the results equal training through the frozen base, up to floating-point rounding.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from kerapipe.models.base import FEATURES

if TYPE_CHECKING:
    import pandas as pd

    from kerapipe.datasets import DatasetOptions
    from kerapipe.decoded_cache import DecodedCache
    from kerapipe.tasks.base import Task

log = logging.getLogger(__name__)
VERIFY_CHUNK = 1024  # entries whose fingerprints are checked in one TensorFlow call


@dataclass(frozen=True)
class CachedFeatures:
    """The cache entries holding each image's features (by local path), and their shape."""

    entries: dict[str, str]
    shape: tuple[int, ...]

    def read(self, entry: tf.Tensor) -> tf.Tensor:
        """One entry's features, as float32 (graph ops, for the tf.data map)."""
        size = int(np.prod(self.shape))
        raw = tf.io.decode_raw(tf.io.read_file(entry), tf.uint8, fixed_length=4 * size + 8)
        features = tf.bitcast(tf.reshape(raw[: 4 * size], [size, 4]), tf.float32)
        return tf.reshape(features, self.shape)


def split_at_features(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """``(extractor, head)``: the model up to its ``features`` layer and the layers after
    it (the same layer objects, so training the head trains the model); None for a model
    without that layer."""
    try:
        features = model.get_layer(FEATURES).output
    except ValueError:
        return None
    extractor = keras.Model(model.inputs, features, name=f"{model.name}_extractor")
    head = keras.Model(features, model.outputs, name=f"{model.name}_head")
    return extractor, head


def features_kind(model_name: str, extractor: keras.Model) -> str:
    """What made a model's features, as part of their cache key: the model, the input shape
    (pooled features have the same shape at any input size), and the extractor's weights
    as loaded (every weights file, or a random start's seed, and the scaling layers)."""
    weights = hashlib.blake2b(digest_size=20)
    for variable in extractor.weights:
        weights.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    what = {
        "model": model_name,
        "input_shape": list(extractor.input_shape[1:]),
        "weights": weights.hexdigest(),
        "policy": keras.mixed_precision.global_policy().name,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]
    return f"features-{digest}"


def cache_features(
    extractor: keras.Model,
    task: Task,
    rows: pd.DataFrame,
    options: DatasetOptions,
    store: DecodedCache,
    kind: str,
    batch_size: int,
) -> CachedFeatures | None:
    """The features of every image of ``rows`` (local paths) in ``store``, computed for
    those not there yet (their images read through the decoded image cache); None when
    they do not fit under ``TRAINING.CACHE_MAX_GB``."""
    paths = list(rows.filepath)
    shape = tuple(int(size) for size in extractor.output_shape[1:])
    entries = store.entry_paths(store.digests(paths), kind, shape)

    def fill(positions: list[int]) -> bool:
        first = {entries[i]: i for i in reversed(positions)}  # a file's copies share one
        chosen = sorted(first.values())
        log.info("Computing the frozen base's features of %d image(s), once.", len(chosen))
        subset = rows.iloc[chosen]
        write_features(extractor, task, subset, options, store, entries, chosen, batch_size)
        return True

    if not store.prepare(entries, 4 * int(np.prod(shape)), fill):
        return None
    damaged = damaged_entries([entries[i] for i in range(len(paths))])
    if damaged:
        at = [i for i, entry in enumerate(entries) if entry in set(damaged)]
        fill(at)
    return CachedFeatures(dict(zip(paths, entries, strict=True)), shape)


def write_features(
    extractor: keras.Model,
    task: Task,
    rows: pd.DataFrame,
    options: DatasetOptions,
    store: DecodedCache,
    entries: list[str],
    positions: list[int],
    batch_size: int,
) -> None:
    """Run the images of ``rows`` through ``extractor``, in order, and write each one's
    features (float32, then their fingerprint) to its entry."""
    data = task.data.dataset(rows, batch_size, shuffle_seed=None, options=options.for_evaluation())
    at = iter(positions)
    for images, *_ in data:
        features = np.asarray(extractor.predict_on_batch(images), np.float32)
        prints = tf.fingerprint(tf.reshape(features, [len(features), -1])).numpy()
        for one, print_ in zip(features, prints, strict=True):
            store.write(entries[next(at)], one, print_)


def damaged_entries(entries: list[str]) -> list[str]:
    """The entries whose features do not match their fingerprint (checked in chunks)."""
    damaged = []
    for start in range(0, len(entries), VERIFY_CHUNK):
        chunk = entries[start : start + VERIFY_CHUNK]
        raws = [np.fromfile(entry, np.uint8) for entry in chunk]
        body = np.stack([raw[:-8] for raw in raws])
        prints = tf.fingerprint(tf.constant(body)).numpy()
        damaged += [
            entry
            for entry, raw, print_ in zip(chunk, raws, prints, strict=True)
            if bytes(raw[-8:]) != bytes(print_)
        ]
    return damaged
