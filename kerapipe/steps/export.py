"""Stage: export the final model to the formats of ``DATA.EXPORT.FORMATS`` (ONNX, LiteRT), each
checked against the Keras model on the validation images before it is kept
(kerapipe/exporters.py). Below ``DATA.EXPORT.MIN_AGREEMENT``, or above
``DATA.EXPORT.MAX_DIFFERENCE``, the export fails and nothing is written; otherwise the files
land in ``export/`` beside the model and the figures in ``export_metrics.json``, which
``dvc.yaml`` declares as metrics.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kerapipe import fingerprints
from kerapipe.artifacts import check_model_matches, load_model
from kerapipe.atomic import atomic_path
from kerapipe.backend import require_backend
from kerapipe.context import RunContext
from kerapipe.errors import ConfigError
from kerapipe.exporters import (
    EXPORT_BACKEND,
    FILES,
    RUNTIMES,
    check_export_packages,
    compare,
    describe,
    export_to,
    require_close,
)
from kerapipe.inventory_file import read_matching_inventory
from kerapipe.steps.inventory import inventory_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    files: dict[str, Path]
    metrics: dict[str, dict[str, Any]]


def run_export(ctx: RunContext) -> ExportResult:
    """Export, check and write every format of ``DATA.EXPORT.FORMATS`` (none: only empty
    ``export/`` and metrics, so DVC's outputs exist)."""
    formats = list(ctx.params.DATA.EXPORT.FORMATS)
    if formats:
        require_backend(EXPORT_BACKEND)  # or one error: Keras runs on another
    check_export_packages(formats)
    paths, task = ctx.model, ctx.task
    current = fingerprints.prediction_settings_of(ctx.params, task.layout.display_only_params)
    check_model_matches(paths, current, task.layout)
    if paths.format == "tf" and formats:
        raise ConfigError(
            "DATA.EXPORT.FORMATS: export starts from a Keras model; with "
            "DATA.TRAINING_MODEL_FORMAT tf (a SavedModel) there is none. "
            "Use keras or h5 to export as well."
        )
    metrics: dict[str, dict[str, Any]] = {}
    run = paths.working_copy()  # the run folder itself, or a local copy of a remote one
    with atomic_path(run.local_file("export")) as folder:
        folder.mkdir()
        if formats:
            metrics = _export_each(ctx, formats, folder)
    run.upload("export")
    run.write_text("export_metrics.json", json.dumps({"export": metrics}, indent=2) + "\n")
    return ExportResult({n: run.local_file("export") / FILES[n] for n in formats}, metrics)


def _export_each(ctx: RunContext, formats: list[str], folder: Path) -> dict[str, dict]:
    """Export the model to each format in ``folder``, each checked; their figures."""
    paths, task = ctx.model, ctx.task
    model = load_model(paths.local_model(), paths.format, shown=paths.model)
    model(np.zeros((1, *task.settings.input_shape), np.float32))  # Keras exports called models
    images = validation_images(ctx)
    classes = task.head.output_head().activation == "softmax"
    metrics = {}
    for name in formats:
        path = folder / FILES[name]
        export_to(name, model, path, task.describe_outputs())
        comparison = compare(model, RUNTIMES[name](path), images, classes)
        metrics[name] = {**comparison.as_metrics(), "bytes": path.stat().st_size}
        require_close(name, comparison, ctx.params.DATA.EXPORT)
        log.info("Exported %s: %s.", FILES[name], describe(comparison))
    return metrics


def validation_images(ctx: RunContext) -> Callable[[], Iterable[np.ndarray]]:
    """A function giving the validation images in batches (a new pass per call)."""
    from kerapipe.training.inputs import local_files

    task = ctx.task
    table, _ = read_matching_inventory(ctx.inventory, inventory_settings(ctx), task.layout)
    task.data.prepare(table[table.split == "train"])
    rows = local_files(task.layout.file_columns, table, ctx.data.source)
    rows = rows[table.split == "validation"]
    data = task.data.dataset(rows, ctx.params.TRAINING.BATCH_SIZE, shuffle_seed=None)

    def batches() -> Iterable[np.ndarray]:
        for images, _ in data:
            yield np.asarray(images, dtype=np.float32)

    return batches
