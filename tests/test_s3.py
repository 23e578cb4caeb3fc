"""Every folder on S3: a real S3-compatible server on 127.0.0.1 (moto's server mode, started
once per session in tests/conftest.py), the real s3fs client, and kerapipe's own I/O as it is.

Inventory, training (killed mid-run, then resumed from the checkpoints on S3) and prediction
of classification and segmentation, with credentials the standard way; no secret reaches any
file written or any line printed; a missing bucket, missing credentials and a bad URL end in
one clear message."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kerapipe.checks import load_checked_params
from kerapipe.sample_data import write_shapes
from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.predict import run_prediction
from kerapipe.steps.train import run_training
from tests.conftest import PLANTED_SECRET, S3
from tests.helpers import BIN, REPO, context, kerapipe, kill, start, tool_env

pytestmark = pytest.mark.e2e
EPOCHS = 4


def on_s3(params: dict, s3: S3, cache: Path, **folders: str) -> dict:
    """``params`` with every folder on S3 (``folders`` by key, as paths in the bucket) and
    the remote cache in ``cache``. The held-out labels are left out unless given (they are
    on the prediction images' source)."""
    params = copy.deepcopy(params)
    data = params["DATA"]
    data["PREDICTION_LABELS"] = None
    for key, path in folders.items():
        data[key] = s3.url(path)
        if key.endswith("_DIR"):
            data[key.replace("_DIR", "_SOURCE")] = "s3"
    data["REMOTE_CACHE_DIR"] = str(cache)
    return params


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


def one_clear_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for text in expected:
        assert text in result.stderr, result.stderr[-3000:]


def remote_state(s3: S3, run: str) -> dict | None:
    try:
        return json.loads(s3.fs.cat(f"{run}/checkpoints/state.json"))
    except FileNotFoundError:
        return None


def wait_for_epoch(s3: S3, run: str, epoch: int, process, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()[-3000:]
        s3.fs.invalidate_cache()
        state = remote_state(s3, run)
        if state and state["epoch"] >= epoch:
            return state
        time.sleep(0.1)
    raise AssertionError(f"no epoch {epoch} on S3 within {timeout}s")


def test_classification_with_every_folder_on_s3(s3, digits, default_params, tmp_path):
    """inventory -> train (killed, then resumed from S3) -> predict, all folders on S3, the
    credentials and endpoint in the environment only; then no file and no output holds the
    secret key."""
    s3.upload(digits / "train", "digits", "train")
    s3.upload(digits / "unlabelled", "digits", "unlabelled")
    s3.fs.pipe(
        s3.url("digits", "unlabelled_labels.csv"), (digits / "unlabelled_labels.csv").read_bytes()
    )
    cache = tmp_path / "cache"
    params = on_s3(
        default_params,
        s3,
        cache,
        INVENTORY_DATA_DIR="digits/train",
        INVENTORY_CSV_DIR="inventory",
        TRAINING_MODEL_DIR="models",
        PREDICTION_DATA_DIR="digits/unlabelled",
        PREDICTION_OUTPUT_DIR="predictions",
        PREDICTION_LABELS="digits/unlabelled_labels.csv",
    )
    params["TRAINING"]["NUM_EPOCHS"] = EPOCHS
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    printed = [ok(kerapipe(tmp_path, "validate", "--params", str(path)))]
    printed.append(ok(kerapipe(tmp_path, "inventory", "--params", str(path))))
    assert "Found credentials" not in printed[-1]  # the S3 client's chatter: only with -v
    table = pd.read_csv(s3.fs.open(s3.url("inventory", "inventory.csv")))
    assert len(table) == 1617 and table.filepath.str.startswith(s3.url("digits/train/")).all()

    run = s3.url("models", "digits_cnn")
    training = start([str(BIN / "kerapipe"), "train", "--params", str(path)], tmp_path)
    wait_for_epoch(s3, run, 1, training)
    time.sleep(0.7)  # somewhere inside the next epoch, or its uploads
    kill(training)
    printed.append(training.stdout.read())
    s3.fs.invalidate_cache()
    killed = remote_state(s3, run)
    on_bucket = set(s3.fs.ls(f"{run}/checkpoints", detail=False))
    for name in {killed["last"], killed["best"]}:  # state.json names only complete uploads
        assert f"{s3.bucket}/models/digits_cnn/checkpoints/{name}" in on_bucket
    assert not s3.fs.exists(f"{run}/model.keras")

    params["TRAINING"]["LOAD_CHECKPOINT"] = True
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    resumed = ok(kerapipe(tmp_path, "train", "--params", str(path)))
    printed.append(resumed)
    assert f"resuming after epoch {killed['epoch']}" in resumed
    s3.fs.invalidate_cache()
    log = pd.read_csv(s3.fs.open(f"{run}/training_log.csv"))
    assert list(log.epoch) == list(range(EPOCHS))  # nothing lost or doubled
    info = json.loads(s3.fs.cat(f"{run}/run_info.json"))
    assert info["resumed_after_epoch"] == killed["epoch"] and info["final_epochs"] == EPOCHS
    assert remote_state(s3, run)["epoch"] == EPOCHS

    printed.append(ok(kerapipe(tmp_path, "predict", "-v", "--params", str(path))))
    predictions = pd.read_csv(s3.fs.open(s3.url("predictions", "predictions.csv")))
    assert len(predictions) == 180 and (predictions.status == "ok").all()
    assert predictions.filepath.str.startswith(s3.url("digits/unlabelled/")).all()
    held_out = json.loads(s3.fs.cat(s3.url("predictions", "metrics.json")))["held_out"]
    assert held_out["images"] == 180 and 0.0 <= held_out["accuracy"] <= 1.0
    assert (tmp_path / "dvclive" / "params.yaml").is_file()
    assert not list((cache / "work").iterdir()), "a scratch folder was left behind"

    where = [f"printed output {i}" for i, text in enumerate(printed) if PLANTED_SECRET in text]
    for file in tmp_path.rglob("*"):
        if file.is_file() and PLANTED_SECRET.encode() in file.read_bytes():
            where.append(str(file))
    for key in s3.fs.find(s3.bucket):
        if PLANTED_SECRET.encode() in s3.fs.cat(key):
            where.append(f"s3://{key}")
    assert not where, f"the secret key leaked into {where}"


def test_segmentation_masks_on_s3_with_the_endpoint_in_storage_options(s3, tmp_path, monkeypatch):
    """Segmentation in-process: images, masks, inventory, model, predicted masks and index on
    S3, the endpoint given by DATA.STORAGE_OPTIONS instead of the environment."""
    shapes = write_shapes(tmp_path / "shapes", count=24, held_out=6)
    s3.upload(shapes / "train", "shapes", "train")
    s3.upload(shapes / "unlabelled", "shapes", "unlabelled", "sub")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    base = yaml.safe_load((REPO / "params" / "segmentation.yaml").read_text())
    params = on_s3(
        base,
        s3,
        tmp_path / "cache",
        INVENTORY_DATA_DIR="shapes/train",
        INVENTORY_CSV_DIR="inventory",
        TRAINING_MODEL_DIR="models",
        PREDICTION_DATA_DIR="shapes/unlabelled",
        PREDICTION_OUTPUT_DIR="predictions",
    )
    params["DATA"]["STORAGE_OPTIONS"] = {"s3": {"endpoint_url": s3.endpoint}}
    params["TRAINING"]["NUM_EPOCHS"] = 1
    params["PIPELINE"]["TASK_PARAMS"]["LOG_IMAGES"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    checked = load_checked_params(path)
    run_inventory(context(checked))
    result = run_training(context(checked))
    assert result.model_path == s3.url("models", "shapes_unet", "model.keras")
    stale = s3.url("predictions", "masks", "sub", "old_0000.png")
    s3.fs.pipe(stale, b"a mask of an image no longer predicted")
    out = run_prediction(context(checked))
    s3.fs.invalidate_cache()
    table = pd.read_csv(s3.fs.open(out.csv_path))
    assert len(table) == 6 and (table.status == "ok").all()
    for mask_path, width, height in zip(table.mask_path, table.width, table.height, strict=True):
        assert mask_path.startswith(s3.url("predictions", "masks", "sub", "shape_"))
        from PIL import Image

        with s3.fs.open(mask_path) as handle, Image.open(handle) as mask:
            assert mask.size == (width, height) and mask.mode == "L"
    assert not s3.fs.exists(stale)


@pytest.fixture
def few_digits(digits, tmp_path) -> Path:
    """Five images of each class of the digits sample: enough for the checks, quick to
    upload."""
    for folder in sorted((digits / "train").iterdir()):
        for image in sorted(folder.iterdir())[:5]:
            (tmp_path / "few" / folder.name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "few" / folder.name / image.name).write_bytes(image.read_bytes())
    return tmp_path / "few"


def digits_on_s3(s3: S3, default_params: dict, tmp_path: Path, **data) -> Path:
    """A params file whose training data is on S3 (nothing uploaded), ``data`` applied."""
    params = on_s3(default_params, s3, tmp_path / "cache", INVENTORY_DATA_DIR="digits/train")
    params["DATA"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_a_missing_bucket_is_one_clear_message(s3, few_digits, default_params, tmp_path):
    path = digits_on_s3(
        s3, default_params, tmp_path, INVENTORY_DATA_DIR="s3://no-such-bucket-kp/train"
    )
    one_clear_error(
        kerapipe(tmp_path, "inventory", "--params", str(path)),
        "DATA.INVENTORY_DATA_DIR: folder 's3://no-such-bucket-kp/train' not found",
    )
    s3.upload(few_digits, "digits", "train")
    path = digits_on_s3(
        s3,
        default_params,
        tmp_path,
        INVENTORY_CSV_SOURCE="s3",
        INVENTORY_CSV_DIR="s3://no-such-bucket-kp/inventory",
    )
    params = yaml.safe_load(path.read_text())
    params["INVENTORY"] = {"CHECK_IMAGES": "names"}
    path.write_text(yaml.safe_dump(params))
    one_clear_error(
        kerapipe(tmp_path, "inventory", "--params", str(path)),
        "DATA.INVENTORY_CSV_DIR (s3://no-such-bucket-kp/inventory/inventory.csv): cannot write",
        "The specified bucket does not exist",
    )


def test_missing_credentials_are_one_clear_message(s3, default_params, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    path = digits_on_s3(s3, default_params, tmp_path)
    result = kerapipe(tmp_path, "validate", "--params", str(path))
    one_clear_error(
        result,
        "DATA.INVENTORY_DATA_DIR",
        "no credentials were found",
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
    )


def test_credentials_from_a_profile(s3, few_digits, default_params, tmp_path, monkeypatch):
    """A named profile of a shared credentials file, chosen in params; no key anywhere in
    the environment or the params."""
    s3.upload(few_digits, "digits", "train")
    credentials = tmp_path / "aws" / "credentials"
    credentials.parent.mkdir()
    credentials.write_text(
        f"[kerapipe-team]\naws_access_key_id = team-key\naws_secret_access_key = {PLANTED_SECRET}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    path = digits_on_s3(
        s3,
        default_params,
        tmp_path,
        STORAGE_OPTIONS={"s3": {"profile": "kerapipe-team"}},
        PREDICTION_DATA_SOURCE="s3",
        PREDICTION_DATA_DIR=s3.url("digits", "train", "zero"),
        PREDICTION_OUTPUT_SOURCE="local",
    )
    params = yaml.safe_load(path.read_text())
    params["INVENTORY"]["CHECK_IMAGES"] = "names"
    path.write_text(yaml.safe_dump(params))
    out = ok(kerapipe(tmp_path, "validate", "--params", str(path)))
    assert "50 training examples" in out and PLANTED_SECRET not in out


def test_a_bad_bucket_name_is_one_clear_message(s3, default_params, tmp_path):
    path = digits_on_s3(s3, default_params, tmp_path, INVENTORY_DATA_DIR="s3://Bad_Bucket!/x")
    one_clear_error(
        kerapipe(tmp_path, "inventory", "--params", str(path)),
        "DATA.INVENTORY_DATA_DIR (s3://Bad_Bucket!/x): cannot look for it",
        "Invalid bucket name",
    )


def test_an_endpoint_that_does_not_answer_is_one_clear_message(s3, default_params, tmp_path):
    path = digits_on_s3(s3, default_params, tmp_path)
    with socket.socket() as closed:  # a port of this machine that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {**tool_env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    result = subprocess.run(
        [str(BIN / "kerapipe"), "inventory", "--params", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    one_clear_error(result, "the storage service does not answer", "AWS_ENDPOINT_URL")
