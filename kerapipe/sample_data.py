"""The embedded sample: scikit-learn's 1,797 real 8x8 handwritten digits (UCI), written as
grayscale PNG files, one folder per class, plus a held-out folder of unlabelled images whose
true classes are kept apart in a CSV so tests can score predictions. Nothing is downloaded:
the digits ship inside scikit-learn. Same code and packages: byte-identical files.

Usage: ``python -m kerapipe.sample_data OUT_DIR``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from kerapipe.atomic import atomic_path

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
HELD_OUT_FRACTION = 0.1
SEED = 20240601


def write_digits(out_dir: str | Path) -> Path:
    """Write ``train/<class>/digit_NNNN.png``, ``unlabelled/digit_NNNN.png`` and
    ``unlabelled_labels.csv`` under ``out_dir`` (replacing what was there, atomically)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    indices = np.arange(len(pixels))
    labelled, held_out = train_test_split(
        indices, test_size=HELD_OUT_FRACTION, random_state=SEED, stratify=digits.target
    )
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        for i in sorted(labelled):
            _save(pixels[i], tmp / "train" / CLASS_NAMES[digits.target[i]] / f"digit_{i:04d}.png")
        rows = ["filename,class_name,label"]
        for i in sorted(held_out):
            _save(pixels[i], tmp / "unlabelled" / f"digit_{i:04d}.png")
            rows.append(f"digit_{i:04d}.png,{CLASS_NAMES[digits.target[i]]},{digits.target[i]}")
        (tmp / "unlabelled_labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out_dir


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, mode="L").save(path, format="PNG", optimize=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to write (replaced if it exists)")
    print(f"wrote {write_digits(parser.parse_args().out_dir)}")


if __name__ == "__main__":
    main()
