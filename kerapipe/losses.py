"""Custom Keras losses for integer (sparse) labels: Dice and focal.

Both take integer class labels (``(batch, height, width)`` masks, or ``(batch,)`` labels) and
per-class scores with the classes on the last axis, so they fit the segmentation task's
softmax head as ``sparse_categorical_crossentropy`` does. They are registered as Keras
serializable (package ``kerapipe``) and by name in ``kerapipe/catalog.py``
(``sparse_dice``, ``sparse_focal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


def sparse_labels(y_true: Any, y_pred: Any) -> Any:
    """Integer labels with one axis fewer than ``y_pred`` (a trailing axis of 1 is dropped)."""
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    return ops.cast(y_true, "int32")


def _probabilities(y_pred: Any, from_logits: bool) -> Any:
    return ops.softmax(y_pred, axis=-1) if from_logits else y_pred


@keras.saving.register_keras_serializable(package="kerapipe")
class SparseDiceLoss(keras.losses.Loss):
    """One minus the mean soft Dice coefficient over classes, per example.

    Dice weighs every class equally whatever its pixel count, so small objects are not
    drowned by the background as they are in plain cross-entropy.

    Args:
        smooth: added to the numerator and denominator of each class's Dice, so a class absent
            from both the mask and the prediction scores 1, not 0/0. Must be >= 0.
        from_logits: whether ``y_pred`` holds logits (a softmax is applied) or probabilities.
        reduction, name, dtype: as for every ``keras.losses.Loss``.

    Example:
        >>> loss = SparseDiceLoss(smooth=1.0)
        >>> loss([[[0, 1]]], [[[[0.9, 0.1], [0.2, 0.8]]]])  # doctest: +SKIP
    """

    def __init__(
        self,
        smooth: float = 1.0,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "sparse_dice",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(smooth, int | float) or smooth < 0:
            raise ValueError(f"smooth must be a number >= 0, got {smooth!r}")
        self.smooth = float(smooth)
        self.from_logits = bool(from_logits)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_pred = _probabilities(ops.convert_to_tensor(y_pred), self.from_logits)
        labels = sparse_labels(y_true, y_pred)
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        axes = tuple(range(1, len(y_pred.shape) - 1)) or None
        if axes is None:  # one label per example: Dice over the class axis alone
            one_hot, y_pred = ops.expand_dims(one_hot, 1), ops.expand_dims(y_pred, 1)
            axes = (1,)
        intersection = ops.sum(one_hot * y_pred, axis=axes)
        total = ops.sum(one_hot, axis=axes) + ops.sum(y_pred, axis=axes)
        dice = (2.0 * intersection + self.smooth) / (total + self.smooth)
        return 1.0 - ops.mean(dice, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smooth": self.smooth, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="kerapipe")
class SparseFocalLoss(keras.losses.Loss):
    """Focal loss for integer labels: cross-entropy scaled down on well-classified pixels.

    ``-alpha[y] * (1 - p_y) ** gamma * log(p_y)``, averaged over the pixels of each example.
    With ``gamma=0`` and no ``alpha`` it equals sparse categorical cross-entropy.

    Args:
        gamma: focusing strength, >= 0; 2 is the usual choice.
        alpha: ``None``, or one weight per class (a list) to rebalance rare classes.
        from_logits: whether ``y_pred`` holds logits or probabilities.
        reduction, name, dtype: as for every ``keras.losses.Loss``.

    Example:
        >>> SparseFocalLoss(gamma=2.0, alpha=[0.25, 1.0, 1.0])  # doctest: +SKIP
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "sparse_focal",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(gamma, int | float) or gamma < 0:
            raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
        if alpha is not None and (
            isinstance(alpha, str | bytes)
            or not all(isinstance(a, int | float) and a >= 0 for a in alpha)
        ):
            raise ValueError(
                f"alpha must be null or a list of per-class weights >= 0, got {alpha!r}"
            )
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else [float(a) for a in alpha]
        self.from_logits = bool(from_logits)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_pred = ops.convert_to_tensor(y_pred)
        labels = sparse_labels(y_true, y_pred)
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            epsilon = keras.backend.epsilon()
            log_probs = ops.log(ops.clip(y_pred, epsilon, 1.0 - epsilon))
        log_pt = ops.squeeze(
            ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1), axis=-1
        )
        loss = -ops.power(1.0 - ops.exp(log_pt), self.gamma) * log_pt
        if self.alpha is not None:
            loss = loss * ops.take(ops.convert_to_tensor(self.alpha, dtype=loss.dtype), labels)
        axes = tuple(range(1, len(loss.shape)))
        return ops.mean(loss, axis=axes) if axes else loss

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": self.alpha,
            "from_logits": self.from_logits,
        }
