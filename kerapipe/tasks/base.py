"""The Task interface: what differs between classification, segmentation and regression, in
four pieces, one per phase of a run, each given only what it needs:

- ``TaskLayout`` (inventory): turns a data folder into inventory rows, splits them, and knows
  the model's outputs (the classes, the targets) and what the inventory records about them;
- ``TaskData`` (datasets): builds the ``tf.data`` pipelines from inventory rows;
- ``TaskHead`` (head and evaluation): the model's output head, the default loss and
  metrics, and the evaluation pass over the validation set logged to DVCLive;
- ``TaskPredictions`` (predictions and scoring): writes the predictions and scores them
  against ``DATA.PREDICTION_LABELS``.

A ``Task`` bundles the four for one use-case. Register a new one with
``TASKS.register("name", "module:Class")`` (or ``@register_task``); TensorFlow is imported
only inside the methods that need it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from kerapipe.config import Group, Params, validate_group
from kerapipe.errors import ConfigError, DataError
from kerapipe.images import keep_images
from kerapipe.registry import TASKS
from kerapipe.sources import DataSource

if TYPE_CHECKING:
    import keras
    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from dvclive import Live

    from kerapipe.datasets import DatasetOptions
    from kerapipe.image_probe import ImageInfo
    from kerapipe.models.base import Head


@dataclass(frozen=True)
class TaskSettings:
    """What a task is given from the params.

    Args:
        name: ``PIPELINE.TASK_NAME``, for messages and ``outputs.json``.
        config: ``PIPELINE.TASK_PARAMS``, validated against the task's ``Params``.
        input_shape: ``MODEL.MODEL_PARAMS.INPUT_SHAPE``: what images are resized to.
        num_classes: ``MODEL.MODEL_PARAMS.NUM_CLASSES`` as given (None: derived).
        max_pixels: ``PIPELINE.MAX_IMAGE_PIXELS``.
    """

    name: str
    config: Any
    input_shape: tuple[int, int, int]
    num_classes: int | None = None
    max_pixels: int | None = None

    @classmethod
    def from_params(cls, params: Params, task_params: type[Group]) -> TaskSettings:
        model_params = params.MODEL.MODEL_PARAMS
        return cls(
            name=params.PIPELINE.TASK_NAME,
            config=validate_group(task_params, params.PIPELINE.TASK_PARAMS, "PIPELINE.TASK_PARAMS"),
            input_shape=tuple(model_params.get("INPUT_SHAPE") or (0, 0, 0)),
            num_classes=model_params.get("NUM_CLASSES"),
            max_pixels=params.PIPELINE.MAX_IMAGE_PIXELS,
        )


class TaskLayout:
    """The inventory phase: the data folder's layout, and the outputs it implies."""

    # TASK_PARAMS that change only what is shown (logs, plots), never the inventory or the
    # weights: changing them keeps the inventory, the model and the checkpoints.
    display_only_params: ClassVar[frozenset[str]] = frozenset()
    # Inventory columns that hold files the datasets read (fetched first from a remote
    # source, so tf.data reads local paths).
    file_columns: ClassVar[tuple[str, ...]] = ("filepath",)

    def __init__(self, settings: TaskSettings) -> None:
        self.settings = settings
        self.config: Any = settings.config

    @property
    def output_names(self) -> list[str | None]:
        """The name of each model output unit (a class or a target), in order; None for a
        unit that no class uses. Predictions and evaluations are read with these names."""
        raise NotImplementedError

    @property
    def num_outputs(self) -> int:
        """``NUM_CLASSES`` when given, else the count of ``output_names``."""
        given = self.settings.num_classes
        return given if given is not None else len(self.output_names)

    def check_num_classes(self, num_classes: int | None) -> None:
        """Raise a ConfigError if ``MODEL_PARAMS.NUM_CLASSES`` disagrees with the outputs."""

    @staticmethod
    def require_outputs(num_classes: int | None, count: int, because: str) -> None:
        """``NUM_CLASSES`` is the number of model outputs: when given it must be ``count``,
        ``because`` (left out, it is derived: one fact, one place)."""
        if num_classes is not None and count != num_classes:
            raise ConfigError(
                f"MODEL.MODEL_PARAMS.NUM_CLASSES is {num_classes}, but {because}; "
                f"set NUM_CLASSES to {count}."
            )

    def scan(self, source: DataSource, data_dir: str) -> pd.DataFrame:
        """Inventory rows (one per example, sorted) for the data under ``data_dir``."""
        raise NotImplementedError

    def check_data(self, source: DataSource, data_dir: str) -> list[str]:
        """Check the data under ``data_dir`` as ``scan`` does; return the image of each
        example (``kerapipe validate`` then reads their headers). Override it to check
        without building the table (and without importing pandas), for a fast start."""
        return list(self.scan(source, data_dir).filepath)

    def split(self, table: pd.DataFrame, validation_split: float, seed: int) -> pd.DataFrame:
        """``table`` with a ``split`` column of 'train' or 'validation'."""
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """What the inventory and the model record about the data beyond the params (e.g.
        the classes found in the data folder), so later steps never need it repeated."""
        return {}

    def adopt(self, record: dict[str, Any]) -> None:
        """Take back what ``record`` held (the train step from the inventory, predict from
        the model), where the params leave it out."""


class TaskData:
    """The datasets phase: ``tf.data`` pipelines from inventory rows."""

    def __init__(self, settings: TaskSettings, layout: TaskLayout) -> None:
        self.settings = settings
        self.layout = layout

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.settings.input_shape

    def prepare(self, train_rows: pd.DataFrame) -> None:
        """Learn what the datasets need from the training rows (e.g. target scaling)."""

    def check_class_weight(self, spec: Any) -> None:
        """Raise a ConfigError for a ``TRAINING.CLASS_WEIGHT`` this task cannot honour."""
        if spec is not None:
            raise ConfigError(
                f"TRAINING.CLASS_WEIGHT: the {self.settings.name} task has no class per "
                "example to weigh; class weights are for classification. Remove it (for rare "
                "segmentation classes, use LOSS_NAME: sparse_focal with alpha)."
            )

    def class_weights(self, spec: Any, train_rows: pd.DataFrame) -> dict[int, float] | None:
        """Keras' ``class_weight`` for ``fit`` from ``TRAINING.CLASS_WEIGHT``, or None."""
        return None

    def dataset(
        self,
        table: pd.DataFrame,
        batch_size: int,
        shuffle_seed: int | None,
        options: DatasetOptions | None = None,
    ) -> tf.data.Dataset:
        """Batches of (input, target) for the inventory rows in ``table``.

        ``options`` carries ``TRAINING.CACHE``, ``SHUFFLE_BUFFER``, ``NUM_PARALLEL_CALLS`` and
        ``AUGMENTATIONS`` (none for validation data); see ``kerapipe.datasets.image_dataset``.
        """
        raise NotImplementedError

    def prediction_dataset(
        self, infos: list[ImageInfo], batch_size: int, start: int = 0, skip_errors: bool = False
    ) -> tf.data.Dataset:
        """Batches of ``(indices, inputs)``: the images from position ``start`` on whose
        header probe passed (``infos``, from ``kerapipe.images.probe_images``), each with its
        position in ``infos``, in order; with ``skip_errors`` those that fail to decode are
        left out (see ``kerapipe.datasets.prediction_dataset``)."""
        from kerapipe.datasets import prediction_dataset

        return prediction_dataset(
            infos, self.input_shape, batch_size, self.settings.max_pixels, start, skip_errors
        )


class TaskHead:
    """The head and evaluation phase: the model's output head and how it is judged."""

    default_loss: ClassVar[str]  # used when MODEL.LOSS_NAME is not set
    default_metrics: ClassVar[tuple[str, ...]] = ()  # used when MODEL.METRICS is not set

    def __init__(self, settings: TaskSettings, layout: TaskLayout, data: TaskData) -> None:
        self.settings = settings
        self.config: Any = settings.config
        self.layout = layout
        self.data = data

    def output_head(self) -> Head:
        raise NotImplementedError

    def check_model(self, name: str, spatial_output: bool) -> None:
        """Raise a ConfigError if the model ``name`` cannot give this head."""

    def finalize_model(self, model: keras.Model) -> keras.Model:
        """The model to save, given the trained one (e.g. with outputs put back in units)."""
        return model

    def log_evaluation(
        self, live: Live, model: keras.Model, rows: pd.DataFrame, data
    ) -> pd.DataFrame | None:
        """Predict the validation set once (``data``, batches of ``rows`` in order) and log
        from that one pass the task's scores, plots and worst images to DVCLive; return one
        row per validation image (its prediction and how wrong it is), or None."""
        return None


class TaskPredictions:
    """The predictions and scoring phase."""

    def __init__(self, settings: TaskSettings, layout: TaskLayout) -> None:
        self.settings = settings
        self.config: Any = settings.config
        self.layout = layout

    def inputs(self, source: DataSource, data_dir: str) -> list[str]:
        """Every image under ``DATA.PREDICTION_DATA_DIR`` (recursive, sorted). Files that are
        not images by their name are skipped with one warning; images that cannot be read
        still get a row (with the reason in its ``status``) from ``write``."""
        key = "DATA.PREDICTION_DATA_DIR"
        if not source.is_dir(data_dir):
            raise DataError(
                f"{key}: folder {data_dir!r} not found. Point it at the folder of images to "
                "predict on."
            )
        paths = source.files(data_dir)
        if not paths:
            raise DataError(f"{key}: folder {data_dir!r} holds no files.")
        images = keep_images(paths, key)
        if not images:
            raise DataError(f"{key}: folder {data_dir!r} holds no images, only other files.")
        return images

    def table(self, paths: list[str], outputs: np.ndarray) -> pd.DataFrame:
        """One row per input file from the model's raw outputs."""
        raise NotImplementedError

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
        """Write the results under ``output_dir`` on ``source``, one row per path; return
        the path of the index CSV.

        ``batches`` are ``(indices, outputs)`` pairs, one per batch, produced as they are
        consumed: the model's outputs for ``paths[i]`` for each ``i`` in ``indices``, in
        order. Images that could not be read are missing from them; ``statuses[i]`` is
        ``"ok"`` or why image ``i`` was not predicted, complete once ``batches`` is
        exhausted. This default gathers the outputs into one array for ``table`` (a row of
        scores per image is small) and gives each missing image a row of its own with only
        its path and status; a task with large outputs writes each batch as it comes
        instead (see segmentation). ``infos`` are the images' header probes, in the order of
        ``paths`` (their sizes, say), when the caller has them; ``data_dir`` is the folder
        the paths were found in (``DATA.PREDICTION_DATA_DIR``).
        """
        import numpy as np

        from kerapipe.tasks.common import with_status

        pairs = list(batches)
        units = self.layout.num_outputs
        indices = np.concatenate([i for i, _ in pairs]) if pairs else np.zeros(0, np.int64)
        outputs = (
            np.concatenate([o for _, o in pairs]) if pairs else np.zeros((0, units), np.float32)
        )
        table = self.table([paths[i] for i in indices], outputs)
        table = with_status(table, paths, indices, statuses)
        out = f"{output_dir.rstrip('/')}/predictions.csv"
        source.write_text(out, table.to_csv(index=False, lineterminator="\n"))
        return out

    def read_labels(self, source: DataSource, labels: str) -> Any:
        """The true answers at ``labels`` (``DATA.PREDICTION_LABELS``), read and checked
        before predict does any work; a DataError names what is wrong with them."""
        raise ConfigError(
            f"DATA.PREDICTION_LABELS: the {self.settings.name} task cannot score its "
            "predictions; set it to null."
        )

    def score(
        self,
        source: DataSource,
        predictions: pd.DataFrame,
        truth: Any,
        labels: str,
        data_dir: str,
        predictions_source: DataSource | None = None,
    ) -> dict[str, Any]:
        """The task's scores of ``predictions`` (``predictions.csv``; rows whose status is
        not ok are left out and counted) against ``truth`` (from ``read_labels`` on
        ``source``), with the counts of ``kerapipe.tasks.common.labelled``; ``data_dir`` is
        the folder the predicted images were found in, which the labels name them relative
        to. Files the predictions name (masks) are on ``predictions_source``, by default
        ``source``."""
        raise NotImplementedError


class Task:
    """One use-case: its ``TASK_PARAMS`` schema (``Params``) and the classes of its four
    pieces (``layout_type``, ``data_type``, ``head_type``, ``predictions_type``), built alike
    for every task."""

    Params: ClassVar[type[Group]] = Group
    layout_type: ClassVar[type[TaskLayout]] = TaskLayout
    data_type: ClassVar[type[TaskData]] = TaskData
    head_type: ClassVar[type[TaskHead]] = TaskHead
    predictions_type: ClassVar[type[TaskPredictions]] = TaskPredictions

    def __init__(self, settings: TaskSettings) -> None:
        self.settings = settings
        self.layout = self.layout_type(settings)
        self.data = self.data_type(settings, self.layout)
        self.head = self.head_type(settings, self.layout, self.data)
        self.predictions = self.predictions_type(settings, self.layout)

    @property
    def name(self) -> str:
        return self.settings.name

    def describe_outputs(self) -> dict[str, Any]:
        """What a user loading the saved model needs to read its outputs (``outputs.json``
        beside the model, and ``run_info.json``)."""
        return {
            "task": self.name,
            "input_shape": list(self.settings.input_shape),
            "input": "raw pixel values 0-255 (the model scales them itself)",
            "outputs": list(self.layout.output_names),
            **self.layout.record(),
        }


def get_task(params: Params) -> Task:
    """The registered task for ``PIPELINE.TASK_NAME``, with its params validated."""
    task_class = TASKS.get(params.PIPELINE.TASK_NAME)
    return task_class(TaskSettings.from_params(params, task_class.Params))
