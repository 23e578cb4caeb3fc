"""The embedded sample: scikit-learn's 1,797 real 8x8 handwritten digits (UCI), written as
grayscale PNG files, one folder per class, plus a held-out folder of unlabelled images whose
true classes are kept apart in a CSV so tests can score predictions. Nothing is downloaded:
the digits ship inside scikit-learn. Same code and packages: byte-identical files.

Two drawn samples serve the other tasks, made from a seeded NumPy generator:
``shapes`` (segmentation: RGB images of squares and discs with their class-index masks) and
``discs`` (regression: grayscale images of one disc, with its radius and centre as targets).

Usage: ``python -m kerapipe.sample_data OUT_DIR [--kind digits|shapes|discs]``
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


def _save(image: np.ndarray, path: Path, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, mode=mode).save(path, format="PNG", optimize=False)


SHAPE_CLASSES = ["background", "square", "disc"]  # mask value i is SHAPE_CLASSES[i]


def write_shapes(
    out_dir: str | Path, count: int = 320, held_out: int = 32, size: int = 32, seed: int = SEED
) -> Path:
    """Write a segmentation sample under ``out_dir``: ``train/images/shape_NNNN.png`` (RGB),
    ``train/masks/shape_NNNN.png`` (8-bit class indices: 0 background, 1 square, 2 disc),
    ``unlabelled/`` (``held_out`` more images) and ``unlabelled_masks/`` (their true masks).

    Each image has one to three squares or discs of random size, position and colour on a
    noisy dark background; a later shape covers an earlier one in the image and the mask.
    """
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        for i in range(count + held_out):
            background = int(rng.integers(0, 90))
            image = Image.new("RGB", (size, size), (background,) * 3)
            mask = Image.new("L", (size, size), 0)
            draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
            for _ in range(int(rng.integers(1, 4))):
                label = int(rng.integers(1, 3))
                extent = int(rng.integers(size // 5, size // 2))
                x0, y0 = (int(v) for v in rng.integers(0, size - extent, 2))
                box = [x0, y0, x0 + extent - 1, y0 + extent - 1]
                colour = tuple(int(c) for c in rng.integers(120, 256, 3))
                shape = draw_image.rectangle if label == 1 else draw_image.ellipse
                shape(box, fill=colour)
                (draw_mask.rectangle if label == 1 else draw_mask.ellipse)(box, fill=label)
            noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, 12, (size, size, 3))
            name = f"shape_{i:04d}.png"
            folder, mask_folder = (
                ("train/images", "train/masks") if i < count else ("unlabelled", "unlabelled_masks")
            )
            _save(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), tmp / folder / name, "RGB")
            _save(np.asarray(mask, dtype=np.uint8), tmp / mask_folder / name)
    return out_dir


def write_discs(
    out_dir: str | Path, count: int = 400, held_out: int = 40, size: int = 32, seed: int = SEED
) -> Path:
    """Write a regression sample under ``out_dir``: ``train/images/disc_NNNN.png`` (grayscale)
    and ``train/targets.csv`` (``filename,radius,center_x,center_y``, in pixels), plus
    ``unlabelled/`` and ``unlabelled_targets.csv`` for ``held_out`` more images.

    Each image shows one bright disc on a noisy dark background, drawn with 4x4 supersampling
    so that sub-pixel radii and centres are visible in the grey levels of its edge.
    """
    rng = np.random.default_rng(seed + 1)
    fine = (np.arange(size * 4) + 0.5) / 4  # supersampled pixel centres
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        rows = {"train": ["filename,radius,center_x,center_y"]}
        rows["unlabelled"] = list(rows["train"])
        for i in range(count + held_out):
            radius = float(rng.uniform(3.0, 10.0))
            cx, cy = (float(v) for v in rng.uniform(radius + 1, size - radius - 1, 2))
            inside = (fine[None, :] - cx) ** 2 + (fine[:, None] - cy) ** 2 <= radius**2
            coverage = inside.reshape(size, 4, size, 4).mean(axis=(1, 3))
            background, foreground = rng.uniform(0, 60), rng.uniform(140, 255)
            pixels = background + (foreground - background) * coverage
            pixels = pixels + rng.normal(0, 8, (size, size))
            name = f"disc_{i:04d}.png"
            part = "train" if i < count else "unlabelled"
            folder = tmp / ("train/images" if part == "train" else "unlabelled")
            _save(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), folder / name)
            rows[part].append(f"{name},{radius:.4f},{cx:.4f},{cy:.4f}")
        (tmp / "train" / "targets.csv").write_text("\n".join(rows["train"]) + "\n", "utf-8")
        (tmp / "unlabelled_targets.csv").write_text(
            "\n".join(rows["unlabelled"]) + "\n", encoding="utf-8"
        )
    return out_dir


WRITERS = {"digits": write_digits, "shapes": write_shapes, "discs": write_discs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to write (replaced if it exists)")
    parser.add_argument(
        "--kind",
        choices=sorted(WRITERS),
        default="digits",
        help="digits (classification, the default), shapes (segmentation), discs (regression)",
    )
    args = parser.parse_args()
    print(f"wrote {WRITERS[args.kind](args.out_dir)}")


if __name__ == "__main__":
    main()
