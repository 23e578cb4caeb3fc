"""Helpers shared by the tasks (no TensorFlow here)."""

from __future__ import annotations

import io
import logging
import posixpath
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kerapipe.errors import DataError
from kerapipe.image_probe import probe_image
from kerapipe.sources import DataSource

log = logging.getLogger(__name__)


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
            f"INVENTORY.VALIDATION_SPLIT: cannot split {len(table)} images{counts}: "
            f"{str(err).rstrip('.')}. Add images (to the small classes) or change the split."
        ) from None
    table = table.copy()
    table["split"] = "train"
    table.loc[validation, "split"] = "validation"
    return table


def read_csv(source: DataSource, path: str, key: str) -> pd.DataFrame:
    """A CSV the params point at (``key``), every cell as text, with a clear error."""
    if not source.exists(path):
        raise DataError(f"{key}: {path!r} not found. Point it at the file, or set it to null.")
    try:
        return pd.read_csv(io.StringIO(source.read_text(path)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{key}: {path} is not a readable CSV file: {err}") from None


def labelled(
    predictions: pd.DataFrame, truth: pd.DataFrame, column: str, data_dir: str, labels: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of ``predictions`` (predictions.csv) whose status is ok joined with
    ``truth`` on ``column``, the image path relative to ``data_dir``
    (``DATA.PREDICTION_DATA_DIR``); truth columns that clash get ``_true``. Also the counts:
    ``images`` scored, ``left_out`` (a bad status: the image could not be read),
    ``unlabelled`` (predicted, with no row in ``truth``) and ``labels_without_image`` (rows
    of ``truth`` naming no image, with a warning)."""
    truth = truth.copy()
    truth[column] = [posixpath.normpath(str(name).strip()) for name in truth[column]]
    repeated = sorted(set(truth[column][truth[column].duplicated()]))
    if repeated:
        raise DataError(
            f"DATA.PREDICTION_LABELS: {labels} lists {len(repeated)} file(s) more than once "
            f"({', '.join(repeated[:5])}). Keep one row per image."
        )
    predictions = predictions.copy()
    predictions["_key"] = [
        posixpath.normpath(posixpath.relpath(path, data_dir)) for path in predictions.filepath
    ]
    ok = predictions[predictions.status == "ok"]
    merged = ok.merge(truth, left_on="_key", right_on=column, how="inner", suffixes=("", "_true"))
    counts = {
        "images": len(merged),
        "left_out": len(predictions) - len(ok),
        "unlabelled": int((~ok._key.isin(set(truth[column]))).sum()),
        "labels_without_image": int((~truth[column].isin(set(predictions._key))).sum()),
    }
    if counts["labels_without_image"]:
        log.warning(
            "%d row(s) of %s name no image that was predicted (paths are relative to %s); "
            "they are left out of the scores.",
            counts["labels_without_image"],
            labels,
            data_dir,
        )
    return merged.drop(columns="_key"), counts
