"""Segmentation's head and evaluation: a per-pixel softmax; from one pass over the validation
set, per-class IoU and Dice, a pixel confusion matrix, sample images with their masks and the
images of lowest IoU."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from kerapipe.errors import ConfigError
from kerapipe.models.base import Head
from kerapipe.registry import MODELS
from kerapipe.tasks.base import TaskHead

if TYPE_CHECKING:
    from kerapipe.tasks.segmentation.layout import SegmentationLayout

# Colours of classes 0, 1, 2, ... in the images logged to DVCLive (class 0 is black).
PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
    ],
    dtype=np.uint8,
)


class SegmentationHead(TaskHead):
    default_loss = "sparse_categorical_crossentropy"
    default_metrics = ("accuracy", "sparse_mean_iou", "sparse_mean_dice")
    layout: SegmentationLayout

    def output_head(self) -> Head:
        return Head(units=len(self.layout.class_names), activation="softmax", spatial=True)

    def check_model(self, name: str, spatial_output: bool) -> None:
        if not spatial_output:
            able = [e.name for e in MODELS if MODELS.get(e.name).spatial_output]
            raise ConfigError(
                f"MODEL.MODEL_NAME: {name!r} gives one output per image, but segmentation "
                f"needs one per pixel. Choose one of: {', '.join(able)}."
            )

    def log_evaluation(self, live, model, rows: pd.DataFrame, data) -> pd.DataFrame:
        """From one pass over the validation set: per-class IoU and Dice (with the
        all-background baseline), a pixel confusion matrix, the first ``LOG_IMAGES`` images
        with their masks, and the ``LOG_MISTAKES`` images of lowest IoU; returns each
        image's pixel accuracy and IoU, for validation_predictions.csv."""
        count = len(self.layout.class_names)
        confusion = np.zeros((count, count), dtype=np.int64)
        shown: list[np.ndarray] = []
        sample_true: list[np.ndarray] = []
        sample_pred: list[np.ndarray] = []
        per_image: list[dict[str, Any]] = []
        worst: list[tuple[float, int, np.ndarray]] = []  # a heap of the lowest IoUs
        paths = list(rows.filepath)
        for images, masks in data:
            predicted = np.asarray(model(images, training=False)).argmax(axis=-1)
            truth = np.asarray(masks)
            confusion += pixel_confusion(truth, predicted, count)
            sample_true.append(truth[:, ::4, ::4].ravel())  # every 16th pixel, for the plot
            sample_pred.append(predicted[:, ::4, ::4].ravel())
            for image, mask, guess in zip(np.asarray(images), truth, predicted, strict=True):
                index = len(per_image)
                scores = segmentation_scores(pixel_confusion(mask, guess, count))
                per_image.append(self._image_row(paths[index], mask, guess, scores))
                if len(shown) < self.config.LOG_IMAGES:
                    shown.append(overlay_panel(image, mask, guess))
                self._keep_worst(worst, scores["mean_iou"], index, (image, mask, guess))
        scores = segmentation_scores(confusion)
        for name, iou, dice in zip(
            self.layout.class_names, scores["iou"], scores["dice"], strict=True
        ):
            if not np.isnan(iou):
                live.log_metric(f"validation/iou/{name}", float(iou), plot=False)
                live.log_metric(f"validation/dice/{name}", float(dice), plot=False)
        live.log_metric("validation/mean_iou", scores["mean_iou"], plot=False)
        live.log_metric("validation/mean_dice", scores["mean_dice"], plot=False)
        background = np.zeros((count, count), dtype=np.int64)
        background[:, 0] = confusion.sum(axis=1)
        live.log_metric(
            "validation/baseline_mean_iou", segmentation_scores(background)["mean_iou"], plot=False
        )
        names = np.array(self.layout.class_names)
        live.log_sklearn_plot(
            "confusion_matrix",
            list(names[np.concatenate(sample_true)]),
            list(names[np.concatenate(sample_pred)]),
            name="confusion_matrix.json",
        )
        for path, panel in zip(rows.filepath, shown, strict=False):
            stem = posixpath.splitext(posixpath.basename(path))[0]
            live.log_image(f"segmentation/{stem}.png", Image.fromarray(panel))
        self._log_mistakes(live, paths, worst)
        return pd.DataFrame(per_image)

    def _image_row(self, path: str, truth, predicted, scores: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "filepath": path,
            "pixel_accuracy": round(float((truth == predicted).mean()), 6),
            "mean_iou": round(scores["mean_iou"], 6),
        }
        for name, iou in zip(self.layout.class_names, scores["iou"], strict=True):
            row[f"iou_{name}"] = None if np.isnan(iou) else round(float(iou), 6)
        return row

    def _keep_worst(self, heap: list, iou: float, index: int, panel) -> None:
        """Keep the ``LOG_MISTAKES`` lowest IoUs seen so far (ties: the first image)."""
        import heapq

        item = (-iou, -index, panel)
        if len(heap) < self.config.LOG_MISTAKES:
            heapq.heappush(heap, item)
        elif self.config.LOG_MISTAKES and item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)

    def _log_mistakes(self, live, paths: list[str], heap: list) -> None:
        from kerapipe.tasks.gallery import captioned, log_gallery

        items = []
        for negative_iou, negative_index, (image, mask, guess) in sorted(heap, reverse=True):
            iou = -negative_iou
            lines = [f"mean IoU {iou:.2f}", "image | true mask | predicted"]
            panel = overlay_panel(image, mask, guess)
            items.append((paths[-negative_index], f"iou_{iou:.2f}", captioned(panel, lines)))
        log_gallery(live, items)


def segmentation_scores(confusion: np.ndarray) -> dict[str, Any]:
    """Per-class IoU and Dice from a confusion matrix (rows: truth, columns: prediction).

    A class absent from both truth and prediction gets NaN and is left out of the means.
    """
    tp = np.diag(confusion).astype(np.float64)
    actual, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (actual + predicted - tp)
        dice = 2 * tp / (actual + predicted)
    present = ~np.isnan(iou)
    return {
        "iou": iou,
        "dice": dice,
        "mean_iou": float(iou[present].mean()) if present.any() else 0.0,
        "mean_dice": float(dice[present].mean()) if present.any() else 0.0,
    }


def colorize(mask: np.ndarray) -> np.ndarray:
    """RGB picture of a class-index mask (class 0 black)."""
    return PALETTE[mask % len(PALETTE)]


def overlay_panel(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Image | true mask | predicted mask, side by side, as uint8 RGB (at least 128 high)."""
    picture = np.clip(image, 0, 255).astype(np.uint8)
    if picture.shape[-1] == 1:
        picture = np.repeat(picture, 3, axis=-1)
    picture = picture[..., :3]
    panel = np.concatenate([picture, colorize(truth), colorize(predicted)], axis=1)
    scale = max(1, 128 // panel.shape[0])  # small images are enlarged to be seen
    return panel.repeat(scale, axis=0).repeat(scale, axis=1)


def pixel_confusion(truth: np.ndarray, predicted: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` x ``count`` confusion matrix of two class-index masks (rows: truth)."""
    flat = truth.astype(np.int64).ravel() * count + predicted.astype(np.int64).ravel()
    return np.bincount(flat, minlength=count * count).reshape(count, count)
