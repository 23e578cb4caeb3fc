"""Deterministic synthetic image trees for the benchmarks (never committed).

``make_images`` writes class folders of JPEG and PNG files of mixed sizes (100-400 px by
default), RGB and grayscale, drawn from a seed: the same arguments give byte-identical files.
``make_photos`` writes camera-sized JPEGs (640x480 RGB, for the input pipeline row),
``make_small_files`` writes many tiny valid images fast (for the inventory benchmark), and
``make_linked_copies`` gives a bigger tree whose files are hard links to a smaller one, so the
40,000-image memory run costs no generation time and no disk.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = [f"class_{i:02d}" for i in range(10)]
SEED = 20250101


def image_bytes(index: int, min_size: int = 100, max_size: int = 400) -> tuple[str, bytes]:
    """One synthetic image (extension, encoded bytes): a gradient and a few shapes."""
    rng = np.random.default_rng([SEED, index])
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    label = index % len(CLASS_NAMES)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    slope = rng.uniform(-120, 120, size=(2, 3)).astype(np.float32)
    pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(2 + label % 4):  # the class shows as the number of shapes
        x0, y0 = int(rng.integers(0, width - 10)), int(rng.integers(0, height - 10))
        x1 = x0 + int(rng.integers(10, max(11, width - x0)))
        y1 = y0 + int(rng.integers(10, max(11, height - y0)))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    if rng.random() < 0.3:
        image = image.convert("L")
    out = BytesIO()
    if index % 2 == 0:
        image.save(out, format="JPEG", quality=90)
        return ".jpg", out.getvalue()
    image.save(out, format="PNG", compress_level=6)
    return ".png", out.getvalue()


def _write_range(args: tuple[str, int, int, int, int]) -> None:
    root, start, stop, min_size, max_size = args
    for index in range(start, stop):
        suffix, data = image_bytes(index, min_size, max_size)
        label = CLASS_NAMES[index % len(CLASS_NAMES)]
        (Path(root) / label / f"img_{index:06d}{suffix}").write_bytes(data)


def _ready(root: Path, spec: dict) -> bool:
    marker = root / ".spec.json"
    return marker.is_file() and json.loads(marker.read_text()) == spec


def _start(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    for name in CLASS_NAMES:
        (root / name).mkdir(parents=True)


def make_images(
    root: Path, count: int, min_size: int = 100, max_size: int = 400, workers: int = 2
) -> Path:
    """Write ``count`` images under ``root/<class>/`` unless an identical tree is there."""
    spec = {"kind": "images", "count": count, "min": min_size, "max": max_size, "seed": SEED}
    if _ready(root, spec):
        return root
    _start(root)
    chunk = max(1, count // (workers * 8))
    jobs = [
        (str(root), start, min(start + chunk, count), min_size, max_size)
        for start in range(0, count, chunk)
    ]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_range, jobs))
    (root / ".spec.json").write_text(json.dumps(spec))
    return root


def photo_bytes(index: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """One synthetic RGB JPEG of ``size`` (width, height), quality 90: smooth gradients, a few
    shapes and some fine noise, so it compresses about as a photo does (about 60-90 KB)."""
    rng = np.random.default_rng([SEED, 7, index])
    width, height = size
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    slope = rng.uniform(-120, 120, size=(2, 3)).astype(np.float32)
    noise = rng.integers(-10, 11, size=(height, width, 3), dtype=np.int8)
    pixels = np.clip(base + x * slope[0] + y * slope[1] + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(3 + index % 4):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        box = (x0, y0, x0 + int(rng.integers(20, 300)), y0 + int(rng.integers(20, 200)))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    out = BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _write_photos(args: tuple[str, int, int]) -> None:
    root, start, stop = args
    for index in range(start, stop):
        label = CLASS_NAMES[index % len(CLASS_NAMES)]
        (Path(root) / label / f"photo_{index:06d}.jpg").write_bytes(photo_bytes(index))


def make_photos(root: Path, count: int, workers: int = 2) -> Path:
    """Write ``count`` 640x480 JPEGs under ``root/<class>/`` unless an identical tree is there."""
    spec = {"kind": "photos", "count": count, "size": [640, 480], "seed": SEED}
    if _ready(root, spec):
        return root
    _start(root)
    chunk = max(1, count // (workers * 8))
    jobs = [(str(root), start, min(start + chunk, count)) for start in range(0, count, chunk)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_photos, jobs))
    (root / ".spec.json").write_text(json.dumps(spec))
    return root


def make_small_files(root: Path, count: int, variants: int = 64) -> Path:
    """Write ``count`` tiny valid images (16-32 px, a few distinct ones reused) in class folders."""
    spec = {"kind": "small", "count": count, "variants": variants, "seed": SEED}
    if _ready(root, spec):
        return root
    _start(root)
    blobs = [image_bytes(i, 16, 32) for i in range(variants)]
    for index in range(count):
        suffix, data = blobs[index % variants]
        label = CLASS_NAMES[index % len(CLASS_NAMES)]
        (root / label / f"f_{index:06d}{suffix}").write_bytes(data)
    (root / ".spec.json").write_text(json.dumps(spec))
    return root


def make_linked_copies(source: Path, root: Path, copies: int) -> Path:
    """A tree with ``copies`` hard links (distinct names) of every image in ``source``."""
    spec = {"kind": "links", "source": str(source), "copies": copies, "seed": SEED}
    if _ready(root, spec):
        return root
    _start(root)
    for name in CLASS_NAMES:
        for entry in sorted(os.scandir(source / name), key=lambda e: e.name):
            stem, suffix = os.path.splitext(entry.name)
            for copy in range(copies):
                os.link(entry.path, root / name / f"{stem}_{copy}{suffix}")
    (root / ".spec.json").write_text(json.dumps(spec))
    return root
