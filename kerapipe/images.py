"""Image file checks that need no TensorFlow: which files are images, and is the header sane."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kerapipe.errors import DataError

# The formats tf.io.decode_image reads, by extension and by their first bytes.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_CHUNK = 2048  # files per task of the header-reading thread pool


def is_image_name(path: str) -> bool:
    """Whether the file name has an image extension, as ``PurePath(path).suffix`` would say,
    lowering only the few characters of the suffix (it runs once per file of the data
    folder). A name that is only a suffix (".png") is hidden, not an image."""
    dot = path.rfind(".")
    return dot > 0 and path[dot - 1] != "/" and path[dot:].lower() in IMAGE_EXTENSIONS


def has_image_header(head: bytes) -> bool:
    return head.startswith(_SIGNATURES)


def check_image_files(paths: list[str], read_head, key: str, read_contents: bool = True) -> None:
    """Raise one DataError listing files that are not images or (with ``read_contents``)
    whose first bytes are not an image's.

    ``read_head(path)`` returns the first bytes of a file (from the data source).
    """
    not_images = [p for p in paths if not is_image_name(p)]
    if not_images:
        raise DataError(
            f"{key}: {len(not_images)} file(s) are not images ({first(not_images)}). "
            f"Only {', '.join(sorted(IMAGE_EXTENSIONS))} files are read; move the others out "
            "of the data folder."
        )
    if not read_contents:
        return
    heads = read_heads(paths, read_head)
    unreadable = [p for p, head in zip(paths, heads, strict=True) if not has_image_header(head)]
    if unreadable:
        raise DataError(
            f"{key}: {len(unreadable)} image(s) cannot be decoded: their contents are not a "
            f"PNG, JPEG, GIF or BMP image ({first(unreadable)}). Re-export or remove them."
        )


def read_heads(paths: list[str], read_head: Callable[[str], bytes]) -> list[bytes]:
    """``read_head(path)`` for every path, in order: in a small thread pool for many files
    (threads overlap the open/read system calls, and the latency of remote sources), with a
    progress bar on a terminal when it takes more than a second (none in CI logs)."""
    if len(paths) <= _CHUNK:
        return [read_head(p) for p in paths]
    from tqdm import tqdm

    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    heads: list[bytes] = []
    with (
        ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 1))) as pool,
        tqdm(total=len(paths), unit="file", desc="checking images", disable=None, delay=1) as bar,
    ):
        for part in pool.map(lambda chunk: [read_head(p) for p in chunk], chunks):
            heads += part
            bar.update(len(part))
    return heads


def undecodable_images(paths: list[str]) -> list[str]:
    """The files Pillow cannot fully decode: the slow check, run only after a decode failure."""
    from PIL import Image

    bad = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError):
            bad.append(path)
    return bad


def first(paths: list[str], count: int = 5) -> str:
    """The first ``count`` paths, comma-separated, and how many more there are (for errors)."""
    shown = ", ".join(paths[:count])
    return shown + (f", and {len(paths) - count} more" if len(paths) > count else "")
