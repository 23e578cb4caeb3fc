"""Regression's head and evaluation: a linear head on standardised targets; the saved model
ends with a built-in ``Rescaling`` layer (``x * std + mean``), so it outputs the original
units. From one pass over the validation set: MAE, RMSE and R² per target, scatter plots and
the images with the largest errors."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kerapipe.models.base import Head
from kerapipe.tasks.base import TaskHead

if TYPE_CHECKING:
    from kerapipe.tasks.regression.data import RegressionData
    from kerapipe.tasks.regression.layout import RegressionLayout


class RegressionHead(TaskHead):
    default_loss = "mean_squared_error"
    default_metrics = ("mean_absolute_error", "root_mean_squared_error", "r2_score")
    layout: RegressionLayout
    data: RegressionData

    def output_head(self) -> Head:
        return Head(units=len(self.layout.targets), activation=None)

    def finalize_model(self, model):
        """The trained model followed by a layer that maps standardised outputs to units:
        ``x * std + mean``, a built-in ``Rescaling`` whose scale and offset are plain lists
        in its config (so the ONNX and LiteRT exports fold them into constants)."""
        import keras

        outputs = keras.layers.Rescaling(
            scale=[float(s) for s in self.data.std],
            offset=[float(m) for m in self.data.mean],
            dtype="float32",
            name="to_target_units",
        )(model.outputs[0])
        return keras.Model(model.inputs, outputs, name=model.name)

    def log_evaluation(self, live, model, rows: pd.DataFrame, data) -> pd.DataFrame:
        """From one pass over the validation set: MAE, RMSE and R² in the targets' units,
        the MAE of always predicting the training mean beside them, a predicted-vs-actual
        scatter plot per target, and the images with the largest errors; returns each
        image's targets, predictions and errors, for validation_predictions.csv."""
        predicted = self.data.to_units(np.asarray(model.predict(data, verbose=0)))
        actual = rows[self.layout.targets].to_numpy(dtype=np.float64)
        for i, column in enumerate(self.layout.targets):
            for metric, value in regression_scores(actual[:, i], predicted[:, i]).items():
                live.log_metric(f"validation/{column}/{metric}", value, plot=False)
            baseline = float(np.abs(actual[:, i] - self.data.mean[i]).mean())
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
        for i, column in enumerate(self.layout.targets):
            table[column] = actual[:, i]
            table[f"predicted_{column}"] = predicted[:, i].round(6)
            table[f"error_{column}"] = (predicted[:, i] - actual[:, i]).round(6)
        table["worst_error_in_std"] = (
            (np.abs(predicted - actual) / self.data.std).max(axis=1).round(6)
        )
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
                f"{c}: {row[c]:.2f}, predicted {row[f'predicted_{c}']:.2f}"
                for c in self.layout.targets
            ]
            errors = "_".join(f"{c}{row[f'error_{c}']:+.2f}" for c in self.layout.targets)
            items.append((row.filepath, errors, captioned(enlarged(picture(row.filepath)), lines)))
        log_gallery(live, items)


def regression_scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (1 - residual / total sum of squares; 0 for a constant target)."""
    error = predicted - actual
    total = float(((actual - actual.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": math.sqrt(float((error**2).mean())),
        "r2": 1.0 - float((error**2).sum()) / total if total > 0 else 0.0,
    }
