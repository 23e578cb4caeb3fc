"""Evaluation you can read (classification, on the real digits sample): classes found in the
data folder and recorded with the inventory and the model; per-class scores, ROC and
precision-recall curves, the validation predictions and the worst mistakes from one pass;
held-out scores of the predictions against a labels file; and class weights.

One model is trained per module (two epochs, classes left out of the params, balanced class
weights, one damaged image among those to predict); the tests read what that run wrote."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from sklearn.utils.class_weight import compute_class_weight

from kerapipe.checks import check_params
from kerapipe.config import load_params, validate_params
from kerapipe.errors import ConfigError, DataError, ModelError
from kerapipe.inventory_file import read_inventory
from kerapipe.sample_data import CLASS_NAMES, write_digits
from kerapipe.steps.inventory import count_data, run_inventory
from kerapipe.steps.predict import run_prediction
from kerapipe.steps.train import run_training
from kerapipe.tasks.base import get_task
from tests.helpers import REPO, context, train_project

SORTED = sorted(CLASS_NAMES)  # the classes as found: sub-folders, sorted (eight, five, ...)


def digits_params(root: Path, digits: Path, **updates) -> dict:
    """The shipped params pointing into ``root``, with the classes left out."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["DATA"].update(
        INVENTORY_DATA_DIR=str(digits / "train"),
        INVENTORY_CSV_DIR=str(root / "inventory"),
        TRAINING_MODEL_DIR=str(root / "models"),
        PREDICTION_DATA_DIR=str(root / "unlabelled"),
        PREDICTION_OUTPUT_DIR=str(root / "predictions"),
        PREDICTION_LABELS=str(digits / "unlabelled_labels.csv"),
    )
    params["PIPELINE"]["TASK_PARAMS"] = {"LOG_MISTAKES": 5}
    del params["MODEL"]["MODEL_PARAMS"]["NUM_CLASSES"]  # derived from the classes found
    params["TRAINING"].update(NUM_EPOCHS=2, CLASS_WEIGHT="balanced")
    for dotted, value in updates.items():
        *keys, last = dotted.split(".")
        target = params
        for key in keys:
            target = target[key]
        target[last] = value
    return params


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """inventory -> train -> predict once, in its own folder (DVCLive writes ./dvclive)."""
    root = tmp_path_factory.mktemp("evaluation")
    digits = write_digits(root / "digits")
    shutil.copytree(digits / "unlabelled", root / "unlabelled")
    victim = sorted((root / "unlabelled").glob("*.png"))[3]  # one labelled image, damaged
    victim.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return train_project(root, digits_params(root, digits), predict=True)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# --- classes left out: found, recorded, and read back --------------------------------------


def test_classes_left_out_are_the_sorted_sub_folders_recorded_with_inventory_and_model(trained):
    expected = {name: label for label, name in enumerate(SORTED)}
    assert read_json(trained / "inventory/inventory.json")["layout"] == {"classes": expected}
    table = pd.read_csv(trained / "inventory/inventory.csv")
    assert dict(zip(table.class_name, table.label, strict=True)) == expected
    outputs = read_json(trained / "models/digits_cnn/outputs.json")
    assert outputs["outputs"] == SORTED and outputs["classes"] == expected
    assert outputs["input_shape"] == [16, 16, 1]
    assert read_json(trained / "models/digits_cnn/run_info.json")["outputs"] == outputs
    predictions = pd.read_csv(trained / "predictions/predictions.csv")
    assert [c for c in predictions.columns if c.startswith("prob_")] == [
        f"prob_{name}" for name in SORTED
    ]
    ok = predictions[predictions.status == "ok"]
    assert (ok.class_name == ok.label.map(lambda i: SORTED[int(i)])).all()


def test_predict_reads_the_classes_from_the_model_and_refuses_other_names(trained, tmp_path):
    """Named in the params as found, the classes predict the same; named otherwise, predict
    refuses the model (its outputs would be read with the wrong names)."""
    params = yaml.safe_load((trained / "params.yaml").read_text())
    params["DATA"]["PREDICTION_OUTPUT_DIR"] = str(tmp_path / "out")
    params["PIPELINE"]["TASK_PARAMS"] = {"CLASS_NAMES": SORTED}
    run_prediction(context(validate_params(copy.deepcopy(params))))
    again = pd.read_csv(tmp_path / "out/predictions.csv")
    assert again.equals(pd.read_csv(trained / "predictions/predictions.csv"))

    params["PIPELINE"]["TASK_PARAMS"] = {"CLASS_NAMES": CLASS_NAMES}  # zero, one, ...
    with pytest.raises(ModelError, match="trained for other classes") as err:
        run_prediction(context(validate_params(params)))
    assert "outputs" in str(err.value)


@pytest.mark.parametrize(
    ("task_params", "message"),
    [
        ({"CLASS_LABELS": [0, 1]}, "CLASS_LABELS needs CLASS_NAMES"),
        ({"CLASS_NAMES": ["a"]}, "at least 2 items"),
    ],
)
def test_class_params_that_cannot_stand(default_params, task_params, message):
    default_params["PIPELINE"]["TASK_PARAMS"] = task_params
    with pytest.raises(ConfigError, match=message):
        check_params(validate_params(default_params))


def test_names_without_labels_are_labelled_in_order(default_params):
    default_params["PIPELINE"]["TASK_PARAMS"] = {"CLASS_NAMES": ["dog", "cat"]}
    del default_params["MODEL"]["MODEL_PARAMS"]["NUM_CLASSES"]
    task = get_task(check_params(validate_params(default_params)))
    assert task.layout.classes == {"dog": 0, "cat": 1} and task.head.output_head().units == 2


def test_a_found_class_count_above_num_classes_or_one_folder_is_refused(digits, tmp_path):
    params = digits_params(tmp_path, digits, **{"MODEL.MODEL_PARAMS.NUM_CLASSES": 4})
    with pytest.raises(ConfigError, match="has 10 classes .* set NUM_CLASSES to 10"):
        count_data(context(check_params(validate_params(params))))  # what `kerapipe validate` runs
    one = tmp_path / "one"
    shutil.copytree(digits / "train" / "three", one / "three")
    params = digits_params(tmp_path, digits, **{"DATA.INVENTORY_DATA_DIR": str(one)})
    with pytest.raises(DataError, match="holds 1 sub-folder"):
        run_inventory(context(check_params(validate_params(params))))


# --- held-out scores -----------------------------------------------------------------------


def test_predict_scores_itself_against_the_labels_leaving_out_bad_images(trained, digits):
    held_out = read_json(trained / "predictions/metrics.json")["held_out"]
    predictions = pd.read_csv(trained / "predictions/predictions.csv")
    assert held_out["left_out"] == 1 == (predictions.status != "ok").sum()
    assert held_out["images"] == 179 and held_out["unlabelled"] == 0
    assert held_out["labels_without_image"] == 0
    truth = pd.read_csv(digits / "unlabelled_labels.csv")
    predictions["filename"] = predictions.filepath.map(lambda p: Path(p).name)
    merged = predictions[predictions.status == "ok"].merge(truth, on="filename")
    assert held_out["accuracy"] == pytest.approx(
        (merged.class_name_x == merged.class_name_y).mean()
    )
    assert held_out["accuracy"] > 0.6  # two epochs learn the digits
    _, recall, f1, _ = precision_recall_fscore_support(
        merged.class_name_y, merged.class_name_x, labels=SORTED, zero_division=0
    )
    assert held_out["f1"] == pytest.approx(dict(zip(SORTED, f1, strict=True)))
    assert held_out["recall"] == pytest.approx(dict(zip(SORTED, recall, strict=True)))


def test_bad_label_files_are_named(trained, tmp_path):
    params = yaml.safe_load((trained / "params.yaml").read_text())
    params["DATA"]["PREDICTION_OUTPUT_DIR"] = str(tmp_path / "out")
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,class_name\ndigit_0005.png,fiv\n")
    params["DATA"]["PREDICTION_LABELS"] = str(labels)
    with pytest.raises(DataError, match="fiv.*Did you mean 'five'"):
        run_prediction(context(validate_params(copy.deepcopy(params))))
    labels.write_text("name,truth\ndigit_0005.png,five\n")
    with pytest.raises(DataError, match="needs the columns filename and class_name"):
        run_prediction(context(validate_params(copy.deepcopy(params))))
    params["DATA"]["PREDICTION_LABELS"] = str(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="PREDICTION_LABELS: .*missing.csv' not found"):
        run_prediction(context(validate_params(params)))
    assert not (tmp_path / "out").exists()  # refused before any work


# --- what the validation pass shows --------------------------------------------------------


def test_per_class_scores_and_curves_match_the_validation_predictions(trained):
    table = pd.read_csv(trained / "models/digits_cnn/validation_predictions.csv")
    inventory = pd.read_csv(trained / "inventory/inventory.csv")
    assert list(table.filepath) == list(inventory[inventory.split == "validation"].filepath)
    assert (table.correct == (table.class_name == table.predicted_class)).all()
    validation = read_json(trained / "dvclive/metrics.json")["validation"]
    precision, recall, f1, support = precision_recall_fscore_support(
        table.class_name, table.predicted_class, labels=SORTED, zero_division=0
    )
    assert validation["precision"] == pytest.approx(dict(zip(SORTED, precision, strict=True)))
    assert validation["recall"] == pytest.approx(dict(zip(SORTED, recall, strict=True)))
    assert validation["f1"] == pytest.approx(dict(zip(SORTED, f1, strict=True)))
    assert validation["support"] == dict(zip(SORTED, support.tolist(), strict=True))
    assert validation["accuracy"] == pytest.approx(table.correct.mean())
    sklearn = trained / "dvclive/plots/sklearn"
    for name in SORTED:
        positive = (table.class_name == name).astype(int)
        auc = roc_auc_score(positive, table[f"prob_{name}"])
        assert validation["roc_auc"][name] == pytest.approx(auc, abs=1e-5)
        roc = pd.DataFrame(read_json(sklearn / f"roc/{name}.json")["roc"])
        assert np.trapezoid(roc.tpr, roc.fpr) == pytest.approx(auc, abs=1e-5)
        curve = read_json(sklearn / f"precision_recall/{name}.json")["precision_recall"]
        assert {"precision", "recall", "threshold"} <= set(curve[0])
    confusion = read_json(sklearn / "confusion_matrix.json")
    assert len(confusion) == len(table)


def test_the_gallery_shows_the_most_confident_mistakes_first(trained):
    table = pd.read_csv(trained / "models/digits_cnn/validation_predictions.csv")
    wrong = table[~table.correct].sort_values("confidence", ascending=False, kind="stable")
    pictures = sorted((trained / "dvclive/plots/images/mistakes").glob("*.png"))
    assert len(pictures) == min(5, len(wrong)) > 0  # LOG_MISTAKES: 5
    for rank, (picture, row) in enumerate(zip(pictures, wrong.itertuples(), strict=False), 1):
        stem = Path(row.filepath).stem
        expected = f"{rank:02d}_{stem}_{row.class_name}_as_{row.predicted_class}"
        assert picture.name.startswith(expected), (picture.name, expected)
        from PIL import Image

        with Image.open(picture) as image:
            assert image.height >= 128 and image.mode == "RGB"


def test_one_pass_over_the_validation_set_serves_every_score_and_plot(trained, tmp_path):
    """log_evaluation reads the validation dataset once, however many things it logs."""
    import keras
    from dvclive import Live

    params = load_params(trained / "params.yaml")
    task = get_task(params)
    table = read_inventory(context(params).inventory)
    task.layout.adopt(read_json(trained / "inventory/inventory.json")["layout"])
    rows = table[table.split == "validation"].head(40)
    data = task.data.dataset(rows, 16, shuffle_seed=None)
    passes = []

    def counted():
        passes.append(1)
        yield from data

    spec = data.element_spec
    counting = tf.data.Dataset.from_generator(counted, output_signature=spec)
    model = keras.saving.load_model(trained / "models/digits_cnn/model.keras")
    with Live(str(tmp_path / "live"), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        result = task.head.log_evaluation(live, model, rows, counting)
    assert len(passes) == 1 and len(result) == 40


# --- class weights -------------------------------------------------------------------------


def test_balanced_class_weights_follow_the_inventory_counts(trained, caplog):
    params = load_params(trained / "params.yaml")
    task = get_task(params)
    table = read_inventory(context(params).inventory)
    task.layout.adopt(read_json(trained / "inventory/inventory.json")["layout"])
    train_rows = table[table.split == "train"]
    weights = task.data.class_weights(params.TRAINING.CLASS_WEIGHT, train_rows)
    labels = train_rows.label.to_numpy()
    expected = compute_class_weight("balanced", classes=np.unique(labels), y=labels)
    assert weights == pytest.approx(dict(enumerate(expected)))
    settings = read_json(trained / "models/digits_cnn/run_info.json")["settings"]
    assert settings["TRAINING.CLASS_WEIGHT"] == "balanced"  # part of the weights fingerprint


def test_explicit_class_weights_reach_fit(make_params, monkeypatch):
    import keras

    seen = {}
    fit = keras.Model.fit

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    params = load_params(
        make_params({"TRAINING.NUM_EPOCHS": 1, "TRAINING.CLASS_WEIGHT": {"three": 3, "one": 0.5}})[
            1
        ]
    )
    run_inventory(context(params))
    run_training(context(params))
    expected = dict.fromkeys(range(10), 1.0) | {3: 3.0, 1: 0.5}
    assert seen["class_weight"] == expected


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        ({"thre": 2.0}, "no class named 'thre'. Did you mean 'three'?"),
        ({"three": 0}, "weights must be numbers > 0"),
        ("inverse", "CLASS_WEIGHT"),
    ],
)
def test_bad_class_weights_are_refused_at_the_door(default_params, weight, message):
    default_params["TRAINING"]["CLASS_WEIGHT"] = weight
    with pytest.raises(ConfigError, match=message):
        check_params(validate_params(default_params))


def test_class_weights_of_classes_found_are_checked_by_validate(digits, tmp_path):
    params = digits_params(tmp_path, digits, **{"TRAINING.CLASS_WEIGHT": {"sevn": 2}})
    with pytest.raises(ConfigError, match="Did you mean 'seven'"):
        count_data(context(check_params(validate_params(params))))


def test_class_weights_are_for_classification_only(tmp_path):
    from tests.helpers_tasks import task_params, validated

    params = task_params("regression", tmp_path, {"TRAINING.CLASS_WEIGHT": "balanced"})
    with pytest.raises(ConfigError, match="class weights are for classification"):
        validated(params)
