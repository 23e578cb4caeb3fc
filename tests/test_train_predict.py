"""Training and prediction with real TensorFlow on the real digits sample (a few epochs)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kerapipe.config import load_params
from kerapipe.errors import ConfigError, DataError
from kerapipe.inventory_file import read_inventory
from kerapipe.models.base import Head, model_builder
from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.predict import run_prediction
from kerapipe.steps.train import run_training
from kerapipe.tasks.base import get_task
from tests.helpers import context


def params_file(make_params, **updates):
    return load_params(make_params({"TRAINING.NUM_EPOCHS": 2, **updates})[1])


@pytest.fixture
def trained(make_params):
    params = params_file(make_params)
    run_inventory(context(params))
    return params, run_training(context(params))


def test_training_writes_model_log_checkpoints_and_run_info(trained):
    params, result = trained
    model_path = Path(result.model_path)
    run_dir = model_path.parent
    assert model_path.name == "model.keras" and model_path.is_file()
    log = pd.read_csv(run_dir / "training_log.csv")
    assert list(log.epoch) == [0, 1] and {"loss", "val_loss", "val_accuracy"} <= set(log.columns)
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2 and state["last"] == "epoch_0002.keras"
    assert (run_dir / "checkpoints" / state["last"]).is_file()
    assert (run_dir / "checkpoints" / state["best"]).is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.keras")) == sorted(
        {"epoch_0001.keras", state["last"], state["best"]}
    )  # the last two epochs and the best are kept (a fallback if the last is damaged)
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["seed"] == 42 and "keras" in info["packages"] and info["devices"]
    assert info["precision_policy"] == "float32" and info["replicas"] == 1
    assert result.history["val_accuracy"][-1] > 0.5  # two epochs already learn the digits


def test_each_epochs_validation_covers_the_whole_validation_split_once(trained):
    """Training runs 32 validation batches per compiled call (STEPS_PER_EXECUTION: auto);
    the last epoch's validation metrics must still be those of exactly one pass over every
    validation image (11 batches: one call that ends where the data does)."""
    import keras

    params, result = trained
    table = read_inventory(context(params).inventory)
    val_rows = table[table.split == "validation"]
    data = get_task(params).data.dataset(val_rows, params.TRAINING.BATCH_SIZE, shuffle_seed=None)
    model = keras.saving.load_model(result.model_path)
    metrics = model.evaluate(data, return_dict=True, verbose=0)
    assert metrics["loss"] == pytest.approx(result.history["val_loss"][-1], rel=1e-4)
    assert metrics["accuracy"] == pytest.approx(result.history["val_accuracy"][-1], abs=1e-6)


def test_steps_per_execution_changes_no_update(trained, make_params):
    """32 batches per call (auto, 41 training batches: a call of 32, then 9) or 7 (the last
    call of 6) give the same epochs, metrics and weights as one batch per call."""
    import keras

    _, result = trained
    saved = keras.saving.load_model(result.model_path)
    assert saved.steps_per_execution == 1  # predicting with it traces the model once
    weights = saved.get_weights()
    for steps in (1, 7):
        updates = {"TRAINING.STEPS_PER_EXECUTION": steps, "DATA.TRAINING_MODEL_NAME": f"s{steps}"}
        again = run_training(context(params_file(make_params, **updates)))
        assert again.history == result.history, steps
        theirs = keras.saving.load_model(again.model_path).get_weights()
        for ours, other in zip(weights, theirs, strict=True):
            np.testing.assert_array_equal(ours, other)


def test_prediction_writes_one_row_per_image_in_a_stable_order(trained, digits):
    params, _ = trained
    result = run_prediction(context(params))
    table = pd.read_csv(result.csv_path)
    images = sorted((digits / "unlabelled").glob("*.png"))
    assert len(table) == result.rows == len(images)
    assert [p.split("/")[-1] for p in table.filepath] == [p.name for p in images]
    probabilities = table.filter(like="prob_")
    assert list(probabilities.columns) == [
        f"prob_{n}" for n in params.PIPELINE.TASK_PARAMS["CLASS_NAMES"]
    ]
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert set(table.class_name) <= set(params.PIPELINE.TASK_PARAMS["CLASS_NAMES"])
    names = params.PIPELINE.TASK_PARAMS["CLASS_NAMES"]
    assert (table.class_name == table.label.map(lambda i: names[i])).all()


def test_force_false_keeps_an_existing_model(trained, caplog):
    params, result = trained
    before = Path(result.model_path).stat().st_mtime_ns
    caplog.set_level("INFO")
    again = run_training(context(params))
    assert again.skipped and "Keeping the existing model" in caplog.text
    assert Path(result.model_path).stat().st_mtime_ns == before


@pytest.mark.parametrize("model_format", ["h5", "tf"])
def test_other_formats_train_save_and_predict(make_params, model_format):
    params = params_file(
        make_params, **{"DATA.TRAINING_MODEL_FORMAT": model_format, "TRAINING.NUM_EPOCHS": 1}
    )
    run_inventory(context(params))
    result = run_training(context(params))
    model_path = Path(result.model_path)
    assert model_path.name == f"model.{model_format}"
    assert model_path.is_dir() if model_format == "tf" else model_path.is_file()
    table = pd.read_csv(run_prediction(context(params)).csv_path)
    assert len(table) == 180


def test_missing_initial_weights_fails_before_any_work(make_params, tmp_path):
    from kerapipe.steps.validate import validate_pipeline

    run_inventory(context(params_file(make_params)))
    params = params_file(make_params, **{"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS": "nowhere.keras"})
    with pytest.raises(ConfigError, match="INITIAL_WEIGHTS: file 'nowhere.keras' not found"):
        run_training(context(params))
    assert not (tmp_path / "models").exists()  # no checkpoint folder, no log, nothing
    with pytest.raises(ConfigError, match="INITIAL_WEIGHTS: file 'nowhere.keras' not found"):
        validate_pipeline(context(params))


def test_xception_builds_and_runs_without_weights(make_params):
    params = params_file(
        make_params,
        **{
            "MODEL.MODEL_NAME": "xception",
            "MODEL.MODEL_PARAMS": {"INPUT_SHAPE": [71, 71, 1], "NUM_CLASSES": 10},
        },
    )
    model = model_builder(params).build(Head(10, "softmax"))
    output = model(np.zeros((2, 71, 71, 1), dtype="float32"))
    assert output.shape == (2, 10)


def test_truncated_image_fails_training_with_a_clear_message(make_params, digits, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(digits / "train", data)
    victim = sorted((data / "three").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:30])  # a PNG header, then nothing
    # The inventory's default check would skip it; with names only, training must name it.
    params = params_file(
        make_params, **{"TRAINING.NUM_EPOCHS": 1, "INVENTORY.CHECK_IMAGES": "names"}
    )
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["DATA"]["INVENTORY_DATA_DIR"] = str(data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(tmp_path / "params.yaml")
    run_inventory(context(params))
    with pytest.raises(
        DataError, match=r"1 image\(s\) in the inventory cannot be decoded: .*three/"
    ):
        run_training(context(params))
