"""Helpers shared by the tasks (no TensorFlow here)."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kerapipe.errors import DataError
from kerapipe.images import probe_image
from kerapipe.sources import DataSource


def join(folder: str, name: str) -> str:
    """``folder/name`` with forward slashes, as DataSource paths are."""
    return posixpath.join(folder.rstrip("/"), name) if name else folder.rstrip("/")


def image_size(source: DataSource, path: str, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image as it is seen (after its EXIF orientation, as training
    and prediction decode it), read from its header."""
    info = probe_image(source.local_path(path), max_pixels)
    if info.problem:
        raise DataError(
            f"{path}: cannot read the image size ({info.problem}). Re-export or remove it."
        )
    return info.oriented_size


def with_status(
    table: pd.DataFrame, paths: Sequence[str], rows: Sequence[int], statuses: Sequence[str]
) -> pd.DataFrame:
    """``table`` (one row per predicted image: ``paths[i]`` for ``i`` in ``rows``) grown to
    one row per path, in order, with a ``status`` column after ``filepath``: ``"ok"``, or why
    the image was not predicted, its other columns left empty.

    Integer columns become pandas' nullable integers, so a good row reads exactly as in a run
    without bad files ("3", not "3.0"); float columns keep their dtype, empty as NaN.
    """
    table = table.copy()
    for name in table.columns:
        if pd.api.types.is_integer_dtype(table[name]) and not pd.api.types.is_bool_dtype(
            table[name]
        ):
            table[name] = table[name].astype("Int64")
    table.index = np.asarray(rows, dtype=np.int64)
    table = table.reindex(range(len(paths)))
    table["filepath"] = list(paths)
    table.insert(list(table.columns).index("filepath") + 1, "status", list(statuses))
    return table.reset_index(drop=True)


def seeded_split(
    table: pd.DataFrame, validation_split: float, seed: int, stratify: pd.Series | None = None
) -> pd.DataFrame:
    """``table`` with a seeded ``split`` column, stratified by ``stratify`` when given."""
    from sklearn.model_selection import train_test_split

    try:
        _, validation = train_test_split(
            table.index, test_size=validation_split, random_state=seed, stratify=stratify
        )
    except ValueError as err:
        counts = "" if stratify is None else f" (per class: {stratify.value_counts().to_dict()})"
        raise DataError(
            f"INVENTORY.VALIDATION_SPLIT: cannot split {len(table)} images{counts}: {err} "
            "Add images (to the small classes) or change the split."
        ) from None
    table = table.copy()
    table["split"] = "train"
    table.loc[validation, "split"] = "validation"
    return table
