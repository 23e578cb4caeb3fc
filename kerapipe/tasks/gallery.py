"""Pictures of the worst validation images, logged to DVCLive so ``dvc plots show`` shows them.

Each picture is the image as training saw it (its EXIF orientation applied), enlarged to be
seen, with a caption strip that says what went wrong; its file name says it too (the page
shows each image under its name). No TensorFlow here: pictures come from the files, by
Pillow, never from a second prediction pass.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageOps

if TYPE_CHECKING:
    from dvclive import Live

MIN_HEIGHT = 128  # small images (8x8 digits) are enlarged to at least this, pixel for pixel
FOLDER = "mistakes"  # dvclive/plots/images/mistakes/


def picture(path: str) -> np.ndarray:
    """The image at ``path`` as uint8 RGB, as it is seen (EXIF orientation applied)."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def enlarged(pixels: np.ndarray, height: int = MIN_HEIGHT) -> np.ndarray:
    """``pixels`` repeated to at least ``height`` rows (nearest neighbour: pixels stay sharp)."""
    scale = max(1, -(-height // max(1, pixels.shape[0])))
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)


def captioned(pixels: np.ndarray, lines: Sequence[str]) -> Image.Image:
    """``pixels`` (uint8 RGB) above a white strip holding ``lines`` of text."""
    line_height = 12
    width = max(pixels.shape[1], 6 * max((len(line) for line in lines), default=0) + 8)
    canvas = Image.new("RGB", (width, pixels.shape[0] + line_height * len(lines) + 6), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(pixels)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, pixels.shape[0] + 3 + i * line_height), line, fill="black")
    return canvas


def file_name(rank: int, path: str, what: str) -> str:
    """``mistakes/01_<stem>_<what>.png``: the rank keeps the page's order worst first."""
    stem = posixpath.splitext(posixpath.basename(path))[0]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}_{what}").strip("-")
    return f"{FOLDER}/{rank:02d}_{safe}.png"


def log_gallery(live: Live, items: Sequence[tuple[str, str, Image.Image]]) -> None:
    """Log ``(path, what went wrong, picture)`` items, worst first, under ``mistakes/``."""
    for rank, (path, what, image) in enumerate(items, start=1):
        live.log_image(file_name(rank, path, what), image)
