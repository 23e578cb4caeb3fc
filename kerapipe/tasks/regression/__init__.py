"""Image regression: a folder of images plus a CSV of ``filename,target[,target...]``; a linear
head on standardised targets; predictions in the targets' units."""

from kerapipe.tasks.base import Task
from kerapipe.tasks.regression.data import RegressionData
from kerapipe.tasks.regression.head import RegressionHead, regression_scores
from kerapipe.tasks.regression.layout import RegressionLayout, RegressionParams
from kerapipe.tasks.regression.predictions import RegressionPredictions

__all__ = ["RegressionTask", "regression_scores"]


class RegressionTask(Task):
    Params = RegressionParams
    layout_type = RegressionLayout
    data_type = RegressionData
    head_type = RegressionHead
    predictions_type = RegressionPredictions
