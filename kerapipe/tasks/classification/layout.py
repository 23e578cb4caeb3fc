"""Classification's inventory phase: one sub-folder of images per class, the classes and their
labels (from the params or the folders), and a stratified split that gives every class a
validation image."""

from __future__ import annotations

import logging
import math
import operator
from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field, model_validator

from kerapipe.config import Group, require_unique
from kerapipe.errors import ConfigError, DataError
from kerapipe.images import is_image_name, warn_not_images
from kerapipe.sources import DataSource
from kerapipe.tasks.base import TaskLayout, TaskSettings

if TYPE_CHECKING:  # imported where used: `kerapipe validate` needs neither
    import pandas as pd

log = logging.getLogger(__name__)
KEY = "PIPELINE.TASK_PARAMS"
DATA_KEY = "DATA.INVENTORY_DATA_DIR"


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


class ClassificationLayout(TaskLayout):
    display_only_params = frozenset({"LOG_MISTAKES"})

    def __init__(self, settings: TaskSettings) -> None:
        super().__init__(settings)
        self._found: dict[str, int] | None = None  # classes from the data or a record

    @property
    def named_in_params(self) -> bool:
        return self.config.CLASS_NAMES is not None

    @property
    def classes(self) -> dict[str, int]:
        """``{class name: label}``: from the params, else from the data folder's sub-folders
        (the inventory), else from a record (``adopt``: the inventory for training, the
        model for predict)."""
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
    def name_of(self) -> dict[int, str]:
        """``{label: class name}``."""
        return {label: name for name, label in self.classes.items()}

    @property
    def output_names(self) -> list[str | None]:
        name_of = self.name_of
        return [name_of.get(unit) for unit in range(self.num_outputs)]

    @property
    def num_outputs(self) -> int:
        given = self.settings.num_classes
        return given if given is not None else max(self.classes.values()) + 1

    def record(self) -> dict:
        return {"classes": dict(self.classes)}

    def adopt(self, record: dict) -> None:
        if not self.named_in_params and record.get("classes"):
            self._found = {str(name): int(label) for name, label in record["classes"].items()}

    def check_num_classes(self, num_classes: int | None) -> None:
        if not self.named_in_params and self._found is None:
            return  # the classes are known once the data folder is listed
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
        paths, names, _ = self._columns(source, data_dir)
        require_splittable({name: names.count(name) for name in self.classes})
        return paths

    def _columns(self, source: DataSource, data_dir: str) -> tuple[list[str], list[str], list[int]]:
        """File paths, class names and labels of every image, sorted by path.

        Files are judged by their names only (files that are not images are skipped with one
        warning); what is inside them is checked after, as ``INVENTORY.CHECK_IMAGES`` says.
        """
        folders = set(source.subfolders(data_dir))
        if not self.named_in_params:
            self._found = self._classes_from_folders(folders, data_dir)
        missing = [name for name in self.classes if name not in folders]
        if missing:
            raise DataError(
                f"{DATA_KEY}: no folder for class(es) {', '.join(missing)} in {data_dir!r} "
                f"(found: {', '.join(sorted(folders)) or 'none'}). Each name in "
                f"{KEY}.CLASS_NAMES needs a sub-folder of that name holding its images."
            )
        files, others = self._class_files(source, data_dir)
        self.check_num_classes(self.settings.num_classes)
        paths, names, labels = [], [], []
        for name, found in files.items():
            paths += found
            names += [name] * len(found)
            labels += [self.classes[name]] * len(found)
        if any(map(operator.gt, paths, paths[1:])):  # each folder's files come sorted
            order = sorted(range(len(paths)), key=paths.__getitem__)
            paths, names, labels = ([column[i] for i in order] for column in (paths, names, labels))
        warn_not_images(others, DATA_KEY)
        return paths, names, labels

    def _class_files(
        self, source: DataSource, data_dir: str
    ) -> tuple[dict[str, list[str]], list[str]]:
        """The images of each class folder, and the files that are not images; a class
        folder without images is one error naming each such folder."""
        from tqdm import tqdm

        files: dict[str, list[str]] = {}
        others: list[str] = []
        for name in tqdm(list(self.classes), "listing", unit="class", disable=None, delay=1):
            found = source.files(f"{data_dir.rstrip('/')}/{name}")
            files[name] = list(filter(is_image_name, found))
            others += [p for p in found if not is_image_name(p)]
        empty = [f"'{data_dir.rstrip('/')}/{name}'" for name, found in files.items() if not found]
        if empty:
            them = "it" if len(empty) == 1 else "them"
            fix = (
                f"remove {them} from {KEY}.CLASS_NAMES and CLASS_LABELS"
                if self.named_in_params
                else f"move {them} out (every sub-folder is a class when "
                f"{KEY}.CLASS_NAMES is left out)"
            )
            which = (
                f"class folder {empty[0]} has no images"
                if len(empty) == 1
                else f"class folders {', '.join(empty)} have no images"
            )
            raise DataError(f"{DATA_KEY}: {which}. Add images, or {fix}.")
        return files, others

    @staticmethod
    def _classes_from_folders(folders: set[str], data_dir: str) -> dict[str, int]:
        """Every sub-folder but hidden ones, sorted, labelled 0, 1, 2, ... (as Keras'
        ``image_dataset_from_directory`` does)."""
        names = sorted(name for name in folders if not name.startswith("."))
        if len(names) < 2:
            raise DataError(
                f"{DATA_KEY}: {data_dir!r} holds {len(names)} sub-folder(s) "
                f"({', '.join(names) or 'none'}); classification needs one per class, at least "
                f"two. Put each class's images in a folder of its name (or set {KEY}.CLASS_NAMES)."
            )
        return {name: label for label, name in enumerate(names)}

    def split(self, table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
        """Stratified by class, every class with a validation image (see
        ``every_class_validated``)."""
        from kerapipe.tasks.common import seeded_split  # imports pandas: not at start-up

        require_splittable(table.class_name.value_counts().to_dict())
        classes, images = table.label.nunique(), len(table)
        validation = math.ceil(validation_split * images)  # as scikit-learn sizes it
        if images - validation < classes:
            raise DataError(
                f"INVENTORY.VALIDATION_SPLIT: {validation_split} of {images} images leaves "
                f"{images - validation} to train on, fewer than the {classes} classes. Lower "
                "it, or add images."
            )
        if validation < classes:  # too few to stratify: one image of each class instead
            log.warning(
                "INVENTORY.VALIDATION_SPLIT: %s of %d images is %d validation image(s), fewer "
                "than the %d classes: one image of each class is validated instead.",
                validation_split, images, validation, classes,
            )  # fmt: skip
            return one_of_each_class(table, seed)
        table = seeded_split(table, validation_split, seed, stratify=table.label)
        return every_class_validated(table, seed)


def require_splittable(counts: dict[str, int]) -> None:
    """A class needs two images at least, one to train on and one to validate with."""
    small = {name: count for name, count in counts.items() if count < 2}
    if small:
        listed = ", ".join(f"{name} ({count})" for name, count in sorted(small.items()))
        raise DataError(
            f"{DATA_KEY}: {len(small)} class(es) have fewer than 2 images, too few to split "
            f"into training and validation: {listed}. Add images to them, or leave them out "
            f"({KEY}.CLASS_NAMES, or move their folders out)."
        )


def one_of_each_class(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``table`` with one image of each class, drawn with ``seed``, in the validation split."""
    import numpy as np

    table = table.copy()
    table["split"] = "train"
    random = np.random.default_rng(seed)
    for label in sorted(table.label.unique()):
        table.loc[random.choice(table.index[table.label == label]), "split"] = "validation"
    return table


def every_class_validated(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``table`` (split, stratified) with one image of each class that has none in the
    validation split moved there, as long as the class keeps one to train on. Its place in
    the validation split is given back by the class with the most validation images, so the
    split keeps its size when it can. Seeded: the same table and seed give the same split."""
    import numpy as np

    table = table.copy()
    random = np.random.default_rng(seed)
    for label in sorted(table.label.unique()):
        rows = table[table.label == label]
        training = rows.index[rows.split == "train"]
        if (rows.split == "validation").any() or len(training) < 2:
            continue
        table.loc[random.choice(training), "split"] = "validation"
        validation = table[table.split == "validation"]
        counts = validation.label.value_counts()
        richest = counts[counts > 1].sort_index(kind="stable")
        if len(richest):
            donor = richest.idxmax()
            back = validation.index[validation.label == donor]
            table.loc[random.choice(back), "split"] = "train"
    return table
