"""Semantic segmentation: an images folder and a masks folder whose files share a stem, masks
being 8-bit single-channel PNGs whose pixel values are class indices. A per-pixel softmax head;
predictions are one mask PNG per input image (same stem, same size) plus an index CSV with each
image's class pixel fractions."""

from __future__ import annotations

import io
import itertools
import logging
import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import Field, field_validator

from kerapipe.config import Group, require_unique
from kerapipe.errors import ConfigError, DataError
from kerapipe.images import first, is_image_name, probe_image, warn_not_images
from kerapipe.models.base import BaseModelParams, Head
from kerapipe.registry import MODELS
from kerapipe.sources import DataSource, normpath
from kerapipe.tasks.base import Task
from kerapipe.tasks.common import image_size, join, seeded_split, with_status

if TYPE_CHECKING:
    from kerapipe.datasets import DatasetOptions
    from kerapipe.images import ImageInfo

log = logging.getLogger(__name__)

KEY = "PIPELINE.TASK_PARAMS"
DATA_KEY = "DATA.INVENTORY_DATA_DIR"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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


class SegmentationParams(Group):
    CLASS_NAMES: list[str] = Field(min_length=2)  # pixel value i of a mask is CLASS_NAMES[i]
    IMAGES_DIR: str = "images"  # inside DATA.INVENTORY_DATA_DIR
    MASKS_DIR: str = "masks"  # inside DATA.INVENTORY_DATA_DIR
    MASK_PATTERN: str = "{stem}.png"  # the mask's file name from its image's stem
    LOG_IMAGES: int = Field(4, ge=0)  # validation images logged to DVCLive with their masks
    LOG_MISTAKES: int = Field(
        8,
        ge=0,
        description="the validation images shown in dvc plots as the worst mistakes: the "
        "lowest mean IoU first, each as image | true mask | predicted mask",
    )

    @field_validator("CLASS_NAMES")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        require_unique(names, "class name")
        if len(names) > 256:
            raise ValueError("an 8-bit mask holds at most 256 classes")
        return names

    @field_validator("MASK_PATTERN")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        if pattern.count("{stem}") != 1 or re.sub(r"\{stem\}", "", pattern).count("{"):
            raise ValueError("must contain '{stem}' once, e.g. '{stem}.png' or '{stem}_mask.png'")
        if not pattern.lower().endswith(".png") or "/" in pattern:
            raise ValueError("must be a file name ending in .png (masks are PNG files)")
        return pattern


class SegmentationTask(Task):
    """Images in ``IMAGES_DIR``, masks in ``MASKS_DIR``; one mask per image, same size."""

    Params = SegmentationParams
    default_loss = "sparse_categorical_crossentropy"
    default_metrics = ("accuracy", "sparse_mean_iou", "sparse_mean_dice")
    display_only_params = frozenset({"LOG_IMAGES", "LOG_MISTAKES"})
    file_columns = ("filepath", "mask_path")

    @property
    def class_names(self) -> list[str]:
        return self.config.CLASS_NAMES

    @property
    def output_names(self) -> list[str | None]:
        return list(self.class_names)

    def check_model_params(self, model_params: BaseModelParams) -> None:
        count = len(self.class_names)
        because = (
            f"{KEY}.CLASS_NAMES names {count} classes (one output per class, mask value i "
            "being CLASS_NAMES[i])"
        )
        self.require_outputs(model_params, count, because)
        name = self.params.MODEL.MODEL_NAME
        if not MODELS.get(name).spatial_output:
            able = [e.name for e in MODELS if MODELS.get(e.name).spatial_output]
            raise ConfigError(
                f"MODEL.MODEL_NAME: {name!r} gives one output per image, but segmentation "
                f"needs one per pixel. Choose one of: {', '.join(able)}."
            )

    # --- inventory -------------------------------------------------------------------------

    def mask_name(self, stem: str) -> str:
        return self.config.MASK_PATTERN.replace("{stem}", stem)

    def _mask_stem(self, name: str) -> str | None:
        """The image stem a mask file name belongs to, or None if it does not fit the pattern."""
        prefix, _, suffix = self.config.MASK_PATTERN.partition("{stem}")
        ok = name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix + suffix)
        return name[len(prefix) : len(name) - len(suffix)] if ok else None

    def scan(self, source: DataSource, data_dir: str) -> pd.DataFrame:
        images_dir = join(data_dir, self.config.IMAGES_DIR)
        masks_dir = join(data_dir, self.config.MASKS_DIR)
        for folder, key in ((images_dir, "IMAGES_DIR"), (masks_dir, "MASKS_DIR")):
            if not source.is_dir(folder):
                raise DataError(
                    f"{KEY}.{key}: folder {folder!r} not found. {DATA_KEY} must hold the "
                    f"images in {self.config.IMAGES_DIR!r} and their masks in "
                    f"{self.config.MASKS_DIR!r} (or set {KEY}.{key})."
                )
        others: list[str] = []
        images = self._by_key(source, images_dir, is_mask=False, others=others)
        masks = self._by_key(source, masks_dir, is_mask=True, others=others)
        warn_not_images(others, DATA_KEY)
        if not images:
            raise DataError(f"{DATA_KEY}: the images folder {images_dir!r} holds no images.")
        no_mask = sorted(images[k] for k in images.keys() - masks.keys())
        if no_mask:
            example = posixpath.relpath(no_mask[0], images_dir)
            stem = posixpath.splitext(example)[0]
            holds = min(masks.values(), default=None)
            holds = f" (the masks folder holds e.g. {posixpath.basename(holds)!r})" if holds else ""
            raise DataError(
                f"{DATA_KEY}: {len(no_mask)} image(s) have no mask ({first(no_mask)}); for "
                f"{example!r} kerapipe looked for {join(masks_dir, self.mask_name(stem))!r}"
                f"{holds}. Add the masks, or fix {KEY}.MASK_PATTERN "
                f"({self.config.MASK_PATTERN!r})."
            )
        no_image = sorted(masks[k] for k in masks.keys() - images.keys())
        if no_image:
            raise DataError(
                f"{DATA_KEY}: {len(no_image)} mask(s) have no image ({first(no_image)}). "
                f"Each mask needs an image of the same stem in {images_dir!r}; add the images "
                "or remove the masks."
            )
        keys = sorted(images, key=lambda k: images[k])
        table = pd.DataFrame(
            {"filepath": [images[k] for k in keys], "mask_path": [masks[k] for k in keys]}
        )
        self._check_masks(source, table)
        return table

    def _by_key(
        self, source: DataSource, folder: str, is_mask: bool, others: list[str]
    ) -> dict[str, str]:
        """Image files under ``folder`` keyed by relative sub-folder and image stem; the
        files that are not images by their name go to ``others``."""
        found: dict[str, str] = {}
        not_masks: list[str] = []
        for path in source.files(folder):
            if not is_image_name(path):
                others.append(path)
                continue
            relative = posixpath.relpath(path, folder)
            subfolder, name = posixpath.split(relative)
            stem = self._mask_stem(name) if is_mask else posixpath.splitext(name)[0]
            if stem is None:
                not_masks.append(path)
                continue
            key = posixpath.join(subfolder, stem)
            if key in found:
                raise DataError(
                    f"{DATA_KEY}: {found[key]!r} and {path!r} share the stem {stem!r}, so "
                    "kerapipe cannot tell which mask or image belongs to which. Rename one."
                )
            found[key] = path
        if not_masks:
            raise DataError(
                f"{DATA_KEY}: {len(not_masks)} file(s) in the masks folder are not named like "
                f"{KEY}.MASK_PATTERN ({self.config.MASK_PATTERN!r}): {first(not_masks)}. "
                "Rename them, fix MASK_PATTERN, or move them out."
            )
        return found

    def _check_masks(self, source: DataSource, table: pd.DataFrame) -> None:
        """Masks must be 8-bit grayscale PNGs of the image's size (as it is seen, after its
        EXIF orientation) with values < class count. An image that cannot be read is left to
        the image check (``INVENTORY.CHECK_IMAGES``), which skips or refuses it."""
        bad_format, bad_size, bad_values = [], [], []
        top_class = len(self.class_names) - 1
        max_pixels = self.params.PIPELINE.MAX_IMAGE_PIXELS
        images = source.local_paths(list(table.filepath))  # fetched first, when remote
        local_masks = source.local_paths(list(table.mask_path))
        for image_file, mask_path, local_mask in zip(
            images, table.mask_path, local_masks, strict=True
        ):
            with open(local_mask, "rb") as handle:
                data = handle.read()
            # IHDR: bit depth at byte 24, colour type at 25 (0 = grayscale).
            if not data.startswith(PNG_SIGNATURE) or len(data) < 26 or data[24:26] != b"\x08\x00":
                bad_format.append(mask_path)
                continue
            image = probe_image(image_file, max_pixels)
            try:
                with Image.open(io.BytesIO(data)) as mask:
                    mask_size = mask.size
                    same = image.ok and mask_size == image.oriented_size
                    top = mask.getextrema()[1] if same else 0  # only masks of a sane size
            except (OSError, SyntaxError, ValueError):
                bad_format.append(f"{mask_path} (damaged)")
                continue
            if not image.ok:
                continue
            size = image.oriented_size
            if mask_size != size:
                bad_size.append(
                    f"{mask_path} is {mask_size[0]}x{mask_size[1]} but its image is "
                    f"{size[0]}x{size[1]}"
                )
            elif top > top_class:
                bad_values.append(f"{mask_path} (max {top})")
        if bad_format:
            raise DataError(
                f"{DATA_KEY}: {len(bad_format)} mask(s) are not 8-bit single-channel PNGs "
                f"({first(bad_format)}). Save each mask as a grayscale PNG whose pixel values "
                "are class indices, e.g. with PIL: Image.fromarray(indices.astype('uint8'), "
                "'L').save(path)."
            )
        if bad_size:
            raise DataError(
                f"{DATA_KEY}: {len(bad_size)} mask(s) differ in size from their image: "
                f"{first(bad_size, 3)}. A mask must have its image's width and height."
            )
        if bad_values:
            raise DataError(
                f"{DATA_KEY}: {len(bad_values)} mask(s) hold values above {top_class}, the last "
                f"class index of {KEY}.CLASS_NAMES ({first(bad_values)}). Add the missing "
                "class names, or fix the masks (a 0/255 binary mask must become 0/1)."
            )

    def split(self, table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
        return seeded_split(table, validation_split, seed)

    # --- training --------------------------------------------------------------------------

    def head(self) -> Head:
        return Head(units=len(self.class_names), activation="softmax", spatial=True)

    def dataset(
        self,
        table: pd.DataFrame,
        batch_size: int,
        shuffle_seed: int | None,
        options: DatasetOptions | None = None,
    ):
        """Batches of (image float32 0-255 ``(h, w, c)``, mask int32 ``(h, w)``).

        Both are resized to ``INPUT_SHAPE``: the image bilinearly, the mask with nearest
        neighbour, so its values stay class indices. ``options`` work as for
        ``kerapipe.datasets.image_dataset`` (cache, shuffle buffer, parallel calls); their
        augmentations move image and mask alike (geometric ones; the mask nearest-neighbour).
        """
        import tensorflow as tf

        from kerapipe.datasets import (
            AUTOTUNE,
            FILE_CACHE_SHUFFLE_BUFFER,
            DatasetOptions,
            Decoding,
            augmentation_seeds,
            cache_prefix,
            decode_image,
            readable_images,
            take_shard,
            with_seed,
        )

        options = options or DatasetOptions()
        shape, count = self.input_shape, len(table)
        images, masks = list(table.filepath), list(table.mask_path)
        max_pixels = self.params.PIPELINE.MAX_IMAGE_PIXELS
        infos = readable_images(images, max_pixels)  # decoders and EXIF orientations
        decoding = Decoding.of(infos, max_pixels)
        data = tf.data.Dataset.from_tensor_slices(
            (
                tf.constant(images, dtype=tf.string),
                tf.constant([info.route for info in infos], dtype=tf.int32, shape=[count]),
                tf.constant([info.orientation for info in infos], dtype=tf.int32, shape=[count]),
                tf.constant(masks, dtype=tf.string),
            )
        )
        calls = options.parallel_calls

        def decode(image, route, orientation, mask):
            pixels = decode_image(image, shape, route, orientation, decoding)
            return pixels, load_mask(mask, shape[:2], dtype=tf.uint8)

        def shuffle(data, buffer):
            return data.shuffle(max(1, buffer), seed=shuffle_seed, reshuffle_each_iteration=True)

        seeds = augmentation_seeds(shuffle_seed) if options.augmentations else None
        if options.shard is not None:  # data_parallel: this process's slice of each batch
            if shuffle_seed is not None:
                data = shuffle(data, options.shuffle_buffer or count)
            data, batch_size = take_shard(data, options.shard, batch_size, seeds)
            if seeds is not None:
                decode, seeds = with_seed(decode), None  # seeds travel with the file names
            data = data.map(decode, num_parallel_calls=calls)
        elif options.cache == "none":
            if shuffle_seed is not None:
                data = shuffle(data, options.shuffle_buffer or count)
            data = data.map(decode, num_parallel_calls=calls)
        else:
            data = data.map(decode, num_parallel_calls=calls)
            if options.cache == "memory":
                data, buffer = data.cache(), count
            else:  # the cache name hashes images and masks (paths, sizes, times) and the shape
                prefix = cache_prefix(options.cache, images + masks, None, [*shape, "mask"])
                data, buffer = data.cache(prefix), FILE_CACHE_SHUFFLE_BUFFER
            if shuffle_seed is not None:
                data = shuffle(data, options.shuffle_buffer or min(buffer, count))
        if options.augmentations:
            from kerapipe.augmentations import augment

            augmentations = options.augmentations
            if seeds is not None:
                data = tf.data.Dataset.zip(data, seeds)
            data = data.map(
                lambda pair, seed: augment(pair[0], seed, augmentations, mask=pair[1]),
                num_parallel_calls=calls,
            )
        data = data.batch(batch_size)
        data = data.map(lambda image, mask: (tf.cast(image, tf.float32), tf.cast(mask, tf.int32)))
        return data.prefetch(AUTOTUNE)

    def log_evaluation(self, live, model, rows: pd.DataFrame, data) -> pd.DataFrame:
        """From one pass over the validation set: per-class IoU and Dice (with the
        all-background baseline), a pixel confusion matrix, the first ``LOG_IMAGES`` images
        with their masks, and the ``LOG_MISTAKES`` images of lowest IoU; returns each
        image's pixel accuracy and IoU, for validation_predictions.csv."""
        count = len(self.class_names)
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
        for name, iou, dice in zip(self.class_names, scores["iou"], scores["dice"], strict=True):
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
        names = np.array(self.class_names)
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
        for name, iou in zip(self.class_names, scores["iou"], strict=True):
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

    def read_labels(self, source: DataSource, labels: str) -> str:
        """The folder of true masks (read one by one when scoring)."""
        if not source.is_dir(labels):
            raise DataError(
                f"DATA.PREDICTION_LABELS: folder {labels!r} not found. For segmentation it is "
                f"the folder of the true masks, named as {KEY}.MASK_PATTERN says; or set it "
                "to null."
            )
        return labels

    def score_predictions(
        self, source, predictions: pd.DataFrame, truth, labels: str, predictions_source=None
    ) -> dict:
        """Pixel accuracy, IoU and Dice (per class and their means) of the predicted masks
        against the true ones: for the image ``<folder>/<stem>.<ext>`` under
        ``DATA.PREDICTION_DATA_DIR``, ``<folder>/`` + ``MASK_PATTERN`` under ``labels``.
        Pixels are compared at the image's own size, where predict writes its masks."""
        from kerapipe.tasks.common import labelled

        key = "DATA.PREDICTION_LABELS"
        data_dir = self.params.DATA.PREDICTION_DATA_DIR
        names = [posixpath.relpath(p, data_dir) for p in predictions.filepath]
        masks = [
            join(labels, posixpath.join(posixpath.dirname(n), self.mask_name(posixpath.splitext(
                posixpath.basename(n))[0])))
            for n in names
        ]  # fmt: skip
        there = [source.exists(m) for m in masks]
        truth = pd.DataFrame(
            {"filename": [n for n, t in zip(names, there, strict=True) if t],
             "true_mask": [m for m, t in zip(masks, there, strict=True) if t]}
        )  # fmt: skip
        merged, counts = labelled(predictions, truth, "filename", data_dir, labels)
        count = len(self.class_names)
        confusion = np.zeros((count, count), dtype=np.int64)
        for predicted_path, true_path in zip(merged.mask_path, merged.true_mask, strict=True):
            predicted = read_mask(predictions_source or source, predicted_path)
            true = read_mask(source, true_path)
            if true.shape != predicted.shape or true.max(initial=0) >= count:
                raise DataError(
                    f"{key}: the mask {true_path} is {true.shape[1]}x{true.shape[0]} with "
                    f"values up to {true.max(initial=0)}; its image's predicted mask is "
                    f"{predicted.shape[1]}x{predicted.shape[0]} with {count} classes. A true "
                    "mask has its image's size and class indices below the class count."
                )
            confusion += pixel_confusion(true, predicted, count)
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
                for name, value in zip(self.class_names, scores[metric], strict=True)
                if not np.isnan(value)
            }
        return result

    # --- prediction ------------------------------------------------------------------------

    def write_predictions(
        self,
        source: DataSource,
        output_dir: str,
        paths: list[str],
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        statuses: list[str],
        infos: Sequence[ImageInfo] | None = None,
    ) -> str:
        """``masks/<relative folder>/<stem>.png`` for every predicted image (its size, as it
        is seen; class indices), then ``predictions.csv`` indexing them with each image's
        class pixel fractions, one row per path: an image that could not be read gets its
        ``status`` and no mask (an empty ``mask_path``).

        Each batch of score maps is turned into masks as it comes, so memory holds one batch
        of scores however many images there are. Mask PNGs left in ``masks/`` by an earlier
        prediction on other images are removed at the end, as ``dvc repro`` would.
        """
        import tensorflow as tf

        data_dir = self.params.DATA.PREDICTION_DATA_DIR
        output_dir = output_dir.rstrip("/")
        masks_dir = join(output_dir, "masks")
        earlier = source.files(masks_dir) if source.is_dir(masks_dir) else []
        records: list[dict[str, Any]] = []
        rows: list[int] = []
        for index, scores in itertools.chain.from_iterable(
            zip(*pair, strict=True) for pair in batches
        ):
            path = paths[index]
            width, height = infos[index].oriented_size if infos else image_size(source, path)
            # Resize the class scores, not the arg-max: smoother edges, never invalid values.
            resized = tf.image.resize(scores, (height, width), method="bilinear")
            mask = np.asarray(tf.argmax(resized, axis=-1), dtype=np.uint8)
            relative = posixpath.splitext(posixpath.relpath(path, data_dir))[0] + ".png"
            mask_path = join(masks_dir, relative)
            source.write_bytes(mask_path, encode_mask(mask))
            fractions = np.bincount(mask.ravel(), minlength=len(self.class_names)) / mask.size
            rows.append(int(index))
            records.append(
                {
                    "filepath": path,
                    "mask_path": mask_path,
                    "width": width,
                    "height": height,
                    **{
                        f"fraction_{name}": round(float(fraction), 6)
                        for name, fraction in zip(self.class_names, fractions, strict=False)
                    },
                }
            )
        columns = ["filepath", "mask_path", "width", "height"]
        columns += [f"fraction_{name}" for name in self.class_names]
        table = pd.DataFrame(records, columns=columns)
        table = with_status(table, paths, rows, statuses)
        out = join(output_dir, "predictions.csv")
        source.write_text(out, table.to_csv(index=False, lineterminator="\n"))
        written = {normpath(record["mask_path"]) for record in records}
        stale = [
            path for path in earlier if path.endswith(".png") and normpath(path) not in written
        ]
        for path in stale:
            source.remove(path)
        if stale:
            log.info("Removed %d mask(s) of an earlier prediction from %s.", len(stale), masks_dir)
        return out


def load_mask(path, size, dtype=None):
    """Read a mask PNG, resize it with nearest neighbour to ``size``: ``(h, w)`` of ``dtype``
    (int32 by default; the values are the PNG's class indices, unchanged)."""
    import tensorflow as tf

    height, width = size
    mask = tf.io.decode_png(tf.io.read_file(path), channels=1)
    mask = tf.image.resize(mask, (height, width), method="nearest")
    mask = tf.cast(mask[:, :, 0], dtype or tf.int32)
    mask.set_shape((height, width))
    return mask


def encode_mask(mask: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of class indices."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


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


def read_mask(source: DataSource, path: str) -> np.ndarray:
    """A class-index mask PNG as a 2-D uint8 array."""
    try:
        with Image.open(io.BytesIO(source.read_bytes(path))) as mask:
            return np.asarray(mask.convert("L") if mask.mode not in ("L", "P") else mask)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read the mask ({err}).") from None
