"""Image regression: a folder of images plus a CSV of ``filename,target[,target...]``.

Targets are standardised with the training rows' mean and standard deviation for training (so
several targets of different scales weigh alike in the loss); the saved model ends with a
built-in ``Rescaling`` layer (``x * std + mean``), so it outputs the original units.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from kerapipe.config import Group, require_unique
from kerapipe.errors import DataError
from kerapipe.images import first, is_image_name, warn_not_images
from kerapipe.models.base import BaseModelParams, Head
from kerapipe.sources import DataSource, normpath
from kerapipe.tasks.base import Task
from kerapipe.tasks.common import join, seeded_split

if TYPE_CHECKING:
    from kerapipe.datasets import DatasetOptions

KEY = "PIPELINE.TASK_PARAMS"
DATA_KEY = "DATA.INVENTORY_DATA_DIR"
RESERVED = {"filepath", "split"}


class RegressionParams(Group):
    TARGETS_CSV: str = "targets.csv"  # inside DATA.INVENTORY_DATA_DIR
    IMAGES_DIR: str = "images"  # inside DATA.INVENTORY_DATA_DIR; "" for that folder itself
    FILENAME_COLUMN: str = "filename"  # image path relative to IMAGES_DIR
    TARGET_COLUMNS: list[str] = Field(default_factory=lambda: ["target"], min_length=1)
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


class RegressionTask(Task):
    """One or several numeric targets per image; linear head; predictions in original units."""

    Params = RegressionParams
    default_loss = "mean_squared_error"
    default_metrics = ("mean_absolute_error", "root_mean_squared_error", "r2_score")
    display_only_params = frozenset({"LOG_MISTAKES"})

    def __init__(self, params) -> None:
        super().__init__(params)
        self.mean: np.ndarray | None = None  # per target, from the training rows
        self.std: np.ndarray | None = None

    @property
    def targets(self) -> list[str]:
        return self.config.TARGET_COLUMNS

    @property
    def output_names(self) -> list[str | None]:
        return list(self.targets)

    def check_model_params(self, model_params: BaseModelParams) -> None:
        count = len(self.targets)
        because = f"for regression it is the number of outputs: {KEY}.TARGET_COLUMNS has {count}"
        self.require_outputs(model_params, count, because)

    # --- inventory -------------------------------------------------------------------------

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
        return self._targets_table(raw, csv_path)

    def _targets_table(self, raw: pd.DataFrame, csv_path: str) -> pd.DataFrame:
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

    def split(self, table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
        return seeded_split(table, validation_split, seed)

    # --- training --------------------------------------------------------------------------

    def head(self) -> Head:
        return Head(units=len(self.targets), activation=None)

    def prepare(self, train_rows: pd.DataFrame) -> None:
        """Learn the mean and standard deviation of each target on the training rows."""
        values = train_rows[self.targets].to_numpy(dtype=np.float64)
        self.mean = values.mean(axis=0)
        std = values.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)  # a constant target: leave its scale alone

    def _ensure_scaling(self, table: pd.DataFrame) -> None:
        """Scaling from ``prepare``, or else from the training rows of ``table`` itself (a
        task never reads the inventory: the train step passes it the training rows)."""
        if self.mean is not None:
            return
        if "split" not in table.columns or not (table.split == "train").any():
            raise ValueError(
                "RegressionTask.prepare(train_rows) must be called before building datasets "
                "of rows without a 'train' split"
            )
        self.prepare(table[table.split == "train"])

    def standardise(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def to_units(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.std + self.mean

    def dataset(
        self,
        table: pd.DataFrame,
        batch_size: int,
        shuffle_seed: int | None,
        options: DatasetOptions | None = None,
    ):
        """Batches of (image float32 0-255, standardised targets float32 ``(n_targets,)``)."""
        from kerapipe.datasets import image_dataset

        self._ensure_scaling(table)
        targets = self.standardise(table[self.targets].to_numpy(dtype=np.float64))
        return image_dataset(
            table.filepath, targets, self.input_shape, batch_size, shuffle_seed, options
        )

    def finalize_model(self, model):
        """The trained model followed by a layer that maps standardised outputs to units:
        ``x * std + mean``, a built-in ``Rescaling`` whose scale and offset are plain lists
        in its config (so the ONNX and LiteRT exports fold them into constants)."""
        import keras

        outputs = keras.layers.Rescaling(
            scale=[float(s) for s in self.std],
            offset=[float(m) for m in self.mean],
            dtype="float32",
            name="to_target_units",
        )(model.outputs[0])
        return keras.Model(model.inputs, outputs, name=model.name)

    def log_evaluation(self, live, model, rows: pd.DataFrame, data) -> pd.DataFrame:
        """From one pass over the validation set: MAE, RMSE and R² in the targets' units,
        the MAE of always predicting the training mean beside them, a predicted-vs-actual
        scatter plot per target, and the images with the largest errors; returns each
        image's targets, predictions and errors, for validation_predictions.csv."""
        predicted = self.to_units(np.asarray(model.predict(data, verbose=0)))
        actual = rows[self.targets].to_numpy(dtype=np.float64)
        for i, column in enumerate(self.targets):
            for metric, value in regression_scores(actual[:, i], predicted[:, i]).items():
                live.log_metric(f"validation/{column}/{metric}", value, plot=False)
            baseline = float(np.abs(actual[:, i] - self.mean[i]).mean())
            live.log_metric(f"validation/{column}/baseline_mae", baseline, plot=False)
            live.log_plot(
                f"predicted_vs_actual_{column}.json",
                [
                    {"actual": round(float(a), 6), "predicted": round(float(p), 6)}
                    for a, p in zip(actual[:, i], predicted[:, i], strict=True)
                ],
                x="actual",
                y="predicted",
                template="scatter",
                title=f"{column}: predicted vs actual (validation)",
            )
        table = pd.DataFrame({"filepath": rows.filepath.to_numpy()})
        for i, column in enumerate(self.targets):
            table[column] = actual[:, i]
            table[f"predicted_{column}"] = predicted[:, i].round(6)
            table[f"error_{column}"] = (predicted[:, i] - actual[:, i]).round(6)
        table["worst_error_in_std"] = (np.abs(predicted - actual) / self.std).max(axis=1).round(6)
        self.log_mistakes(live, table)
        return table

    def log_mistakes(self, live, table: pd.DataFrame) -> None:
        """The ``LOG_MISTAKES`` validation images with the largest error."""
        from kerapipe.tasks.gallery import captioned, enlarged, log_gallery, picture

        worst = table.sort_values(
            ["worst_error_in_std", "filepath"], ascending=[False, True], kind="stable"
        )
        items = []
        for _, row in worst.head(self.config.LOG_MISTAKES).iterrows():
            lines = [
                f"{c}: {row[c]:.2f}, predicted {row[f'predicted_{c}']:.2f}" for c in self.targets
            ]
            errors = "_".join(f"{c}{row[f'error_{c}']:+.2f}" for c in self.targets)
            items.append((row.filepath, errors, captioned(enlarged(picture(row.filepath)), lines)))
        log_gallery(live, items)

    def read_labels(self, source: DataSource, labels: str) -> pd.DataFrame:
        """A CSV like the targets CSV: ``FILENAME_COLUMN`` (relative to
        ``DATA.PREDICTION_DATA_DIR``) and the target columns, as numbers, checked."""
        from kerapipe.tasks.common import read_csv

        key = "DATA.PREDICTION_LABELS"
        table = self._targets_table(read_csv(source, labels, key), f"{key}: {labels}")
        return table.rename(columns={"_name": self.config.FILENAME_COLUMN})

    def score_predictions(
        self, source, predictions: pd.DataFrame, truth, labels: str, predictions_source=None
    ) -> dict:
        """MAE, RMSE and R² per target of ``predictions``, in the targets' units."""
        from kerapipe.tasks.common import labelled

        name = self.config.FILENAME_COLUMN
        merged, counts = labelled(
            predictions, truth, name, self.params.DATA.PREDICTION_DATA_DIR, labels
        )
        scores = {}
        for column in self.targets:
            actual = merged[f"{column}_true"].to_numpy(dtype=np.float64)
            guess = merged[column].to_numpy(dtype=np.float64)
            scores[column] = regression_scores(actual, guess) if len(actual) else {}
        return {**counts, **scores}

    # --- prediction ------------------------------------------------------------------------

    def prediction_table(self, paths: list[str], outputs: np.ndarray) -> pd.DataFrame:
        outputs = np.asarray(outputs, dtype=np.float64).reshape(len(paths), -1)
        table = pd.DataFrame({"filepath": paths})
        for i, column in enumerate(self.targets):
            table[column] = outputs[:, i].round(6)
        return table


def regression_scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (1 - residual / total sum of squares; 0 for a constant target)."""
    error = predicted - actual
    total = float(((actual - actual.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": math.sqrt(float((error**2).mean())),
        "r2": 1.0 - float((error**2).sum()) / total if total > 0 else 0.0,
    }
