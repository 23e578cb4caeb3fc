"""Regression's datasets: images with their targets, standardised with the training rows'
mean and standard deviation (so several targets of different scales weigh alike in the loss).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kerapipe.tasks.base import TaskData, TaskSettings

if TYPE_CHECKING:
    import pandas as pd

    from kerapipe.datasets import DatasetOptions
    from kerapipe.tasks.regression.layout import RegressionLayout


class RegressionData(TaskData):
    layout: RegressionLayout

    def __init__(self, settings: TaskSettings, layout: RegressionLayout) -> None:
        super().__init__(settings, layout)
        self.mean: np.ndarray | None = None  # per target, from the training rows
        self.std: np.ndarray | None = None

    @property
    def targets(self) -> list[str]:
        return self.layout.targets

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
                "RegressionData.prepare(train_rows) must be called before building datasets "
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
            table.filepath,
            targets,
            self.input_shape,
            batch_size,
            shuffle_seed,
            options,
            self.settings.max_pixels,
        )
