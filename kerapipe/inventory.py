"""Stage 1: turn the data folder into a CSV of examples with a seeded train/validation split.

The data folder and the CSV's folder may each be on any data source (``DATA.*_SOURCE``); the
images that are checked are fetched first (in parallel, into the remote cache), so the checks
read local copies, and training later finds them there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kerapipe.config import Params, resolve_seed
from kerapipe.errors import DataError
from kerapipe.images import describe_problems, find_bad_images, refuse_or_skip
from kerapipe.sources import source_of
from kerapipe.tasks.base import Task, get_task

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
_NEEDS_QUOTES = '",\r\n'  # a cell holding any of these is quoted by the csv writer


@dataclass(frozen=True)
class InventoryResult:
    csv_path: str
    rows: int
    seed: int | None  # None when an existing CSV was reused
    reused: bool = False


def csv_path(params: Params) -> str:
    return f"{params.DATA.INVENTORY_CSV_DIR.rstrip('/')}/{params.DATA.INVENTORY_CSV_NAME}"


def summary_path(params: Params) -> str:
    """The JSON beside the CSV that records the seed actually used and the counts."""
    return csv_path(params).rsplit(".", 1)[0] + ".json"


def scan_data(params: Params) -> pd.DataFrame:
    """Walk and check the data folder; return the rows without a split."""
    return get_task(params).scan(*_data_dir(params))


def count_data(params: Params) -> int:
    """Walk and check the data folder as ``scan_data`` does, and read each image's header
    (unless ``INVENTORY.CHECK_IMAGES`` is ``names``); return the number of examples the
    inventory would keep (``kerapipe validate``: the task may skip building the table, and
    pandas). Images that cannot be read fail or are counted out by ``BAD_IMAGES``."""
    source, data_dir = _data_dir(params)
    paths = get_task(params).check_data(source, data_dir)
    level = "names" if params.INVENTORY.CHECK_IMAGES == "names" else "header"
    if level == "names":
        return len(paths)
    local = source.local_paths(paths)
    found = find_bad_images(local, level, params.PIPELINE.MAX_IMAGE_PIXELS)
    problems = {p: found[q] for p, q in zip(paths, local, strict=True) if q in found}
    refuse_or_skip(problems, params.INVENTORY.BAD_IMAGES, "DATA.INVENTORY_DATA_DIR")
    return len(paths) - len(problems)


def check_images(params: Params, table: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """The rows of ``table`` whose image passes ``INVENTORY.CHECK_IMAGES`` (``decode``: Pillow
    decodes it fully; ``header``: its header reads, within ``PIPELINE.MAX_IMAGE_PIXELS``;
    ``names``: no check), and ``{"filepath", "reason"}`` for each one left out.

    ``INVENTORY.BAD_IMAGES: fail`` refuses them instead, in one DataError naming them. Done
    before the split, so a bad file never reaches training, where it would stop a run.
    """
    level = params.INVENTORY.CHECK_IMAGES
    if level == "names":
        return table, []
    source = source_of(params.DATA, "INVENTORY_DATA_DIR")
    paths = list(table.filepath)
    local = source.local_paths(paths)
    found = find_bad_images(local, level, params.PIPELINE.MAX_IMAGE_PIXELS)
    problems = {p: found[q] for p, q in zip(paths, local, strict=True) if q in found}
    refuse_or_skip(
        problems, params.INVENTORY.BAD_IMAGES, "DATA.INVENTORY_DATA_DIR", "inventory.json"
    )
    if problems and len(problems) == len(paths):
        raise DataError(
            f"DATA.INVENTORY_DATA_DIR: none of the {len(paths)} images can be read "
            f"({describe_problems(problems)}). Check the folder holds the images you expect."
        )
    kept = table[~table.filepath.isin(problems.keys())].reset_index(drop=True)
    return kept, [{"filepath": p, "reason": why} for p, why in problems.items()]


def _data_dir(params: Params):
    source = source_of(params.DATA, "INVENTORY_DATA_DIR")
    data_dir = params.DATA.INVENTORY_DATA_DIR
    if not source.is_dir(data_dir):
        raise DataError(
            f"DATA.INVENTORY_DATA_DIR: folder {data_dir!r} not found. Point it at the folder "
            "of training data (for classification, one sub-folder per class)."
        )
    return source, data_dir


def run_inventory(params: Params) -> InventoryResult:
    """Write the inventory CSV atomically, or reuse the existing one when FORCE is false and
    it was made with the same settings (a mismatch is an error that says what changed)."""
    from kerapipe import fingerprints
    from kerapipe.checks import check_params

    check_params(params)
    task = get_task(params)
    out_source = source_of(params.DATA, "INVENTORY_CSV_DIR")
    path = csv_path(params)
    if out_source.exists(path) and not params.INVENTORY.FORCE:
        table, _ = read_matching_inventory(params, task)
        log.info("Reusing the existing inventory %s (INVENTORY.FORCE is false).", path)
        return InventoryResult(path, len(table), seed=None, reused=True)

    seed = resolve_seed(params.INVENTORY.SEED)
    table, skipped = check_images(params, task.scan(*_data_dir(params)))
    table = task.split(table, params.INVENTORY.VALIDATION_SPLIT, seed)
    out_source.write_text(path, csv_text(table))
    summary = {
        "seed": seed,
        "validation_split": params.INVENTORY.VALIDATION_SPLIT,
        "rows": table.split.value_counts().sort_index().to_dict(),
        "skipped": skipped,  # images left out by INVENTORY.CHECK_IMAGES, with the reason
        "layout": task.layout(),  # e.g. the classes found, so no later step needs them typed
        "settings": fingerprints.inventory_settings(params, task.display_only_params),
    }
    out_source.write_text(summary_path(params), json.dumps(summary, indent=2) + "\n")
    log.info("Wrote %s: %d rows (seed %d).", path, len(table), seed)
    return InventoryResult(path, len(table), seed)


def csv_text(table: pd.DataFrame) -> str:
    """``table.to_csv(index=False)`` with ``\\n`` line ends, byte for byte; several times
    faster for the usual inventory (text and integer columns with nothing to quote), which
    matters for 100,000-file trees. Anything else goes through pandas."""
    import numpy as np
    from pandas.api.types import infer_dtype

    columns = [[str(name) for name in table.columns]]
    for name in table.columns:
        column = table[name]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
            columns.append(list(map(str, column.tolist())))
        elif infer_dtype(column, skipna=False) == "string" and not column.isna().any():
            columns.append(column.tolist())
        else:
            return table.to_csv(index=False, lineterminator="\n")
    for column in columns:
        joined = "\0".join(column)
        if not all(column) or any(char in joined for char in _NEEDS_QUOTES):
            return table.to_csv(index=False, lineterminator="\n")
    header = ",".join(columns[0])
    rows = map(",".join, zip(*columns[1:], strict=True))
    return "\n".join([header, *rows]) + "\n"


def read_inventory(params: Params) -> pd.DataFrame:
    """The inventory CSV as a DataFrame, with a clear error if it is missing or malformed."""
    return _parse_inventory(params, _inventory_bytes(params))


def _inventory_bytes(params: Params) -> bytes:
    source = source_of(params.DATA, "INVENTORY_CSV_DIR")
    path = csv_path(params)
    try:
        return source.read_bytes(path)
    except FileNotFoundError:
        raise DataError(
            f"inventory CSV {path!r} not found. Run `kerapipe inventory` (or `dvc repro`) first."
        ) from None


def _parse_inventory(params: Params, data: bytes) -> pd.DataFrame:
    import io

    import pandas as pd

    table = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    if "split" not in table.columns or "filepath" not in table.columns:
        raise DataError(
            f"{csv_path(params)} is not a kerapipe inventory (no filepath/split columns). "
            "Set INVENTORY.FORCE: true and run `kerapipe inventory` to rewrite it."
        )
    return table


def read_summary(params: Params) -> dict:
    """``inventory.json`` (the seed, the counts, the settings), or {} if missing or unreadable."""
    source = source_of(params.DATA, "INVENTORY_CSV_DIR")
    try:
        return json.loads(source.read_text(summary_path(params)))
    except (OSError, ValueError):
        return {}


def inventory_mismatch(params: Params, task: Task) -> str | None:
    """What differs between the settings the inventory was made with and these params, or
    None when it matches."""
    from kerapipe import fingerprints

    recorded = read_summary(params).get("settings")
    current = fingerprints.inventory_settings(params, task.display_only_params)
    if recorded == current:
        return None
    if not recorded:
        return f"{summary_path(params)} does not record the settings it was made with"
    return fingerprints.changes(recorded, current)


def read_matching_inventory(params: Params, task: Task) -> tuple[pd.DataFrame, bytes]:
    """The inventory table and the CSV's bytes, refused when it was made with other settings
    (a changed class list, say, would otherwise pair images with the wrong labels)."""
    data = _inventory_bytes(params)
    table = _parse_inventory(params, data)
    mismatch = inventory_mismatch(params, task)
    if mismatch:
        raise DataError(
            f"the inventory {csv_path(params)} was made with other settings ({mismatch}). "
            "Run `kerapipe inventory` with INVENTORY.FORCE: true to make it again (`dvc "
            "repro` does this by itself)."
        )
    task.adopt_layout(read_summary(params).get("layout") or _layout_from_rows(table))
    return table, data


def _layout_from_rows(table: pd.DataFrame) -> dict:
    """The classes of an inventory made before inventory.json recorded them, from its rows."""
    if {"class_name", "label"} <= set(table.columns):
        pairs = table[["class_name", "label"]].drop_duplicates().sort_values("label")
        return {"classes": dict(zip(pairs.class_name.astype(str), map(int, pairs.label),
                                    strict=True))}  # fmt: skip
    return {}
