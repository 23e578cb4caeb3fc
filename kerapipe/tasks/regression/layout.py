"""Regression's inventory phase: a folder of images plus a CSV of
``filename,target[,target...]``."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from kerapipe.config import Group, require_unique
from kerapipe.errors import DataError
from kerapipe.images import first, is_image_name, warn_not_images
from kerapipe.sources import DataSource, normpath
from kerapipe.tasks.base import TaskLayout
from kerapipe.tasks.common import join, seeded_split

KEY = "PIPELINE.TASK_PARAMS"
DATA_KEY = "DATA.INVENTORY_DATA_DIR"
RESERVED = {"filepath", "split"}


class RegressionParams(Group):
    TARGETS_CSV: str = Field(
        "targets.csv", description="the CSV of targets, inside DATA.INVENTORY_DATA_DIR"
    )
    IMAGES_DIR: str = Field(
        "images",
        description='the images\' folder inside DATA.INVENTORY_DATA_DIR; "" for that folder itself',
    )
    FILENAME_COLUMN: str = Field(
        "filename", description="the CSV column of each image's path relative to IMAGES_DIR"
    )
    TARGET_COLUMNS: list[str] = Field(
        default_factory=lambda: ["target"],
        min_length=1,
        description="the CSV columns the model predicts, one output each",
    )
    LOG_MISTAKES: int = Field(
        8,
        ge=0,
        description="the validation images shown in dvc plots as the worst mistakes: the "
        "largest error first (in standard deviations of the target, the worst target's)",
    )

    @field_validator("TARGET_COLUMNS")
    @classmethod
    def _columns(cls, columns: list[str]) -> list[str]:
        require_unique(columns, "column")
        reserved = sorted(RESERVED & set(columns))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is used by the inventory; rename the column")
        return columns


class RegressionLayout(TaskLayout):
    """One or several numeric targets per image."""

    display_only_params = frozenset({"LOG_MISTAKES"})

    @property
    def targets(self) -> list[str]:
        return self.config.TARGET_COLUMNS

    @property
    def output_names(self) -> list[str | None]:
        return list(self.targets)

    def check_num_classes(self, num_classes: int | None) -> None:
        count = len(self.targets)
        because = f"for regression it is the number of outputs: {KEY}.TARGET_COLUMNS has {count}"
        self.require_outputs(num_classes, count, because)

    def scan(self, source: DataSource, data_dir: str) -> pd.DataFrame:
        csv_path = join(data_dir, self.config.TARGETS_CSV)
        images_dir = join(data_dir, self.config.IMAGES_DIR)
        if not source.exists(csv_path):
            raise DataError(
                f"{KEY}.TARGETS_CSV: {csv_path!r} not found. {DATA_KEY} must hold a CSV of "
                f"{self.config.FILENAME_COLUMN},{','.join(self.targets)} (or set TARGETS_CSV)."
            )
        if not source.is_dir(images_dir):
            raise DataError(
                f"{KEY}.IMAGES_DIR: folder {images_dir!r} not found. Put the images there, "
                "or set IMAGES_DIR to the folder inside DATA.INVENTORY_DATA_DIR that holds them."
            )
        listed = self._read_targets(source, csv_path)
        listed["filepath"] = [normpath(join(images_dir, name)) for name in listed.pop("_name")]
        on_disk = {p for p in source.files(images_dir) if p != normpath(csv_path)}
        others = {p for p in on_disk if not is_image_name(p)}
        if others:  # a stray notes.txt; a listed one is left out with its row
            listed = listed[~listed.filepath.isin(others)]
            on_disk -= others
            warn_not_images(sorted(others), DATA_KEY)
        missing = sorted(set(listed.filepath) - on_disk)
        if missing:
            raise DataError(
                f"{csv_path}: {len(missing)} listed file(s) do not exist ({first(missing)}). "
                f"Column {self.config.FILENAME_COLUMN!r} holds paths relative to "
                f"{images_dir!r}; fix the names or remove those rows."
            )
        unlisted = sorted(on_disk - set(listed.filepath))
        if unlisted:
            raise DataError(
                f"{DATA_KEY}: {len(unlisted)} image(s) are not listed in {csv_path} "
                f"({first(unlisted)}). Add a row with their targets, or move them out of "
                f"{images_dir!r}."
            )
        table = listed[["filepath", *self.targets]]
        return table.sort_values("filepath", ignore_index=True)

    def _read_targets(self, source: DataSource, csv_path: str) -> pd.DataFrame:
        """The CSV's file names (as ``_name``) and targets as float64, checked."""
        try:
            raw = pd.read_csv(
                io.StringIO(source.read_text(csv_path)), dtype=str, keep_default_na=False
            )
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise DataError(f"{csv_path} is not a readable CSV file: {err}") from None
        return self.targets_table(raw, csv_path)

    def split(self, table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
        return seeded_split(table, validation_split, seed)

    def targets_table(self, raw: pd.DataFrame, csv_path: str) -> pd.DataFrame:
        """``raw`` (a targets CSV, cells as text) as file names (``_name``) and float64
        targets: one row per image, every target a finite number, or one DataError."""
        name_column = self.config.FILENAME_COLUMN
        absent = [c for c in (name_column, *self.targets) if c not in raw.columns]
        if absent:
            raise DataError(
                f"{csv_path}: no column(s) {', '.join(absent)} (found: "
                f"{', '.join(raw.columns)}). Set {KEY}.FILENAME_COLUMN and TARGET_COLUMNS to "
                "the CSV's header names."
            )
        names = raw[name_column].str.strip()
        repeated = sorted(set(names[names.duplicated()]))
        if repeated:
            raise DataError(
                f"{csv_path}: {len(repeated)} file name(s) are listed more than once "
                f"({first(repeated)}). Keep one row per image."
            )
        table = pd.DataFrame({"_name": names})
        for column in self.targets:
            values = pd.to_numeric(raw[column].str.strip(), errors="coerce")
            bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
            if bad.any():
                shown = [
                    f"line {i + 2} ({names[i]}): {raw[column][i]!r}"
                    for i in np.flatnonzero(bad)[:5]
                ]
                raise DataError(
                    f"{csv_path}: column {column!r} has {int(bad.sum())} value(s) that are not "
                    f"finite numbers: {'; '.join(shown)}. Every target must be a number."
                )
            table[column] = values.astype(np.float64)
        return table
