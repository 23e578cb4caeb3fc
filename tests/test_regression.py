"""The regression task: inventory from images plus a targets CSV and its errors, standardised
targets, a saved model that answers in the targets' units, the predictions CSV, and a real
`dvc exp run` on the discs sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerapipe.config import Params
from kerapipe.errors import ConfigError, DataError
from kerapipe.sample_data import write_discs
from kerapipe.sources import LocalSource
from kerapipe.tasks.base import get_task
from kerapipe.tasks.regression import RegressionTask, regression_scores
from tests.helpers import context, copy_project, run, stages_run
from tests.helpers_tasks import task_params, validated

SOURCE = LocalSource()


@pytest.fixture(scope="module")
def discs(tmp_path_factory) -> Path:
    """A small discs sample (30 training images, 5 held out), read-only for the tests."""
    return write_discs(tmp_path_factory.mktemp("sample") / "discs", count=30, held_out=5)


@pytest.fixture
def data_copy(discs, tmp_path) -> Path:
    return Path(shutil.copytree(discs / "train", tmp_path / "train"))


def make_task(tmp_path: Path, data_dir: Path, updates: dict | None = None) -> RegressionTask:
    return get_task(make_params(tmp_path, data_dir, updates))


def make_params(tmp_path: Path, data_dir: Path, updates: dict | None = None) -> Params:
    """The checked ``params/regression.yaml`` on ``data_dir``, with ``updates``."""
    params = task_params(
        "regression", tmp_path, {"DATA.INVENTORY_DATA_DIR": str(data_dir), **(updates or {})}
    )
    return validated(params)


def edit_targets(data_dir: Path, edit) -> None:
    path = data_dir / "targets.csv"
    table = pd.read_csv(path, dtype=str)
    edit(table).to_csv(path, index=False)


# --- inventory ---------------------------------------------------------------------------------


def test_scan_reads_one_or_several_targets(discs, tmp_path):
    task = make_task(tmp_path, discs / "train")
    table = task.layout.scan(SOURCE, str(discs / "train"))
    assert list(table.columns) == ["filepath", "radius", "center_x"]
    assert len(table) == 30 and table.filepath.is_monotonic_increasing
    assert table.radius.dtype == np.float64
    truth = pd.read_csv(discs / "train/targets.csv")
    assert table.radius.tolist() == truth.radius.tolist()

    single = make_task(
        tmp_path,
        discs / "train",
        {"PIPELINE.TASK_PARAMS.TARGET_COLUMNS": ["radius"], "MODEL.MODEL_PARAMS.NUM_CLASSES": 1},
    )
    assert list(single.layout.scan(SOURCE, str(discs / "train")).columns) == ["filepath", "radius"]
    split = single.layout.split(table, 0.2, seed=3)
    assert (split.split == "validation").sum() == 6


def test_listed_file_missing(data_copy, tmp_path):
    (data_copy / "images" / "disc_0004.png").unlink()
    with pytest.raises(DataError, match="1 listed file\\(s\\) do not exist") as err:
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))
    assert "disc_0004.png" in str(err.value) and "'filename'" in str(err.value)


def test_image_not_listed(data_copy, tmp_path):
    edit_targets(data_copy, lambda t: t[t.filename != "disc_0007.png"])
    with pytest.raises(DataError, match="not listed in") as err:
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))
    assert "disc_0007.png" in str(err.value)


def test_stray_files_and_unreadable_images_are_skipped(data_copy, tmp_path, caplog):
    """notes.txt beside the images is skipped with one warning, as Keras does; a damaged
    image is left out of the inventory with its targets, and listed in inventory.json."""
    from kerapipe.steps.inventory import run_inventory

    (data_copy / "images" / "notes.txt").write_text("radius in pixels")
    damaged = data_copy / "images" / "disc_0003.png"
    damaged.write_bytes(damaged.read_bytes()[:60])
    params = task_params("regression", tmp_path, {"DATA.INVENTORY_DATA_DIR": str(data_copy)})
    caplog.set_level("WARNING")
    result = run_inventory(context(validated(params)))
    table = pd.read_csv(result.csv_path)
    assert len(table) == result.rows == 29 and str(damaged) not in set(table.filepath)
    summary = json.loads(Path(result.csv_path).with_suffix(".json").read_text())
    assert [item["filepath"] for item in summary["skipped"]] == [str(damaged)]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "notes.txt" in warnings[0] and "disc_0003" in warnings[1]


def test_target_not_a_number(data_copy, tmp_path):
    def damage(table):
        table.loc[2, "radius"] = "big"
        table.loc[5, "radius"] = ""
        return table

    edit_targets(data_copy, damage)
    with pytest.raises(DataError, match="'radius' has 2 value\\(s\\) that are not") as err:
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))
    assert "line 4 (disc_0002.png): 'big'" in str(err.value)


def test_bad_columns_and_csv(data_copy, tmp_path):
    task = make_task(tmp_path, data_copy, {"PIPELINE.TASK_PARAMS.TARGET_COLUMNS": ["area", "x"]})
    with pytest.raises(DataError, match="no column\\(s\\) area, x .*TARGET_COLUMNS"):
        task.layout.scan(SOURCE, str(data_copy))

    edit_targets(data_copy, lambda t: pd.concat([t, t.iloc[:1]]))
    with pytest.raises(DataError, match="more than once"):
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))

    (data_copy / "targets.csv").unlink()
    with pytest.raises(DataError, match="TARGETS_CSV"):
        make_task(tmp_path, data_copy).layout.scan(SOURCE, str(data_copy))


def test_params_checks(discs, tmp_path):
    with pytest.raises(ConfigError, match="NUM_CLASSES to 2"):
        make_task(tmp_path, discs, {"MODEL.MODEL_PARAMS.NUM_CLASSES": 1})
    with pytest.raises(ConfigError, match="TARGET_COLUMNS.*used by the inventory"):
        make_task(tmp_path, discs, {"PIPELINE.TASK_PARAMS.TARGET_COLUMNS": ["split", "x"]})
    with pytest.raises(ConfigError, match="TARGET_COLUMNS.*repeats x; each column"):
        make_task(tmp_path, discs, {"PIPELINE.TASK_PARAMS.TARGET_COLUMNS": ["x", "x"]})


# --- datasets and models -----------------------------------------------------------------------


def test_targets_standardised_and_model_back_in_units(discs, tmp_path):
    import keras

    from kerapipe.models.base import model_builder

    params = make_params(tmp_path, discs / "train")
    task = get_task(params)
    table = task.layout.split(task.layout.scan(SOURCE, str(discs / "train")), 0.2, seed=1)
    train_rows = table[table.split == "train"]
    task.data.prepare(train_rows)
    images, targets = next(iter(task.data.dataset(train_rows, len(train_rows), shuffle_seed=None)))
    assert images.shape == (24, 32, 32, 1) and images.dtype.name == "float32"
    assert targets.shape == (24, 2) and targets.dtype.name == "float32"
    np.testing.assert_allclose(targets.numpy().mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(targets.numpy().std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        task.data.to_units(targets.numpy()), train_rows[["radius", "center_x"]], atol=1e-4
    )

    builder = model_builder(params)
    model = builder.build(task.head.output_head())
    assert model.output_shape == (None, 2)
    final = task.head.finalize_model(model)
    raw = np.asarray(model(images, training=False))
    np.testing.assert_allclose(final(images, training=False), task.data.to_units(raw), rtol=1e-4)
    path = tmp_path / "model.keras"
    final.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(loaded(images), final(images), rtol=1e-5)

    fresh = make_task(tmp_path, discs / "train")  # no prepare(): learns from the train rows
    _, again = next(iter(fresh.data.dataset(train_rows, len(train_rows), shuffle_seed=None)))
    np.testing.assert_allclose(again, targets)


def test_prediction_table_and_scores(discs, tmp_path):
    task = make_task(tmp_path, discs / "train")
    paths = task.predictions.inputs(SOURCE, str(discs / "unlabelled"))
    assert len(paths) == 5
    outputs = np.arange(10, dtype=np.float32).reshape(5, 2) + 0.5
    batches = [(np.arange(3), outputs[:3]), (np.arange(3, 5), outputs[3:])]  # as predict does
    statuses = ["ok"] * 5
    out = task.predictions.write(
        SOURCE, str(tmp_path / "predictions"), paths, iter(batches), statuses
    )
    table = pd.read_csv(out)
    assert list(table.columns) == ["filepath", "status", "radius", "center_x"]
    assert table.filepath.tolist() == paths and set(table.status) == {"ok"}
    np.testing.assert_allclose(table[["radius", "center_x"]], outputs)

    # An image that could not be read keeps its row, with its status and empty targets.
    statuses[1] = "undecodable: image file is truncated"
    batches = [(np.array([0, 2]), outputs[[0, 2]]), (np.arange(3, 5), outputs[3:])]
    out = task.predictions.write(
        SOURCE, str(tmp_path / "predictions"), paths, iter(batches), statuses
    )
    table = pd.read_csv(out, keep_default_na=False)
    assert table.filepath.tolist() == paths and table.status.tolist() == statuses
    assert table.radius[1] == "" and table.center_x[1] == ""
    kept = [0, 2, 3, 4]
    np.testing.assert_allclose(table.loc[kept, ["radius", "center_x"]].astype(float), outputs[kept])

    scores = regression_scores(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert scores["mae"] == pytest.approx(1 / 3)
    assert scores["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert scores["r2"] == pytest.approx(0.5)


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.e2e
def test_dvc_exp_run_regression(tmp_path):
    """`cp params/regression.yaml params.yaml && dvc exp run` on the discs sample."""
    project = copy_project(tmp_path / "project")
    shutil.copy(project / "params" / "regression.yaml", project / "params.yaml")
    result = run(["dvc", "exp", "run", "-S", "TRAINING.NUM_EPOCHS=12"], project)
    assert {"data/dvc.yaml:samples", "inventory", "train", "predict"} <= stages_run(result.stdout)

    metrics = json.loads((project / "dvclive/metrics.json").read_text())
    for target in ("radius", "center_x"):
        validation = metrics["validation"][target]
        assert validation["mae"] < 0.5 * validation["baseline_mae"]
        assert validation["r2"] > 0.8
    assert (project / "dvclive/plots/custom/predicted_vs_actual_radius.json").is_file()

    # Held-out images, in pixels: far better than always answering the training mean.
    predictions = pd.read_csv(project / "predictions/predictions.csv")
    truth = pd.read_csv(project / "data/discs/unlabelled_targets.csv")
    predictions["filename"] = predictions.filepath.str.rsplit("/", n=1).str[-1]
    merged = predictions.merge(truth, on="filename", suffixes=("", "_true"))
    assert len(merged) == len(truth) == len(predictions) == 40
    train = pd.read_csv(project / "data/discs/train/targets.csv")
    for target in ("radius", "center_x"):
        mae = (merged[target] - merged[f"{target}_true"]).abs().mean()
        baseline = (merged[f"{target}_true"] - train[target].mean()).abs().mean()
        assert mae < 0.5 * baseline, (target, mae, baseline)
        # ... and predict scored itself the same way (DATA.PREDICTION_LABELS).
        scored = json.loads((project / "predictions/metrics.json").read_text())["held_out"]
        assert scored[target]["mae"] == pytest.approx(mae)
        assert scored["images"] == 40 and scored["unlabelled"] == 0

    # The validation images with the largest errors, worst first.
    rows = pd.read_csv(project / "models/discs_cnn/validation_predictions.csv")
    assert (rows.error_radius == (rows.predicted_radius - rows.radius).round(6)).all()
    worst = rows.sort_values("worst_error_in_std", ascending=False, kind="stable").head(8)
    pictures = sorted((project / "dvclive/plots/images/mistakes").glob("*.png"))
    expected = [f"{rank:02d}_{Path(path).stem}_" for rank, path in enumerate(worst.filepath, 1)]
    assert len(pictures) == len(expected) == 8
    assert all(p.name.startswith(e) for p, e in zip(pictures, expected, strict=True))
