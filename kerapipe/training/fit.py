"""Keras' ``fit``, as a training run calls it: several batches per compiled call, Keras'
progress bar on a terminal, Ctrl-C that always stops it (kerapipe/training/interrupts.py), and
TensorFlow's errors about files turned into one message that names the files (an image that
does not decode, files deleted while the epochs read them)."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from kerapipe.decoded_cache import DecodedCache
from kerapipe.errors import DataError
from kerapipe.images import undecodable_images
from kerapipe.training.interrupts import StopOnInterrupt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitData:
    """What ``fit`` reads: the training and validation datasets (each finite, iterated once
    per epoch), ``named`` (each file read, a local copy for a remote source, to its path on
    its source: for messages), Keras' ``class_weight`` (or None) and the decoded image cache
    the datasets read (or None)."""

    train: Any
    validation: Any | None
    named: dict[str, str]
    class_weight: dict[int, float] | None = None
    cache: DecodedCache | None = None


def fit(
    model: keras.Model,
    data: FitData,
    epochs: int,
    initial_epoch: int,
    callbacks: list[keras.callbacks.Callback],
    steps_per_execution: int = 1,
) -> keras.callbacks.History:
    """``model.fit`` from ``initial_epoch`` up to ``epochs``, running
    ``steps_per_execution`` batches per compiled call (the last call of an epoch runs the
    batches left), with undecodable or vanished files named in one DataError."""
    if data.class_weight:
        weights = {k: round(v, 4) for k, v in data.class_weight.items()}
        log.info("Class weights (by label): %s", weights)
    stop = StopOnInterrupt()
    try:
        with_steps_per_execution(model, steps_per_execution)
        with stop.noting_interrupts():
            return model.fit(
                data.train,
                validation_data=data.validation,
                epochs=epochs,
                initial_epoch=initial_epoch,
                callbacks=[*callbacks, stop],
                shuffle=False,  # the dataset shuffles itself, seeded
                class_weight=data.class_weight,
                verbose=fit_verbosity(),
            )
    except tf.errors.InvalidArgumentError as err:
        bad = [data.named[path] for path in undecodable_images(list(data.named))]
        if not bad:
            raise
        raise DataError(
            f"{len(bad)} image(s) in the inventory cannot be decoded: {', '.join(bad[:5])}. "
            "Re-export or remove them, or let the inventory find and skip them "
            "(INVENTORY.CHECK_IMAGES: decode with BAD_IMAGES: skip), then rerun inventory "
            "and train."
        ) from err
    except tf.errors.NotFoundError as err:
        error = files_gone(data.named, data.cache)
        if error is None:
            raise
        raise error from err
    finally:
        # predict would trace the model once per batch of an execution: one at a time again
        with_steps_per_execution(model, 1)


def files_gone(named: dict[str, str], store: DecodedCache | None) -> DataError | None:
    """The error for files deleted while the epochs read them (TensorFlow's names no file):
    images or masks of the inventory (``named`` maps each local path to its source's: a
    remote file's local copy is in the remote cache), else entries of the decoded image
    cache ``store``; None when nothing is missing."""
    resume = "TRAINING.LOAD_CHECKPOINT: true continues after the last finished epoch"
    gone = [(path, source) for path, source in named.items() if not os.path.isfile(path)]
    copies = bool(gone) and gone[0][0] != gone[0][1]  # one source: all copies, or none
    if gone and not copies:
        return DataError(
            f"{len(gone)} file(s) of the inventory disappeared while training read them: "
            f"{', '.join(source for _, source in gone[:5])}. Put them back, or rerun the "
            f"inventory without them; then rerun train ({resume})."
        )
    if copies:
        return DataError(
            f"the local copies of {len(gone)} file(s) were deleted from the remote cache "
            f"while training read them ({gone[0][0]}, of {gone[0][1]}). Delete the cache "
            f"only while no training reads it. Rerun train: they are fetched again, and {resume}."
        )
    lost = store.lost() if store else []
    if lost:
        return DataError(
            f"the decoded image cache {store.folder} lost {len(lost)} of the entries training "
            f"reads ({lost[0]}): they were deleted while it ran. Delete the cache only while "
            f"no training reads it. Rerun train: the missing entries are decoded again, and "
            f"{resume}."
        )
    return None


def with_steps_per_execution(model: keras.Model, steps: int) -> None:
    """Run ``steps`` batches per compiled call from now on (Keras makes its functions anew)."""
    model.steps_per_execution = steps
    model.train_function = model.test_function = model.predict_function = None


def fit_verbosity() -> int:
    """Keras' progress bar on a terminal, a line per epoch otherwise, none with ``-q``."""
    if not log.isEnabledFor(logging.INFO):
        return 0
    return 1 if sys.stdout.isatty() else 2
