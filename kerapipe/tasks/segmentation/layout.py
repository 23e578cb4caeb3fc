"""Segmentation's inventory phase: an images folder and a masks folder whose files share a
stem, masks being 8-bit single-channel PNGs whose pixel values are class indices."""

from __future__ import annotations

import io
import posixpath
import re

import pandas as pd
from PIL import Image
from pydantic import Field, field_validator

from kerapipe.config import Group, require_unique
from kerapipe.errors import DataError
from kerapipe.image_probe import probe_image
from kerapipe.images import first, is_image_name, warn_not_images
from kerapipe.sources import DataSource
from kerapipe.tasks.base import TaskLayout
from kerapipe.tasks.common import join, seeded_split

KEY = "PIPELINE.TASK_PARAMS"
DATA_KEY = "DATA.INVENTORY_DATA_DIR"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class SegmentationParams(Group):
    CLASS_NAMES: list[str] = Field(
        min_length=2, description="the classes: pixel value i of a mask is CLASS_NAMES[i]"
    )
    IMAGES_DIR: str = Field(
        "images", description="the images' folder inside DATA.INVENTORY_DATA_DIR"
    )
    MASKS_DIR: str = Field("masks", description="the masks' folder inside DATA.INVENTORY_DATA_DIR")
    MASK_PATTERN: str = Field(
        "{stem}.png",
        description="a mask's file name, {stem} standing for its image's name without suffix",
    )
    LOG_IMAGES: int = Field(
        4, ge=0, description="validation images logged to DVCLive beside their masks"
    )
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


class SegmentationLayout(TaskLayout):
    """Images in ``IMAGES_DIR``, masks in ``MASKS_DIR``; one mask per image, same size."""

    display_only_params = frozenset({"LOG_IMAGES", "LOG_MISTAKES"})
    file_columns = ("filepath", "mask_path")

    @property
    def class_names(self) -> list[str]:
        return self.config.CLASS_NAMES

    @property
    def output_names(self) -> list[str | None]:
        return list(self.class_names)

    def check_num_classes(self, num_classes: int | None) -> None:
        count = len(self.class_names)
        because = (
            f"{KEY}.CLASS_NAMES names {count} classes (one output per class, mask value i "
            "being CLASS_NAMES[i])"
        )
        self.require_outputs(num_classes, count, because)

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
        max_pixels = self.settings.max_pixels
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
