"""Stage 3: run the trained model over every image under PREDICTION_DATA_DIR and write one
result row per image."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kerapipe.artifacts import ModelPaths, load_model
from kerapipe.config import Params
from kerapipe.sources import get_source
from kerapipe.tasks.base import get_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionResult:
    csv_path: str
    rows: int


def run_prediction(params: Params) -> PredictionResult:
    from kerapipe.datasets import single_pass  # imports TensorFlow

    task = get_task(params)
    source = get_source(params.DATA.PREDICTION_DATA_SOURCE)
    paths = task.prediction_inputs(source, params.DATA.PREDICTION_DATA_DIR)
    model_paths = ModelPaths.from_params(params)
    model = load_model(model_paths.model, model_paths.format)
    local_paths = [source.local_path(p) for p in paths]
    batches = single_pass(task.prediction_dataset(local_paths, params.TRAINING.BATCH_SIZE))
    outputs = predict_batches(model, batches, total=len(paths))
    out = task.write_predictions(source, params.DATA.PREDICTION_OUTPUT_DIR, paths, outputs)
    log.info("Wrote %s: %d rows.", out, len(paths))
    return PredictionResult(out, len(paths))


def predict_batches(model, batches, total: int) -> Iterator[np.ndarray]:
    """The model's outputs, one array per batch, as they are computed, with a progress bar
    on a terminal (none when output is not a TTY, as in CI logs).

    The task writes each batch as it comes, so outputs never pile up in memory (segmentation
    score maps are height x width x classes floats per image). Each batch runs through one
    compiled ``tf.function`` call, as ``model.predict`` does; an eager ``model(batch)`` per
    batch is much slower for small models.
    """
    import tensorflow as tf
    from tqdm import tqdm

    step = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    with tqdm(total=total, unit="image", desc="predicting", disable=None, delay=1) as bar:
        for batch in batches:
            output = _as_array(step(batch))
            bar.update(len(output))
            yield output


def _as_array(output) -> np.ndarray:
    if isinstance(output, dict):  # a SavedModel signature returns {name: tensor}
        output = next(iter(output.values()))
    return np.asarray(output)
