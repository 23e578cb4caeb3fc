"""Smoke tests of the benchmark command (benchmarks/run.py) in its quick mode: it builds its
data, runs every comparison and prints the table, a few benchmarks per test. No speed is
asserted here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = {
    "training": [
        "fit throughput vs image_dataset_from_directory",
        "fit throughput vs pydataset",
        "TRAINING.CACHE: memory",
    ],
    "input": [
        "input pipeline, 640x480 JPEG -> 299x299, first epoch, from JPEG",
        "input pipeline, 640x480 JPEG -> 299x299, cached epochs",
    ],
    "remote": ["fit throughput, images in S3", "first fetch of 96 images from S3"],
    "predict": ["predict throughput vs model.predict"],
    "inventory": [
        "inventory of 1,000 files vs bare os.walk",
        "inventory with CHECK_IMAGES: decode",
    ],
    "startup": ["start-up: kerapipe --help", "start-up: kerapipe validate"],
    "memory": ["train peak memory"],
    "dvc": ["no-op `dvc repro` on the sample pipeline"],
    "command": [
        "whole `kerapipe train` vs a hand-written script, digits sample, 1,617 images, 2 epochs",
        "whole `kerapipe train` vs a hand-written script, synthetic tree, 96 images, 1 epoch",
        "the same with TRAINING.CACHE: memory",
    ],
    "jax": ["BACKEND: jax vs tensorflow", "data_parallel, 2 processes vs 1"],
    "frozen": [
        "frozen MobileNetV2 160x160, 64 JPEGs: epochs 2-2",
        "the whole frozen phase, 2 epochs, a fresh cache",
        "the same in a sweep's next experiment, features cached",
    ],
}


def run_quick(tmp_path: Path, *only: str) -> str:
    args = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--repeats", "1"]
    args += ["--data-dir", str(tmp_path / "bench"), "--results", str(tmp_path / "results")]
    if only:
        args += ["--only", *only]
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def check_table(out: str, benches, results: Path) -> None:
    assert "kerapipe benchmarks (quick" in out
    assert "comparison" in out and "ratio" in out and "target" in out
    for bench in benches:
        for row in ROWS[bench]:
            assert row in out, f"missing row {row!r} in:\n{out}"
    saved = json.loads((results / "quick.json").read_text())  # this run's, no other
    assert saved["rows"] and "machine" in saved


@pytest.mark.e2e
def test_quick_inventory_and_startup_print_the_table(tmp_path):
    out = run_quick(tmp_path, "inventory", "startup")
    check_table(out, ["inventory", "startup"], tmp_path / "results")
    assert "TensorFlow not imported" in out


# Every other benchmark, a group per test: pytest-xdist spreads them over its workers.
GROUPS = [
    ("training", "input"), ("remote", "predict"), ("memory", "dvc"), ("command",), ("jax",),
    ("frozen",),
]  # fmt: skip


def test_the_groups_cover_every_benchmark():
    usage = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    benches = re.search(r"--only \{([a-z,]+)\}", usage)[1].split(",")
    groups = [bench for group in GROUPS for bench in group]
    assert sorted([*groups, "inventory", "startup"]) == sorted(benches) == sorted(ROWS)


@pytest.mark.e2e
@pytest.mark.parametrize("benches", GROUPS, ids="-".join)
def test_quick_run_of_each_benchmark_prints_its_rows(tmp_path, benches):
    check_table(run_quick(tmp_path, *benches), benches, tmp_path / "results")
