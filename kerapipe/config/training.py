"""The TRAINING group: the fit, its callbacks and augmentations, the backend and devices it runs
on, and its input pipeline."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from kerapipe.config.groups import DEFAULT_CACHE_MAX_GB, MAX_SEED, Group
from kerapipe.errors import ConfigError

BUILT_IN_CALLBACKS = {"model_checkpoint", "csv_logger"}


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


class FineTuningParams(Group):
    """A pretrained base frozen for some epochs, then unfrozen at a lower learning rate."""

    FROZEN_EPOCHS: int = Field(
        ge=0,
        description="epochs first trained with the base frozen (its BatchNorm layers in "
        "inference mode): the head only",
    )
    UNFREEZE: Literal["all"] | Annotated[int, Field(ge=1)] = Field(
        "all",
        description="then unfreeze all of the base, or its top N layers (BatchNorm layers "
        "stay frozen)",
    )
    LEARNING_RATE_FACTOR: float = Field(
        0.1,
        gt=0.0,
        description="the learning rate (MODEL.OPTIMIZER_PARAMS.LEARNING_RATE, or a schedule's "
        "initial rate) is multiplied by this once the base is unfrozen",
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
    # Input pipeline (kerapipe/datasets.py): see docs/performance.md.
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
        None, ge=1, description="parallel decode calls; null: one per core, at most 16"
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
    FINE_TUNING: FineTuningParams | None = Field(
        None,
        description="fine-tune a pretrained base: FROZEN_EPOCHS with it frozen, then UNFREEZE "
        "it with the learning rate times LEARNING_RATE_FACTOR, within NUM_EPOCHS; null: no "
        "schedule",
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


SCALED_SCHEDULE_PARAMS = ("initial_learning_rate", "values")  # a schedule's rates


def scaled_learning_rate(rate: Any, factor: float) -> Any:
    """``LEARNING_RATE`` times ``factor``: a number, or a schedule whose rates are scaled
    (its ``initial_learning_rate``, or a piecewise schedule's ``values``)."""
    if not isinstance(rate, dict):
        return rate if rate is None else rate * factor
    params = dict(rate.get("SCHEDULE_PARAMS") or {})
    names = [name for name in SCALED_SCHEDULE_PARAMS if name in params]
    if not names:
        raise ConfigError(
            "TRAINING.FINE_TUNING.LEARNING_RATE_FACTOR scales MODEL.OPTIMIZER_PARAMS."
            "LEARNING_RATE, a number or a schedule with SCHEDULE_PARAMS.initial_learning_rate "
            f"(or values); this schedule has neither ({rate}). Give one."
        )
    for name in names:
        value = params[name]
        params[name] = [v * factor for v in value] if isinstance(value, list) else value * factor
    return {**rate, "SCHEDULE_PARAMS": params}
