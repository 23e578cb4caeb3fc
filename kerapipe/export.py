"""Stage: export the final model to the formats of ``DATA.EXPORT.FORMATS`` (ONNX, LiteRT), each
checked against the Keras model on the validation images before it is kept.

The check runs every validation image through the Keras model and through the exported one,
in its own runtime (ONNX Runtime; the LiteRT interpreter), and compares the outputs: the share
of images (segmentation: pixels) whose arg-max class agrees, and the largest absolute
difference of any output. Below ``DATA.EXPORT.MIN_AGREEMENT``, or above
``DATA.EXPORT.MAX_DIFFERENCE``, the export fails and nothing is written; otherwise the files
land in ``export/`` beside the model and the figures in ``export_metrics.json``, which
``dvc.yaml`` declares as metrics.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kerapipe.artifacts import ModelPaths, check_model_matches, load_model
from kerapipe.atomic import atomic_path
from kerapipe.backend import use_backend
from kerapipe.checks import check_params
from kerapipe.config import Params
from kerapipe.errors import ConfigError, ModelError
from kerapipe.tasks.base import Task, get_task

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

# The file each format is written to, and the packages its export and its check need.
FILES = {"onnx": "model.onnx", "litert": "model.tflite"}
# The exporters (tf2onnx, the LiteRT converter) are TensorFlow's: a model trained on either
# backend is loaded and exported on TensorFlow (Keras' ONNX export from JAX needs jax2onnx).
EXPORT_BACKEND = "tensorflow"
NEEDS = {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "litert": ()}
EXTRAS = {"onnx": "onnx", "litert": "litert"}


@dataclass(frozen=True)
class Comparison:
    """How an exported model's outputs compare with the Keras model's on the same images."""

    images: int
    max_abs_difference: float
    agreement: float | None  # None for regression: no class to agree on

    def as_metrics(self) -> dict[str, Any]:
        found: dict[str, Any] = {"images": self.images}
        found["max_abs_difference"] = self.max_abs_difference
        if self.agreement is not None:
            found["agreement"] = self.agreement
        return found


@dataclass(frozen=True)
class ExportResult:
    files: dict[str, Path]
    metrics: dict[str, dict[str, Any]]


def check_export_packages(formats: Iterable[str]) -> None:
    """Raise a ConfigError naming the extra to install for a format whose packages are not."""
    import importlib.util

    for name in formats:
        missing = [p for p in NEEDS[name] if importlib.util.find_spec(p) is None]
        if missing:
            raise ConfigError(
                f"DATA.EXPORT.FORMATS: {name} needs {', '.join(missing)}, not installed. Install "
                f'them with `pip install -e ".[{EXTRAS[name]}]"` (or remove {name!r}).'
            )


def run_export(params: Params) -> ExportResult:
    """Export, check and write every format of ``DATA.EXPORT.FORMATS`` (none: only empty
    ``export/`` and metrics, so DVC's outputs exist)."""
    check_params(params)
    use_backend(EXPORT_BACKEND)  # or one error: Keras runs on another
    formats = list(params.DATA.EXPORT.FORMATS)
    check_export_packages(formats)
    paths = ModelPaths.from_params(params)
    task = get_task(params)
    check_model_matches(paths, params, task)
    if paths.format == "tf" and formats:
        raise ConfigError(
            "DATA.EXPORT.FORMATS: export starts from a Keras model; with "
            "DATA.TRAINING_MODEL_FORMAT tf (a SavedModel) there is none. "
            "Use keras or h5 to export as well."
        )
    metrics: dict[str, dict[str, Any]] = {}
    run = paths.working_copy()  # the run folder itself, or a local copy of a remote one
    with atomic_path(run.local_file("export")) as folder:
        folder.mkdir()
        if formats:
            model = load_model(paths.local_model(), paths.format, shown=paths.model)
            model(np.zeros((1, *task.input_shape), np.float32))  # Keras exports called models
            images = validation_images(params, task)
            for name in formats:
                path = folder / FILES[name]
                export_to(name, model, path, task)
                comparison = compare(model, RUNTIMES[name](path), images, task)
                metrics[name] = {**comparison.as_metrics(), "bytes": path.stat().st_size}
                require_close(name, comparison, params)
                log.info("Exported %s: %s.", FILES[name], describe(comparison))
    run.upload("export")
    run.write_text("export_metrics.json", json.dumps({"export": metrics}, indent=2) + "\n")
    return ExportResult({n: run.local_file("export") / FILES[n] for n in formats}, metrics)


def validation_images(params: Params, task: Task) -> Callable[[], Iterable[np.ndarray]]:
    """A function giving the validation images in batches (a new pass per call)."""
    from kerapipe.inventory import read_matching_inventory
    from kerapipe.sources import source_of
    from kerapipe.train import local_files

    table, _ = read_matching_inventory(params, task)
    task.prepare(table[table.split == "train"])
    rows = local_files(task, table, source_of(params.DATA, "INVENTORY_DATA_DIR"))
    rows = rows[table.split == "validation"]
    data = task.dataset(rows, params.TRAINING.BATCH_SIZE, shuffle_seed=None)

    def batches() -> Iterable[np.ndarray]:
        for images, _ in data:
            yield np.asarray(images, dtype=np.float32)

    return batches


def compare(
    model: keras.Model,
    run: Callable[[np.ndarray], np.ndarray],
    images: Callable[[], Iterable[np.ndarray]],
    task: Task,
) -> Comparison:
    """Run every batch through both models; the largest absolute difference of any output,
    and (for class scores) the share of images, or pixels, whose arg-max agrees."""
    from kerapipe.backend import inference_step

    step = inference_step(model)
    count, largest, agree, total = 0, 0.0, 0, 0
    for batch in images():
        ours, theirs = np.asarray(step(batch)), np.asarray(run(batch)).reshape(-1)
        theirs = theirs.reshape(ours.shape)
        count += len(batch)
        largest = max(largest, float(np.abs(ours - theirs).max(initial=0.0)))
        same = ours.argmax(axis=-1) == theirs.argmax(axis=-1)
        agree, total = agree + int(same.sum()), total + same.size
    classes = task.head().activation == "softmax"
    agreement = agree / total if classes and total else None
    return Comparison(count, largest, agreement)


def require_close(name: str, comparison: Comparison, params: Params) -> None:
    """Fail the export when it answers differently from the Keras model."""
    limits = params.DATA.EXPORT
    problems = []
    if comparison.agreement is not None and comparison.agreement < limits.MIN_AGREEMENT:
        problems.append(f"arg-max agreement {comparison.agreement:.4f} < MIN_AGREEMENT")
    if limits.MAX_DIFFERENCE is not None and comparison.max_abs_difference > limits.MAX_DIFFERENCE:
        problems.append(
            f"largest absolute difference {comparison.max_abs_difference:.3g} > MAX_DIFFERENCE "
            f"({limits.MAX_DIFFERENCE:g})"
        )
    if problems:
        raise ModelError(
            f"the {name} export answers differently from the Keras model on the "
            f"{comparison.images} validation images: {'; '.join(problems)}. Nothing was "
            "written. Raise DATA.EXPORT.MIN_AGREEMENT / MAX_DIFFERENCE if that is close enough, "
            f"or leave {name!r} out of DATA.EXPORT.FORMATS."
        )


def describe(comparison: Comparison) -> str:
    agreement = (
        f"arg-max agreement {comparison.agreement:.4f}, "
        if comparison.agreement is not None
        else ""
    )
    return (
        f"{agreement}largest absolute difference {comparison.max_abs_difference:.3g} on "
        f"{comparison.images} validation images"
    )


# --- exporters: Keras model -> file ---------------------------------------------------------


def export_to(name: str, model: keras.Model, path: Path, task: Task) -> None:
    """Run the exporter of ``name``; a model it cannot convert ends in one ModelError."""
    try:
        EXPORTERS[name](model, path, task)
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as err:
        raise ModelError(
            f"DATA.EXPORT.FORMATS: the model cannot be exported to {name}: {err}. Leave {name!r} "
            "out of DATA.EXPORT.FORMATS (the Keras model and predict do not need it)."
        ) from None


def export_onnx(model: keras.Model, path: Path, task: Task) -> None:
    """ONNX through Keras' own exporter (tf2onnx), with the output names in its metadata
    (``kerapipe.outputs``: what ``outputs.json`` holds)."""
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's NumPy deprecations
        model.export(str(path), format="onnx", verbose=False)
    exported = onnx.load(str(path))
    onnx.helper.set_model_props(exported, {"kerapipe.outputs": json.dumps(task.describe_outputs())})
    onnx.save(exported, str(path))


def export_litert(model: keras.Model, path: Path, task: Task) -> None:
    """LiteRT (``.tflite``) through Keras' own exporter (TensorFlow's converter)."""
    model.export(str(path), format="litert", verbose=False)


EXPORTERS = {"onnx": export_onnx, "litert": export_litert}


# --- runtimes: file -> a function from a batch of images to outputs ---------------------------


def onnx_runtime(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def litert_runtime(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The LiteRT interpreter (``ai-edge-litert``, else TensorFlow's own ``tf.lite``)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806

    interpreter = Interpreter(model_path=str(path))
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(batch: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(source, batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source, batch)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return run


RUNTIMES = {"onnx": onnx_runtime, "litert": litert_runtime}
