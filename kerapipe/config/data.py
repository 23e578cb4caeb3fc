"""The DATA group: where the data, the inventory, the models and the predictions are, on which
data sources, and the copies of the model exported for serving. Its validators keep URLs on
their sources, secrets out of the params, and the folders kerapipe writes apart from those it
reads (DVC empties an output folder before its stage runs)."""

from __future__ import annotations

import posixpath
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kerapipe.config.groups import Group, require_unique
from kerapipe.folder_rules import on_source, overlapping_folders
from kerapipe.secret_settings import secret_settings


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
