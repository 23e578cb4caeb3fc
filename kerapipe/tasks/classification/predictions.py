"""Classification's predictions: a CSV with each image's class and per-class probabilities,
scored against a CSV of true classes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kerapipe.errors import DataError
from kerapipe.registry import suggest
from kerapipe.sources import DataSource
from kerapipe.tasks.base import TaskPredictions
from kerapipe.tasks.classification.head import classification_scores, warn_unvalidated

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from kerapipe.tasks.classification.layout import ClassificationLayout


class ClassificationPredictions(TaskPredictions):
    layout: ClassificationLayout

    def table(self, paths: list[str], outputs: np.ndarray) -> pd.DataFrame:
        import pandas as pd

        name_of = self.layout.name_of
        best = outputs.argmax(axis=1)
        table = pd.DataFrame(
            {
                "filepath": paths,
                "class_name": [name_of.get(int(i), "") for i in best],
                "label": best,
            }
        )
        for name, label in self.layout.classes.items():
            table[f"prob_{name}"] = outputs[:, label].round(6)
        return table

    def read_labels(self, source: DataSource, labels: str) -> pd.DataFrame:
        """A CSV of ``filename`` (relative to ``DATA.PREDICTION_DATA_DIR``) and
        ``class_name`` (or ``label``), as ``filename, class_name``, checked."""
        from kerapipe.tasks.common import read_csv

        table = read_csv(source, labels, "DATA.PREDICTION_LABELS")
        column = next((c for c in ("class_name", "label") if c in table.columns), None)
        if column is None or "filename" not in table.columns:
            raise DataError(
                f"DATA.PREDICTION_LABELS: {labels} needs the columns filename and class_name "
                f"(or label); it has {', '.join(map(str, table.columns))}."
            )
        classes = self.layout.classes
        if column == "label":
            name_of = self.layout.name_of
            table["class_name"] = [name_of.get(int(v), str(v)) for v in table.label]
        unknown = sorted(set(table.class_name.astype(str)) - set(classes))
        if unknown:
            raise DataError(
                f"DATA.PREDICTION_LABELS: {labels} names classes the model does not know: "
                f"{', '.join(unknown[:5])}.{suggest(unknown[0], list(classes))} The "
                f"classes are: {', '.join(classes)}."
            )
        return table[["filename", "class_name"]].astype(str)

    def score(
        self, source, predictions: pd.DataFrame, truth, labels: str, data_dir: str,
        predictions_source=None,
    ) -> dict:  # fmt: skip
        """Accuracy, macro F1, and per-class precision, recall and F1 of ``predictions``."""
        from kerapipe.tasks.common import labelled

        merged, counts = labelled(predictions, truth, "filename", data_dir, labels)
        classes = self.layout.classes
        truth = merged.class_name_true.map(classes).to_numpy()
        predicted = merged.label.to_numpy(dtype="int64")
        scores = classification_scores(truth, predicted, None, classes)
        warn_unvalidated(scores, str(labels))
        return {**counts, **scores}
