"""Inventory: the real digits sample, a seeded stratified split, byte-identical reruns, FORCE,
and every bad data layout giving one clear error without touching the existing CSV."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kerapipe.errors import DataError
from kerapipe.steps.inventory import run_inventory
from tests.helpers import context

CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def inventory(params_path):
    return run_inventory(context(params_path))


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
    target = context(path).inventory.csv
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

    break_and_check(small_params(), small_data, empty, r"class folder .*one' has no images")
    (small_data / "one" / "notes.txt").write_text("only this")  # no image: the same error
    with pytest.raises(DataError, match=r"class folder .*one' has no images"):
        inventory(small_params())


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_non_image_files_are_skipped_with_one_warning_naming_them(small_params, small_data, caplog):
    """As Keras' image_dataset_from_directory does: a stray notes.txt is not an error."""
    (small_data / "one" / "notes.txt").write_text("hello")
    (small_data / "zero" / "labels.csv").write_text("a,b\n")
    caplog.set_level("WARNING")
    result = inventory(small_params())
    assert result.rows == 10
    table = pd.read_csv(result.csv_path)
    assert not table.filepath.str.endswith((".txt", ".csv")).any()
    (warning,) = warnings_of(caplog)
    assert "skipped 2 file(s) that are not images" in warning
    assert "one/notes.txt" in warning and "zero/labels.csv" in warning


def summary_of(result) -> dict:
    return json.loads(Path(result.csv_path.replace(".csv", ".json")).read_text())


def truncate(path: Path) -> Path:
    """Cut a JPEG inside its pixels: the header reads, the decode fails."""
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\xff\xda") + 30])
    return path


@pytest.fixture
def broken_files(small_data):
    """A truncated JPEG (good header) and a text file named like a PNG (no header)."""
    from PIL import Image

    jpeg = small_data / "zero" / "truncated.jpg"
    with Image.open(next((small_data / "zero").glob("*.png"))) as digit:
        digit.convert("RGB").resize((64, 64)).save(jpeg, quality=90)
    truncate(jpeg)
    text = small_data / "one" / "fake.png"
    text.write_text("this is not a png")
    return jpeg, text


def test_unreadable_images_are_skipped_and_listed_in_inventory_json(
    small_params, broken_files, caplog
):
    """The default (CHECK_IMAGES: decode, BAD_IMAGES: skip): Pillow decodes every image; the
    bad ones are left out with one warning, and inventory.json says which and why."""
    jpeg, text = broken_files
    caplog.set_level("WARNING")
    result = inventory(small_params())
    table = pd.read_csv(result.csv_path)
    assert result.rows == len(table) == 10 and str(jpeg) not in set(table.filepath)
    skipped = {item["filepath"]: item["reason"] for item in summary_of(result)["skipped"]}
    assert set(skipped) == {str(jpeg), str(text)}
    assert skipped[str(jpeg)].startswith("undecodable: image file is truncated")
    assert skipped[str(text)].startswith("not an image")
    (warning,) = warnings_of(caplog)
    assert "skipped 2 image(s) that cannot be read (listed in inventory.json)" in warning
    assert "truncated.jpg" in warning and "fake.png" in warning


def test_bad_images_fail_refuses_them_in_one_message(small_params, small_data):
    def damage(folder):
        (folder / "one" / "fake.png").write_text("this is not a png")

    break_and_check(
        small_params(**{"INVENTORY.BAD_IMAGES": "fail"}),
        small_data,
        damage,
        r"1 image\(s\) cannot be read: .*one/fake\.png \(not an image.*BAD_IMAGES: skip",
    )


def test_check_images_header_and_names_look_less_deep(small_params, broken_files):
    jpeg, text = broken_files
    header = inventory(small_params(**{"INVENTORY.CHECK_IMAGES": "header"}))
    assert header.rows == 11  # the truncated JPEG's header reads: kept
    assert [item["filepath"] for item in summary_of(header)["skipped"]] == [str(text)]
    names = inventory(small_params(**{"INVENTORY.CHECK_IMAGES": "names"}))
    assert names.rows == 12 and summary_of(names)["skipped"] == []


def test_images_over_the_pixel_limit_are_refused_from_their_header(small_params, small_data):
    from PIL import Image

    big = small_data / "zero" / "big.png"
    Image.new("L", (40, 40)).save(big)  # 1,600 pixels; the digits have 64
    result = inventory(small_params(**{"PIPELINE.MAX_IMAGE_PIXELS": 1000}))
    assert result.rows == 10
    (item,) = summary_of(result)["skipped"]
    assert item["filepath"] == str(big)
    assert item["reason"] == (
        "too large: 40x40 is 1600 pixels, over PIPELINE.MAX_IMAGE_PIXELS (1000)"
    )
    with pytest.raises(DataError, match=r"big\.png \(too large: .*PIPELINE\.MAX_IMAGE_PIXELS"):
        inventory(
            small_params(**{"PIPELINE.MAX_IMAGE_PIXELS": 1000, "INVENTORY.BAD_IMAGES": "fail"})
        )


def validate(path):
    return subprocess.run(
        [sys.executable, "-m", "kerapipe.cli", "validate", "--params", str(path)],
        capture_output=True,
        text=True,
    )


def test_validate_reads_headers_and_follows_bad_images(small_params, small_data):
    """`kerapipe validate` reads every header: with BAD_IMAGES: skip it warns and counts the
    images the inventory will keep; with fail it fails as the inventory will."""
    (small_data / "zero" / "broken.png").write_bytes(b"this is not a png")
    (small_data / "zero" / "notes.txt").write_text("hello")
    result = validate(small_params())
    assert result.returncode == 0, result.stderr
    assert "10 training examples" in result.stdout
    assert "skipped 1 image(s) that cannot be read" in result.stderr
    assert "broken.png" in result.stderr and "notes.txt" in result.stderr
    result = validate(small_params(**{"INVENTORY.BAD_IMAGES": "fail"}))
    assert result.returncode == 1
    assert "1 image(s) cannot be read: " in result.stderr and "broken.png" in result.stderr
    assert "Traceback" not in result.stderr


def test_too_few_images_to_stratify(small_params):
    """1 validation image for 2 classes: one of each class instead; no image left to train
    on for a class: refused."""
    table = pd.read_csv(inventory(small_params(**{"INVENTORY.VALIDATION_SPLIT": 0.1})).csv_path)
    assert table[table.split == "validation"].label.value_counts().to_dict() == {0: 1, 1: 1}
    with pytest.raises(DataError, match="INVENTORY.VALIDATION_SPLIT: 0.95 of 10 images leaves"):
        inventory(small_params(**{"INVENTORY.VALIDATION_SPLIT": 0.95}))


def test_inventory_does_not_import_tensorflow(make_params):
    _, path = make_params()
    code = (
        "import sys; from kerapipe.cli import main\n"
        "assert main(['inventory', '--params', sys.argv[1]]) == 0, 'inventory failed'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True)
