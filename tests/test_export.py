"""Models you can ship: the trained model exported to ONNX and LiteRT, each run in its own
runtime and checked against the Keras model on the validation images; a check that fails
writes nothing. One digits model is trained per module (one epoch)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import yaml

from kerapipe.config import validate_params
from kerapipe.errors import ConfigError, ModelError
from kerapipe.exporters import litert_runtime
from kerapipe.sample_data import write_digits
from kerapipe.steps.export import run_export
from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.train import run_training
from tests.helpers import BIN, REPO, context, kerapipe_without_tensorflow, run, train_project

RUN = Path("models") / "digits_cnn"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder with params (exporting both formats), an inventory and a 1-epoch model."""
    root = tmp_path_factory.mktemp("export")
    digits = write_digits(root / "digits")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["DATA"].update(
        INVENTORY_DATA_DIR=str(digits / "train"),
        PREDICTION_DATA_DIR=str(digits / "unlabelled"),
        PREDICTION_LABELS=str(digits / "unlabelled_labels.csv"),
    )
    params["TRAINING"]["NUM_EPOCHS"] = 1
    params["DATA"]["EXPORT"]["FORMATS"] = ["onnx", "litert"]
    return train_project(root, params)


@pytest.fixture
def exported(trained, monkeypatch):
    monkeypatch.chdir(trained)
    return run_export(context("params.yaml")), trained


def validation_images(root: Path, count: int = 24) -> np.ndarray:
    import pandas as pd
    from PIL import Image

    table = pd.read_csv(root / "data/inventory/inventory.csv")
    paths = table[table.split == "validation"].filepath.head(count)
    pictures = [Image.open(p).resize((16, 16)) for p in paths]  # the model's INPUT_SHAPE
    return np.stack([np.asarray(p, dtype=np.float32)[..., None] for p in pictures])


def test_both_formats_answer_as_the_keras_model_in_their_own_runtimes(exported):
    result, root = exported
    assert sorted(result.files) == ["litert", "onnx"]
    assert (root / RUN / "export/model.onnx").is_file()
    assert (root / RUN / "export/model.tflite").is_file()
    metrics = json.loads((root / RUN / "export_metrics.json").read_text())["export"]
    validation = json.loads((root / "data/inventory/inventory.json").read_text())["rows"]
    for name in ("onnx", "litert"):
        assert metrics[name]["agreement"] == 1.0
        assert metrics[name]["max_abs_difference"] < 1e-4
        assert metrics[name]["images"] == validation["validation"] == 324
        assert metrics[name]["bytes"] > 1000
    images = validation_images(root)
    keras_out = keras.saving.load_model(root / RUN / "model.keras").predict(images, verbose=0)
    session = onnxruntime.InferenceSession(str(root / RUN / "export/model.onnx"))
    onnx_out = session.run(None, {session.get_inputs()[0].name: images})[0]
    np.testing.assert_allclose(onnx_out, keras_out, atol=1e-5)
    litert_out = litert_runtime(root / RUN / "export/model.tflite")(images)
    np.testing.assert_allclose(litert_out, keras_out, atol=1e-5)


def test_the_onnx_file_names_its_outputs(exported):
    _, root = exported
    model = onnx.load(str(root / RUN / "export/model.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    outputs = json.loads(props["kerapipe.outputs"])
    assert outputs["outputs"][:3] == ["zero", "one", "two"]
    assert outputs == json.loads((root / RUN / "outputs.json").read_text())


def test_an_export_that_differs_more_than_allowed_fails_and_writes_nothing(trained):
    params = yaml.safe_load((trained / "params.yaml").read_text())
    params["DATA"]["TRAINING_MODEL_DIR"] = str(trained / "models")
    params["DATA"]["INVENTORY_CSV_DIR"] = str(trained / "data/inventory")
    params["DATA"]["EXPORT"].update(FORMATS=["onnx"], MAX_DIFFERENCE=1e-15)
    before = {p: p.read_bytes() for p in (trained / RUN / "export").glob("*")}
    with pytest.raises(ModelError, match=r"onnx export answers differently .* MAX_DIFFERENCE"):
        run_export(context(validate_params(copy.deepcopy(params))))
    after = {p: p.read_bytes() for p in (trained / RUN / "export").glob("*")}
    assert after == before  # the earlier export is left as it was


def test_missing_packages_name_the_extra(trained, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name)
    )
    monkeypatch.chdir(trained)
    with pytest.raises(ConfigError, match=r'tf2onnx, not installed.*pip install -e "\.\[onnx\]"'):
        run_export(context("params.yaml"))


def test_unknown_formats_and_repeats_are_refused(default_params):
    for formats, message in ((["onnx", "onnx"], "repeats onnx"), (["coreml"], "onnx")):
        default_params["DATA"]["EXPORT"] = {"FORMATS": formats}
        with pytest.raises(ConfigError, match=message):
            validate_params(copy.deepcopy(default_params))


@pytest.mark.e2e  # TensorFlow in a process of its own
def test_kerapipe_export_on_the_command_line(trained):
    result = run([str(BIN / "kerapipe"), "export"], trained)
    assert "Exported model.onnx: arg-max agreement 1.0000" in result.stderr
    assert "Exported model.tflite" in result.stderr


def test_without_formats_export_writes_empty_outputs_and_starts_no_tensorflow(trained, tmp_path):
    """FORMATS [] (the default): the stage writes only what DVC expects, without TensorFlow's
    seconds of start-up in every `dvc repro` after a training."""
    root = shutil.copytree(trained, tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["DATA"]["EXPORT"]["FORMATS"] = []
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = kerapipe_without_tensorflow(root, "export")
    assert result.returncode == 0, result.stderr
    assert json.loads((root / RUN / "export_metrics.json").read_text()) == {"export": {}}
    assert list((root / RUN / "export").iterdir()) == []


@pytest.mark.e2e  # trains a segmentation and a regression model, then exports
@pytest.mark.parametrize("task", ["segmentation", "regression"])
def test_the_other_tasks_export_and_check_too(task, tmp_path, monkeypatch):
    """A U-Net's per-pixel scores agree pixel by pixel; a regression model (its last layer
    puts the outputs back in the targets' units) has no class to agree on."""
    from kerapipe.sample_data import write_discs, write_shapes
    from tests.helpers_tasks import task_params

    writer, sample = (write_shapes, "shapes") if task == "segmentation" else (write_discs, "discs")
    data = writer(tmp_path / sample, count=24, held_out=2)
    params = task_params(
        task,
        tmp_path,
        {
            "DATA.INVENTORY_DATA_DIR": str(data / "train"),
            "DATA.PREDICTION_DATA_DIR": str(data / "unlabelled"),
            "TRAINING.NUM_EPOCHS": 1,
            "DATA.EXPORT.FORMATS": ["onnx", "litert"],
        },
    )
    monkeypatch.chdir(tmp_path)
    checked = validate_params(params)
    run_inventory(context(checked))
    run_training(context(checked))
    metrics = run_export(context(checked)).metrics
    for name in ("onnx", "litert"):
        assert metrics[name]["images"] == 5 and metrics[name]["max_abs_difference"] < 1e-3
        if task == "segmentation":
            assert metrics[name]["agreement"] > 0.999
        else:
            assert "agreement" not in metrics[name]
