"""The inventory's two files: the CSV of examples with their split, and ``inventory.json``
beside it, which records the seed actually used, the counts, the images left out, the layout
(e.g. the classes found) and the settings the inventory was made with (kerapipe/fingerprints.py).
Training and export read the table back only when it still matches the params.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from kerapipe import fingerprints
from kerapipe.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from kerapipe.context import InventoryFiles
    from kerapipe.tasks.base import TaskLayout

_NEEDS_QUOTES = '",\r\n'  # a cell holding any of these is quoted by the csv writer


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


def write_inventory(files: InventoryFiles, table: pd.DataFrame, summary: dict[str, Any]) -> None:
    """The CSV, then ``inventory.json``, each written atomically."""
    files.source.write_text(files.csv, csv_text(table))
    files.source.write_text(files.summary, json.dumps(summary, indent=2) + "\n")


def inventory_bytes(files: InventoryFiles) -> bytes:
    """The CSV's bytes, with a clear error when it is missing."""
    try:
        return files.source.read_bytes(files.csv)
    except FileNotFoundError:
        raise DataError(
            f"inventory CSV {files.csv!r} not found. Run `kerapipe inventory` (or `dvc repro`) "
            "first."
        ) from None


def parse_inventory(files: InventoryFiles, data: bytes) -> pd.DataFrame:
    """The CSV's bytes as a table, refused when it is not a kerapipe inventory."""
    import pandas as pd

    table = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    if "split" not in table.columns or "filepath" not in table.columns:
        raise DataError(
            f"{files.csv} is not a kerapipe inventory (no filepath/split columns). "
            "Set INVENTORY.FORCE: true and run `kerapipe inventory` to rewrite it."
        )
    return table


def read_inventory(files: InventoryFiles) -> pd.DataFrame:
    """The inventory CSV as a DataFrame, with a clear error if it is missing or malformed."""
    return parse_inventory(files, inventory_bytes(files))


def read_summary(files: InventoryFiles) -> dict:
    """``inventory.json``, or {} if missing or unreadable."""
    try:
        return json.loads(files.source.read_text(files.summary))
    except (OSError, ValueError):
        return {}


def inventory_mismatch(files: InventoryFiles, settings: dict[str, Any]) -> str | None:
    """What differs between the settings the inventory was made with and ``settings`` (the
    current ones), or None when it matches."""
    recorded = read_summary(files).get("settings")
    if recorded == settings:
        return None
    if not recorded:
        return f"{files.summary} does not record the settings it was made with"
    return fingerprints.changes(recorded, settings)


def read_matching_inventory(
    files: InventoryFiles, settings: dict[str, Any], layout: TaskLayout
) -> tuple[pd.DataFrame, bytes]:
    """The inventory table and the CSV's bytes, refused when it was made with other settings
    than ``settings`` (a changed class list, say, would otherwise pair images with the wrong
    labels); ``layout`` takes back what the inventory recorded (the classes found)."""
    data = inventory_bytes(files)
    table = parse_inventory(files, data)
    mismatch = inventory_mismatch(files, settings)
    if mismatch:
        raise DataError(
            f"the inventory {files.csv} was made with other settings ({mismatch}). Run "
            "`kerapipe inventory` with INVENTORY.FORCE: true to make it again (`dvc repro` "
            "does this by itself)."
        )
    layout.adopt(read_summary(files).get("layout") or _layout_from_rows(table))
    return table, data


def _layout_from_rows(table: pd.DataFrame) -> dict:
    """The classes of an inventory made before inventory.json recorded them, from its rows."""
    if {"class_name", "label"} <= set(table.columns):
        pairs = table[["class_name", "label"]].drop_duplicates().sort_values("label")
        return {"classes": dict(zip(pairs.class_name.astype(str), map(int, pairs.label),
                                    strict=True))}  # fmt: skip
    return {}
