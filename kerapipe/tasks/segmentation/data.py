"""Segmentation's datasets: images with their masks, resized alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kerapipe.tasks.base import TaskData

if TYPE_CHECKING:
    import pandas as pd

    from kerapipe.datasets import DatasetOptions


class SegmentationData(TaskData):
    def dataset(
        self,
        table: pd.DataFrame,
        batch_size: int,
        shuffle_seed: int | None,
        options: DatasetOptions | None = None,
    ):
        """Batches of (image float32 0-255 ``(h, w, c)``, mask int32 ``(h, w)``), from the
        one input pipeline of every task (``kerapipe.datasets.image_dataset``): both resized
        to ``INPUT_SHAPE`` (the mask nearest-neighbour, so its values stay class indices),
        cached decoded, shuffled and batched as images of any task; the augmentations move
        image and mask alike (geometric ones; the mask nearest-neighbour)."""
        from kerapipe.datasets import image_dataset

        return image_dataset(
            list(table.filepath),
            None,
            self.input_shape,
            batch_size,
            shuffle_seed,
            options,
            self.settings.max_pixels,
            masks=list(table.mask_path),
        )
