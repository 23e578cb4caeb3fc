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

from kerapipe import fingerprints
from kerapipe.artifacts import check_model_matches, load_model
from kerapipe.backend import require_backend
from kerapipe.context import RunContext
from kerapipe.image_probe import ImageInfo, probe_images
from kerapipe.images import describe_problems, find_bad_images
from kerapipe.steps.validate import check_labels
from kerapipe.tasks.base import Task

log = logging.getLogger(__name__)
OK = "ok"  # the status of an image that was predicted


@dataclass(frozen=True)
class PredictionResult:
    csv_path: str
    rows: int
    metrics_path: str | None = None  # the held-out scores, when DATA.PREDICTION_LABELS is set


def run_prediction(ctx: RunContext) -> PredictionResult:
    require_backend(ctx.params.TRAINING.BACKEND)  # or one error: Keras runs on another
    task, files = ctx.task, ctx.predictions
    source = files.images.source
    check_labels(ctx)  # before any work: predict scores itself against them
    paths = task.predictions.inputs(source, files.images.path)
    current = fingerprints.prediction_settings_of(ctx.params, task.layout.display_only_params)
    check_model_matches(ctx.model, current, task.layout)
    truth = task.predictions.read_labels(source, files.labels) if files.labels else None
    model = load_model(ctx.model.local_model(), ctx.model.format, shown=ctx.model.model)
    # Each header is read once, to pick its decoder; a file it refuses (too many pixels, not
    # an image, a dangling link) gets its row with the reason and is never decoded.
    infos = probe_images(source.local_paths(paths), ctx.params.PIPELINE.MAX_IMAGE_PIXELS)
    statuses = [info.problem or OK for info in infos]
    batches = prediction_batches(task, infos, ctx.params.TRAINING.BATCH_SIZE)
    outputs = predict_batches(model, batches, total=statuses.count(OK))
    outputs = note_failures(outputs, infos, statuses)
    out = task.predictions.write(
        files.output.source, files.output.path, paths, outputs, statuses, infos, files.images.path
    )
    _warn_unpredicted(paths, statuses, out)
    log.info("Wrote %s: %d rows.", out, len(paths))
    scored = write_scores(ctx, out, truth) if files.labels else None
    if scored is None and files.output.source.exists(files.metrics):
        files.output.source.remove(files.metrics)  # an earlier run's scores, of other predictions
    return PredictionResult(out, len(paths), scored)


def _warn_unpredicted(paths: list[str], statuses: list[str], out: str) -> None:
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


def write_scores(ctx: RunContext, predictions_csv: str, truth) -> str:
    """Score the written predictions against ``DATA.PREDICTION_LABELS`` and write
    ``metrics.json`` (``{"held_out": {...}}``) beside them. Images whose status is not ok
    are left out of the scores and counted (``left_out``)."""
    import pandas as pd

    files = ctx.predictions
    out_source = files.output.source
    table = pd.read_csv(io.StringIO(out_source.read_text(predictions_csv)), keep_default_na=False)
    scores = ctx.task.predictions.score(
        files.images.source, table, truth, files.labels, files.images.path, out_source
    )
    out_source.write_text(files.metrics, json.dumps({"held_out": scores}, indent=2) + "\n")
    log.info(
        "Wrote %s: %d image(s) scored against %s (%d left out, %d without a label).",
        files.metrics,
        scores["images"],
        files.labels,
        scores["left_out"],
        scores["unlabelled"],
    )
    return files.metrics


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
        batches = task.data.prediction_dataset(infos, batch_size, start, skip_errors)
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
