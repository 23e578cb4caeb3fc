"""The whole pipeline as a user drives it: real `dvc repro`, `dvc exp run -S`, `dvc metrics
diff` and `dvc exp show` in a fresh git repo holding a copy of this project."""

import json

import pandas as pd
import pytest

from kerapipe.sample_data import CLASS_NAMES
from tests.helpers import ALL_STAGES, run, stages_run

pytestmark = pytest.mark.e2e


def held_out_accuracy(project) -> float:
    predictions = pd.read_csv(project / "predictions" / "predictions.csv")
    truth = pd.read_csv(project / "data" / "digits" / "unlabelled_labels.csv")
    predictions["filename"] = predictions.filepath.str.rsplit("/", n=1).str[-1]
    merged = predictions.merge(truth, on="filename", suffixes=("", "_true"))
    assert len(merged) == len(truth) == len(predictions) == 180
    return float((merged.class_name == merged.class_name_true).mean())


def outputs(project) -> dict[str, bytes]:
    """The bytes of every output a failing stage must leave as they were."""
    paths = [
        "data/inventory/inventory.csv",
        "models/digits_cnn/model.keras",
        "models/digits_cnn/checkpoints/state.json",
        "dvclive/metrics.json",
        "predictions/predictions.csv",
    ]
    return {path: (project / path).read_bytes() for path in paths}


def test_repro_then_experiment(project):
    first = run(["dvc", "repro"], project)
    # The samples (data/dvc.yaml, upstream of inventory) are made, so dvc.lock holds them all.
    assert stages_run(first.stdout) == ALL_STAGES

    for path in [
        "data/inventory/inventory.csv",
        "models/digits_cnn/model.keras",
        "models/digits_cnn/training_log.csv",
        "models/digits_cnn/checkpoints/state.json",
        "models/digits_cnn/checkpoints/epoch_0015.keras",
        "dvclive/metrics.json",
        "dvclive/plots/metrics/eval/accuracy.tsv",
        "dvclive/plots/sklearn/confusion_matrix.json",
        "predictions/predictions.csv",
        "predictions/metrics.json",
        "models/digits_cnn/outputs.json",
        "models/digits_cnn/validation_predictions.csv",
        "models/digits_cnn/export_metrics.json",
        "dvclive/plots/sklearn/roc/three.json",
        "dvclive/plots/sklearn/precision_recall/three.json",
    ]:
        assert (project / path).exists(), path
    metrics = json.loads((project / "dvclive/metrics.json").read_text())
    assert metrics["eval"]["accuracy"] >= 0.97
    assert metrics["validation"]["accuracy"] == pytest.approx(metrics["eval"]["accuracy"])
    assert set(metrics["validation"]["f1"]) == set(CLASS_NAMES)
    held_out = json.loads((project / "predictions/metrics.json").read_text())["held_out"]
    assert held_out["accuracy"] == pytest.approx(held_out_accuracy(project))
    assert held_out["accuracy"] >= 0.95
    assert held_out["images"] == 180 and held_out["left_out"] == 0
    assert len(pd.read_csv(project / "models/digits_cnn/training_log.csv")) == 15

    second = run(["dvc", "repro"], project)
    assert stages_run(second.stdout) == set()
    assert "didn't change" in second.stdout or "up to date" in second.stdout

    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline run"], project)
    # A version of the model in DVC's registry: an annotated tag named as GTO names them.
    run(["git", "tag", "-a", "image-model@v1.0.0", "-m", "digits model, first version"], project)
    baseline_model = (project / "models/digits_cnn/model.keras").read_bytes()

    experiment = run(["dvc", "exp", "run", "-S", "TRAINING.BATCH_SIZE=64"], project)
    assert stages_run(experiment.stdout) == {"validate", "train", "export", "predict"}
    assert "Stage 'inventory' didn't change" in experiment.stdout
    # Every stage has run (the samples too), so DVC finds every output's hash in dvc.lock.
    assert "No file hash info" not in experiment.stdout + experiment.stderr
    # Decoded once: the experiment reads the decoded image cache the first run filled.
    assert "into the cache" not in experiment.stdout + experiment.stderr

    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], project).stdout)
    changed = diff["dvclive/metrics.json"]
    assert "eval.accuracy" in changed and "eval.loss" in changed
    assert changed["eval.loss"]["old"] != changed["eval.loss"]["new"]
    assert "held_out.accuracy" in diff["predictions/metrics.json"]  # beside the validation

    plots = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert {
        "dvclive/plots/metrics/eval/accuracy.tsv",
        "dvclive/plots/metrics/train/loss.tsv",
        "dvclive/plots/sklearn/confusion_matrix.json",
    } <= set(plots["data"])
    shown = set(plots["data"])
    assert {f"dvclive/plots/sklearn/{kind}/{name}.json" for kind in ("roc", "precision_recall")
            for name in CLASS_NAMES} <= shown  # fmt: skip
    assert any(p.startswith("dvclive/plots/images/mistakes/01_") for p in shown)
    failed = {error["name"] for error in plots["errors"]}
    assert "dvclive/plots/sklearn/confusion_matrix.json" not in failed  # only other tasks' plots
    artifacts = run(
        ["python", "-c", "from dvc.repo import Repo; print(Repo('.').artifacts.read())"], project
    ).stdout
    assert "models/digits_cnn/model.keras" in artifacts and "type='model'" in artifacts

    shown = run(["dvc", "exp", "show", "--csv"], project).stdout
    header = shown.splitlines()[0].split(",")
    assert "TRAINING.BATCH_SIZE" in header and "eval.accuracy" in header
    assert "held_out.accuracy" in header and "validation.f1.three" in header
    assert any(",64," in line for line in shown.splitlines()[1:])
    changed_only = run(["dvc", "exp", "show", "--only-changed", "--csv"], project).stdout
    header = changed_only.splitlines()[0].split(",")
    assert "TRAINING.BATCH_SIZE" in header and "TRAINING.NUM_EPOCHS" not in header

    # The tagged version comes back by name, though the workspace holds the experiment's.
    got = project.parent / "registry" / "model.keras"
    got.parent.mkdir()
    run(["dvc", "artifacts", "get", ".", "image-model", "--rev", "v1.0.0", "-o", str(got)], project)
    assert got.read_bytes() == baseline_model
    assert (project / "models/digits_cnn/model.keras").read_bytes() != baseline_model

    # A change to DATA.EXPORT exports again, checked, and never retrains.
    # (ONNX alone: LiteRT's converter is checked in tests/test_export.py.)
    exported = run(["dvc", "exp", "run", "-S", "DATA.EXPORT.FORMATS=[onnx]"], project)
    assert stages_run(exported.stdout) == {"validate", "export"}
    figures = json.loads((project / "models/digits_cnn/export_metrics.json").read_text())
    assert figures["export"]["onnx"]["agreement"] == 1.0
    assert figures["export"]["onnx"]["max_abs_difference"] < 1e-3
    assert (project / "models/digits_cnn/export/model.onnx").is_file()
    run(["git", "checkout", "params.yaml"], project)

    # A mistake in -S stops at the validate stage, before DVC removes any other output.
    before = outputs(project)
    for bad, key in [
        ("TRAINING.BATCH_SIZE=abc", "TRAINING.BATCH_SIZE"),
        ("+MODEL.OPTIMIZER_PARAMS.beta_11=0.9", "Did you mean 'beta_1'?"),
    ]:
        failed = run(["dvc", "exp", "run", "-S", bad], project, check=False)
        assert failed.returncode != 0
        assert key in failed.stdout + failed.stderr
        assert stages_run(failed.stdout) == {"validate"}
        assert outputs(project) == before
        run(["git", "checkout", "params.yaml"], project)
