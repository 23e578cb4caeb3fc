"""The model in other formats (ONNX, LiteRT), each checked against the Keras model in its own
runtime (ONNX Runtime; the LiteRT interpreter): the share of images (segmentation: pixels)
whose arg-max class agrees, and the largest absolute difference of any output."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kerapipe.config import ExportParams
from kerapipe.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import keras

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


def compare(
    model: keras.Model,
    run: Callable[[np.ndarray], np.ndarray],
    images: Callable[[], Iterable[np.ndarray]],
    classes: bool,
) -> Comparison:
    """Run every batch through both models; the largest absolute difference of any output,
    and (for class scores, ``classes``) the share of images, or pixels, whose arg-max
    agrees."""
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
    agreement = agree / total if classes and total else None
    return Comparison(count, largest, agreement)


def require_close(name: str, comparison: Comparison, limits: ExportParams) -> None:
    """Fail the export when it answers differently from the Keras model."""
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


def export_to(name: str, model: keras.Model, path: Path, outputs: dict) -> None:
    """Run the exporter of ``name``; a model it cannot convert ends in one ModelError."""
    try:
        EXPORTERS[name](model, path, outputs)
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as err:
        raise ModelError(
            f"DATA.EXPORT.FORMATS: the model cannot be exported to {name}: {err}. Leave {name!r} "
            "out of DATA.EXPORT.FORMATS (the Keras model and predict do not need it)."
        ) from None


def export_onnx(model: keras.Model, path: Path, outputs: dict) -> None:
    """ONNX through Keras' own exporter (tf2onnx), with the output names in its metadata
    (``kerapipe.outputs``: ``outputs``, what ``outputs.json`` holds)."""
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's NumPy deprecations
        model.export(str(path), format="onnx", verbose=False)
    exported = onnx.load(str(path))
    onnx.helper.set_model_props(exported, {"kerapipe.outputs": json.dumps(outputs)})
    onnx.save(exported, str(path))


def export_litert(model: keras.Model, path: Path, outputs: dict) -> None:
    """LiteRT (``.tflite``) through Keras' own exporter (TensorFlow's converter)."""
    model.export(str(path), format="litert", verbose=False)


EXPORTERS = {"onnx": export_onnx, "litert": export_litert}


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
