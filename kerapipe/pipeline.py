"""The whole pipeline without DVC (``kerapipe run``), the data check behind ``kerapipe
validate``, and the component listing behind ``kerapipe components``."""

from __future__ import annotations

from kerapipe.config import Params
from kerapipe.registry import ALL, MODELS
from kerapipe.sources import get_source


def run_pipeline(params: Params) -> None:
    """inventory -> train -> predict, in order; each step honours its own FORCE."""
    from kerapipe.inventory import run_inventory
    from kerapipe.predict import run_prediction
    from kerapipe.train import run_training

    run_inventory(params)
    run_training(params)
    run_prediction(params)


def validate_pipeline(params: Params) -> str:
    """Check the data folders the params point at (params were checked on loading)."""
    from kerapipe.artifacts import check_initial_weights
    from kerapipe.inventory import count_data
    from kerapipe.tasks.base import get_task

    check_initial_weights(params.MODEL.MODEL_PARAMS.get("INITIAL_WEIGHTS"))
    examples = count_data(params)
    task = get_task(params)
    source = get_source(params.DATA.PREDICTION_DATA_SOURCE)
    to_predict = task.prediction_inputs(source, params.DATA.PREDICTION_DATA_DIR)
    return (
        f"OK: params are valid; {examples} training examples under "
        f"{params.DATA.INVENTORY_DATA_DIR}; {len(to_predict)} files to predict under "
        f"{params.DATA.PREDICTION_DATA_DIR}."
    )


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
