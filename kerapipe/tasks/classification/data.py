"""Classification's datasets: images with their integer labels, and the class weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kerapipe.errors import ConfigError
from kerapipe.registry import suggest
from kerapipe.tasks.base import TaskData

if TYPE_CHECKING:
    import pandas as pd

    from kerapipe.tasks.classification.layout import ClassificationLayout


class ClassificationData(TaskData):
    layout: ClassificationLayout

    def check_class_weight(self, spec: Any) -> None:
        """Every class ``TRAINING.CLASS_WEIGHT`` names must be a class (once they are known:
        from the params, or from the data folder)."""
        if not isinstance(spec, dict) or not (self.layout.named_in_params or self.layout._found):
            return
        known = list(self.layout.classes)
        unknown = [name for name in spec if name not in self.layout.classes]
        if unknown:
            hints = "".join(suggest(name, known) for name in unknown[:1])
            raise ConfigError(
                f"TRAINING.CLASS_WEIGHT: no class named {', '.join(map(repr, unknown))}."
                f"{hints} The classes are: {', '.join(known)}."
            )

    def class_weights(self, spec: Any, train_rows: pd.DataFrame) -> dict[int, float] | None:
        """``TRAINING.CLASS_WEIGHT`` as Keras' ``class_weight``: ``balanced`` from the counts
        of the training rows (scikit-learn's ``compute_class_weight``), or the named weights
        with 1 for the classes not named."""
        import numpy as np

        if spec is None:
            return None
        self.check_class_weight(spec)
        if spec == "balanced":
            from sklearn.utils.class_weight import compute_class_weight

            labels = train_rows.label.to_numpy(dtype=np.int64)
            present = np.unique(labels)
            weights = compute_class_weight("balanced", classes=present, y=labels)
            return {int(label): float(w) for label, w in zip(present, weights, strict=True)}
        return {label: float(spec.get(name, 1.0)) for name, label in self.layout.classes.items()}

    def dataset(self, table: pd.DataFrame, batch_size: int, shuffle_seed: int | None, options=None):
        import numpy as np

        from kerapipe.datasets import image_dataset

        labels = table.label.to_numpy(dtype=np.int32)
        return image_dataset(
            table.filepath,
            labels,
            self.input_shape,
            batch_size,
            shuffle_seed,
            options,
            self.settings.max_pixels,
        )
