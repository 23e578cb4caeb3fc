"""``kerapipe validate`` and the DVC stage 'validate': every check a stage runs first (the
params and each component's own, done when the run context is built), then the data folders
the params point at, without training; and ``kerapipe run``'s check of every stage's inputs
before its first stage."""

from __future__ import annotations

from kerapipe import atomic
from kerapipe.context import RunContext
from kerapipe.errors import DataError
from kerapipe.steps.inventory import count_data

STAMP = "checked: params and data folders\n"  # the same every time: reruns nothing itself


def validate_pipeline(ctx: RunContext, read_labels: bool = False) -> str:
    """Check what every stage reads: the export packages, the training data (its classes,
    each large enough to split), the images to predict on and their labels (that they
    exist; with ``read_labels`` also what they say, which takes pandas: ``kerapipe run``
    does it, ``kerapipe validate`` keeps its fast start); a summary."""
    params = ctx.params
    if params.DATA.EXPORT.FORMATS:  # exporters imports NumPy: only when there is one
        from kerapipe.exporters import check_export_packages

        check_export_packages(params.DATA.EXPORT.FORMATS)
    examples = count_data(ctx)
    files = ctx.predictions
    to_predict = ctx.task.predictions.inputs(files.images.source, files.images.path)
    check_labels(ctx)
    if files.labels and read_labels:
        ctx.task.predictions.read_labels(files.images.source, files.labels)
    return (
        f"OK: params are valid; {examples} training examples under "
        f"{params.DATA.INVENTORY_DATA_DIR}; {len(to_predict)} files to predict under "
        f"{params.DATA.PREDICTION_DATA_DIR}."
    )


def check_labels(ctx: RunContext) -> None:
    """``DATA.PREDICTION_LABELS``, when set, must exist (predict scores itself against it)."""
    files = ctx.predictions
    if files.labels and not files.images.source.exists(files.labels):
        raise DataError(
            f"DATA.PREDICTION_LABELS: {files.labels!r} not found. Point it at the true answers "
            "for the images to predict on, or set it to null."
        )


def write_stamp(path: str) -> None:
    """The DVC stage 'validate''s output, written only after every check passed."""
    atomic.write_text(path, STAMP)
