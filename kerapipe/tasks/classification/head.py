"""Classification's head and evaluation: a softmax over the classes; from one pass over the
validation set, per-class scores, a confusion matrix, ROC and precision-recall curves, and
the worst mistakes as pictures."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kerapipe.models.base import Head
from kerapipe.tasks.base import TaskHead

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from kerapipe.tasks.classification.layout import ClassificationLayout

log = logging.getLogger(__name__)
CURVES = {"roc": "ROC", "precision_recall": "Precision-recall"}


class ClassificationHead(TaskHead):
    default_loss = "sparse_categorical_crossentropy"
    default_metrics = ("accuracy",)
    layout: ClassificationLayout

    def output_head(self) -> Head:
        return Head(units=self.layout.num_outputs, activation="softmax")

    def log_evaluation(self, live, model, rows: pd.DataFrame, data) -> pd.DataFrame:
        """From one pass over the validation set: per-class precision, recall, F1 and ROC
        AUC in metrics.json, a confusion matrix, ROC and precision-recall curves per class
        (one against the rest), and the worst mistakes (wrong, most confident first) as
        pictures; returns each image's prediction, for validation_predictions.csv."""
        import numpy as np

        outputs = np.asarray(model.predict(data, verbose=0))
        table = self.validation_table(rows, outputs)
        classes = self.layout.classes
        scores = classification_scores(
            table.label.to_numpy(), table.predicted_label.to_numpy(), outputs, classes
        )
        warn_unvalidated(scores, "the validation split")
        for metric, values in scores.items():
            if isinstance(values, dict):
                for name, value in values.items():
                    live.log_metric(f"validation/{metric}/{name}", value, plot=False)
            else:
                live.log_metric(f"validation/{metric}", values, plot=False)
        predicted = [name or str(label) for name, label in zip(
            table.predicted_class, table.predicted_label, strict=True)]  # fmt: skip
        live.log_sklearn_plot(
            "confusion_matrix", list(table.class_name), predicted, name="confusion_matrix.json"
        )
        self.log_curves(live, table.label.to_numpy(), outputs)
        self.log_mistakes(live, table)
        return table

    def log_curves(self, live, truth: np.ndarray, outputs: np.ndarray) -> None:
        """ROC and precision-recall curves of each class against the rest."""
        import numpy as np

        for name, label in self.layout.classes.items():
            positive = (truth == label).astype(np.int64)
            if 0 < positive.sum() < len(positive):  # a curve needs both kinds
                for kind in ("roc", "precision_recall"):
                    live.log_sklearn_plot(
                        kind,
                        positive,
                        outputs[:, label].astype(np.float64),
                        name=f"{kind}/{name}.json",
                        title=f"{CURVES[kind]}: {name} against the rest (validation)",
                    )

    def validation_table(self, rows: pd.DataFrame, outputs: np.ndarray) -> pd.DataFrame:
        """One row per validation image: the truth, the prediction, its confidence, whether
        it is right, and every class's probability."""
        import pandas as pd

        best = outputs.argmax(axis=1)
        name_of = self.layout.name_of
        table = pd.DataFrame(
            {
                "filepath": rows.filepath.to_numpy(),
                "class_name": rows.class_name.to_numpy(),
                "label": rows.label.to_numpy(),
                "predicted_class": [name_of.get(int(i), "") for i in best],
                "predicted_label": best,
                "confidence": outputs.max(axis=1).round(6),
            }
        )
        table["correct"] = table.label == table.predicted_label
        for name, label in self.layout.classes.items():
            table[f"prob_{name}"] = outputs[:, label].round(6)
        return table

    def log_mistakes(self, live, table: pd.DataFrame) -> None:
        """The ``LOG_MISTAKES`` wrong validation images with the highest confidence."""
        from kerapipe.tasks.gallery import captioned, enlarged, log_gallery, picture

        wrong = table[~table.correct].sort_values(
            ["confidence", "filepath"], ascending=[False, True], kind="stable"
        )
        items = []
        for row in wrong.head(self.config.LOG_MISTAKES).itertuples():
            lines = [f"true: {row.class_name}", f"predicted: {row.predicted_class}"]
            lines.append(f"confidence {row.confidence:.2f}")
            what = f"{row.class_name}_as_{row.predicted_class}_{row.confidence:.2f}"
            items.append((row.filepath, what, captioned(enlarged(picture(row.filepath)), lines)))
        log_gallery(live, items)


def classification_scores(
    truth: np.ndarray, predicted: np.ndarray, outputs: np.ndarray | None, classes: dict[str, int]
) -> dict:
    """Accuracy, macro F1, and per class (by name) precision, recall, F1 and the number of
    images (support); with ``outputs`` (probabilities) also each class's ROC AUC, one
    against the rest. A class never predicted has precision 0 (scikit-learn's
    ``zero_division=0``). A class with no image in ``truth`` (its support 0) cannot be
    scored: it is left out of the per-class scores and of macro F1."""
    import numpy as np
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    present = {name: label for name, label in classes.items() if np.any(truth == label)}
    names, labels = list(present), list(present.values())
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    scores: dict = {
        "accuracy": float(np.mean(truth == predicted)) if len(truth) else 0.0,
        "macro_f1": float(np.mean(f1)) if len(f1) else 0.0,
        "precision": dict(zip(names, map(float, precision), strict=True)),
        "recall": dict(zip(names, map(float, recall), strict=True)),
        "f1": dict(zip(names, map(float, f1), strict=True)),
        "support": {name: int(np.sum(truth == label)) for name, label in classes.items()},
    }
    if outputs is not None:
        auc = {}
        for name, label in present.items():
            positive = truth == label
            if 0 < positive.sum() < len(positive):
                auc[name] = float(roc_auc_score(positive, outputs[:, label]))
        scores["roc_auc"] = auc
    return scores


def warn_unvalidated(scores: dict, where: str) -> None:
    """Say which classes had no image in ``where`` and so were left out of the averages."""
    unscored = [name for name, count in scores["support"].items() if not count]
    if unscored:
        log.warning(
            "%d class(es) have no image in %s, so they cannot be scored and are left out of "
            "macro F1 and the per-class scores: %s. Add images of them (or re-split with "
            "another INVENTORY.VALIDATION_SPLIT).",
            len(unscored),
            where,
            ", ".join(unscored),
        )
