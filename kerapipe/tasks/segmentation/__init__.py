"""Semantic segmentation: an images folder and a masks folder whose files share a stem, masks
being 8-bit single-channel PNGs whose pixel values are class indices. A per-pixel softmax head;
predictions are one mask PNG per input image (same stem, same size) plus an index CSV with each
image's class pixel fractions."""

from kerapipe.tasks.base import Task
from kerapipe.tasks.segmentation.data import SegmentationData
from kerapipe.tasks.segmentation.head import SegmentationHead, segmentation_scores
from kerapipe.tasks.segmentation.layout import SegmentationLayout, SegmentationParams
from kerapipe.tasks.segmentation.predictions import SegmentationPredictions

__all__ = ["SegmentationTask", "segmentation_scores"]


class SegmentationTask(Task):
    Params = SegmentationParams
    layout_type = SegmentationLayout
    data_type = SegmentationData
    head_type = SegmentationHead
    predictions_type = SegmentationPredictions
