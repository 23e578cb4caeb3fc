"""Image classification: one sub-folder of images per class, a softmax head, and a predictions
CSV with the class and the per-class probabilities."""

from kerapipe.tasks.base import Task
from kerapipe.tasks.classification.data import ClassificationData
from kerapipe.tasks.classification.head import ClassificationHead, classification_scores
from kerapipe.tasks.classification.layout import ClassificationLayout, ClassificationParams
from kerapipe.tasks.classification.predictions import ClassificationPredictions

__all__ = ["ClassificationTask", "classification_scores"]


class ClassificationTask(Task):
    Params = ClassificationParams
    layout_type = ClassificationLayout
    data_type = ClassificationData
    head_type = ClassificationHead
    predictions_type = ClassificationPredictions
