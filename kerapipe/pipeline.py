"""The whole pipeline without DVC (``kerapipe run``), the data check behind ``kerapipe
validate``, and the component listing behind ``kerapipe components``."""

from __future__ import annotations

from kerapipe.config import Params
from kerapipe.registry import ALL, MODELS
from kerapipe.sources import source_of


def run_pipeline(params: Params) -> None:
    """inventory -> train -> export (when DATA.EXPORT.FORMATS names any) -> predict, in order;
    each step honours its own FORCE."""
    from kerapipe.export import run_export
    from kerapipe.inventory import run_inventory
    from kerapipe.predict import run_prediction
    from kerapipe.train import run_training

    run_inventory(params)
    run_training(params)
    if params.DATA.EXPORT.FORMATS:
        run_export(params)
    run_prediction(params)


def validate_pipeline(params: Params) -> str:
    """Run every check a stage runs first (kerapipe.checks), then check the data folders the
    params point at."""
    from kerapipe.checks import check_params
    from kerapipe.inventory import count_data
    from kerapipe.tasks.base import get_task

    check_params(params)
    if params.DATA.EXPORT.FORMATS:
        from kerapipe.export import check_export_packages

        check_export_packages(params.DATA.EXPORT.FORMATS)
    examples = count_data(params)
    task = get_task(params)
    source = source_of(params.DATA, "PREDICTION_DATA_DIR")
    to_predict = task.prediction_inputs(source, params.DATA.PREDICTION_DATA_DIR)
    check_labels(params)
    return (
        f"OK: params are valid; {examples} training examples under "
        f"{params.DATA.INVENTORY_DATA_DIR}; {len(to_predict)} files to predict under "
        f"{params.DATA.PREDICTION_DATA_DIR}."
    )


def check_labels(params: Params) -> None:
    """``DATA.PREDICTION_LABELS``, when set, must exist (predict scores itself against it)."""
    from kerapipe.errors import DataError

    labels = params.DATA.PREDICTION_LABELS
    if labels and not source_of(params.DATA, "PREDICTION_DATA_DIR").exists(labels):
        raise DataError(
            f"DATA.PREDICTION_LABELS: {labels!r} not found. Point it at the true answers for "
            "the images to predict on, or set it to null."
        )


STAMP = "checked: params and data folders\n"  # the same every time: reruns nothing itself


def write_stamp(path: str) -> None:
    """The DVC stage 'validate''s output, written only after every check passed."""
    from kerapipe import atomic

    atomic.write_text(path, STAMP)


def describe_components() -> str:
    """Every registered name by kind, with a summary; models also list their MODEL_PARAMS."""
    lines = []
    for kind, registry in ALL.items():
        lines.append(f"{kind}:")
        for entry in registry:
            lines.append(f"  {entry.name:<40} {entry.summary}".rstrip())
            if registry is MODELS:
                for key, default in MODELS.get(entry.name).describe().items():
                    lines.append(f"      {key} = {default}")
    return "\n".join(lines)
