"""TRAINING.BACKEND: jax and TRAINING.DISTRIBUTION: data_parallel.

This test process runs Keras on TensorFlow, so every JAX run is a real ``kerapipe`` process
whose params say ``BACKEND: jax`` (the CLI sets KERAS_BACKEND from them). On tiny data: each
task, each model family (simple_cnn, unet, an application), each format (keras, h5, tf),
mixed precision, resume, identical weights from the same seed, and two real processes joined
on 127.0.0.1 whose losses and weights match one process fed the same global batches.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kerapipe.config import validate_params
from kerapipe.errors import ConfigError
from kerapipe.sample_data import write_discs, write_shapes
from tests.helpers import BIN, REPO, context, tool_env
from tests.helpers_tasks import task_params

ONE_CPU = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
PER_CLASS = 6  # digits per class: 60 images, 48 to train on


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory, digits) -> Path:
    """The first PER_CLASS images of each class of the digits sample (read-only)."""
    out = tmp_path_factory.mktemp("small") / "digits"
    for folder in sorted((digits / "train").iterdir()):
        (out / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:PER_CLASS]:
            shutil.copy(image, out / folder.name / image.name)
    return out


def write_params(tmp_path: Path, params: dict, updates: dict) -> Path:
    """``params`` with dotted-key ``updates``, BACKEND jax, outputs under ``tmp_path``."""
    params["DATA"].update(
        INVENTORY_CSV_DIR=str(tmp_path / "inventory"),
        TRAINING_MODEL_DIR=str(tmp_path / "models"),
        PREDICTION_OUTPUT_DIR=str(tmp_path / "predictions"),
    )
    params["TRAINING"].update(BACKEND="jax", NUM_EPOCHS=1, BATCH_SIZE=8)
    for dotted, value in updates.items():
        *keys, last = dotted.split(".")
        target = params
        for key in keys:
            target = target[key]
        target[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def digits_params(tmp_path: Path, data: Path, prediction: Path, updates=None) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["DATA"].update(
        INVENTORY_DATA_DIR=str(data),
        PREDICTION_DATA_DIR=str(prediction / "unlabelled"),
        PREDICTION_LABELS=str(prediction / "unlabelled_labels.csv"),
    )
    return write_params(tmp_path, params, updates or {})


def kerapipe(command: str, params: Path, env: dict[str, str] | None = None) -> str:
    """``kerapipe COMMAND --params PARAMS`` as a real process in the params' folder; its
    output, or an assertion error showing it."""
    result = subprocess.run(
        [str(BIN / "kerapipe"), command, "--params", str(params)],
        cwd=params.parent,
        env={**tool_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{command}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def jax_weights(model_file: Path) -> list[np.ndarray]:
    """The weights of a ``.keras`` or ``.h5`` model, read with h5py (no Keras needed)."""
    import zipfile

    import h5py

    if model_file.suffix == ".keras":
        with zipfile.ZipFile(model_file) as archive:
            data = archive.read("model.weights.h5")
        target = model_file.with_suffix(".weights.h5")
        target.write_bytes(data)
        model_file = target
    arrays: list[np.ndarray] = []
    with h5py.File(model_file, "r") as handle:
        handle.visititems(
            lambda name, item: (
                arrays.append(np.asarray(item))
                if isinstance(item, h5py.Dataset) and "optimizer" not in name
                else None
            )
        )
    return arrays


def run_info(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "models" / name / "run_info.json").read_text())


# --- checks that need no JAX process ------------------------------------------------------


def test_data_parallel_needs_jax_and_no_memory_cache(default_params):
    default_params["TRAINING"]["DISTRIBUTION"] = "data_parallel"
    with pytest.raises(ConfigError, match="data_parallel runs on the JAX backend only"):
        validate_params(default_params)
    default_params["TRAINING"].update(BACKEND="jax", CACHE="memory")
    with pytest.raises(ConfigError, match="CACHE: memory does not work with DISTRIBUTION"):
        validate_params(default_params)
    default_params["TRAINING"].update(CACHE="disk")  # shared by the processes
    validate_params(default_params)
    default_params["TRAINING"].update(BACKEND="jax", DISTRIBUTION="mirrored", CACHE="none")
    with pytest.raises(ConfigError, match="on BACKEND: jax use DISTRIBUTION: data_parallel"):
        validate_params(default_params)


def test_another_backend_already_imported_is_one_clear_error(make_params):
    from kerapipe.steps.train import run_training  # Keras on TensorFlow in this process

    params, _ = make_params({"TRAINING.BACKEND": "jax"})
    with pytest.raises(ConfigError, match="already imported in this process with the 'tensorflow'"):
        run_training(context(validate_params(params)))


# --- real JAX processes ---------------------------------------------------------------------


@pytest.mark.e2e
def test_classification_on_jax_same_weights_twice(tmp_path, small_digits, digits):
    """simple_cnn, keras format, through `kerapipe run`; the same params in another folder
    give identical weights, the second run with every program read from the compilation
    cache that the first filled; run_info.json and DVCLive record the backend."""
    results, compiled = [], []
    cache = tmp_path / "cache"
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        updates = {"TRAINING.NUM_EPOCHS": 2, "DATA.REMOTE_CACHE_DIR": str(cache)}
        params = digits_params(folder, small_digits, digits, updates)
        output = kerapipe("run", params, env={"KERAS_BACKEND": "tensorflow"})
        assert "KERAS_BACKEND=tensorflow is set, but TRAINING.BACKEND is jax" in output
        results.append(folder)
        # JAX's cache rewrites an entry's "-atime" file each time a process reads the entry
        compiled.append({p.name: p.stat().st_mtime_ns for p in (cache / "jax").glob("*-atime")})
    assert any("train_step" in name for name in compiled[0])
    assert compiled[1].keys() == compiled[0].keys()  # the second run compiled nothing new ...
    assert all(compiled[1][name] > compiled[0][name] for name in compiled[0])  # ... read all
    info = run_info(results[0], "digits_cnn")
    assert info["backend"] == "jax" and info["settings"]["TRAINING.BACKEND"] == "jax"
    assert "jax" in info["packages"]
    live = yaml.safe_load((results[0] / "dvclive" / "params.yaml").read_text())
    assert live["TRAINING"]["BACKEND"] == "jax"
    first, second = (jax_weights(f / "models/digits_cnn/model.keras") for f in results)
    assert len(first) >= 6
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    predictions = pd.read_csv(results[0] / "predictions" / "predictions.csv")
    assert len(predictions) == 180 and set(predictions.status) == {"ok"}
    scores = json.loads((results[0] / "predictions" / "metrics.json").read_text())["held_out"]
    assert scores["images"] == 180 and scores["accuracy"] > 0.2  # learned something
    # The export stage loads the JAX-trained model on TensorFlow, whose exporters it uses.
    params = yaml.safe_load((results[0] / "params.yaml").read_text())
    params["DATA"]["EXPORT"]["FORMATS"] = ["onnx"]
    (results[0] / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    kerapipe("export", results[0] / "params.yaml")
    exported = json.loads((results[0] / "models/digits_cnn/export_metrics.json").read_text())
    assert exported["export"]["onnx"]["agreement"] == 1.0, exported


def on_data(params: dict, data: Path, labels: str, model_format: str) -> dict:
    """``params`` reading ``data``'s train/ and unlabelled/ folders and its ``labels``,
    saving the model in ``model_format``."""
    params["DATA"].update(
        INVENTORY_DATA_DIR=str(data / "train"),
        PREDICTION_DATA_DIR=str(data / "unlabelled"),
        PREDICTION_LABELS=str(data / labels),
        TRAINING_MODEL_FORMAT=model_format,
    )
    return params


@pytest.mark.e2e
def test_segmentation_unet_h5_with_augmentation_on_jax(tmp_path):
    data = write_shapes(tmp_path / "shapes", count=20, held_out=3)
    params = on_data(task_params("segmentation", tmp_path), data, "unlabelled_masks", "h5")
    flip = {"AUGMENTATION_NAME": "flip", "AUGMENTATION_PARAMS": {"MODE": "horizontal"}}
    path = write_params(tmp_path, params, {"TRAINING.AUGMENTATIONS": [flip]})
    kerapipe("run", path)
    assert (tmp_path / "models" / "shapes_unet" / "model.h5").is_file()
    assert run_info(tmp_path, "shapes_unet")["backend"] == "jax"
    masks = sorted((tmp_path / "predictions" / "masks").glob("*.png"))
    assert len(masks) == 3
    scores = json.loads((tmp_path / "predictions" / "metrics.json").read_text())["held_out"]
    assert scores["images"] == 3


@pytest.mark.e2e
def test_regression_application_tf_format_mixed_precision_on_jax(tmp_path):
    """An application backbone (mobilenet: the fewest layers, so the least for XLA to
    compile) exported as a SavedModel from JAX and predicted from through TensorFlow; mixed
    precision (bfloat16 on a CPU)."""
    data = write_discs(tmp_path / "discs", count=16, held_out=3)
    params = on_data(task_params("regression", tmp_path), data, "unlabelled_targets.csv", "tf")
    params["MODEL"].update(
        MODEL_NAME="mobilenet",
        MODEL_PARAMS={"INPUT_SHAPE": [32, 32, 1], "NUM_CLASSES": 2, "INITIAL_WEIGHTS": None},
    )
    # 12 images to train on in 3 full batches of 4: JAX compiles the training step once
    # (a last batch of another size is another compile, 15 s of this network on a CPU).
    updates = {"TRAINING.MIXED_PRECISION": True, "TRAINING.BATCH_SIZE": 4}
    path = write_params(tmp_path, params, updates)
    kerapipe("run", path)
    info = run_info(tmp_path, "discs_cnn")
    assert info["precision_policy"] == "mixed_bfloat16" and info["backend"] == "jax"
    assert (tmp_path / "models" / "discs_cnn" / "model.tf" / "saved_model.pb").is_file()
    predictions = pd.read_csv(tmp_path / "predictions" / "predictions.csv")
    assert len(predictions) == 3
    assert np.isfinite(predictions[["radius", "center_x"]].to_numpy(dtype=float)).all()


# --- data_parallel: two real processes against one ---------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A launcher as srun or mpirun would be: the command it is given, started twice (process 1 in
# a folder of its own, which must stay empty), its status that of both.
LAUNCHER = """#!/bin/sh
(cd "$PROCESS_1_FOLDER" && KERAS_DISTRIBUTION_PROCESS_ID=1 exec "$@") &
KERAS_DISTRIBUTION_PROCESS_ID=0 "$@"
first=$?
wait $!
second=$?
exit $((first | second))
"""


def cluster_variables() -> dict[str, str]:
    return {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{free_port()}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    }


def start_train(params: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(BIN / "kerapipe"), "train", "--params", str(params)],
        cwd=cwd,
        env={**tool_env(), **ONE_CPU, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def train_in_two_processes(params: Path, tmp_path: Path) -> None:
    """Process 0 in the params' folder, process 1 in a folder of its own (which must stay
    empty: only process 0 writes), joined through KERAS_DISTRIBUTION_* on 127.0.0.1."""
    cluster = cluster_variables()
    processes = [
        start_train(params, cwd, {**cluster, "KERAS_DISTRIBUTION_PROCESS_ID": str(i)})
        for i, cwd in enumerate((params.parent, tmp_path / "process_1"))
    ]
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=600)[0])
        finally:
            if process.poll() is None:
                process.kill()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]
    assert list((tmp_path / "process_1").iterdir()) == []


@pytest.mark.e2e
def test_two_processes_match_one_process_fed_the_same_global_batches(
    tmp_path, small_digits, digits
):
    """Two processes with one CPU device each against one process with two (virtual) CPU
    devices: the same global batches, so the same losses and weights; then both resume.
    The one process keeps its programs where the user's own JAX settings say, not in
    kerapipe's folder."""
    own_cache = {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "own"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    two_cpus = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", **own_cache}
    updates = {
        "TRAINING.DISTRIBUTION": "data_parallel",
        "TRAINING.NUM_EPOCHS": 2,
        "TRAINING.BATCH_SIZE": 4,  # per device: global batches of 8, 6 steps an epoch
        "TRAINING.AUGMENTATIONS": [{"AUGMENTATION_NAME": "flip", "AUGMENTATION_PARAMS": {}}],
    }
    runs = {}
    for name in ("two", "one"):
        folder = tmp_path / name
        folder.mkdir()
        cache = {"DATA.REMOTE_CACHE_DIR": str(folder / "cache")}
        runs[name] = digits_params(folder, small_digits, digits, {**updates, **cache})
        kerapipe("inventory", runs[name])
    train_in_two_processes(runs["two"], tmp_path / "two")
    kerapipe("train", runs["one"], env=two_cpus)
    compare_runs(tmp_path, epochs=2)

    for name in ("two", "one"):  # resume both for one more epoch
        params = yaml.safe_load(runs[name].read_text())
        params["TRAINING"].update(NUM_EPOCHS=3, LOAD_CHECKPOINT=True, FORCE=True)
        runs[name].write_text(yaml.safe_dump(params, sort_keys=False))
    # This time one `kerapipe train` starts both, as a DVC stage would: KERAPIPE_LAUNCHER.
    launcher = tmp_path / "launch.sh"
    launcher.write_text(LAUNCHER)
    output = kerapipe(
        "train",
        runs["two"],
        env={
            **cluster_variables(),
            **ONE_CPU,
            "KERAPIPE_LAUNCHER": f"sh {launcher}",
            "PROCESS_1_FOLDER": str(tmp_path / "two" / "process_1"),
        },
    )
    assert "Starting the training processes: sh" in output
    assert list((tmp_path / "two" / "process_1").iterdir()) == []
    kerapipe("train", runs["one"], env=two_cpus)
    compare_runs(tmp_path, epochs=3)
    for name in ("two", "one"):
        info = run_info(tmp_path / name, "digits_cnn")
        assert info["resumed_after_epoch"] == 2 and info["final_epochs"] == 3
        state = tmp_path / name / "models" / "digits_cnn" / "checkpoints" / "state.json"
        assert json.loads(state.read_text())["epoch"] == 3
    assert list((tmp_path / "own").glob("jit_train_step-*-cache"))
    assert not (tmp_path / "one" / "cache" / "jax").exists()


def compare_runs(tmp_path: Path, epochs: int) -> None:
    two, one = (tmp_path / name / "models" / "digits_cnn" for name in ("two", "one"))
    logs = [pd.read_csv(folder / "training_log.csv") for folder in (two, one)]
    assert list(logs[0].epoch) == list(range(epochs))
    pd.testing.assert_frame_equal(logs[0], logs[1], rtol=1e-6)
    for a, b in zip(
        jax_weights(two / "model.keras"), jax_weights(one / "model.keras"), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    info = run_info(tmp_path / "two", "digits_cnn")
    assert info["processes"] == 2 and info["replicas"] == 2
    assert info["distribution"] == "data_parallel"
    assert run_info(tmp_path / "one", "digits_cnn")["processes"] == 1
    checkpoints = sorted(p.name for p in (two / "checkpoints").iterdir())
    assert f"epoch_{epochs:04d}.keras" in checkpoints  # written by process 0 alone
