"""LOAD_CHECKPOINT: a training process killed with SIGKILL mid-run resumes from its last
complete epoch, through `dvc repro` (the stage runs `kerapipe train`), with nothing lost or
doubled; a checkpoint with kerapipe's own loss reloads in a fresh process."""

import json
import time

import keras
import pandas as pd
import pytest
import yaml

from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.train import run_training
from tests.helpers import BIN, context, kill, run, start, wait_for_epoch

pytestmark = pytest.mark.e2e
EPOCHS = 5


def set_param(path, group, key, value):
    params = yaml.safe_load(path.read_text())
    params[group][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def check_continuous_run(run_dir, live_dir, steps_per_epoch):
    log = pd.read_csv(run_dir / "training_log.csv")
    assert list(log.epoch) == list(range(EPOCHS)), "log rows lost or duplicated"
    for name in ("train/loss", "eval/accuracy"):
        curve = pd.read_csv(live_dir / "plots" / "metrics" / f"{name}.tsv", sep="\t")
        assert list(curve.step) == list(range(EPOCHS)), name
    assert json.loads((live_dir / "metrics.json").read_text())["step"] == EPOCHS - 1
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == EPOCHS
    assert state["best_value"] == pytest.approx(log.val_loss.min())  # best-so-far carried on
    final = keras.saving.load_model(run_dir / "model.keras")  # with its optimizer
    assert int(final.optimizer.iterations) == EPOCHS * steps_per_epoch  # state not reset


def test_checkpoints_from_other_params_are_not_resumed(make_params, caplog):
    _, path = make_params({"TRAINING.NUM_EPOCHS": 1})
    run_inventory(context(path))
    run_training(context(path))
    _, path = make_params(
        {
            "TRAINING.NUM_EPOCHS": 1,
            "TRAINING.BATCH_SIZE": 64,
            "TRAINING.LOAD_CHECKPOINT": True,
            "TRAINING.FORCE": True,
        }
    )
    caplog.set_level("INFO")
    result = run_training(context(path))
    assert "written under other settings (TRAINING.BATCH_SIZE: 32 -> 64)" in caplog.text
    assert "starting fresh" in caplog.text
    assert result.initial_epoch == 0


def test_more_epochs_continue_a_finished_run(make_params, caplog):
    _, path = make_params({"TRAINING.NUM_EPOCHS": 1})
    run_inventory(context(path))
    run_training(context(path))
    _, path = make_params(
        {"TRAINING.NUM_EPOCHS": 2, "TRAINING.LOAD_CHECKPOINT": True, "TRAINING.FORCE": True}
    )
    caplog.set_level("INFO")
    result = run_training(context(path))
    assert result.initial_epoch == 1 and list(result.history) and len(result.history["loss"]) == 1


def test_sigkill_twice_then_resume_with_dvc_repro(project):
    """`dvc repro` killed inside training, then its resumed run killed too: the third run
    continues after the last complete epoch, and the log, the DVCLive curves, the best value
    and the optimizer's step count read as one uninterrupted run."""
    params_file = project / "params.yaml"
    set_param(params_file, "TRAINING", "NUM_EPOCHS", EPOCHS)
    run(["git", "commit", "-qam", "five epochs"], project)
    state_file = project / "models" / "digits_cnn" / "checkpoints" / "state.json"

    process = start(["dvc", "repro"], project)
    wait_for_epoch(state_file, 1, process, timeout=600)
    time.sleep(0.7)  # somewhere inside the next epoch (or its checkpoint writes)
    kill(process)
    killed_at = json.loads(state_file.read_text())["epoch"]
    assert not (project / "models" / "digits_cnn" / "model.keras").exists()

    set_param(params_file, "TRAINING", "LOAD_CHECKPOINT", True)
    process = start(["dvc", "repro"], project)
    wait_for_epoch(state_file, killed_at + 1, process, timeout=600)
    kill(process)  # a second kill, in the resumed run
    second_kill = json.loads(state_file.read_text())["epoch"]

    result = run(["dvc", "repro"], project)
    assert f"resuming after epoch {second_kill}" in result.stdout + result.stderr
    assert "Stage 'inventory' didn't change" in result.stdout
    info = json.loads((project / "models" / "digits_cnn" / "run_info.json").read_text())
    assert info["resumed_after_epoch"] == second_kill > killed_at >= 1
    check_continuous_run(project / "models" / "digits_cnn", project / "dvclive", 41)
    assert (project / "predictions" / "predictions.csv").is_file()


def test_resume_with_a_custom_loss_in_a_fresh_process(make_params, tmp_path):
    """A checkpoint compiled with kerapipe's own loss reloads in a new `kerapipe train`."""
    updates = {"TRAINING.NUM_EPOCHS": 1, "MODEL.LOSS_NAME": "sparse_focal"}
    _, path = make_params(updates)
    run_inventory(context(path))
    run_training(context(path))  # here; the resume in a process of its own
    _, path = make_params(
        {
            **updates,
            "TRAINING.NUM_EPOCHS": 2,
            "TRAINING.LOAD_CHECKPOINT": True,
            "TRAINING.FORCE": True,
        }
    )
    result = run([str(BIN / "kerapipe"), "train", "--params", str(path)], tmp_path)
    assert "resuming after epoch 1" in result.stderr
    log = pd.read_csv(tmp_path / "models" / "digits_cnn" / "training_log.csv")
    assert list(log.epoch) == [0, 1]
