"""Regression's predictions: a CSV of each image's targets in their units, scored against a
CSV like the targets CSV."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kerapipe.sources import DataSource
from kerapipe.tasks.base import TaskPredictions
from kerapipe.tasks.regression.head import regression_scores

if TYPE_CHECKING:
    from kerapipe.tasks.regression.layout import RegressionLayout


class RegressionPredictions(TaskPredictions):
    layout: RegressionLayout

    def read_labels(self, source: DataSource, labels: str) -> pd.DataFrame:
        """A CSV like the targets CSV: ``FILENAME_COLUMN`` (relative to
        ``DATA.PREDICTION_DATA_DIR``) and the target columns, as numbers, checked."""
        from kerapipe.tasks.common import read_csv

        key = "DATA.PREDICTION_LABELS"
        table = self.layout.targets_table(read_csv(source, labels, key), f"{key}: {labels}")
        return table.rename(columns={"_name": self.config.FILENAME_COLUMN})

    def score(
        self, source, predictions: pd.DataFrame, truth, labels: str, data_dir: str,
        predictions_source=None,
    ) -> dict:  # fmt: skip
        """MAE, RMSE and R² per target of ``predictions``, in the targets' units."""
        from kerapipe.tasks.common import labelled

        name = self.config.FILENAME_COLUMN
        merged, counts = labelled(predictions, truth, name, data_dir, labels)
        scores = {}
        for column in self.layout.targets:
            actual = merged[f"{column}_true"].to_numpy(dtype=np.float64)
            guess = merged[column].to_numpy(dtype=np.float64)
            scores[column] = regression_scores(actual, guess) if len(actual) else {}
        return {**counts, **scores}

    def table(self, paths: list[str], outputs: np.ndarray) -> pd.DataFrame:
        outputs = np.asarray(outputs, dtype=np.float64).reshape(len(paths), -1)
        table = pd.DataFrame({"filepath": paths})
        for i, column in enumerate(self.layout.targets):
            table[column] = outputs[:, i].round(6)
        return table
