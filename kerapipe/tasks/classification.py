"""Image classification: one sub-folder of images per class, a softmax head, and a
predictions CSV with the class and the per-class probabilities."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from kerapipe.config import Group, require_unique
from kerapipe.errors import ConfigError, DataError
from kerapipe.images import is_image_name, warn_not_images
from kerapipe.models.base import BaseModelParams, Head
from kerapipe.sources import DataSource
from kerapipe.tasks.base import Task

if TYPE_CHECKING:  # imported where used: `kerapipe validate` needs neither
    import numpy as np
    import pandas as pd

KEY = "PIPELINE.TASK_PARAMS"


class ClassificationParams(Group):
    CLASS_NAMES: list[str] = Field(min_length=2)
    CLASS_LABELS: list[int]

    @model_validator(mode="after")
    def _consistent(self) -> ClassificationParams:
        names, labels = self.CLASS_NAMES, self.CLASS_LABELS
        if len(names) != len(labels):
            raise ValueError(
                f"CLASS_NAMES has {len(names)} entries but CLASS_LABELS has {len(labels)}; "
                "give one integer label per class name, in the same order"
            )
        for key, values in (("CLASS_NAMES", names), ("CLASS_LABELS", labels)):
            require_unique(values, "entry", field=key)
        if min(labels) < 0:
            raise ValueError("CLASS_LABELS must be integers >= 0 (the model's output units)")
        return self


class ClassificationTask(Task):
    Params = ClassificationParams
    default_loss = "sparse_categorical_crossentropy"
    default_metrics = ("accuracy",)

    def check_model_params(self, model_params: BaseModelParams) -> None:
        top_label = max(self.config.CLASS_LABELS)
        if top_label >= model_params.NUM_CLASSES:
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.NUM_CLASSES is {model_params.NUM_CLASSES} but "
                f"{KEY}.CLASS_LABELS goes up to {top_label}; set NUM_CLASSES to "
                f"{top_label + 1} (one output per label)."
            )

    @property
    def label_of(self) -> dict[str, int]:
        return dict(zip(self.config.CLASS_NAMES, self.config.CLASS_LABELS, strict=True))

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
        missing = [name for name in self.config.CLASS_NAMES if name not in folders]
        if missing:
            raise DataError(
                f"{key}: no folder for class(es) {', '.join(missing)} in {data_dir!r} "
                f"(found: {', '.join(sorted(folders)) or 'none'}). Each name in "
                f"{KEY}.CLASS_NAMES needs a sub-folder of that name holding its images."
            )
        from tqdm import tqdm

        paths, names, labels, others = [], [], [], []
        classes = tqdm(self.config.CLASS_NAMES, "listing", unit="class", disable=None, delay=1)
        for name in classes:
            found = source.files(f"{data_dir.rstrip('/')}/{name}")
            files = list(filter(is_image_name, found))
            if len(files) < len(found):
                others += [p for p in found if not is_image_name(p)]
            if not files:
                raise DataError(
                    f"{key}: class folder '{data_dir.rstrip('/')}/{name}' has no images. Add "
                    f"them, or remove {name!r} from {KEY}.CLASS_NAMES and CLASS_LABELS."
                )
            paths += files
            names += [name] * len(files)
            labels += [self.label_of[name]] * len(files)
        if any(map(operator.gt, paths, paths[1:])):  # each folder's files come sorted
            order = sorted(range(len(paths)), key=paths.__getitem__)
            paths, names, labels = ([column[i] for i in order] for column in (paths, names, labels))
        warn_not_images(others, key)
        return paths, names, labels

    def split(self, table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
        from kerapipe.tasks.common import seeded_split  # imports pandas: not at start-up

        return seeded_split(table, validation_split, seed, stratify=table.label)

    def head(self) -> Head:
        num_classes = self.params.MODEL.MODEL_PARAMS["NUM_CLASSES"]
        return Head(units=num_classes, activation="softmax")

    def dataset(self, table: pd.DataFrame, batch_size: int, shuffle_seed: int | None, options=None):
        import numpy as np

        from kerapipe.datasets import image_dataset

        labels = table.label.to_numpy(dtype=np.int32)
        return image_dataset(
            table.filepath, labels, self.input_shape, batch_size, shuffle_seed, options
        )

    def prediction_table(self, paths: list[str], outputs: np.ndarray) -> pd.DataFrame:
        import pandas as pd

        name_of = {label: name for name, label in self.label_of.items()}
        best = outputs.argmax(axis=1)
        table = pd.DataFrame(
            {
                "filepath": paths,
                "class_name": [name_of.get(int(i), "") for i in best],
                "label": best,
            }
        )
        for name, label in self.label_of.items():
            table[f"prob_{name}"] = outputs[:, label].round(6)
        return table

    def log_evaluation(self, live, model, rows: pd.DataFrame, data) -> None:
        """A confusion matrix of class names on the validation set."""
        import numpy as np

        outputs = np.asarray(model.predict(data, verbose=0))
        name_of = {label: name for name, label in self.label_of.items()}
        predicted = [name_of.get(int(i), str(int(i))) for i in outputs.argmax(axis=1)]
        live.log_sklearn_plot(
            "confusion_matrix", list(rows.class_name), predicted, name="confusion_matrix.json"
        )
