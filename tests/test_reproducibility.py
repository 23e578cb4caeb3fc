"""Same params and data on the same machine: byte-identical inventory and predictions,
identical metrics and weights. Also mixed precision and MirroredStrategy on CPU."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from tests.helpers import BIN, context, run

pytestmark = pytest.mark.e2e


def full_run(folder, digits, default_params):
    """`kerapipe run` in its own process and folder, with relative output paths."""
    folder.mkdir()
    default_params["DATA"].update(
        INVENTORY_DATA_DIR=str(digits / "train"),
        PREDICTION_DATA_DIR=str(digits / "unlabelled"),
        PREDICTION_LABELS=str(digits / "unlabelled_labels.csv"),
    )
    default_params["TRAINING"]["NUM_EPOCHS"] = 2
    (folder / "params.yaml").write_text(yaml.safe_dump(default_params))
    run([str(BIN / "kerapipe"), "run"], folder)
    return folder


def test_two_runs_from_scratch_are_identical(tmp_path, digits, default_params):
    first = full_run(tmp_path / "first", digits, default_params)
    second = full_run(tmp_path / "second", digits, default_params)
    names = ["data/inventory/inventory.csv", "predictions/predictions.csv"]
    names += ["predictions/metrics.json", "models/digits_cnn/validation_predictions.csv"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    metrics = [json.loads((run / "dvclive/metrics.json").read_text()) for run in (first, second)]
    assert metrics[0] == metrics[1]
    models = [
        keras.saving.load_model(run / "models/digits_cnn/model.keras") for run in (first, second)
    ]
    for ours, theirs in zip(models[0].get_weights(), models[1].get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    info = json.loads((first / "models/digits_cnn/run_info.json").read_text())
    assert info["seed"] == 42 and info["packages"]["keras"] == keras.__version__


def test_mixed_precision_trains_with_float32_outputs(make_params):
    from kerapipe.config import load_params
    from kerapipe.reproducibility import set_precision
    from kerapipe.steps.inventory import run_inventory
    from kerapipe.steps.train import run_training

    _, path = make_params({"TRAINING.NUM_EPOCHS": 1, "TRAINING.MIXED_PRECISION": True})
    params = load_params(path)
    run_inventory(context(params))
    try:
        result = run_training(context(params))
        info = json.loads((Path(result.model_path).parent / "run_info.json").read_text())
        assert info["precision_policy"] == "mixed_bfloat16"  # CPU; mixed_float16 on a GPU
        model = keras.saving.load_model(result.model_path)
        assert model.layers[-2].dtype_policy.name == "mixed_bfloat16"
        assert model.output.dtype == "float32"
    finally:
        set_precision(False)


MIRRORED = """
import logging, sys, tensorflow as tf
logging.basicConfig(level=logging.INFO)
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
from kerapipe.config import load_params
from kerapipe.context import RunContext
from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.train import run_training
context = RunContext.from_params(load_params(sys.argv[1]))
run_inventory(context)
run_training(context)
"""


def test_mirrored_strategy_on_two_logical_cpus(make_params, tmp_path):
    _, path = make_params({"TRAINING.NUM_EPOCHS": 1, "TRAINING.DISTRIBUTION": "mirrored"})
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch 64 on 2 device(s)" in result.stderr  # BATCH_SIZE 32 per replica
    info = json.loads((tmp_path / "models/digits_cnn/run_info.json").read_text())
    assert info["replicas"] == 2 and len([d for d in info["devices"] if "CPU" in d]) == 2
    assert (tmp_path / "models/digits_cnn/model.keras").is_file()
