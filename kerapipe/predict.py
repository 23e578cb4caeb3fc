"""Stage 3: run the trained model over every image under PREDICTION_DATA_DIR and write one
result row per image. An image that cannot be read (damaged, too large, a dangling link) gets
its row too, with the reason in its ``status`` and no outputs; it never stops the run.

When ``DATA.PREDICTION_LABELS`` gives the true answers, the predictions are scored against
them (the task's metrics, held out from training) in ``metrics.json`` beside them, which
``dvc.yaml`` declares, so ``dvc metrics diff`` shows them beside the validation metrics.

Images on a remote source are fetched first (in parallel, into the remote cache), the model
too; the results are written through ``DATA.PREDICTION_OUTPUT_SOURCE``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from kerapipe.artifacts import ModelPaths, check_model_matches, load_model
from kerapipe.backend import use_backend
from kerapipe.checks import check_params
from kerapipe.config import Params
from kerapipe.images import ImageInfo, describe_problems, find_bad_images, probe_images
from kerapipe.pipeline import check_labels
from kerapipe.sources import source_of
from kerapipe.tasks.base import Task, get_task

log = logging.getLogger(__name__)
OK = "ok"  # the status of an image that was predicted


@dataclass(frozen=True)
class PredictionResult:
    csv_path: str
    rows: int
    metrics_path: str | None = None  # the held-out scores, when DATA.PREDICTION_LABELS is set


def run_prediction(params: Params) -> PredictionResult:
    check_params(params)
    use_backend(params.TRAINING.BACKEND)  # or one error: Keras runs on another
    task = get_task(params)
    source = source_of(params.DATA, "PREDICTION_DATA_DIR")
    check_labels(params)  # before any work: predict scores itself against them
    paths = task.prediction_inputs(source, params.DATA.PREDICTION_DATA_DIR)
    model_paths = ModelPaths.from_params(params)
    check_model_matches(model_paths, params, task)
    labels = params.DATA.PREDICTION_LABELS
    truth = task.read_labels(source, labels) if labels else None  # checked before any work
    model = load_model(model_paths.local_model(), model_paths.format, shown=model_paths.model)
    # Each header is read once, to pick its decoder; a file it refuses (too many pixels, not
    # an image, a dangling link) gets its row with the reason and is never decoded.
    infos = probe_images(source.local_paths(paths), params.PIPELINE.MAX_IMAGE_PIXELS)
    statuses = [info.problem or OK for info in infos]
    batches = prediction_batches(task, infos, params.TRAINING.BATCH_SIZE)
    outputs = predict_batches(model, batches, total=statuses.count(OK))
    outputs = note_failures(outputs, infos, statuses)
    out_source = source_of(params.DATA, "PREDICTION_OUTPUT_DIR")
    out = task.write_predictions(
        out_source, params.DATA.PREDICTION_OUTPUT_DIR, paths, outputs, statuses, infos
    )
    bad = {path: status for path, status in zip(paths, statuses, strict=True) if status != OK}
    if bad:
        log.warning(
            "%d of %d image(s) could not be predicted; their rows in %s give the reason in "
            "'status' and have no outputs: %s.",
            len(bad),
            len(paths),
            out,
            describe_problems(bad),
        )
    log.info("Wrote %s: %d rows.", out, len(paths))
    scored = write_scores(params, task, (source, out_source), out, truth) if labels else None
    if scored is None and out_source.exists(metrics_path(params)):
        out_source.remove(metrics_path(params))  # an earlier run's scores, for other predictions
    return PredictionResult(out, len(paths), scored)


def metrics_path(params: Params) -> str:
    return f"{params.DATA.PREDICTION_OUTPUT_DIR.rstrip('/')}/metrics.json"


def write_scores(params: Params, task: Task, sources, predictions_csv: str, truth) -> str:
    """Score the written predictions against ``DATA.PREDICTION_LABELS`` and write
    ``metrics.json`` (``{"held_out": {...}}``) beside them. Images whose status is not ok
    are left out of the scores and counted (``left_out``). ``sources`` are those of the
    labels and of the predictions."""
    import pandas as pd

    source, out_source = sources
    table = pd.read_csv(io.StringIO(out_source.read_text(predictions_csv)), keep_default_na=False)
    scores = task.score_predictions(
        source, table, truth, params.DATA.PREDICTION_LABELS, predictions_source=out_source
    )
    out = metrics_path(params)
    out_source.write_text(out, json.dumps({"held_out": scores}, indent=2) + "\n")
    log.info(
        "Wrote %s: %d image(s) scored against %s (%d left out, %d without a label).",
        out,
        scores["images"],
        params.DATA.PREDICTION_LABELS,
        scores["left_out"],
        scores["unlabelled"],
    )
    return out


def prediction_batches(task: Task, infos: list[ImageInfo], batch_size: int) -> Iterator:
    """``(indices, images)`` for the readable images, in order, each decoded once.

    The first pass lets tf.data fuse decoding and batching; an image that fails to decode
    ends it with an error. The images not yet given then go through a second pass that
    leaves out every image that fails (``ignore_errors``), so a bad file costs one batch
    decoded again, and its absence is named by ``note_failures``.
    """
    import tensorflow as tf

    start = 0
    for skip_errors in (False, True):
        batches = task.prediction_dataset(infos, batch_size, start, skip_errors)
        try:
            for indices, images in batches:
                yield indices, images
                start = int(indices[-1]) + 1
            return
        except tf.errors.OpError:
            if skip_errors:
                raise
            log.info("An image failed to decode; predicting the rest without it.")


def note_failures(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], infos: list[ImageInfo], statuses: list[str]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``batches`` passed on as they come; once they end, the images that passed the header
    probe but never came (the dataset dropped them when their decoding failed) get their
    reason in ``statuses``, from Pillow's full decode of those few files only."""
    came: set[int] = set()
    for indices, outputs in batches:
        came.update(indices.tolist())
        yield indices, outputs
    missing = [i for i, status in enumerate(statuses) if status == OK and i not in came]
    if missing:
        found = find_bad_images([infos[i].path for i in missing], "decode", max_pixels=None)
        for i in missing:
            statuses[i] = found.get(infos[i].path, "undecodable: TensorFlow cannot decode it")


def predict_batches(model, batches, total: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(indices, outputs)`` for each batch of ``(indices, images)``, as they are computed,
    with a progress bar on a terminal (none when output is not a TTY, as in CI logs).

    The task writes each batch as it comes, so outputs never pile up in memory (segmentation
    score maps are height x width x classes floats per image). Each batch runs through one
    compiled call, as ``model.predict`` does (``kerapipe.backend.inference_step``); an eager
    ``model(batch)`` per batch is much slower for small models.
    """
    from tqdm import tqdm

    from kerapipe.backend import inference_step

    step = inference_step(model)
    with tqdm(total=total, unit="image", desc="predicting", disable=None, delay=1) as bar:
        for indices, batch in batches:
            output = step(batch)
            bar.update(len(output))
            yield np.asarray(indices), output
