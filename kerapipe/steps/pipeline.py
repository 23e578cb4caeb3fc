"""``kerapipe run``: the whole pipeline without DVC, every stage's inputs checked before the
first stage runs (a missing labels file is named before hours of training, not after)."""

from __future__ import annotations

import logging

from kerapipe.context import RunContext

log = logging.getLogger(__name__)


def run_pipeline(ctx: RunContext) -> None:
    """validate -> inventory -> train -> export (when DATA.EXPORT.FORMATS names any) ->
    predict, in order; each step honours its own FORCE."""
    from kerapipe.steps.export import run_export
    from kerapipe.steps.inventory import run_inventory
    from kerapipe.steps.predict import run_prediction
    from kerapipe.steps.train import run_training
    from kerapipe.steps.validate import validate_pipeline

    log.info(validate_pipeline(ctx, read_labels=True))
    ctx.builder.resolve_weights(ctx.params.DATA)  # fetched (or found cached) before any stage
    run_inventory(ctx)
    run_training(ctx)
    if ctx.params.DATA.EXPORT.FORMATS:
        run_export(ctx)
    run_prediction(ctx)
