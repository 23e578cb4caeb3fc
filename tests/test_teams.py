"""docs/dvc.md, "Working as a team" and "Parallel sweeps", as a team drives them: real `dvc`
commands in a temporary git repo holding this project, training images imported from a real
S3-compatible server on 127.0.0.1 (moto) with the real dvc-s3 client, a local-folder DVC
remote and an S3 one, a bare git repo as the team's git remote, fresh clones.

One test, in steps, on one trained project: the pipeline trains once (a full `dvc repro` is
the expensive part) and every step builds on it; pytest-xdist would give each test of a
module-scoped fixture its own copy."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import PLANTED_SECRET
from tests.helpers import ALL_STAGES, copy_project, run, stages_run, tool_env

pytestmark = pytest.mark.e2e

PER_CLASS = 20  # training images per class in the bucket: enough to train, quick to import
RESULTS = [
    "models/digits_cnn/model.keras",
    "models/digits_cnn/run_info.json",
    "data/inventory/inventory.csv",
    "data/inventory/inventory.json",
    "predictions/predictions.csv",
    "predictions/metrics.json",
]
UP_TO_DATE = "Data and pipelines are up to date"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def dvc_lock_md5(lock_text: str, path: str) -> str:
    """The md5 that a dvc.lock records for the output ``path``."""
    for stage in yaml.safe_load(lock_text)["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise AssertionError(f"{path} not in dvc.lock")


def upload_sample(s3, digits: Path, tmp_path: Path) -> str:
    """The first PER_CLASS training images of each class, in the bucket; their URL."""
    subset = tmp_path / "subset"
    for folder in sorted((digits / "train").iterdir()):
        (subset / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:PER_CLASS]:
            shutil.copy2(image, subset / folder.name / image.name)
    return s3.upload(subset, "digits", "train")


def start_queue(project: Path, log: Path) -> None:
    """`dvc queue start -j 2`. Its workers live on, detached, holding its output: so the
    output goes to a file, not to a pipe that would stay open until they end."""
    with log.open("w") as out:
        subprocess.run(
            ["dvc", "queue", "start", "-j", "2"],
            cwd=project,
            env=tool_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=120,
        )
    assert "Started '2' new experiments task queue workers" in log.read_text()


def wait_for_queue(project: Path, timeout: float = 900) -> int:
    """Poll `dvc queue status` until nothing is queued or running; the most experiments seen
    running at once."""
    most, deadline, seen = 0, time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        seen.append(status)
        rows = [line.split() for line in status.splitlines()[1:] if line.strip()]
        most = max(most, sum("Running" in row for row in rows))
        if not any("Running" in row or "Queued" in row for row in rows):
            assert most == 2, "\n".join(seen)  # side by side
            return most
        time.sleep(1)
    raise AssertionError(f"the queue did not finish:\n{status}")


def test_team_workflow(s3, digits, tmp_path):
    project = copy_project(tmp_path / "project")
    bucket_data = upload_sample(s3, digits, tmp_path)

    # Remote data as a pipeline input: imported, so DVC knows its version.
    (project / "data/team").mkdir()
    run(["dvc", "import-url", bucket_data, "data/team/train"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["DATA"]["INVENTORY_DATA_DIR"] = "data/team/train"
    params["TRAINING"]["NUM_EPOCHS"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "train on the team's bucket"], project)

    first = run(["dvc", "repro"], project)
    assert stages_run(first.stdout) == ALL_STAGES
    assert "No file hash info" not in first.stdout + first.stderr
    assert UP_TO_DATE in run(["dvc", "status"], project).stdout
    checkpoints = project / "models/digits_cnn/checkpoints"
    # kept for LOAD_CHECKPOINT, but not a DVC output (the one-epoch model is the same bytes as
    # the final one, so the state file that names it stands for the folder)
    assert (checkpoints / "epoch_0001.keras").is_file()
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "first model"], project)

    # A local-folder remote (the default) and an S3 one; the team's git remote.
    local_remote = tmp_path / "dvc-remote"
    local_remote.mkdir()
    run(["dvc", "remote", "add", "-d", "shared", str(local_remote)], project)
    run(["dvc", "remote", "add", "storage", s3.url("dvc-store")], project)
    run(["dvc", "remote", "modify", "storage", "endpointurl", s3.endpoint], project)
    assert PLANTED_SECRET not in (project / ".dvc/config").read_text()
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "DVC remotes"], project)
    run(["dvc", "push"], project)
    run(["dvc", "push", "-r", "storage", "train"], project)  # the model's stage only: quicker
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    run(["git", "remote", "add", "origin", str(origin)], project)
    run(["git", "push", "-q", "-u", "origin", "HEAD"], project)

    # Checkpoints stay out of the cache and the remote.
    pushed = {p.parent.name + p.name for p in local_remote.rglob("*") if p.is_file()}
    assert md5(checkpoints / "state.json") not in pushed
    assert md5(project / "models/digits_cnn/model.keras") in pushed

    # A teammate's fresh clone: `dvc pull` restores everything, nothing to rerun.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    for path in RESULTS:
        assert md5(clone / path) == md5(project / path), path
    assert not (clone / "models/digits_cnn/checkpoints").exists()
    assert UP_TO_DATE in run(["dvc", "status"], clone).stdout
    assert stages_run(run(["dvc", "repro"], clone).stdout) == set()

    # ... or from the S3 remote.
    other = tmp_path / "other"
    run(["git", "clone", "-q", str(origin), str(other)], tmp_path)
    run(["dvc", "pull", "-r", "storage", "train"], other)
    assert md5(other / "models/digits_cnn/model.keras") == md5(
        project / "models/digits_cnn/model.keras"
    )

    # A change in the bucket: `dvc update` brings it, and the stages that read it rerun.
    changed = f"{bucket_data}/three/{sorted((digits / 'train/three').iterdir())[0].name}"
    s3.fs.pipe(changed, (digits / "train/eight").iterdir().__next__().read_bytes())
    run(["dvc", "update", "data/team/train.dvc"], project)
    status = run(["dvc", "status"], project).stdout
    assert {"validate:", "inventory:", "train:"} <= set(status.split())
    assert "data/team/train" in status
    again = run(["dvc", "repro"], project)
    assert stages_run(again.stdout) == {"validate", "inventory", "train", "export", "predict"}
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "the bucket changed"], project)
    run(["dvc", "push"], project)
    run(["git", "push", "-q", "origin", "HEAD"], project)

    # A sweep: queued, run two at a time, compared.
    run(
        [
            "dvc", "exp", "run", "--queue",
            "-S", "TRAINING.BATCH_SIZE=16,64",
            "-S", "MODEL.OPTIMIZER_PARAMS.LEARNING_RATE=0.003",
        ],
        project,
    )  # fmt: skip
    try:
        start_queue(project, tmp_path / "queue-start.log")
        assert wait_for_queue(project) == 2  # side by side
    finally:
        run(["dvc", "queue", "stop", "--kill"], project, check=False)
    status = run(["dvc", "queue", "status"], project).stdout
    assert status.count("Success") == 2, status
    shown = csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv"], project).stdout))
    swept = {row["TRAINING.BATCH_SIZE"]: row for row in shown if row["Experiment"]}
    assert set(swept) == {"16", "64"}
    assert {row["MODEL.OPTIMIZER_PARAMS.LEARNING_RATE"] for row in swept.values()} == {"0.003"}
    assert swept["16"]["eval.loss"] and swept["64"]["eval.loss"]
    assert swept["16"]["eval.loss"] != swept["64"]["eval.loss"]
    name = swept["16"]["Experiment"]

    # Shared: `dvc exp push` sends the experiment's commit and data; a teammate pulls it.
    run(["dvc", "exp", "push", "origin", name], project)
    run(["git", "pull", "-q"], clone)
    run(["dvc", "pull"], clone)
    run(["dvc", "exp", "pull", "origin", name], clone)
    assert name in run(["dvc", "exp", "show", "--csv"], clone).stdout
    run(["dvc", "exp", "apply", name], clone)
    assert yaml.safe_load((clone / "params.yaml").read_text())["TRAINING"]["BATCH_SIZE"] == 16
    assert UP_TO_DATE in run(["dvc", "status"], clone).stdout
    model = "models/digits_cnn/model.keras"
    assert md5(clone / model) == dvc_lock_md5((clone / "dvc.lock").read_text(), model)
    assert md5(clone / model) != md5(project / model)  # the experiment's, not the baseline
