"""Helpers shared by the tasks (no TensorFlow here)."""

from __future__ import annotations

import io
import posixpath

import pandas as pd
from PIL import Image, UnidentifiedImageError

from kerapipe.errors import DataError
from kerapipe.sources import DataSource

HEADER_BYTES = 1 << 16  # enough for the size in a PNG, GIF or BMP header, and most JPEGs


def join(folder: str, name: str) -> str:
    """``folder/name`` with forward slashes, as DataSource paths are."""
    return posixpath.join(folder.rstrip("/"), name) if name else folder.rstrip("/")


def image_size(source: DataSource, path: str) -> tuple[int, int]:
    """``(width, height)`` of an image, read from its header (the whole file if needed)."""
    for length in (HEADER_BYTES, -1):
        try:
            with Image.open(io.BytesIO(source.read_bytes(path, length))) as image:
                return image.size
        except (UnidentifiedImageError, OSError, SyntaxError):
            if length == -1:
                raise DataError(
                    f"{path}: cannot read the image size; the file is damaged or not an image. "
                    "Re-export or remove it."
                ) from None
    raise AssertionError("unreachable")


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
