"""The segmentation task: inventory pairing and its errors, the tf.data pipeline, the U-Net and
backbone heads, the Dice/focal losses and IoU/Dice metrics, the prediction writer, and a real
`dvc exp run` on the shapes sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kerapipe.config import Params
from kerapipe.errors import ConfigError, DataError
from kerapipe.sample_data import SHAPE_CLASSES, write_shapes
from kerapipe.sources import LocalSource
from kerapipe.tasks.base import get_task
from kerapipe.tasks.segmentation import SegmentationTask, segmentation_scores
from tests.helpers import context, copy_project, run, stages_run, tool_env
from tests.helpers_tasks import save_png, task_params, validated

SOURCE = LocalSource()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A small shapes sample (24 training pairs, 4 held out), read-only for the tests."""
    return write_shapes(tmp_path_factory.mktemp("sample") / "shapes", count=24, held_out=4)


@pytest.fixture
def data_copy(shapes, tmp_path) -> Path:
    """A writable copy of the training folder, for tests that damage it."""
    return Path(shutil.copytree(shapes / "train", tmp_path / "train"))


def make_task(tmp_path: Path, data_dir: Path, updates: dict | None = None) -> SegmentationTask:
    return get_task(make_params(tmp_path, data_dir, updates))


def make_params(tmp_path: Path, data_dir: Path, updates: dict | None = None) -> Params:
    """The checked ``params/segmentation.yaml`` on ``data_dir``, with ``updates``."""
    params = task_params(
        "segmentation", tmp_path, {"DATA.INVENTORY_DATA_DIR": str(data_dir), **(updates or {})}
    )
    return validated(params)


# --- inventory ---------------------------------------------------------------------------------


def test_scan_pairs_every_image_with_its_mask(shapes, tmp_path):
    task = make_task(tmp_path, shapes / "train")
    table = task.layout.scan(SOURCE, str(shapes / "train"))
    assert list(table.columns) == ["filepath", "mask_path"]
    assert len(table) == 24
    assert table.filepath.is_monotonic_increasing
    for image, mask in zip(table.filepath, table.mask_path, strict=True):
        assert Path(image).name == Path(mask).name
        assert Path(mask).parent.name == "masks"

    split = task.layout.split(table, 0.25, seed=7)
    assert (split.split == "validation").sum() == 6
    again = task.layout.split(task.layout.scan(SOURCE, str(shapes / "train")), 0.25, seed=7)
    assert split.to_csv(index=False) == again.to_csv(index=False)


def test_mask_pattern_with_a_suffix(data_copy, tmp_path):
    masks = data_copy / "masks"
    for path in sorted(masks.glob("*.png")):
        path.rename(masks / f"{path.stem}_mask.png")
    task = make_task(tmp_path, data_copy, {"PIPELINE.TASK_PARAMS.MASK_PATTERN": "{stem}_mask.png"})
    table = task.layout.scan(SOURCE, str(data_copy))
    assert len(table) == 24
    assert all(p.endswith("_mask.png") for p in table.mask_path)

    with pytest.raises(DataError, match="MASK_PATTERN") as err:
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))
    assert "_mask.png" in str(err.value)


def test_image_without_mask(data_copy, tmp_path):
    (data_copy / "masks" / "shape_0003.png").unlink()
    with pytest.raises(DataError, match="1 image\\(s\\) have no mask") as err:
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))
    message = str(err.value)
    assert "DATA.INVENTORY_DATA_DIR" in message and "shape_0003.png" in message
    assert "MASK_PATTERN" in message


def test_mask_without_image(data_copy, tmp_path):
    (data_copy / "images" / "shape_0005.png").unlink()
    with pytest.raises(DataError, match="1 mask\\(s\\) have no image") as err:
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))
    assert "masks/shape_0005.png" in str(err.value)


def test_mask_size_differs_from_image(data_copy, tmp_path):
    save_png(data_copy / "masks" / "shape_0002.png", np.zeros((16, 32), np.uint8))
    with pytest.raises(DataError, match="differ in size") as err:
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))
    assert "32x16 but its image is 32x32" in str(err.value)


def test_mask_must_be_single_channel_class_indices(data_copy, tmp_path):
    task = make_task(tmp_path, data_copy)
    rgb = data_copy / "masks" / "shape_0001.png"
    save_png(rgb, np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="8-bit single-channel"):
        task.layout.scan(SOURCE, str(data_copy))

    mask = np.zeros((32, 32), np.uint8)
    mask[:4] = 255  # a 0/255 binary mask: not class indices
    save_png(rgb, mask)
    with pytest.raises(DataError, match="values above 2") as err:
        task.layout.scan(SOURCE, str(data_copy))
    assert "0/255" in str(err.value)


def test_stray_files_and_unreadable_images_are_skipped_with_their_masks(
    data_copy, tmp_path, caplog
):
    """notes.txt in either folder is skipped with one warning; a damaged image (its header
    whole, its pixels cut) is left out of the inventory with its mask row, and listed."""
    from kerapipe.steps.inventory import run_inventory

    (data_copy / "images" / "notes.txt").write_text("drawn by sample_data")
    (data_copy / "masks" / "README.md").write_text("class indices")
    damaged = data_copy / "images" / "shape_0004.png"
    damaged.write_bytes(damaged.read_bytes()[:60])
    params = task_params("segmentation", tmp_path, {"DATA.INVENTORY_DATA_DIR": str(data_copy)})
    caplog.set_level("WARNING")
    result = run_inventory(context(validated(params)))
    table = pd.read_csv(result.csv_path)
    assert len(table) == result.rows == 23
    assert not table.filepath.str.contains("shape_0004").any()
    assert not table.mask_path.str.contains("shape_0004").any()
    summary = json.loads(Path(result.csv_path).with_suffix(".json").read_text())
    (skipped,) = summary["skipped"]
    assert skipped["filepath"] == str(damaged) and skipped["reason"].startswith("undecodable")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one for the files that are not images, one for the image
    assert "notes.txt" in warnings[0] and "README.md" in warnings[0]
    assert "shape_0004.png" in warnings[1]


def test_missing_masks_folder(data_copy, tmp_path):
    shutil.rmtree(data_copy / "masks")
    with pytest.raises(DataError, match="PIPELINE.TASK_PARAMS.MASKS_DIR"):
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))


def test_params_are_checked_against_the_model(shapes, tmp_path):
    with pytest.raises(ConfigError, match="NUM_CLASSES is 4"):
        make_task(tmp_path, shapes, {"MODEL.MODEL_PARAMS.NUM_CLASSES": 4})
    params = task_params("segmentation", tmp_path, {"MODEL.MODEL_NAME": "simple_cnn"})
    params["MODEL"]["MODEL_PARAMS"] = {"INPUT_SHAPE": [32, 32, 3], "NUM_CLASSES": 3}
    with pytest.raises(ConfigError, match="one per pixel.*unet"):
        validated(params)
    with pytest.raises(ConfigError, match="MASK_PATTERN"):
        make_task(tmp_path, shapes, {"PIPELINE.TASK_PARAMS.MASK_PATTERN": "mask.png"})
    with pytest.raises(ConfigError, match="multiples of 4"):
        make_task(tmp_path, shapes, {"MODEL.MODEL_PARAMS.INPUT_SHAPE": [30, 32, 3]})
    names = {"PIPELINE.TASK_PARAMS.CLASS_NAMES": ["background", "disc", "disc"]}
    with pytest.raises(ConfigError, match="CLASS_NAMES.*repeats disc; each class name"):
        make_task(tmp_path, shapes, names)


# --- datasets ----------------------------------------------------------------------------------


def test_dataset_shapes_dtypes_and_mask_values(shapes, tmp_path):
    task = make_task(tmp_path, shapes / "train")
    table = task.layout.scan(SOURCE, str(shapes / "train"))
    images, masks = next(iter(task.data.dataset(table, batch_size=24, shuffle_seed=None)))
    assert images.shape == (24, 32, 32, 3) and images.dtype.name == "float32"
    assert masks.shape == (24, 32, 32) and masks.dtype.name == "int32"
    expected = np.stack([np.asarray(Image.open(p)) for p in table.mask_path])
    np.testing.assert_array_equal(masks.numpy(), expected)  # same size: values untouched
    first_image = np.asarray(Image.open(table.filepath[0]), dtype=np.float32)
    np.testing.assert_array_equal(images.numpy()[0], first_image)

    from kerapipe.datasets import DatasetOptions

    # Through the one input pipeline's decoded cache: images and masks each have entries.
    for cache in ("disk", "memory", "disk"):  # the last build reads what the first filled
        options = DatasetOptions(cache=cache, cache_dir=str(tmp_path / "cache"))
        cached = task.data.dataset(table, 24, shuffle_seed=None, options=options)
        for _ in range(2):  # the second pass reads the cache
            again_images, again_masks = next(iter(cached))
            np.testing.assert_array_equal(again_masks.numpy(), expected)
            np.testing.assert_array_equal(again_images.numpy(), images.numpy())
    assert options.store().filled == 2 * len(table)  # each image and each mask, once
    assert len(list((tmp_path / "cache" / "files").rglob("*.u8"))) == 2 * len(table)

    small = make_task(tmp_path, shapes / "train", {"MODEL.MODEL_PARAMS.INPUT_SHAPE": [16, 24, 3]})
    images, masks = next(iter(small.data.dataset(table, batch_size=8, shuffle_seed=3)))
    assert images.shape == (8, 16, 24, 3) and masks.shape == (8, 16, 24)
    assert set(np.unique(masks.numpy())) <= {0, 1, 2}  # nearest neighbour: no new values


def test_augmentation_moves_image_and_mask_together(tmp_path):
    """An image that is its mask times 100: after a random flip it still must be."""
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for i in range(8):
        mask = np.zeros((32, 32), np.uint8)
        mask[: rng.integers(4, 28), : rng.integers(2, 12)] = 1 + i % 2
        save_png(data / "images" / f"m{i}.png", mask * 100)
        save_png(data / "masks" / f"m{i}.png", mask)
    params = make_params(
        tmp_path,
        data,
        {
            "MODEL.MODEL_PARAMS.INPUT_SHAPE": [32, 32, 1],
            "TRAINING.AUGMENTATIONS": [
                {
                    "AUGMENTATION_NAME": "flip",
                    "AUGMENTATION_PARAMS": {"MODE": "horizontal_and_vertical"},
                }
            ],
        },
    )
    from kerapipe.datasets import DatasetOptions

    task = get_task(params)
    table = task.layout.scan(SOURCE, str(data))
    options = DatasetOptions.from_params(params.TRAINING)
    flipped = 0
    for images, masks in task.data.dataset(table, 8, shuffle_seed=5, options=options).take(3):
        np.testing.assert_array_equal(images.numpy()[..., 0], masks.numpy() * 100.0)
        flipped += int((masks.numpy()[:, 0, 0] == 0).sum())  # a corner left the top-left
    assert flipped > 0


# --- models, losses, metrics -------------------------------------------------------------------


def test_unet_and_backbone_heads_are_per_pixel_and_load_safely(tmp_path):
    import keras

    from kerapipe.models.base import Head, model_builder

    head = Head(units=3, activation="softmax", spatial=True)
    for name, params in (
        ("unet", {"INPUT_SHAPE": [16, 16, 3], "NUM_CLASSES": 3, "DEPTH": 2, "FILTERS": 4}),
        ("mobilenet_v2", {"INPUT_SHAPE": [32, 32, 3], "NUM_CLASSES": 3}),
    ):
        p = task_params("segmentation", tmp_path, {"MODEL.MODEL_NAME": name})
        p["MODEL"]["MODEL_PARAMS"] = params
        model = model_builder(validated(p)).build(head)
        size = params["INPUT_SHAPE"]
        assert model.output_shape == (None, size[0], size[1], 3)
        path = tmp_path / f"{name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
        x = np.random.default_rng(0).uniform(0, 255, (2, *size)).astype("float32")
        np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)
        np.testing.assert_allclose(np.asarray(model(x)).sum(axis=-1), 1.0, atol=1e-5)

    p = task_params("segmentation", tmp_path)
    pooled = model_builder(validated(p)).build(Head(units=5, activation="softmax"))
    assert pooled.output_shape == (None, 5)


def test_losses_and_metrics():
    import keras

    from kerapipe.losses import SparseDiceLoss, SparseFocalLoss
    from kerapipe.metrics import SparseMeanDice, SparseMeanIoU
    from kerapipe.registry import LOSSES, METRICS

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (2, 8, 8))
    scores = rng.random((2, 8, 8, 3)).astype("float32")
    scores /= scores.sum(axis=-1, keepdims=True)
    perfect = np.eye(3, dtype="float32")[labels]

    assert float(SparseDiceLoss(smooth=0.0)(labels, perfect)) == pytest.approx(0.0, abs=1e-6)
    assert float(SparseDiceLoss()(labels, scores)) > 0.3
    cross_entropy = keras.losses.SparseCategoricalCrossentropy()(labels, scores)
    assert float(SparseFocalLoss(gamma=0.0)(labels, scores)) == pytest.approx(
        float(cross_entropy), rel=1e-5
    )
    assert float(SparseFocalLoss()(labels[..., None], scores)) < float(cross_entropy)
    with pytest.raises(ValueError, match="gamma"):
        SparseFocalLoss(gamma=-1)

    ours, keras_iou = SparseMeanIoU(), keras.metrics.MeanIoU(3, sparse_y_pred=False)
    ours.update_state(labels, scores)
    keras_iou.update_state(labels, scores)
    assert float(ours.result()) == pytest.approx(float(keras_iou.result()), rel=1e-6)
    dice = SparseMeanDice()
    dice.update_state(labels, perfect)
    assert float(dice.result()) == pytest.approx(1.0)
    one = SparseMeanIoU(class_ids=[1], name="iou_square")
    one.update_state(labels, perfect)
    assert float(one.result()) == pytest.approx(1.0)
    assert SparseMeanIoU.from_config(one.get_config()).class_ids == [1]

    assert LOSSES.get("sparse_dice") is SparseDiceLoss
    assert METRICS.get("sparse_mean_iou") is SparseMeanIoU

    confusion = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    scores_np = segmentation_scores(confusion)
    assert scores_np["iou"][0] == pytest.approx(8 / 11)
    assert np.isnan(scores_np["iou"][2])
    assert scores_np["mean_iou"] == pytest.approx((8 / 11 + 3 / 6) / 2)


# --- predictions -------------------------------------------------------------------------------


def test_write_predictions_one_mask_per_image_at_its_size(tmp_path):
    inputs = tmp_path / "to_predict"
    sizes = {"a.png": (24, 40), "sub/b.jpg": (16, 16), "sub/c.png": (32, 32)}  # (height, width)
    for name, (height, width) in sizes.items():
        save_png(inputs / name, np.full((height, width, 3), 90, np.uint8))
    task = make_task(tmp_path, tmp_path / "train", {"DATA.PREDICTION_DATA_DIR": str(inputs)})
    paths = task.predictions.inputs(SOURCE, str(inputs))
    assert [Path(p).relative_to(inputs).as_posix() for p in paths] == sorted(sizes)

    outputs = np.zeros((3, 32, 32, 3), np.float32)
    outputs[..., 0] = 1.0
    outputs[0, :, 16:, :] = [0.1, 0.8, 0.1]  # right half: class 1
    outputs[2, :8, :, :] = [0.0, 0.0, 1.0]  # top quarter: class 2
    out_dir = tmp_path / "predictions"
    masks_on_disk = []

    def batches():  # as predict yields them; records what was written before each batch
        for start in (0, 2):
            masks_on_disk.append(sorted(p.name for p in out_dir.rglob("*.png")))
            indices = np.arange(start, min(start + 2, 3))
            yield indices, outputs[indices]

    index = task.predictions.write(
        SOURCE, str(out_dir), paths, batches(), ["ok"] * 3, data_dir=str(inputs)
    )
    assert masks_on_disk == [[], ["a.png", "b.png"]]  # each batch is written as it comes

    table = pd.read_csv(index)
    assert index == f"{out_dir}/predictions.csv"
    assert list(table.filepath) == paths
    assert list(table.columns) == [
        "filepath",
        "status",
        "mask_path",
        "width",
        "height",
        *(f"fraction_{name}" for name in SHAPE_CLASSES),
    ]
    for row, (name, (height, width)) in zip(table.itertuples(), sorted(sizes.items()), strict=True):
        mask_file = out_dir / "masks" / Path(name).with_suffix(".png")
        assert row.mask_path == str(mask_file)
        with Image.open(mask_file) as mask:
            assert mask.mode == "L" and mask.size == (width, height)
            values = np.asarray(mask)
        assert (row.width, row.height) == (width, height)
        fractions = np.bincount(values.ravel(), minlength=3) / values.size
        np.testing.assert_allclose(
            [row.fraction_background, row.fraction_square, row.fraction_disc],
            fractions,
            atol=1e-6,
        )
    assert table.fraction_square[0] == pytest.approx(0.5, abs=0.05)
    assert table.fraction_disc[2] == pytest.approx(0.25, abs=0.05)
    assert table.fraction_background[1] == 1.0
    assert not list(out_dir.rglob("*.tmp*"))  # written atomically, nothing left behind


def test_a_new_prediction_removes_the_masks_of_images_no_longer_predicted(tmp_path):
    """Outside `dvc repro` (which empties outputs first) a rerun on fewer images must not
    leave the old masks beside the new ones; other files in masks/ are left alone."""
    inputs = tmp_path / "to_predict"
    for name in ("a.png", "sub/b.png", "sub/c.png"):
        save_png(inputs / name, np.full((8, 8, 3), 90, np.uint8))
    task = make_task(tmp_path, tmp_path / "train", {"DATA.PREDICTION_DATA_DIR": str(inputs)})
    outputs = np.zeros((3, 32, 32, 3), np.float32)
    # tmp_path is the working directory: a relative "./" output dir, as users write it
    task.predictions.write(
        SOURCE,
        "./predictions",
        task.predictions.inputs(SOURCE, str(inputs)),
        [(np.arange(3), outputs)],
        ["ok"] * 3,
        data_dir=str(inputs),
    )
    (tmp_path / "predictions" / "masks" / "notes.txt").write_text("mine")

    (inputs / "sub" / "c.png").unlink()
    paths = task.predictions.inputs(SOURCE, str(inputs))
    index = task.predictions.write(
        SOURCE, "./predictions", paths, [(np.arange(2), outputs[:2])], ["ok"] * 2,
        data_dir=str(inputs),
    )  # fmt: skip

    masks = tmp_path / "predictions" / "masks"
    assert sorted(p.relative_to(masks).as_posix() for p in masks.rglob("*.*")) == [
        "a.png", "notes.txt", "sub/b.png"
    ]  # fmt: skip
    assert len(pd.read_csv(index)) == 2


def test_an_image_that_could_not_be_read_gets_a_row_and_no_mask(tmp_path):
    inputs = tmp_path / "to_predict"
    for name in ("a.png", "b.png", "c.png"):
        save_png(inputs / name, np.full((8, 8, 3), 90, np.uint8))
    task = make_task(tmp_path, tmp_path / "train", {"DATA.PREDICTION_DATA_DIR": str(inputs)})
    paths = task.predictions.inputs(SOURCE, str(inputs))
    outputs = np.zeros((3, 32, 32, 3), np.float32)
    outputs[..., 1] = 1.0
    outputs_dir, everything = "./predictions", [(np.arange(3), outputs)]
    task.predictions.write(SOURCE, outputs_dir, paths, everything, ["ok"] * 3, data_dir=str(inputs))
    statuses = ["ok", "undecodable: image file is truncated", "ok"]
    index = task.predictions.write(
        SOURCE, outputs_dir, paths, [(np.array([0, 2]), outputs[[0, 2]])], statuses,
        data_dir=str(inputs),
    )  # fmt: skip
    table = pd.read_csv(index, keep_default_na=False)
    assert table.filepath.tolist() == paths and table.status.tolist() == statuses
    assert table.mask_path[1] == "" and table.width[1] == "" and table.fraction_square[1] == ""
    assert (table.width[0], table.fraction_square[0]) == ("8", "1.0")  # as in a clean run
    masks = sorted(p.name for p in (tmp_path / "predictions" / "masks").glob("*.png"))
    assert masks == ["a.png", "c.png"]  # none for b, and the earlier one is gone


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.e2e
def test_dvc_exp_run_segmentation(tmp_path):
    """`cp params/segmentation.yaml params.yaml && dvc exp run` on the shapes sample."""
    project = copy_project(tmp_path / "project")
    shutil.copy(project / "params" / "segmentation.yaml", project / "params.yaml")
    result = run(["dvc", "exp", "run", "-S", "TRAINING.NUM_EPOCHS=6"], project)
    assert {"data/dvc.yaml:samples", "inventory", "train", "predict"} <= stages_run(result.stdout)

    inventory = pd.read_csv(project / "data/inventory/inventory.csv")
    assert len(inventory) == 320 and set(inventory.split) == {"train", "validation"}
    assert (project / "models/shapes_unet/model.keras").is_file()
    metrics = json.loads((project / "dvclive/metrics.json").read_text())
    validation = metrics["validation"]
    assert validation["baseline_mean_iou"] < 0.35
    assert validation["mean_iou"] > 0.7 > validation["baseline_mean_iou"]
    assert metrics["eval"]["mean_iou"] == pytest.approx(validation["mean_iou"], abs=1e-4)
    assert len(list((project / "dvclive/plots/images/segmentation").glob("*.png"))) == 4

    # Held-out images: one mask each, at the image's size, better than all-background.
    table = pd.read_csv(project / "predictions/predictions.csv")
    truth_dir = project / "data/shapes/unlabelled_masks"
    assert len(table) == 32 == len(list(truth_dir.glob("*.png")))
    confusion = np.zeros((3, 3), np.int64)
    for row in table.itertuples():
        predicted = np.asarray(Image.open(project / row.mask_path))
        truth = np.asarray(Image.open(truth_dir / Path(row.filepath).name))
        assert predicted.shape == truth.shape == (32, 32)
        confusion += np.bincount((truth * 3 + predicted).ravel(), minlength=9).reshape(3, 3)
    background_only = np.zeros_like(confusion)
    background_only[:, 0] = confusion.sum(axis=1)
    held_out = segmentation_scores(confusion)["mean_iou"]
    assert held_out > 0.7 > segmentation_scores(background_only)["mean_iou"]
    # ... and predict scored itself the same way (DATA.PREDICTION_LABELS: unlabelled_masks).
    scored = json.loads((project / "predictions/metrics.json").read_text())["held_out"]
    assert scored["mean_iou"] == pytest.approx(held_out)
    assert scored["images"] == 32 and scored["left_out"] == 0
    assert scored["pixel_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert set(scored["iou"]) == set(SHAPE_CLASSES)

    # The validation images of lowest IoU, worst first, and one row per validation image.
    rows = pd.read_csv(project / "models/shapes_unet/validation_predictions.csv")
    assert len(rows) == (inventory.split == "validation").sum()
    worst = rows.sort_values("mean_iou", kind="stable").head(8)
    pictures = sorted((project / "dvclive/plots/images/mistakes").glob("*.png"))
    assert [p.name.split("_iou_")[0] for p in pictures] == [
        f"{rank:02d}_{Path(path).stem}" for rank, path in enumerate(worst.filepath, 1)
    ]

    plots = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert plots["data"]["dvclive/plots/sklearn/confusion_matrix.json"]
    assert any("segmentation" in name for name in plots["data"])


def test_validation_and_inventory_do_not_import_tensorflow(shapes, tmp_path):
    """`kerapipe validate` and `inventory` stay fast for the new tasks: no TensorFlow."""
    import subprocess
    import sys

    import yaml

    params = task_params(
        "segmentation", tmp_path, {"DATA.INVENTORY_DATA_DIR": str(shapes / "train")}
    )
    params["DATA"]["PREDICTION_DATA_DIR"] = str(shapes / "unlabelled")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    code = (
        "import sys\n"
        "from kerapipe.cli import main\n"
        f"assert main(['validate', '--params', {str(path)!r}]) == 0\n"
        f"assert main(['inventory', '--params', {str(path)!r}]) == 0\n"
        "main(['components'])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=tool_env()
    )
    assert result.returncode == 0, result.stderr
    assert "unet" in result.stdout and "sparse_dice" in result.stdout
    assert "segmentation" in result.stdout and "regression" in result.stdout
    assert (tmp_path / "inventory" / "inventory.csv").is_file()
