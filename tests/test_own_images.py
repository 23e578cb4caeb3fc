"""Your own images, by params alone: what the digits sample never shows, each one clear message
before any work or a correct result (issue 23, "Your own images")."""

from __future__ import annotations

import copy
import json
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from kerapipe.config import validate_params
from kerapipe.errors import DataError
from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.validate import validate_pipeline
from kerapipe.tasks.classification.head import classification_scores
from tests.helpers import BIN, context, kerapipe, kill, run, start, wait_for_epoch

SIZES = {"cats": 20, "dogs": 12, "owls": 2}  # the classes of the report


def photos(root: Path, sizes: dict[str, int]) -> Path:
    """Small PNGs in one folder per class (``sizes``: images per class)."""
    rng = np.random.default_rng(0)
    for name, count in sizes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i:02d}.png")
    return root


def own_params(default_params: dict, tmp_path: Path, data: Path, **updates) -> dict:
    """The project's params on ``data``: classes from the folders, as a new user leaves them."""
    params = copy.deepcopy(default_params)
    params["DATA"].update(
        INVENTORY_DATA_DIR=str(data),
        INVENTORY_CSV_DIR=str(tmp_path / "inventory"),
        TRAINING_MODEL_DIR=str(tmp_path / "models"),
        PREDICTION_DATA_DIR=str(data),
        PREDICTION_LABELS=None,
        PREDICTION_OUTPUT_DIR=str(tmp_path / "predictions"),
    )
    params["PIPELINE"]["TASK_PARAMS"] = {}
    params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": [12, 12, 3]}
    for dotted, value in updates.items():
        group, key = dotted.split(".", 1)
        params[group][key] = value
    return params


def test_every_class_gets_a_validation_image(default_params, tmp_path):
    """20, 12 and 2 images with VALIDATION_SPLIT 0.15: a stratified split alone leaves the
    class of two without one; kerapipe gives it one, and the split keeps its size."""
    data = photos(tmp_path / "data", SIZES)
    params = own_params(default_params, tmp_path, data, **{"INVENTORY.VALIDATION_SPLIT": 0.15})
    run_inventory(context(validate_params(params)))
    table = pd.read_csv(tmp_path / "inventory" / "inventory.csv")
    validation = table[table.split == "validation"]
    assert set(validation.class_name) == set(SIZES)
    assert len(validation) == 6  # ceil(34 * 0.15), as scikit-learn sizes it
    assert (table[table.split == "train"].class_name.value_counts() >= 1).all()
    run_inventory(context(validate_params({**params, "INVENTORY": {
        **params["INVENTORY"], "FORCE": True}})))  # fmt: skip
    assert pd.read_csv(tmp_path / "inventory" / "inventory.csv").equals(table)  # seeded


def test_a_split_too_small_to_stratify_validates_one_image_of_each_class(
    default_params, tmp_path, caplog
):
    """10, 2 and 2 images with VALIDATION_SPLIT 0.1: 2 validation images for 3 classes is
    too few to stratify (scikit-learn refuses it): one image of each class instead, with a
    warning; a split that leaves fewer images to train on than classes is refused."""
    data = photos(tmp_path / "data", {"cats": 10, "dogs": 2, "owls": 2})
    params = own_params(default_params, tmp_path, data, **{"INVENTORY.VALIDATION_SPLIT": 0.1})
    validate_pipeline(context(validate_params(params)))
    caplog.set_level("WARNING")
    run_inventory(context(validate_params(params)))
    table = pd.read_csv(tmp_path / "inventory" / "inventory.csv")
    assert table[table.split == "validation"].class_name.value_counts().to_dict() == {
        "cats": 1, "dogs": 1, "owls": 1}  # fmt: skip
    assert set(table[table.split == "train"].class_name) == {"cats", "dogs", "owls"}
    assert "0.1 of 14 images is 2 validation image(s), fewer than the 3 classes" in caplog.text

    params = own_params(default_params, tmp_path, data, **{"INVENTORY.VALIDATION_SPLIT": 0.9})
    params["INVENTORY"]["FORCE"] = True
    with pytest.raises(DataError, match="0.9 of 14 images leaves 1 to train on, fewer than"):
        run_inventory(context(validate_params(params)))
    assert pd.read_csv(tmp_path / "inventory" / "inventory.csv").equals(table)  # kept


def test_a_class_without_a_validation_image_stays_out_of_the_averages(caplog):
    """A class absent from the truth has no F1 to average: macro F1 over the others (0.4 in
    the issue's report, not 0.267), and a warning names it."""
    from kerapipe.tasks.classification.head import warn_unvalidated

    classes = {"cats": 0, "dogs": 1, "owls": 2}
    truth = np.array([0, 0, 1, 1])
    predicted = np.array([0, 1, 1, 0])
    scores = classification_scores(truth, predicted, None, classes)
    assert scores["macro_f1"] == pytest.approx(0.5)
    assert set(scores["f1"]) == {"cats", "dogs"} and scores["support"]["owls"] == 0
    caplog.set_level("WARNING")
    warn_unvalidated(scores, "the validation split")
    assert "1 class(es) have no image in the validation split" in caplog.text
    assert "owls" in caplog.text


def test_validate_catches_a_class_too_small_to_split(default_params, tmp_path):
    data = photos(tmp_path / "data", {"cats": 5, "dogs": 5, "owls": 1})
    params = own_params(default_params, tmp_path, data)
    with pytest.raises(DataError, match=r"1 class\(es\) have fewer than 2 images.*owls \(1\)"):
        validate_pipeline(context(validate_params(params)))
    with pytest.raises(DataError, match="owls"):  # the inventory says the same
        run_inventory(context(validate_params(params)))
    assert not (tmp_path / "inventory").exists()


def test_an_empty_class_folder_is_named_as_such(default_params, tmp_path):
    """Not "NUM_CLASSES is 3 but ... 4 classes": the folder without images is the problem."""
    data = photos(tmp_path / "data", {"cats": 3, "dogs": 3, "owls": 3})
    (data / "birds").mkdir()
    params = own_params(default_params, tmp_path, data)
    params["MODEL"]["MODEL_PARAMS"]["NUM_CLASSES"] = 3
    with pytest.raises(DataError) as caught:
        validate_pipeline(context(validate_params(params)))
    assert "class folder" in str(caught.value) and "birds' has no images" in str(caught.value)
    assert "NUM_CLASSES" not in str(caught.value)


@pytest.mark.e2e
def test_kerapipe_run_checks_every_stage_first_and_leaves_git_alone(default_params, tmp_path):
    """In a fresh git repository with no commit: a missing labels file stops `kerapipe run`
    before the first stage; then it runs to the end, and the user's git index stays empty
    (DVCLive never runs `dvc init` there)."""
    project = tmp_path / "mine"
    data = photos(project / "photos", {"cats": 4, "dogs": 4})
    run(["git", "init", "-q"], project)
    params = own_params(default_params, project, data, **{"TRAINING.NUM_EPOCHS": 1})
    params["DATA"]["PREDICTION_LABELS"] = str(project / "labels.csv")  # not there
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    failed = kerapipe(project, "run")
    assert failed.returncode == 1
    assert "DATA.PREDICTION_LABELS" in failed.stderr and "not found" in failed.stderr
    assert not (project / "inventory").exists()  # nothing ran

    params["DATA"]["PREDICTION_LABELS"] = None
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    done = kerapipe(project, "run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (project / "predictions" / "predictions.csv").is_file()
    assert (project / "dvclive" / "metrics.json").is_file()
    staged = run(["git", "diff", "--cached", "--name-only"], project).stdout
    assert staged == "" and not (project / ".dvc").exists()


def test_labels_are_read_before_kerapipe_run_trains(default_params, tmp_path):
    """Labels naming a class the data does not have are refused before any work."""
    data = photos(tmp_path / "data", {"cats": 3, "dogs": 3})
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,class_name\ncats/cats_00.png,owls\n")
    params = own_params(default_params, tmp_path, data)
    params["DATA"]["PREDICTION_LABELS"] = str(labels)
    with pytest.raises(DataError, match="names classes the model does not know: owls"):
        validate_pipeline(context(validate_params(params)), read_labels=True)


@pytest.mark.e2e
def test_ctrl_c_ends_with_one_line_and_keeps_the_checkpoints(make_params, tmp_path):
    """Ctrl-C during training: one line that says what is kept, no traceback and none of
    the "Exception ignored" lines DVC's git library prints when freed at exit."""
    params, path = make_params({"TRAINING.NUM_EPOCHS": 200})
    assert kerapipe(tmp_path, "inventory", "--params", str(path)).returncode == 0
    process = start([str(BIN / "kerapipe"), "train", "--params", str(path)], tmp_path)
    state = tmp_path / "models" / "digits_cnn" / "checkpoints" / "state.json"
    try:
        wait_for_epoch(state, 1, process)
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:  # never left training for the rest of the suite
            kill(process)
    assert process.returncode == 130, output[-3000:]
    assert "Traceback" not in output and "Exception ignored" not in output
    assert [line for line in output.splitlines() if "interrupted" in line] == [
        "kerapipe train: interrupted. The checkpoints of the epochs completed are kept: rerun "
        "with TRAINING.LOAD_CHECKPOINT: true to continue after the last one."
    ]
    assert json.loads(state.read_text())["epoch"] >= 1


@pytest.mark.e2e
def test_own_images_fine_tuned_by_params_alone(project):
    """From a folder of class folders to a fine-tuned, scored model through `dvc exp run -S`
    alone, never an edit of dvc.yaml: first without labels for the images to predict on
    (DATA.PREDICTION_LABELS=null), then with them."""
    import keras

    photos(project / "photos", {"cats": 12, "dogs": 12})
    photos(project / "to_predict", {"cats": 2, "dogs": 2})
    pd.DataFrame(
        {"filename": [f"{c}/{c}_{i:02d}.png" for c in ("cats", "dogs") for i in range(2)],
         "class_name": ["cats", "cats", "dogs", "dogs"]}
    ).to_csv(project / "labels.csv", index=False)  # fmt: skip
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(project / "pretrained.weights.h5")
    overrides = [
        "DATA.INVENTORY_DATA_DIR=photos",
        "DATA.PREDICTION_DATA_DIR=to_predict",
        "DATA.PREDICTION_LABELS=null",
        "DATA.TRAINING_MODEL_NAME=pets",
        "PIPELINE.TASK_PARAMS.CLASS_NAMES=null",  # the classes: the sub-folders, sorted
        "PIPELINE.TASK_PARAMS.CLASS_LABELS=null",
        "MODEL.MODEL_NAME=mobilenet_v2",
        "MODEL.MODEL_PARAMS.INPUT_SHAPE=[32,32,3]",
        "MODEL.MODEL_PARAMS.NUM_CLASSES=null",  # derived from the classes found
        "++MODEL.MODEL_PARAMS.WEIGHTS=pretrained.weights.h5",  # ++: added (or overridden)
        "TRAINING.NUM_EPOCHS=3",
        "TRAINING.FINE_TUNING={FROZEN_EPOCHS: 2, UNFREEZE: all, LEARNING_RATE_FACTOR: 0.1}",
    ]
    args = ["dvc", "exp", "run", *(part for o in overrides for part in ("-S", o))]
    first = run(args, project)
    assert "Running stage 'train'" in first.stdout
    predictions = pd.read_csv(project / "predictions" / "predictions.csv")
    assert len(predictions) == 4 and set(predictions.class_name) <= {"cats", "dogs"}
    assert not (project / "predictions" / "metrics.json").exists()  # no labels, no scores
    outputs = json.loads((project / "models" / "pets" / "outputs.json").read_text())
    assert outputs["classes"] == {"cats": 0, "dogs": 1}  # the folders, sorted

    scored = run([*args, "-S", "DATA.PREDICTION_LABELS=labels.csv"], project)
    assert "Running stage 'predict'" in scored.stdout
    assert "Stage 'train' didn't change" in scored.stdout  # labels rerun predict alone
    held_out = json.loads((project / "predictions" / "metrics.json").read_text())["held_out"]
    assert held_out["images"] == 4 and set(held_out["f1"]) == {"cats", "dogs"}
