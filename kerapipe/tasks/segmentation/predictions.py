"""Segmentation's predictions: one mask PNG per image (same stem, same size) and an index CSV
with each image's class pixel fractions, scored against a folder of true masks."""

from __future__ import annotations

import io
import itertools
import logging
import posixpath
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from kerapipe.errors import DataError
from kerapipe.sources import DataSource, normpath
from kerapipe.tasks.base import TaskPredictions
from kerapipe.tasks.common import image_size, join, with_status
from kerapipe.tasks.segmentation.head import pixel_confusion, segmentation_scores
from kerapipe.tasks.segmentation.layout import KEY

if TYPE_CHECKING:
    from kerapipe.image_probe import ImageInfo
    from kerapipe.tasks.segmentation.layout import SegmentationLayout

log = logging.getLogger(__name__)


class SegmentationPredictions(TaskPredictions):
    layout: SegmentationLayout

    def read_labels(self, source: DataSource, labels: str) -> str:
        """The folder of true masks (read one by one when scoring)."""
        if not source.is_dir(labels):
            raise DataError(
                f"DATA.PREDICTION_LABELS: folder {labels!r} not found. For segmentation it is "
                f"the folder of the true masks, named as {KEY}.MASK_PATTERN says; or set it "
                "to null."
            )
        return labels

    def score(
        self, source, predictions: pd.DataFrame, truth, labels: str, data_dir: str,
        predictions_source=None,
    ) -> dict:  # fmt: skip
        """Pixel accuracy, IoU and Dice (per class and their means) of the predicted masks
        against the true ones: for the image ``<folder>/<stem>.<ext>`` under ``data_dir``
        (``DATA.PREDICTION_DATA_DIR``), ``<folder>/`` + ``MASK_PATTERN`` under ``labels``.
        Pixels are compared at the image's own size, where predict writes its masks."""
        from kerapipe.tasks.common import labelled

        names = [posixpath.relpath(p, data_dir) for p in predictions.filepath]
        masks = [join(labels, self.true_mask_name(name)) for name in names]
        there = [source.exists(m) for m in masks]
        truth = pd.DataFrame(
            {"filename": [n for n, t in zip(names, there, strict=True) if t],
             "true_mask": [m for m, t in zip(masks, there, strict=True) if t]}
        )  # fmt: skip
        merged, counts = labelled(predictions, truth, "filename", data_dir, labels)
        pairs = zip(merged.mask_path, merged.true_mask, strict=True)
        confusion = self.confusion(predictions_source or source, source, pairs)
        scores = segmentation_scores(confusion)
        pixels = confusion.sum()
        result: dict[str, Any] = {
            **counts,
            "pixel_accuracy": float(np.trace(confusion) / pixels) if pixels else 0.0,
            "mean_iou": scores["mean_iou"],
            "mean_dice": scores["mean_dice"],
        }
        for metric in ("iou", "dice"):
            result[metric] = {
                name: float(value)
                for name, value in zip(self.layout.class_names, scores[metric], strict=True)
                if not np.isnan(value)
            }
        return result

    def true_mask_name(self, image: str) -> str:
        """The true mask's path, relative to the labels folder, of ``image`` (relative to
        the images folder): the same sub-folder, the name ``MASK_PATTERN`` gives its stem."""
        stem = posixpath.splitext(posixpath.basename(image))[0]
        return posixpath.join(posixpath.dirname(image), self.layout.mask_name(stem))

    def confusion(
        self, predicted_on: DataSource, truth_on: DataSource, pairs: Iterable[tuple[str, str]]
    ) -> np.ndarray:
        """The pixel confusion matrix summed over ``(predicted mask, true mask)`` pairs."""
        count = len(self.layout.class_names)
        confusion = np.zeros((count, count), dtype=np.int64)
        for predicted_path, true_path in pairs:
            predicted = read_mask(predicted_on, predicted_path)
            true = read_mask(truth_on, true_path)
            if true.shape != predicted.shape or true.max(initial=0) >= count:
                raise DataError(
                    f"DATA.PREDICTION_LABELS: the mask {true_path} is {true.shape[1]}x"
                    f"{true.shape[0]} with values up to {true.max(initial=0)}; its image's "
                    f"predicted mask is {predicted.shape[1]}x{predicted.shape[0]} with {count} "
                    "classes. A true mask has its image's size and class indices below the "
                    "class count."
                )
            confusion += pixel_confusion(true, predicted, count)
        return confusion

    def write(
        self,
        source: DataSource,
        output_dir: str,
        paths: list[str],
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        statuses: list[str],
        infos: Sequence[ImageInfo] | None = None,
        data_dir: str = "",
    ) -> str:
        """``masks/<relative folder>/<stem>.png`` for every predicted image (its size, as it
        is seen; class indices), then ``predictions.csv`` indexing them with each image's
        class pixel fractions, one row per path: an image that could not be read gets its
        ``status`` and no mask (an empty ``mask_path``).

        Each batch of score maps is turned into masks as it comes, so memory holds one batch
        of scores however many images there are. Mask PNGs left in ``masks/`` by an earlier
        prediction on other images are removed at the end, as ``dvc repro`` would.
        """
        output_dir = output_dir.rstrip("/")
        masks_dir = join(output_dir, "masks")
        earlier = source.files(masks_dir) if source.is_dir(masks_dir) else []
        records: list[dict[str, Any]] = []
        rows: list[int] = []
        for index, scores in itertools.chain.from_iterable(
            zip(*pair, strict=True) for pair in batches
        ):
            size = infos[index].oriented_size if infos else image_size(source, paths[index])
            relative = posixpath.splitext(posixpath.relpath(paths[index], data_dir))[0] + ".png"
            mask_path = join(masks_dir, relative)
            records.append(self.write_mask(source, paths[index], mask_path, scores, size))
            rows.append(int(index))
        columns = ["filepath", "mask_path", "width", "height"]
        columns += [f"fraction_{name}" for name in self.layout.class_names]
        table = with_status(pd.DataFrame(records, columns=columns), paths, rows, statuses)
        out = join(output_dir, "predictions.csv")
        source.write_text(out, table.to_csv(index=False, lineterminator="\n"))
        written = {normpath(record["mask_path"]) for record in records}
        stale = [p for p in earlier if p.endswith(".png") and normpath(p) not in written]
        for path in stale:
            source.remove(path)
        if stale:
            log.info("Removed %d mask(s) of an earlier prediction from %s.", len(stale), masks_dir)
        return out

    def write_mask(
        self, source: DataSource, path: str, mask_path: str, scores, size: tuple[int, int]
    ) -> dict[str, Any]:
        """Write the mask of one image's class scores at the image's ``(width, height)``;
        its row of ``predictions.csv``."""
        import tensorflow as tf

        width, height = size
        # Resize the class scores, not the arg-max: smoother edges, never invalid values.
        resized = tf.image.resize(scores, (height, width), method="bilinear")
        mask = np.asarray(tf.argmax(resized, axis=-1), dtype=np.uint8)
        source.write_bytes(mask_path, encode_mask(mask))
        names = self.layout.class_names
        fractions = np.bincount(mask.ravel(), minlength=len(names)) / mask.size
        return {
            "filepath": path,
            "mask_path": mask_path,
            "width": width,
            "height": height,
            **{
                f"fraction_{name}": round(float(fraction), 6)
                for name, fraction in zip(names, fractions, strict=False)
            },
        }


def encode_mask(mask: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of class indices."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def read_mask(source: DataSource, path: str) -> np.ndarray:
    """A class-index mask PNG as a 2-D uint8 array."""
    try:
        with Image.open(io.BytesIO(source.read_bytes(path))) as mask:
            return np.asarray(mask.convert("L") if mask.mode not in ("L", "P") else mask)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read the mask ({err}).") from None
