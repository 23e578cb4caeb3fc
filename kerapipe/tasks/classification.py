"""Image classification: one sub-folder of images per class, a softmax head, and a
predictions CSV with the class and the per-class probabilities."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field, model_validator

from kerapipe.config import Group, require_unique
from kerapipe.errors import ConfigError, DataError
from kerapipe.images import is_image_name, warn_not_images
from kerapipe.models.base import BaseModelParams, Head
from kerapipe.registry import suggest
from kerapipe.sources import DataSource
from kerapipe.tasks.base import Task

if TYPE_CHECKING:  # imported where used: `kerapipe validate` needs neither
    import numpy as np
    import pandas as pd

KEY = "PIPELINE.TASK_PARAMS"


class ClassificationParams(Group):
    # Editors flag labels without names, as validation does.
    model_config = ConfigDict(
        **Group.model_config,
        json_schema_extra={"dependentRequired": {"CLASS_LABELS": ["CLASS_NAMES"]}},
    )

    CLASS_NAMES: list[str] | None = Field(
        None,
        min_length=2,
        description="the classes, each a sub-folder of INVENTORY_DATA_DIR; null (or left "
        "out): every sub-folder, sorted, as image_dataset_from_directory does",
    )
    CLASS_LABELS: list[int] | None = Field(
        None,
        description="one distinct integer label per class name, in the same order: the "
        "index of its model output; null (or left out): 0, 1, 2, ... in the order of the names",
    )
    LOG_MISTAKES: int = Field(
        8,
        ge=0,
        description="the validation images shown in dvc plots as the worst mistakes: wrong, "
        "with the highest confidence first",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ClassificationParams:
        names, labels = self.CLASS_NAMES, self.CLASS_LABELS
        if names is None:
            if labels is not None:
                raise ValueError(
                    "CLASS_LABELS needs CLASS_NAMES (one label per name); give the names too, "
                    "or leave both out to use the sub-folders, labelled 0, 1, 2, ... in order"
                )
            return self
        require_unique(names, "entry", field="CLASS_NAMES")
        if labels is None:
            return self
        if len(names) != len(labels):
            raise ValueError(
                f"CLASS_NAMES has {len(names)} entries but CLASS_LABELS has {len(labels)}; "
                "give one integer label per class name, in the same order"
            )
        require_unique(labels, "entry", field="CLASS_LABELS")
        if min(labels) < 0:
            raise ValueError("CLASS_LABELS must be integers >= 0 (the model's output units)")
        return self


class ClassificationTask(Task):
    Params = ClassificationParams
    default_loss = "sparse_categorical_crossentropy"
    default_metrics = ("accuracy",)
    display_only_params = frozenset({"LOG_MISTAKES"})

    def __init__(self, params) -> None:
        super().__init__(params)
        self._found: dict[str, int] | None = None  # classes from the data or a record

    # --- the classes -----------------------------------------------------------------------

    @property
    def named_in_params(self) -> bool:
        return self.config.CLASS_NAMES is not None

    @property
    def classes(self) -> dict[str, int]:
        """``{class name: label}``: from the params, else from the data folder's sub-folders
        (the inventory), else from a record (``adopt_layout``: the inventory for training,
        the model for predict)."""
        names = self.config.CLASS_NAMES
        if names is not None:
            labels = self.config.CLASS_LABELS or range(len(names))
            return dict(zip(names, labels, strict=False))
        if self._found is None:
            raise ConfigError(
                f"{KEY}.CLASS_NAMES is left out and no record of the classes is at hand "
                "(inventory.json, or the model's run_info.json, made before kerapipe recorded "
                "them). Run the inventory and train again, or name the classes."
            )
        return self._found

    @property
    def output_names(self) -> list[str | None]:
        name_of = {label: name for name, label in self.classes.items()}
        return [name_of.get(unit) for unit in range(self.num_outputs)]

    @property
    def num_outputs(self) -> int:
        given = self.params.MODEL.MODEL_PARAMS.get("NUM_CLASSES")
        return given if given is not None else max(self.classes.values()) + 1

    def layout(self) -> dict:
        return {"classes": dict(self.classes)}

    def adopt_layout(self, layout: dict) -> None:
        if not self.named_in_params and layout.get("classes"):
            self._found = {str(name): int(label) for name, label in layout["classes"].items()}

    def check_model_params(self, model_params: BaseModelParams) -> None:
        if self.named_in_params:
            self._check_outputs(model_params.NUM_CLASSES)

    def _check_outputs(self, num_classes: int | None) -> None:
        top_label = max(self.classes.values())
        if num_classes is not None and top_label >= num_classes:
            where = (
                f"{KEY}.CLASS_LABELS goes up to {top_label}"
                if self.named_in_params
                else f"the data folder has {top_label + 1} classes (sub-folders)"
            )
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.NUM_CLASSES is {num_classes} but {where}; set "
                f"NUM_CLASSES to {top_label + 1} (one output per label), or leave it out to "
                "derive it."
            )

    def check_training_params(self) -> None:
        if self.named_in_params:
            self._check_class_weight()

    def _check_class_weight(self) -> None:
        spec = self.params.TRAINING.CLASS_WEIGHT
        if not isinstance(spec, dict):
            return
        known = list(self.classes)
        unknown = [name for name in spec if name not in self.classes]
        if unknown:
            hints = "".join(suggest(name, known) for name in unknown[:1])
            raise ConfigError(
                f"TRAINING.CLASS_WEIGHT: no class named {', '.join(map(repr, unknown))}."
                f"{hints} The classes are: {', '.join(known)}."
            )

    def class_weights(self, train_rows: pd.DataFrame) -> dict[int, float] | None:
        """``TRAINING.CLASS_WEIGHT`` as Keras' ``class_weight``: ``balanced`` from the counts
        of the training rows (scikit-learn's ``compute_class_weight``), or the named weights
        with 1 for the classes not named."""
        import numpy as np

        spec = self.params.TRAINING.CLASS_WEIGHT
        if spec is None:
            return None
        self._check_class_weight()
        if spec == "balanced":
            from sklearn.utils.class_weight import compute_class_weight

            labels = train_rows.label.to_numpy(dtype=np.int64)
            present = np.unique(labels)
            weights = compute_class_weight("balanced", classes=present, y=labels)
            return {int(label): float(w) for label, w in zip(present, weights, strict=True)}
        return {label: float(spec.get(name, 1.0)) for name, label in self.classes.items()}

    # --- inventory -------------------------------------------------------------------------

    def scan(self, source: DataSource, data_dir: str) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        paths, names, labels = self._columns(source, data_dir)
        # pandas builds string columns from object arrays several times faster than from
        # lists (100,000-file trees); the columns come out the same.
        return pd.DataFrame(
            {
                "filepath": np.array(paths, dtype=object),
                "class_name": np.array(names, dtype=object),
                "label": np.array(labels, dtype=np.int64),
            }
        )

    def check_data(self, source: DataSource, data_dir: str) -> list[str]:
        return self._columns(source, data_dir)[0]

    def _columns(self, source: DataSource, data_dir: str) -> tuple[list[str], list[str], list[int]]:
        """File paths, class names and labels of every image, sorted by path.

        Files are judged by their names only (files that are not images are skipped with one
        warning); what is inside them is checked after, as ``INVENTORY.CHECK_IMAGES`` says.
        """
        key = "DATA.INVENTORY_DATA_DIR"
        folders = set(source.subfolders(data_dir))
        if not self.named_in_params:
            self._found = self._classes_from_folders(folders, data_dir)
            self._check_outputs(self.params.MODEL.MODEL_PARAMS.get("NUM_CLASSES"))
            self._check_class_weight()
        missing = [name for name in self.classes if name not in folders]
        if missing:
            raise DataError(
                f"{key}: no folder for class(es) {', '.join(missing)} in {data_dir!r} "
                f"(found: {', '.join(sorted(folders)) or 'none'}). Each name in "
                f"{KEY}.CLASS_NAMES needs a sub-folder of that name holding its images."
            )
        from tqdm import tqdm

        paths, names, labels, others = [], [], [], []
        classes = tqdm(list(self.classes), "listing", unit="class", disable=None, delay=1)
        for name in classes:
            found = source.files(f"{data_dir.rstrip('/')}/{name}")
            files = list(filter(is_image_name, found))
            if len(files) < len(found):
                others += [p for p in found if not is_image_name(p)]
            if not files:
                fix = (
                    f"remove {name!r} from {KEY}.CLASS_NAMES and CLASS_LABELS"
                    if self.named_in_params
                    else "move the folder out (every sub-folder is a class when "
                    f"{KEY}.CLASS_NAMES is left out)"
                )
                raise DataError(
                    f"{key}: class folder '{data_dir.rstrip('/')}/{name}' has no images. Add "
                    f"them, or {fix}."
                )
            paths += files
            names += [name] * len(files)
            labels += [self.classes[name]] * len(files)
        if any(map(operator.gt, paths, paths[1:])):  # each folder's files come sorted
            order = sorted(range(len(paths)), key=paths.__getitem__)
            paths, names, labels = ([column[i] for i in order] for column in (paths, names, labels))
        warn_not_images(others, key)
        return paths, names, labels

    @staticmethod
    def _classes_from_folders(folders: set[str], data_dir: str) -> dict[str, int]:
        """Every sub-folder but hidden ones, sorted, labelled 0, 1, 2, ... (as Keras'
        ``image_dataset_from_directory`` does)."""
        names = sorted(name for name in folders if not name.startswith("."))
        if len(names) < 2:
            raise DataError(
                f"DATA.INVENTORY_DATA_DIR: {data_dir!r} holds {len(names)} sub-folder(s) "
                f"({', '.join(names) or 'none'}); classification needs one per class, at least "
                f"two. Put each class's images in a folder of its name (or set {KEY}.CLASS_NAMES)."
            )
        return {name: label for label, name in enumerate(names)}

    def split(self, table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
        from kerapipe.tasks.common import seeded_split  # imports pandas: not at start-up

        return seeded_split(table, validation_split, seed, stratify=table.label)

    def head(self) -> Head:
        return Head(units=self.num_outputs, activation="softmax")

    def dataset(self, table: pd.DataFrame, batch_size: int, shuffle_seed: int | None, options=None):
        import numpy as np

        from kerapipe.datasets import image_dataset

        labels = table.label.to_numpy(dtype=np.int32)
        return image_dataset(
            table.filepath, labels, self.input_shape, batch_size, shuffle_seed, options
        )

    def prediction_table(self, paths: list[str], outputs: np.ndarray) -> pd.DataFrame:
        import pandas as pd

        name_of = {label: name for name, label in self.classes.items()}
        best = outputs.argmax(axis=1)
        table = pd.DataFrame(
            {
                "filepath": paths,
                "class_name": [name_of.get(int(i), "") for i in best],
                "label": best,
            }
        )
        for name, label in self.classes.items():
            table[f"prob_{name}"] = outputs[:, label].round(6)
        return table

    def log_evaluation(self, live, model, rows: pd.DataFrame, data) -> pd.DataFrame:
        """From one pass over the validation set: per-class precision, recall, F1 and ROC
        AUC in metrics.json, a confusion matrix, ROC and precision-recall curves per class
        (one against the rest), and the worst mistakes (wrong, most confident first) as
        pictures; returns each image's prediction, for validation_predictions.csv."""
        import numpy as np

        outputs = np.asarray(model.predict(data, verbose=0))
        table = self.validation_table(rows, outputs)
        scores = classification_scores(
            table.label.to_numpy(), table.predicted_label.to_numpy(), outputs, self.classes
        )
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
        truth = table.label.to_numpy()
        for name, label in self.classes.items():
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
        self.log_mistakes(live, table)
        return table

    def validation_table(self, rows: pd.DataFrame, outputs: np.ndarray) -> pd.DataFrame:
        """One row per validation image: the truth, the prediction, its confidence, whether
        it is right, and every class's probability."""
        import pandas as pd

        best = outputs.argmax(axis=1)
        name_of = {label: name for name, label in self.classes.items()}
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
        for name, label in self.classes.items():
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
        if column == "label":
            name_of = {label: name for name, label in self.classes.items()}
            table["class_name"] = [name_of.get(int(v), str(v)) for v in table.label]
        unknown = sorted(set(table.class_name.astype(str)) - set(self.classes))
        if unknown:
            raise DataError(
                f"DATA.PREDICTION_LABELS: {labels} names classes the model does not know: "
                f"{', '.join(unknown[:5])}.{suggest(unknown[0], list(self.classes))} The "
                f"classes are: {', '.join(self.classes)}."
            )
        return table[["filename", "class_name"]].astype(str)

    def score_predictions(
        self, source, predictions: pd.DataFrame, truth, labels: str, predictions_source=None
    ) -> dict:
        """Accuracy, macro F1, and per-class precision, recall and F1 of ``predictions``."""
        from kerapipe.tasks.common import labelled

        merged, counts = labelled(
            predictions, truth, "filename", self.params.DATA.PREDICTION_DATA_DIR, labels
        )
        truth = merged.class_name_true.map(self.classes).to_numpy()
        predicted = merged.label.to_numpy(dtype="int64")
        scores = classification_scores(truth, predicted, None, self.classes)
        return {**counts, **scores}


CURVES = {"roc": "ROC", "precision_recall": "Precision-recall"}


def classification_scores(
    truth: np.ndarray, predicted: np.ndarray, outputs: np.ndarray | None, classes: dict[str, int]
) -> dict:
    """Accuracy, macro F1, and per class (by name) precision, recall, F1 and the number of
    images (support); with ``outputs`` (probabilities) also each class's ROC AUC, one
    against the rest. A class never predicted has precision 0 (scikit-learn's
    ``zero_division=0``)."""
    import numpy as np
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    names, labels = list(classes), list(classes.values())
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    scores: dict = {
        "accuracy": float(np.mean(truth == predicted)) if len(truth) else 0.0,
        "macro_f1": float(np.mean(f1)),
        "precision": dict(zip(names, map(float, precision), strict=True)),
        "recall": dict(zip(names, map(float, recall), strict=True)),
        "f1": dict(zip(names, map(float, f1), strict=True)),
        "support": dict(zip(names, map(int, support), strict=True)),
    }
    if outputs is not None:
        auc = {}
        for name, label in classes.items():
            positive = truth == label
            if 0 < positive.sum() < len(positive):
                auc[name] = float(roc_auc_score(positive, outputs[:, label]))
        scores["roc_auc"] = auc
    return scores
