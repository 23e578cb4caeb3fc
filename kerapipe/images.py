"""Image file checks that need no TensorFlow: which files are images, and is the header sane."""

from __future__ import annotations

from pathlib import PurePath

from kerapipe.errors import DataError

# The formats tf.io.decode_image reads, by extension and by their first bytes.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def is_image_name(path: str) -> bool:
    return PurePath(path).suffix.lower() in IMAGE_EXTENSIONS


def has_image_header(head: bytes) -> bool:
    return any(head.startswith(signature) for signature in _SIGNATURES)


def check_image_files(paths: list[str], read_head, key: str) -> None:
    """Raise one DataError listing files that are not images or whose header is not an image's.

    ``read_head(path)`` returns the first bytes of a file (from the data source).
    """
    not_images = [p for p in paths if not is_image_name(p)]
    if not_images:
        raise DataError(
            f"{key}: {len(not_images)} file(s) are not images ({_first(not_images)}). "
            f"Only {', '.join(sorted(IMAGE_EXTENSIONS))} files are read; move the others out "
            "of the data folder."
        )
    unreadable = [p for p in paths if not has_image_header(read_head(p))]
    if unreadable:
        raise DataError(
            f"{key}: {len(unreadable)} image(s) cannot be decoded: their contents are not a "
            f"PNG, JPEG, GIF or BMP image ({_first(unreadable)}). Re-export or remove them."
        )


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


def _first(paths: list[str], count: int = 5) -> str:
    shown = ", ".join(paths[:count])
    return shown + (f", and {len(paths) - count} more" if len(paths) > count else "")
