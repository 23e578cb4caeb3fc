"""One run context per process: the params turned, once, into what the stages work with.

Every stage needs the task, the data sources and the paths of the files it reads and writes;
before this module each worked them out for itself. ``RunContext.from_params`` checks the
params (every component's own checks, once), builds the task and every source, and derives
every path: the inventory's CSV and JSON, the run folder, the predictions and their scores.
The stages (kerapipe/steps/) receive the context and only orchestrate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kerapipe.artifacts import ModelPaths
from kerapipe.config import Params
from kerapipe.folders import join
from kerapipe.sources import DataSource, source_of
from kerapipe.tasks.base import Task

if TYPE_CHECKING:
    from kerapipe.models.base import ModelBuilder


@dataclass(frozen=True)
class Folder:
    """A folder the params name, on its data source."""

    source: DataSource
    path: str

    def file(self, name: str) -> str:
        return join(self.path, name)


@dataclass(frozen=True)
class InventoryFiles:
    """The inventory CSV and ``inventory.json`` beside it (the seed, the counts, the layout
    and the settings it was made with), on ``DATA.INVENTORY_CSV_SOURCE``."""

    source: DataSource
    csv: str
    summary: str


@dataclass(frozen=True)
class PredictionFiles:
    """Where predict reads images (and their labels) and writes its results."""

    images: Folder  # DATA.PREDICTION_DATA_DIR on its source
    output: Folder  # DATA.PREDICTION_OUTPUT_DIR on its source
    labels: str | None  # DATA.PREDICTION_LABELS, on the images' source

    @property
    def csv(self) -> str:
        return self.output.file("predictions.csv")

    @property
    def metrics(self) -> str:
        """The held-out scores (``metrics.json``), written when ``labels`` is set."""
        return self.output.file("metrics.json")


@dataclass(frozen=True)
class RunContext:
    """The params of a run and everything derived from them once.

    Args:
        params: the validated params (what DVCLive logs, and the fingerprints read).
        task: the registered task, its ``TASK_PARAMS`` validated.
        data: ``DATA.INVENTORY_DATA_DIR`` on its source.
        inventory: the inventory's files.
        model: the run folder (``TRAINING_MODEL_DIR/TRAINING_MODEL_NAME``) and its files.
        predictions: the images to predict on and where the results go.
        builder: the registered model's builder, its ``MODEL_PARAMS`` validated.
    """

    params: Params
    task: Task
    data: Folder
    inventory: InventoryFiles
    model: ModelPaths
    predictions: PredictionFiles
    builder: ModelBuilder

    @classmethod
    def from_params(cls, params: Params) -> RunContext:
        """The context of ``params``, after every component's own checks (each run once:
        kerapipe/checks.py)."""
        from kerapipe.checks import checked_parts

        task, builder = checked_parts(params)
        data = params.DATA
        csv = join(data.INVENTORY_CSV_DIR, data.INVENTORY_CSV_NAME)
        csv_source = source_of(data, "INVENTORY_CSV_DIR")
        images = Folder(source_of(data, "PREDICTION_DATA_DIR"), data.PREDICTION_DATA_DIR)
        output = Folder(source_of(data, "PREDICTION_OUTPUT_DIR"), data.PREDICTION_OUTPUT_DIR)
        return cls(
            params=params,
            task=task,
            builder=builder,
            data=Folder(source_of(data, "INVENTORY_DATA_DIR"), data.INVENTORY_DATA_DIR),
            inventory=InventoryFiles(csv_source, csv, csv.rsplit(".", 1)[0] + ".json"),
            model=ModelPaths.from_params(params),
            predictions=PredictionFiles(images, output, data.PREDICTION_LABELS),
        )
