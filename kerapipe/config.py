"""Load and validate ``params.yaml`` (or an old-style ``config.json``) into typed groups.

Every group is a pydantic model that forbids unknown keys; every problem found is reported in
one ConfigError that names the key path, the value received and what is allowed, with a
close-match suggestion for typos. Validation imports no TensorFlow.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kerapipe.errors import ConfigError
from kerapipe.folder_rules import on_source, overlapping_folders
from kerapipe.param_messages import summarise_problems, validation_messages
from kerapipe.params_file import read_params_file
from kerapipe.registry import (
    AUGMENTATIONS,
    CALLBACKS,
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    SOURCES,
    TASKS,
)
from kerapipe.secret_settings import secret_settings

BUILT_IN_CALLBACKS = {"model_checkpoint", "csv_logger"}
MAX_SEED = 2**32 - 1  # NumPy, TensorFlow and scikit-learn take seeds below 2**32
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own limit (about 9459 x 9459)
DEFAULT_CACHE_MAX_GB = 10.0  # TRAINING.CACHE_MAX_GB: the decoded image cache's size


class Group(BaseModel):
    """A params group: unknown keys and wrongly typed values are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ExportParams(Group):
    """Copies of the trained model for serving elsewhere, each checked against it."""

    FORMATS: list[Literal["onnx", "litert"]] = Field(
        default_factory=list,
        description="formats to export the final model to, beside it in export/: onnx "
        "(model.onnx; pip install -e '.[onnx]') and litert (model.tflite, TensorFlow's "
        "converter; pip install -e '.[litert]' for the ai-edge-litert interpreter)",
    )
    MIN_AGREEMENT: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description="classification and segmentation: the export fails when the share of "
        "validation images (pixels) on which its arg-max class agrees with the Keras model's "
        "is below this",
    )
    MAX_DIFFERENCE: float | None = Field(
        0.001,
        gt=0.0,
        description="the export fails when an output differs from the Keras model's by more "
        "than this on a validation image (probabilities, or the targets' units); null: no limit",
    )

    @field_validator("FORMATS")
    @classmethod
    def _once_each(cls, formats: list[str]) -> list[str]:
        require_unique(formats, "format")
        return formats


class DataParams(Group):
    """Where things are: data, inventory, models and predictions."""

    INVENTORY_DATA_SOURCE: str = Field("local", description="data source of the training data")
    INVENTORY_DATA_DIR: str = Field(
        description="folder of training data; for classification one sub-folder per class"
    )
    INVENTORY_CSV_SOURCE: str = Field("local", description="data source of the inventory CSV")
    INVENTORY_CSV_DIR: str = Field(description="folder of the inventory CSV and its JSON")
    INVENTORY_CSV_NAME: str = Field("inventory.csv", description="file name of the inventory CSV")
    TRAINING_MODEL_SOURCE: str = Field("local", description="data source of trained models")
    TRAINING_MODEL_DIR: str = Field("models", description="parent folder of training runs")
    TRAINING_MODEL_NAME: str = Field(
        description="name of this run (a name, not a path): its files go to "
        "TRAINING_MODEL_DIR/TRAINING_MODEL_NAME/"
    )
    TRAINING_MODEL_FORMAT: Literal["keras", "h5", "tf"] = Field(
        "keras", description="model.keras, model.h5, or model.tf (an exported SavedModel)"
    )
    PREDICTION_DATA_SOURCE: str = Field(
        "local", description="data source of the images to predict on"
    )
    PREDICTION_DATA_DIR: str = Field(description="folder of images to predict on (recursive)")
    PREDICTION_OUTPUT_SOURCE: str | None = Field(
        None, description="data source of the predictions; null: PREDICTION_DATA_SOURCE's"
    )
    PREDICTION_OUTPUT_DIR: str = Field(description="folder for predictions.csv (and masks)")
    PREDICTION_LABELS: str | None = Field(
        None,
        description="the true answers for the images to predict on, to score the predictions "
        "(metrics.json in PREDICTION_OUTPUT_DIR): classification a CSV of filename,class_name; "
        "regression a CSV of FILENAME_COLUMN and the target columns; segmentation a folder of "
        "masks named as MASK_PATTERN says; null: no scores",
    )
    EXPORT: ExportParams = Field(
        default_factory=ExportParams,
        description="copies of the final model for serving elsewhere, in export/ beside it",
    )

    @field_validator("PREDICTION_LABELS")
    @classmethod
    def _blank_is_none(cls, path: str | None) -> str | None:
        return path if path and path.strip() else None

    STORAGE_OPTIONS: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="non-secret settings of remote sources, by source name, passed to its "
        "fsspec filesystem, e.g. {s3: {endpoint_url: ..., client_kwargs: {region_name: ...}}}; "
        "credentials come from the environment or profiles, never from here",
    )
    REMOTE_CACHE_DIR: str | None = Field(
        None,
        description="local folder of the files fetched from remote sources, and by default "
        "of the decoded images and JAX's compiled programs; null: $XDG_CACHE_HOME/kerapipe "
        "(~/.cache/kerapipe)",
    )
    REMOTE_CACHE_MAX_GB: float = Field(
        10.0, gt=0, description="size of the remote cache, in GB, before the least recently "
        "used files are deleted"
    )  # fmt: skip

    @field_validator("INVENTORY_CSV_NAME", "TRAINING_MODEL_NAME")
    @classmethod
    def _a_name(cls, name: str) -> str:
        if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(
                "must be a plain file or folder name (no '/', not empty, '.' or '..'); "
                "the folder it goes in is the matching *_DIR key"
            )
        return name

    @field_validator(
        "INVENTORY_DATA_DIR", "INVENTORY_CSV_DIR", "TRAINING_MODEL_DIR", "PREDICTION_DATA_DIR",
        "PREDICTION_OUTPUT_DIR",
    )  # fmt: skip
    @classmethod
    def _a_folder(cls, folder: str) -> str:
        if not folder.strip():
            raise ValueError("must name a folder ('.' for the current one), not be empty")
        if "://" in folder:
            scheme, rest = folder.split("://", 1)
            if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or not rest.strip("/"):
                raise ValueError(
                    "must be a path, or a URL such as s3://bucket/prefix (a protocol of "
                    "lower-case letters, then the bucket or host)"
                )
            if "@" in rest.split("/", 1)[0]:
                raise PydanticCustomError(  # its own kind: the value is not quoted back
                    "secret",
                    "holds a user name or password before '@'; give credentials the "
                    "standard way (environment variables, a profile), never in params",
                )
        return folder

    @field_validator("STORAGE_OPTIONS")
    @classmethod
    def _no_secrets(cls, options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        found = secret_settings(options)
        if found:
            raise ValueError(
                f"{', '.join(found)} looks like a secret (a key, token or password). Params "
                "are logged and versioned (inventory.json, run_info.json, dvclive/params.yaml, "
                "git), so they hold only settings such as an endpoint or a region. Give "
                "credentials the standard way: environment variables (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY), a profile (AWS_PROFILE, or `profile: NAME` here), or "
                "the machine's role"
            )
        return options

    @model_validator(mode="after")
    def _urls_on_their_sources(self) -> DataParams:
        problems = []
        for dir_key in FOLDER_SOURCES:
            folder, name = getattr(self, dir_key), self.source_name(dir_key)
            scheme = folder.split("://", 1)[0] if "://" in folder else None
            source_key = FOLDER_SOURCES[dir_key]
            if scheme is None and name in ("http", "https"):
                problems.append(
                    f"{dir_key}: the {name} source needs a URL ({name}://host/folder), got "
                    f"{folder!r}"
                )
            elif scheme is not None and scheme != name:
                fix = (
                    f"set {source_key}: {scheme}"
                    if name == "local"
                    else f"set {source_key} to {scheme!r}, or give a path on {name!r}"
                )
                problems.append(
                    f"{dir_key} is a {scheme}:// URL but {source_key} is {name!r}; {fix}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _outputs_apart_from_inputs(self) -> DataParams:
        problems = overlapping_folders(self.input_folders(), self.output_folders())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def source_name(self, dir_key: str) -> str:
        """The name of the source that the folder param ``dir_key`` is on."""
        name = getattr(self, FOLDER_SOURCES[dir_key])
        return self.PREDICTION_DATA_SOURCE if name is None else name

    def input_folders(self) -> dict[str, str]:
        """The folders kerapipe only reads, by key, as ``source:path``."""
        inputs = {
            key: on_source(self.source_name(key), getattr(self, key))
            for key in ("INVENTORY_DATA_DIR", "PREDICTION_DATA_DIR")
        }
        if self.PREDICTION_LABELS:
            labels = on_source(self.PREDICTION_DATA_SOURCE, self.PREDICTION_LABELS)
            inputs["PREDICTION_LABELS"] = labels
        return inputs

    def output_folders(self) -> dict[str, str]:
        """The folders kerapipe writes (and DVC clears before a stage runs), by key."""
        run = posixpath.join(self.TRAINING_MODEL_DIR, self.TRAINING_MODEL_NAME)
        return {
            "INVENTORY_CSV_DIR": on_source(self.INVENTORY_CSV_SOURCE, self.INVENTORY_CSV_DIR),
            "TRAINING_MODEL_DIR/TRAINING_MODEL_NAME": on_source(self.TRAINING_MODEL_SOURCE, run),
            "PREDICTION_OUTPUT_DIR": on_source(
                self.source_name("PREDICTION_OUTPUT_DIR"), self.PREDICTION_OUTPUT_DIR
            ),
        }


# Each folder param and the param naming the source it is on.
FOLDER_SOURCES = {
    "INVENTORY_DATA_DIR": "INVENTORY_DATA_SOURCE",
    "INVENTORY_CSV_DIR": "INVENTORY_CSV_SOURCE",
    "TRAINING_MODEL_DIR": "TRAINING_MODEL_SOURCE",
    "PREDICTION_DATA_DIR": "PREDICTION_DATA_SOURCE",
    "PREDICTION_OUTPUT_DIR": "PREDICTION_OUTPUT_SOURCE",
}


class PipelineParams(Group):
    """The task, and what every stage reads images with."""

    TASK_NAME: str = Field("classification", description="a registered task")
    TASK_PARAMS: dict[str, Any] = Field(default_factory=dict, description="the task's own params")
    MAX_IMAGE_PIXELS: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS,
        ge=1,
        description="the most pixels an image may have; larger ones are refused from their "
        "header (inventory: a bad image; predict: a status row)",
    )


class InventoryParams(Group):
    """The listing and the train/validation split."""

    VALIDATION_SPLIT: float = Field(
        0.2, gt=0.0, lt=1.0, description="share of the data held out for validation"
    )
    SEED: int = Field(
        0, le=MAX_SEED, description="seed of the split; <= 0 draws one, kept in inventory.json"
    )
    FORCE: bool = Field(
        False, description="rewrite an existing inventory; false reuses one made alike"
    )
    CHECK_IMAGES: Literal["decode", "header", "names"] = Field(
        "decode",
        description="how far each image is checked: decoded fully, its header read, or its "
        "file name only (bad images are then found when training starts)",
    )
    BAD_IMAGES: Literal["skip", "fail"] = Field(
        "skip",
        description="an image that cannot be read: skipped with a warning (listed in "
        "inventory.json), or the inventory fails naming it",
    )


class MetricSpec(Group):
    """A metric by name, with its arguments."""

    METRIC_NAME: str = Field(description="a registered metric")
    METRIC_PARAMS: dict[str, Any] = Field(
        default_factory=dict, description="the metric's arguments, by their Keras names"
    )


class CallbackSpec(Group):
    """A Keras callback by name, with its arguments."""

    CALLBACK_NAME: str = Field(description="a registered callback")
    CALLBACK_PARAMS: dict[str, Any] = Field(
        default_factory=dict, description="the callback's arguments, by their Keras names"
    )

    @field_validator("CALLBACK_NAME")
    @classmethod
    def _not_built_in(cls, name: str) -> str:
        if name in BUILT_IN_CALLBACKS:
            raise ValueError(
                f"{name!r} is built into every training run; remove it from TRAINING.CALLBACKS"
            )
        return name


class AugmentationSpec(Group):
    """An augmentation by name, with its params."""

    AUGMENTATION_NAME: str = Field(description="a registered augmentation")
    AUGMENTATION_PARAMS: dict[str, Any] = Field(
        default_factory=dict, description="the augmentation's own params"
    )


class ModelParams(Group):
    """The network and what it is trained with."""

    MODEL_NAME: str = Field(description="a registered model")
    MODEL_PARAMS: dict[str, Any] = Field(
        default_factory=dict,
        description="INPUT_SHAPE, NUM_CLASSES, INITIAL_WEIGHTS and the model's own params",
    )
    LOSS_NAME: str | None = Field(None, description="a registered loss; null: the task's")
    LOSS_PARAMS: dict[str, Any] = Field(
        default_factory=dict, description="the loss's arguments, by their Keras names"
    )
    OPTIMIZER_NAME: str = Field("adam", description="a registered optimizer")
    OPTIMIZER_PARAMS: dict[str, Any] = Field(
        default_factory=dict,
        description="the optimizer's arguments; LEARNING_RATE is a number or a schedule "
        "{SCHEDULE_NAME, SCHEDULE_PARAMS}",
    )
    METRICS: list[MetricSpec] | None = Field(
        None, description="metrics logged every epoch; null: the task's"
    )


class TrainingParams(Group):
    """The fit, and its input pipeline."""

    BATCH_SIZE: int = Field(32, ge=1, description="examples per batch (per device)")
    NUM_EPOCHS: int = Field(10, ge=1, description="passes over the training set")
    LOAD_CHECKPOINT: bool = Field(
        False, description="continue an interrupted run from its last complete epoch"
    )
    CALLBACKS: list[CallbackSpec] = Field(
        default_factory=list, description="Keras callbacks by name, besides the built-in ones"
    )
    SEED: int = Field(
        0, le=MAX_SEED, description="seed of every random draw; <= 0 draws one, kept in "
        "run_info.json"
    )  # fmt: skip
    FORCE: bool = Field(False, description="retrain even if a model trained alike exists")
    MIXED_PRECISION: bool = Field(
        False, description="compute in float16 (GPU) or bfloat16 (CPU), keep float32 weights"
    )
    BACKEND: Literal["tensorflow", "jax"] = Field(
        "tensorflow",
        description="Keras backend the stages run on; sets KERAS_BACKEND (the params win)",
    )
    DISTRIBUTION: Literal["none", "mirrored", "data_parallel"] = Field(
        "none",
        description="mirrored (tensorflow): data-parallel over every GPU of this machine; "
        "data_parallel (jax): over every device of every process (several machines)",
    )
    DEVICES: Literal["auto"] | list[Annotated[int, Field(ge=0)]] | None = Field(
        None,
        description="GPUs this run may use: null: all; auto: one free GPU, locked until the "
        "run ends (parallel sweeps); or a list of GPU indices",
    )
    # Input pipeline (kerapipe/datasets.py): see README, "TRAINING".
    CACHE: Literal["none", "disk", "memory"] | None = Field(
        "disk",
        description="cache of the decoded, resized images (decode once): disk (in CACHE_DIR, "
        "shared by every run and experiment), memory (also held in RAM when they fit), none",
    )
    CACHE_DIR: str | None = Field(
        None,
        description="folder of the decoded image cache; null: decoded/ in the remote cache "
        "folder (DATA.REMOTE_CACHE_DIR, ~/.cache/kerapipe)",
    )
    CACHE_MAX_GB: float = Field(
        DEFAULT_CACHE_MAX_GB,
        gt=0,
        description="size of the decoded image cache, in GB, before the least recently used "
        "images are deleted",
    )
    SHUFFLE_BUFFER: int | None = Field(
        None, ge=1, description="examples in the shuffle buffer; null: a full shuffle"
    )
    NUM_PARALLEL_CALLS: int | None = Field(
        None, ge=1, description="parallel decode calls; null: tf.data tunes it"
    )
    STEPS_PER_EXECUTION: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto",
        description="batches run per call into the backend's compiled step (Keras' "
        "compile(steps_per_execution)); the same updates, less Python per batch; batch "
        "callbacks and the progress bar see every Nth batch. auto: 32 on tensorflow, 1 on jax "
        "and under DISTRIBUTION: mirrored",
    )
    AUGMENTATIONS: list[AugmentationSpec] = Field(
        default_factory=list, description="augmentations applied in order to training images"
    )
    CLASS_WEIGHT: Literal["balanced"] | dict[str, float] | None = Field(
        None,
        description="classification: weigh each class's examples in the training loss; "
        "balanced: n_samples / (n_classes * count of the class) from the inventory's training "
        "rows (scikit-learn's compute_class_weight), or {class name: weight}, unnamed classes "
        "1; null: all 1",
    )

    @field_validator("CLASS_WEIGHT")
    @classmethod
    def _positive_weights(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if not value:
                raise ValueError("name at least one class, or set it to null")
            bad = {name: weight for name, weight in value.items() if not weight > 0}
            if bad:
                raise ValueError(f"weights must be numbers > 0; got {bad}")
        return value

    @model_validator(mode="after")
    def _distribution_fits_backend(self) -> TrainingParams:
        if self.DISTRIBUTION == "data_parallel" and self.BACKEND != "jax":
            raise ValueError(
                "DISTRIBUTION: data_parallel runs on the JAX backend only (TensorFlow's "
                "multi-worker strategy does not work with Keras 3). Set BACKEND: jax, or use "
                "DISTRIBUTION: mirrored for the GPUs of one machine on tensorflow"
            )
        if self.DISTRIBUTION == "mirrored" and self.BACKEND != "tensorflow":
            raise ValueError(
                "DISTRIBUTION: mirrored is TensorFlow's MirroredStrategy; on BACKEND: jax use "
                "DISTRIBUTION: data_parallel"
            )
        if self.DISTRIBUTION == "mirrored" and self.STEPS_PER_EXECUTION not in ("auto", 1):
            raise ValueError(
                "DISTRIBUTION: mirrored runs one batch per call (TensorFlow's MirroredStrategy "
                "fails in Keras' multi-batch loop); set STEPS_PER_EXECUTION: auto or 1"
            )
        if self.DISTRIBUTION == "data_parallel" and self.CACHE == "memory":
            raise ValueError(
                "CACHE: memory does not work with DISTRIBUTION: data_parallel (each process "
                "reads another slice of every global batch, so no process holds a fixed set of "
                "images); use disk, which every process shares"
            )
        return self

    @field_validator("DEVICES")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("name each GPU index once, at least one (or use auto or null)")
        return value

    @field_validator("CACHE", mode="before")
    @classmethod
    def _cache_choice(cls, value: Any) -> Any:
        if value is None:
            return "none"
        if not isinstance(value, str) or value.strip().lower() in ("none", "disk", "memory"):
            return value.strip().lower() if isinstance(value, str) else value
        raise ValueError(
            f"must be none, disk or memory; got {value!r}. A folder for the cache goes in "
            "TRAINING.CACHE_DIR (with CACHE: disk)"
        )

    @field_validator("CACHE_DIR")
    @classmethod
    def _cache_folder(cls, folder: str | None) -> str | None:
        if folder is not None and (not folder.strip() or "://" in folder):
            raise ValueError("must be a local folder, or null for the default")
        return folder


class Params(Group):
    """The whole params file."""

    DATA: DataParams
    PIPELINE: PipelineParams = Field(default_factory=PipelineParams)
    INVENTORY: InventoryParams = Field(default_factory=InventoryParams)
    MODEL: ModelParams
    TRAINING: TrainingParams = Field(default_factory=TrainingParams)

    @model_validator(mode="after")
    def _cache_apart_from_data(self) -> Params:
        caches = {}
        if self.TRAINING.CACHE_DIR:
            cache_dir = os.path.expanduser(self.TRAINING.CACHE_DIR)
            caches["TRAINING.CACHE_DIR"] = on_source("local", cache_dir)
        if self.DATA.REMOTE_CACHE_DIR:
            remote = os.path.expanduser(self.DATA.REMOTE_CACHE_DIR)
            caches["DATA.REMOTE_CACHE_DIR"] = on_source("local", remote)
        folders = {**self.DATA.input_folders(), **self.DATA.output_folders()}
        problems = [
            problem
            for key, folder in caches.items()  # each apart from the data (not from each other)
            for problem in overlapping_folders(folders, {key: folder})
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read, parse and validate a params file against the schema; raise one ConfigError
    listing all problems. ``kerapipe.checks.load_checked_params`` also runs the components'
    own checks, as every stage does."""
    return validate_params(read_params_file(path), source=str(path))


def validate_params(data: dict[str, Any], source: str = "params") -> Params:
    """Validate the keys, values and registered names. The params of the components named
    are checked by each component itself, a step above this one (kerapipe.checks)."""
    try:
        params = Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(summarise_problems(source, validation_messages(err, Params))) from None
    problems = _registry_problems(params)
    if problems:
        raise ConfigError(summarise_problems(source, problems))
    return params


def validate_group(model: type[BaseModel], data: Any, key: str) -> Any:
    """Validate ``data`` against a plug-in's own params model, naming ``key`` in errors."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as err:
        raise ConfigError("; ".join(validation_messages(err, model, prefix=key))) from None


def _registry_problems(params: Params) -> list[str]:
    checks = [
        (SOURCES, f"DATA.{key}", getattr(params.DATA, key))
        for key in DataParams.model_fields
        if key.endswith("_SOURCE") and getattr(params.DATA, key) is not None
    ]

    checks += [
        (TASKS, "PIPELINE.TASK_NAME", params.PIPELINE.TASK_NAME),
        (MODELS, "MODEL.MODEL_NAME", params.MODEL.MODEL_NAME),
        (OPTIMIZERS, "MODEL.OPTIMIZER_NAME", params.MODEL.OPTIMIZER_NAME),
    ]
    if params.MODEL.LOSS_NAME is not None:
        checks.append((LOSSES, "MODEL.LOSS_NAME", params.MODEL.LOSS_NAME))
    checks += [
        (METRICS, f"MODEL.METRICS.{i}.METRIC_NAME", spec.METRIC_NAME)
        for i, spec in enumerate(params.MODEL.METRICS or [])
    ]
    checks += [
        (CALLBACKS, f"TRAINING.CALLBACKS.{i}.CALLBACK_NAME", spec.CALLBACK_NAME)
        for i, spec in enumerate(params.TRAINING.CALLBACKS)
    ]
    checks += [
        (AUGMENTATIONS, f"TRAINING.AUGMENTATIONS.{i}.AUGMENTATION_NAME", spec.AUGMENTATION_NAME)
        for i, spec in enumerate(params.TRAINING.AUGMENTATIONS)
    ]
    problems = [  # settings of a source that is not used need no package installed
        f"DATA.STORAGE_OPTIONS.{name}: {SOURCES.unknown_message(name)}"
        for name in params.DATA.STORAGE_OPTIONS
        if name not in SOURCES
    ]
    for registry, key, name in checks:
        try:
            registry.check(name, key)
        except ConfigError as err:
            problems.append(str(err))
    return problems


def require_unique(values: list, what: str, field: str = "") -> None:
    """Raise a ValueError (a pydantic validator's error) naming the repeated ``values``;
    ``field`` leads the message when the validator checks more than one field."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        lead = f"{field} repeats" if field else "repeats"
        raise ValueError(f"{lead} {', '.join(repeated)}; each {what} must be unique")


def resolve_seed(seed: int) -> int:
    """A positive seed is used as is; ``<= 0`` draws a random one, to be recorded by the caller."""
    return seed if seed > 0 else secrets.randbelow(2**31 - 2) + 1
