"""A bad file never costs a finished training or a whole prediction run: real files (truncated,
too large, not images, dangling links), real TensorFlow, one model trained once for the module
on the digits sample with bad files mixed in."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from kerapipe.config import load_params
from kerapipe.errors import DataError
from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.predict import run_prediction
from kerapipe.steps.train import run_training
from tests.helpers import BIN, REPO, context, run

GOOD = 12  # digits copied into the prediction folders


def truncate(path: Path) -> Path:
    """Cut a JPEG inside its pixels: its header reads, its decode fails."""
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\xff\xda") + 30])
    return path


def bad_jpeg(path: Path, digit: Path) -> Path:
    with Image.open(digit) as image:
        image.convert("RGB").resize((24, 24)).save(path, quality=90)
    return truncate(path)


class Workspace:
    """A folder with params files that point into it, written on demand."""

    def __init__(self, root: Path, digits: Path) -> None:
        self.root, self.digits = root, digits
        self.base = yaml.safe_load((REPO / "params.yaml").read_text())
        self.base["DATA"].update(
            INVENTORY_CSV_DIR=str(root / "inventory"),
            TRAINING_MODEL_DIR=str(root / "models"),
            PREDICTION_DATA_DIR=str(digits / "unlabelled"),
            PREDICTION_OUTPUT_DIR=str(root / "predictions"),
            PREDICTION_LABELS=None,
        )
        self.base["TRAINING"].update(NUM_EPOCHS=1)

    def params(self, name: str, **updates) -> Path:
        data = json.loads(json.dumps(self.base))
        for dotted, value in updates.items():
            group, key = dotted.split(".")
            data[group][key] = value
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


def in_folder(folder: Path, work):
    """Run ``work()`` with ``folder`` as the working directory (DVCLive writes there)."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        return work()
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, digits) -> Workspace:
    """The digits training data with bad files mixed in (a truncated JPEG, a text file named
    like a PNG, a notes.txt), inventoried and trained on with the default params: the bad
    files are skipped and training finishes."""
    root = tmp_path_factory.mktemp("bad_files")
    data = Path(shutil.copytree(digits / "train", root / "train"))
    bad_jpeg(data / "three" / "truncated.jpg", next((data / "three").glob("*.png")))
    (data / "one" / "fake.png").write_text("not a png")
    (data / "five" / "notes.txt").write_text("scanned in 1998")
    space = Workspace(root, digits)
    params = load_params(space.params("default", **{"DATA.INVENTORY_DATA_DIR": str(data)}))
    space.inventory = in_folder(root, lambda: run_inventory(context(params)))
    space.training = in_folder(root, lambda: run_training(context(params)))
    space.data = data
    return space


def test_training_finishes_with_bad_files_in_the_data(workspace):
    """CHECK_IMAGES: decode and BAD_IMAGES: skip (the defaults) leave them out, listed."""
    summary = json.loads(Path(workspace.inventory.csv_path).with_suffix(".json").read_text())
    skipped = sorted(Path(item["filepath"]).name for item in summary["skipped"])
    assert skipped == ["fake.png", "truncated.jpg"]
    assert workspace.inventory.rows == 1617
    model_path = Path(workspace.training.model_path)
    assert model_path.is_file()
    assert len(pd.read_csv(model_path.parent / "training_log.csv")) == 1


def test_names_only_check_then_an_unreadable_header_stops_training_before_any_epoch(workspace):
    """With CHECK_IMAGES: names the inventory keeps every image; the dataset reads every
    header before the first epoch, and names the file and the fix."""
    path = workspace.params(
        "names",
        **{
            "DATA.INVENTORY_DATA_DIR": str(workspace.data),
            "DATA.TRAINING_MODEL_NAME": "names_only",
            "INVENTORY.CHECK_IMAGES": "names",
            "INVENTORY.FORCE": True,
        },
    )
    params = load_params(path)
    assert in_folder(workspace.root, lambda: run_inventory(context(params))).rows == 1619
    with pytest.raises(DataError) as err:
        in_folder(workspace.root, lambda: run_training(context(params)))
    message = str(err.value)
    assert "1 image(s) in the inventory cannot be decoded: " in message
    assert "one/fake.png (not an image" in message
    assert "INVENTORY.CHECK_IMAGES: decode" in message and "BAD_IMAGES: skip" in message
    run_dir = workspace.root / "models" / "names_only"
    assert not list(run_dir.rglob("epoch_*.keras")) and not (run_dir / "model.keras").exists()


def test_names_only_check_then_a_truncated_image_is_named_when_its_decode_fails(
    workspace, tmp_path
):
    """A header that reads but pixels that do not: training stops at that image with one
    message naming it (the fallback check after TensorFlow's decode error)."""
    data = tmp_path / "train"
    for name in ("zero", "one"):
        (data / name).mkdir(parents=True)
        for png in sorted((workspace.data / name).glob("digit_*.png"))[:20]:
            shutil.copy(png, data / name)
    bad_jpeg(data / "one" / "truncated.jpg", next((data / "one").glob("*.png")))
    path = workspace.params(
        "truncated",
        **{
            "DATA.INVENTORY_DATA_DIR": str(data),
            "DATA.TRAINING_MODEL_NAME": "truncated",
            "INVENTORY.CHECK_IMAGES": "names",
            "INVENTORY.FORCE": True,
            "PIPELINE.TASK_PARAMS": {"CLASS_NAMES": ["zero", "one"], "CLASS_LABELS": [0, 1]},
        },
    )
    params = load_params(path)
    in_folder(workspace.root, lambda: run_inventory(context(params)))
    with pytest.raises(DataError, match=r"1 image\(s\) in the inventory cannot be decoded: .*"):
        in_folder(workspace.root, lambda: run_training(context(params)))


@pytest.fixture(scope="module")
def prediction_folders(workspace) -> tuple[Path, Path]:
    """``clean``: good images only, in formats the default 1-channel input used to choke on
    (CMYK JPEG, palette BMP, GIF) and PNG digits; ``mixed``: the same plus bad files."""
    clean, mixed = workspace.root / "clean", workspace.root / "mixed"
    digits = sorted((workspace.digits / "unlabelled").glob("*.png"))[:GOOD]
    for folder in (clean, mixed):
        (folder / "sub").mkdir(parents=True)
        for digit in digits:
            shutil.copy(digit, folder / digit.name)
        with Image.open(digits[0]) as image:
            rgb = image.convert("RGB").resize((24, 24))
        rgb.convert("CMYK").save(folder / "sub" / "cmyk.jpg", quality=95)
        rgb.quantize(16).save(folder / "sub" / "palette.bmp")
        rgb.quantize(16).save(folder / "sub" / "first.gif")
    bad_jpeg(mixed / "truncated.jpg", digits[1])
    Image.new("L", (40, 40), 200).save(mixed / "big.png")  # over the limit below; the rest 24x24
    os.symlink(mixed / "nowhere.png", mixed / "gone.png")
    (mixed / "sub" / "fake.png").write_text("not a png")
    (mixed / "notes.txt").write_text("to predict")
    return clean, mixed


EXPECTED_STATUS = {
    "truncated.jpg": "undecodable: image file is truncated",
    "big.png": "too large: 40x40 is 1600 pixels, over PIPELINE.MAX_IMAGE_PIXELS (1000)",
    "gone.png": "unreadable: no such file or directory",
    "fake.png": "not an image",
}


def test_predict_gives_every_image_a_row_and_names_the_bad_ones(workspace, prediction_folders):
    """`kerapipe predict` as a user runs it: exit 0, one row per image with its status, the
    good rows exactly those of a run without the bad files, no row for notes.txt."""
    clean, mixed = prediction_folders
    common = {"DATA.INVENTORY_DATA_DIR": str(workspace.data), "PIPELINE.MAX_IMAGE_PIXELS": 1000}
    clean_params = workspace.params(
        "clean",
        **common,
        **{
            "DATA.PREDICTION_DATA_DIR": str(clean),
            "DATA.PREDICTION_OUTPUT_DIR": str(clean) + "_out",
        },
    )
    mixed_params = workspace.params(
        "mixed",
        **common,
        **{
            "DATA.PREDICTION_DATA_DIR": str(mixed),
            "DATA.PREDICTION_OUTPUT_DIR": str(mixed) + "_out",
        },
    )
    result = run([str(BIN / "kerapipe"), "predict", "--params", str(mixed_params)], workspace.root)
    assert "Traceback" not in result.stderr
    assert "4 of 19 image(s) could not be predicted" in result.stderr
    assert "skipped 1 file(s) that are not images" in result.stderr and "notes.txt" in result.stderr
    table = pd.read_csv(Path(str(mixed) + "_out") / "predictions.csv", keep_default_na=False)
    names = [Path(p).name for p in table.filepath]
    assert len(table) == GOOD + 3 + 4 and "notes.txt" not in names
    assert table.filepath.tolist() == sorted(table.filepath)
    status = dict(zip(names, table.status, strict=True))
    for name, expected in EXPECTED_STATUS.items():
        assert status.pop(name).startswith(expected), name
    assert set(status.values()) == {"ok"}  # CMYK JPEG, palette BMP and GIF included
    bad = table[table.status != "ok"]
    assert (bad.class_name == "").all() and (bad.label == "").all()
    assert (bad.filter(like="prob_") == "").all().all()

    clean_result = in_folder(workspace.root, lambda: run_prediction(context(clean_params)))
    expected = pd.read_csv(clean_result.csv_path, dtype=str, keep_default_na=False)
    good = pd.read_csv(Path(str(mixed) + "_out") / "predictions.csv", dtype=str)
    good = good[good.status == "ok"].reset_index(drop=True)
    for frame, folder in ((expected, clean), (good, mixed)):
        frame["filepath"] = [Path(p).relative_to(folder).as_posix() for p in frame.filepath]
    pd.testing.assert_frame_equal(good, expected)  # byte for byte, as strings


def test_prediction_dataset_can_drop_undecodable_images_and_keep_the_order(prediction_folders):
    import tensorflow as tf

    from kerapipe.datasets import prediction_dataset
    from kerapipe.image_probe import probe_images

    _, mixed = prediction_folders
    paths = sorted(str(p) for p in mixed.rglob("*") if p.suffix != ".txt" and p.name != "sub")
    infos = probe_images(paths, max_pixels=1000)
    refused = {Path(info.path).name for info in infos if not info.ok}
    assert refused == {"big.png", "gone.png", "fake.png"}
    with pytest.raises(tf.errors.InvalidArgumentError):  # the fast pass stops at it
        list(prediction_dataset(infos, (16, 16, 1), batch_size=4))
    batches = list(prediction_dataset(infos, (16, 16, 1), batch_size=4, skip_errors=True))
    indices = np.concatenate([i.numpy() for i, _ in batches]).tolist()
    expected = [i for i, info in enumerate(infos) if info.ok and "truncated" not in info.path]
    assert indices == expected  # in order, the truncated JPEG dropped, batches still full
    assert [len(i) for i, _ in batches] == [4] * (len(expected) // 4) + (
        [len(expected) % 4] if len(expected) % 4 else []
    )
