"""Inventory: the real digits sample, a seeded stratified split, byte-identical reruns, FORCE,
and every bad data layout giving one clear error without touching the existing CSV."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kerapipe.config import load_params
from kerapipe.errors import DataError
from kerapipe.inventory import csv_path, run_inventory

CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def inventory(params_path):
    return run_inventory(load_params(params_path))


def test_writes_a_stratified_seeded_split(make_params, digits):
    params, path = make_params()
    result = inventory(path)
    table = pd.read_csv(result.csv_path)
    assert len(table) == result.rows == 1617
    assert list(table.columns) == ["filepath", "class_name", "label", "split"]
    assert table.filepath.is_monotonic_increasing
    share = (table.split == "validation").groupby(table.class_name).mean()
    assert share.between(0.15, 0.25).all()  # every class split about 80/20
    assert (table.label == table.class_name.map(CLASSES.index)).all()
    summary = json.loads(Path(result.csv_path.replace(".csv", ".json")).read_text())
    assert (
        summary["seed"] == 42
        and summary["rows"]["validation"] == (table.split == "validation").sum()
    )


def test_same_seed_gives_a_byte_identical_csv_and_another_seed_does_not(make_params, tmp_path):
    _, path = make_params({"INVENTORY.FORCE": True})
    first = Path(inventory(path).csv_path).read_bytes()
    second = Path(inventory(path).csv_path).read_bytes()
    assert first == second
    _, path = make_params({"INVENTORY.FORCE": True, "INVENTORY.SEED": 7})
    assert Path(inventory(path).csv_path).read_bytes() != first


def test_random_seed_is_recorded(make_params):
    _, path = make_params({"INVENTORY.SEED": 0})
    result = inventory(path)
    summary = json.loads(Path(result.csv_path.replace(".csv", ".json")).read_text())
    assert summary["seed"] == result.seed > 0


def test_force_false_reuses_and_force_true_rewrites(make_params, caplog):
    _, path = make_params({"INVENTORY.FORCE": False})
    target = inventory(path).csv_path
    with open(target, "a") as handle:
        handle.write("# marker\n")
    caplog.set_level("INFO")
    result = inventory(path)
    assert result.reused and "Reusing the existing inventory" in caplog.text
    assert Path(target).read_text().endswith("# marker\n")
    _, path = make_params({"INVENTORY.FORCE": True})
    assert not inventory(path).reused
    assert "# marker" not in Path(target).read_text()


@pytest.fixture
def small_data(tmp_path, digits):
    """Two classes, five real digit images each, in a folder the test may break."""
    root = tmp_path / "small"
    for name in ("zero", "one"):
        (root / name).mkdir(parents=True)
        for png in sorted((digits / "train" / name).glob("*.png"))[:5]:
            shutil.copy(png, root / name / png.name)
    return root


@pytest.fixture
def small_params(make_params, small_data):
    def make(**updates):
        updates = {
            "PIPELINE.TASK_PARAMS": {"CLASS_NAMES": ["zero", "one"], "CLASS_LABELS": [0, 1]},
            "MODEL.MODEL_PARAMS.NUM_CLASSES": 2,
            "INVENTORY.FORCE": True,
            **updates,
        }
        return make_params(updates, data_dir=small_data)[1]

    return make


def break_and_check(path, small_data, breakage, expected):
    """A good CSV exists; after ``breakage`` inventory fails with ``expected`` and keeps it."""
    target = csv_path(load_params(path))
    inventory(path)
    good = Path(target).read_bytes()
    breakage(small_data)
    with pytest.raises(DataError, match=expected):
        inventory(path)
    assert Path(target).read_bytes() == good


def test_missing_data_folder(small_params, small_data):
    break_and_check(
        small_params(),
        small_data,
        lambda d: shutil.rmtree(d),
        r"INVENTORY_DATA_DIR: folder .* not found",
    )


def test_missing_class_folder(small_params, small_data):
    break_and_check(
        small_params(),
        small_data,
        lambda d: shutil.rmtree(d / "one"),
        r"no folder for class\(es\) one",
    )


def test_empty_class_folder(small_params, small_data):
    def empty(d):
        for png in (d / "one").iterdir():
            png.unlink()

    break_and_check(small_params(), small_data, empty, r"class folder .*one' has no files")


def test_non_image_file_in_a_class_folder(small_params, small_data):
    break_and_check(
        small_params(),
        small_data,
        lambda d: (d / "one" / "notes.txt").write_text("hello"),
        r"1 file\(s\) are not images .*notes.txt",
    )


def test_image_that_cannot_be_decoded_is_named_by_validate(small_params, small_data):
    """Inventory checks names only (speed); `kerapipe validate` reads the contents too, and
    training names any image it cannot decode (tests/test_train_predict.py)."""
    path = small_params()
    (small_data / "zero" / "broken.png").write_bytes(b"this is not a png")
    assert inventory(path).rows == 11
    result = subprocess.run(
        [sys.executable, "-m", "kerapipe.cli", "validate", "--params", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "1 image(s) cannot be decoded" in result.stderr and "broken.png" in result.stderr


def test_too_few_images_to_stratify(small_params):
    with pytest.raises(DataError, match="INVENTORY.VALIDATION_SPLIT: cannot split 10 images"):
        inventory(small_params(**{"INVENTORY.VALIDATION_SPLIT": 0.1}))


def test_inventory_does_not_import_tensorflow(make_params):
    _, path = make_params()
    code = (
        "import sys; from kerapipe.cli import main; main(['inventory', '--params', sys.argv[1]]);"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True)
