"""The fast paths behind the inventory and `kerapipe validate` give exactly the results of the
plain code they replaced (pathlib suffixes, pandas' CSV writer, file listing), and validate
imports neither TensorFlow nor pandas. Correctness only: speed lives in benchmarks/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import PurePath

import numpy as np
import pandas as pd
import pytest

from kerapipe.images import IMAGE_EXTENSIONS, is_image_name
from kerapipe.inventory_file import csv_text
from kerapipe.sources import LocalSource
from tests.helpers import context


@pytest.mark.parametrize(
    "path",
    ["a.png", "A.PNG", "x/y.jpeg", "x/.png", ".png", "x/.hidden.png", "a.b.gif", "a.png.",
     "a.txt", "x.jpgx", "dir.png/file", "a..bmp", "x/a.JPG", "noext", "x/..png", "x/b..png",
     "x/a.Jpeg", "x.y/z"],
)  # fmt: skip
def test_image_names_are_judged_as_pathlib_would(path):
    assert is_image_name(path) == (PurePath(path).suffix.lower() in IMAGE_EXTENSIONS)


@pytest.mark.parametrize(
    "table",
    [
        pd.DataFrame({"filepath": ["d/a.png", "d/b.png"], "label": [0, 12], "split": ["t", "v"]}),
        pd.DataFrame({"filepath": ["a,b.png", "c.png"], "label": [1, 2]}),  # needs quotes
        pd.DataFrame({"filepath": ['a"b.png', "c.png"], "label": [1, 2]}),
        pd.DataFrame({"filepath": ["", "c.png"], "label": [1, 2]}),
        pd.DataFrame({"filepath": ["a.png", None], "label": [1, 2]}),
        pd.DataFrame({"filepath": ["a.png", "b.png"], "target": [1.5, np.nan]}),
        pd.DataFrame({"filepath": pd.Series(["a", "b"], dtype=object), "n": np.int32([-1, 2])}),
        pd.DataFrame({"filepath": pd.Categorical(["a", "b"]), "flag": [True, False]}),
    ],
)
def test_csv_text_is_byte_identical_to_pandas(table):
    assert csv_text(table) == table.to_csv(index=False, lineterminator="\n")


def test_local_files_are_sorted_posix_paths_without_dot_segments(tmp_path, monkeypatch):
    for name in ("b/2.png", "a/1.png", "a/.hidden.png", ".git/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.chdir(tmp_path)
    assert LocalSource().files("./") == ["a/1.png", "b/2.png"]
    assert LocalSource().files(".//a/") == ["a/1.png"]
    assert LocalSource().read_bytes("a/1.png", 4) == b"\x89PNG"
    assert LocalSource().read_bytes("a/1.png", 100) == b"\x89PNG\r\n\x1a\n"


def test_validate_imports_neither_tensorflow_nor_pandas_nor_numpy(make_params):
    _, path = make_params()
    code = (
        "import sys, contextlib, io\n"
        "from kerapipe.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['validate', '--params', {str(path)!r}])\n"
        "heavy = ('tensorflow', 'keras', 'pandas', 'numpy')\n"
        "print(code, sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["0", "[]"], out.stderr[-2000:]


def test_scan_sorts_rows_by_path_whatever_the_class_order(make_params, tmp_path):
    """Class folders are listed in CLASS_NAMES order and each comes sorted; the table must
    still be sorted by full path ("cat-x/" sorts before "cat/": '-' < '/')."""
    from kerapipe.config import load_params
    from kerapipe.steps.inventory import scan_data

    data = tmp_path / "data"
    for name in ("cat/b.png", "cat/a.png", "cat-x/c.png", "cat/sub/d.png", "dog/e.png"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    classes = {"CLASS_NAMES": ["dog", "cat", "cat-x"], "CLASS_LABELS": [0, 1, 2]}
    params = load_params(
        make_params(
            {"DATA.INVENTORY_DATA_DIR": str(data), "PIPELINE.TASK_PARAMS": classes,
             "MODEL.MODEL_PARAMS.NUM_CLASSES": 3}
        )[1]
    )  # fmt: skip
    table = scan_data(context(params))
    assert list(table.filepath) == sorted(table.filepath)
    assert [p.removeprefix(f"{data}/") for p in table.filepath] == [
        "cat-x/c.png", "cat/a.png", "cat/b.png", "cat/sub/d.png", "dog/e.png"
    ]  # fmt: skip
    assert list(table.class_name) == ["cat-x", "cat", "cat", "cat", "dog"]
    assert list(table.label) == [2, 1, 1, 1, 0]
    assert str(table.label.dtype) == "int64" and table.filepath.dtype == table.class_name.dtype
