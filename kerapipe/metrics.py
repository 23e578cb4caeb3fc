"""Custom Keras metrics for integer masks: mean IoU and mean Dice over classes.

Both accumulate one confusion matrix over the epoch from integer labels and per-class scores
(the prediction is the arg-max class), then average over the classes that occur in the labels
or the predictions, as ``keras.metrics.MeanIoU`` does. Unlike ``MeanIoU`` they need no class
count (up to 256 classes, the values an 8-bit mask can hold), so they work as task defaults;
``class_ids`` restricts the mean to chosen classes, e.g. one class's IoU curve.
Registered by name in ``kerapipe/catalog.py`` (``sparse_mean_iou``, ``sparse_mean_dice``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kerapipe.losses import sparse_labels

MAX_CLASSES = 256


class _SparseConfusionMetric(keras.metrics.Metric):
    """Shared confusion-matrix bookkeeping; subclasses turn it into a per-class score."""

    def __init__(
        self,
        num_classes: int | None = None,
        class_ids: Sequence[int] | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"num_classes must be null or an integer >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.size = num_classes or MAX_CLASSES
        if class_ids is not None:
            bad = [c for c in class_ids if not isinstance(c, int) or not 0 <= c < self.size]
            if bad or isinstance(class_ids, str):
                raise ValueError(
                    f"class_ids must be a list of integers in [0, {self.size}), got {class_ids!r}"
                )
        self.class_ids = None if class_ids is None else [int(c) for c in class_ids]
        self.total_cm = self.add_variable(
            shape=(self.size, self.size),
            initializer=keras.initializers.Zeros(),
            dtype=self.dtype,
            name="total_confusion_matrix",
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = ops.convert_to_tensor(y_pred)
        labels = ops.reshape(sparse_labels(y_true, y_pred), (-1,))
        predicted = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
        valid = ops.logical_and(labels >= 0, labels < self.size)
        weights = ops.cast(valid, self.dtype)
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, self.dtype)
            shape = ops.shape(sparse_labels(y_true, y_pred))
            weights = weights * ops.reshape(ops.broadcast_to(sample_weight, shape), (-1,))
        index = ops.where(valid, labels, 0) * self.size + ops.minimum(predicted, self.size - 1)
        cells = self.size * self.size  # a static count of cells (jnp.bincount's is not, under jit)
        counts = ops.segment_sum(weights, index, num_segments=cells)
        self.total_cm.assign_add(ops.reshape(counts, self.total_cm.shape))

    def _per_class(self, true_positives: Any, actual: Any, predicted: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def result(self) -> Any:
        cm = self.total_cm
        true_positives = ops.diagonal(cm)
        numerator, denominator = self._per_class(
            true_positives, ops.sum(cm, axis=1), ops.sum(cm, axis=0)
        )
        if self.class_ids is not None:
            numerator = ops.take(numerator, self.class_ids)
            denominator = ops.take(denominator, self.class_ids)
        present = ops.cast(denominator > 0, self.dtype)
        scores = ops.divide_no_nan(numerator, denominator)
        return ops.divide_no_nan(ops.sum(scores * present), ops.sum(present))

    def reset_state(self) -> None:
        self.total_cm.assign(ops.zeros(self.total_cm.shape, dtype=self.dtype))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "class_ids": self.class_ids,
        }


@keras.saving.register_keras_serializable(package="kerapipe")
class SparseMeanIoU(_SparseConfusionMetric):
    """Mean intersection over union over classes, from integer labels and class scores.

    Args:
        num_classes: number of classes, or ``None`` for up to 256 (the size only bounds the
            confusion matrix; classes seen in neither labels nor predictions do not count).
        class_ids: average over these classes only (e.g. ``[1]`` for the IoU of class 1).
        name, dtype: as for every ``keras.metrics.Metric``.

    Example:
        >>> metric = SparseMeanIoU(name="iou_square", class_ids=[1])  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int | None = None,
        class_ids: Sequence[int] | None = None,
        name: str = "mean_iou",
        dtype: Any = None,
    ) -> None:
        super().__init__(num_classes=num_classes, class_ids=class_ids, name=name, dtype=dtype)

    def _per_class(self, true_positives, actual, predicted):
        return true_positives, actual + predicted - true_positives


@keras.saving.register_keras_serializable(package="kerapipe")
class SparseMeanDice(_SparseConfusionMetric):
    """Mean Dice coefficient (F1 of the pixels) over classes, from labels and class scores.

    Args:
        num_classes: number of classes, or ``None`` for up to 256.
        class_ids: average over these classes only.
        name, dtype: as for every ``keras.metrics.Metric``.

    Example:
        >>> metric = SparseMeanDice()  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int | None = None,
        class_ids: Sequence[int] | None = None,
        name: str = "mean_dice",
        dtype: Any = None,
    ) -> None:
        super().__init__(num_classes=num_classes, class_ids=class_ids, name=name, dtype=dtype)

    def _per_class(self, true_positives, actual, predicted):
        return 2.0 * true_positives, actual + predicted
