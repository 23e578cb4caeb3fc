"""Stage 1: turn the data folder into a CSV of examples with a seeded train/validation split.

The data folder and the CSV's folder may each be on any data source (``DATA.*_SOURCE``); the
images that are checked are fetched first (in parallel, into the remote cache), so the checks
read local copies, and training later finds them there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kerapipe import fingerprints
from kerapipe.config import resolve_seed
from kerapipe.context import RunContext
from kerapipe.errors import DataError
from kerapipe.images import describe_problems, find_bad_images, refuse_or_skip
from kerapipe.inventory_file import read_matching_inventory, write_inventory

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
KEY = "DATA.INVENTORY_DATA_DIR"


@dataclass(frozen=True)
class InventoryResult:
    csv_path: str
    rows: int
    seed: int | None  # None when an existing CSV was reused
    reused: bool = False


def inventory_settings(ctx: RunContext) -> dict:
    """The settings that shape the inventory (kerapipe/fingerprints.py)."""
    return fingerprints.inventory_settings(ctx.params, ctx.task.layout.display_only_params)


def run_inventory(ctx: RunContext) -> InventoryResult:
    """Write the inventory CSV atomically, or reuse the existing one when FORCE is false and
    it was made with the same settings (a mismatch is an error that says what changed)."""
    files, layout = ctx.inventory, ctx.task.layout
    settings = inventory_settings(ctx)
    if files.source.exists(files.csv) and not ctx.params.INVENTORY.FORCE:
        table, _ = read_matching_inventory(files, settings, layout)
        log.info("Reusing the existing inventory %s (INVENTORY.FORCE is false).", files.csv)
        return InventoryResult(files.csv, len(table), seed=None, reused=True)

    seed = resolve_seed(ctx.params.INVENTORY.SEED)
    table, skipped = check_images(ctx, scan_data(ctx))
    table = layout.split(table, ctx.params.INVENTORY.VALIDATION_SPLIT, seed)
    summary = {
        "seed": seed,
        "validation_split": ctx.params.INVENTORY.VALIDATION_SPLIT,
        "rows": table.split.value_counts().sort_index().to_dict(),
        "skipped": skipped,  # images left out by INVENTORY.CHECK_IMAGES, with the reason
        "layout": layout.record(),  # e.g. the classes found, so no later step needs them typed
        "settings": settings,
    }
    write_inventory(files, table, summary)
    log.info("Wrote %s: %d rows (seed %d).", files.csv, len(table), seed)
    return InventoryResult(files.csv, len(table), seed)


def data_folder(ctx: RunContext):
    """``(source, folder)`` of the training data, which must exist."""
    if not ctx.data.source.is_dir(ctx.data.path):
        raise DataError(
            f"{KEY}: folder {ctx.data.path!r} not found. Point it at the folder of training "
            "data (for classification, one sub-folder per class)."
        )
    return ctx.data.source, ctx.data.path


def count_data(ctx: RunContext) -> int:
    """Walk and check the data folder as the inventory does, and read each image's header
    (unless ``INVENTORY.CHECK_IMAGES`` is ``names``); return the number of examples the
    inventory would keep (``kerapipe validate``: the task may skip building the table, and
    pandas). Images that cannot be read fail or are counted out by ``BAD_IMAGES``."""
    source, folder = data_folder(ctx)
    paths = ctx.task.layout.check_data(source, folder)
    ctx.task.data.check_class_weight(ctx.params.TRAINING.CLASS_WEIGHT)  # the classes are known
    if ctx.params.INVENTORY.CHECK_IMAGES == "names":
        return len(paths)
    problems = _problems(ctx, paths, "header")
    refuse_or_skip(problems, ctx.params.INVENTORY.BAD_IMAGES, KEY)
    return len(paths) - len(problems)


def check_images(ctx: RunContext, table: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """The rows of ``table`` whose image passes ``INVENTORY.CHECK_IMAGES`` (``decode``: Pillow
    decodes it fully; ``header``: its header reads, within ``PIPELINE.MAX_IMAGE_PIXELS``;
    ``names``: no check), and ``{"filepath", "reason"}`` for each one left out.

    ``INVENTORY.BAD_IMAGES: fail`` refuses them instead, in one DataError naming them. Done
    before the split, so a bad file never reaches training, where it would stop a run.
    """
    level = ctx.params.INVENTORY.CHECK_IMAGES
    if level == "names":
        return table, []
    paths = list(table.filepath)
    problems = _problems(ctx, paths, level)
    refuse_or_skip(problems, ctx.params.INVENTORY.BAD_IMAGES, KEY, "inventory.json")
    if problems and len(problems) == len(paths):
        raise DataError(
            f"{KEY}: none of the {len(paths)} images can be read ({describe_problems(problems)})."
            " Check the folder holds the images you expect."
        )
    kept = table[~table.filepath.isin(problems.keys())].reset_index(drop=True)
    return kept, [{"filepath": p, "reason": why} for p, why in problems.items()]


def _problems(ctx: RunContext, paths: list[str], level: str) -> dict[str, str]:
    """``{path: problem}`` of the images (fetched first when remote) that fail ``level``."""
    local = ctx.data.source.local_paths(paths)
    found = find_bad_images(local, level, ctx.params.PIPELINE.MAX_IMAGE_PIXELS)
    return {p: found[q] for p, q in zip(paths, local, strict=True) if q in found}


def scan_data(ctx: RunContext) -> pd.DataFrame:
    """Walk and check the data folder; the inventory's rows without a split."""
    table = ctx.task.layout.scan(*data_folder(ctx))
    ctx.task.data.check_class_weight(ctx.params.TRAINING.CLASS_WEIGHT)  # the classes are known
    return table
