"""Helpers shared by the segmentation and regression tasks (no TensorFlow here)."""

from __future__ import annotations

import io
import posixpath

import pandas as pd
from PIL import Image, UnidentifiedImageError

from kerapipe.errors import DataError
from kerapipe.images import check_image_files
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


def image_inputs(source: DataSource, data_dir: str) -> list[str]:
    """Every image under ``DATA.PREDICTION_DATA_DIR`` (recursive, sorted), checked."""
    key = "DATA.PREDICTION_DATA_DIR"
    if not source.is_dir(data_dir):
        raise DataError(
            f"{key}: folder {data_dir!r} not found. Point it at the folder of images to predict on."
        )
    paths = source.files(data_dir)
    if not paths:
        raise DataError(f"{key}: folder {data_dir!r} holds no files.")
    check_image_files(paths, lambda p: source.read_bytes(p, 16), key)
    return paths


def random_split(table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
    """``table`` with a seeded random ``split`` column (not stratified: there are no classes)."""
    from sklearn.model_selection import train_test_split

    try:
        _, validation = train_test_split(table.index, test_size=validation_split, random_state=seed)
    except ValueError as err:
        raise DataError(
            f"INVENTORY.VALIDATION_SPLIT: cannot split {len(table)} examples: {err} "
            "Add examples or change the split."
        ) from None
    table = table.copy()
    table["split"] = "train"
    table.loc[validation, "split"] = "validation"
    return table
