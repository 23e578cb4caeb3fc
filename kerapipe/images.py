"""Image files without TensorFlow: which files are images (by name), the checks the
inventory runs on them (header or full decode), Pillow's decoding of the files that
TensorFlow's own decoders would get wrong, and the messages that name bad files. What a
header says, and the route each file is decoded by, is kerapipe/image_probe.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from kerapipe.config import DEFAULT_MAX_IMAGE_PIXELS
from kerapipe.errors import DataError
from kerapipe.image_probe import (
    FORMATS,
    SIXTEEN_BIT_MODES,
    error_text,
    open_problem,
    pillow_module,
    probe_image,
    too_large,
)
from kerapipe.parallel import in_threads

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

# The image files kerapipe reads, by extension.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
CheckLevel = Literal["decode", "header", "names"]


def is_image_name(path: str) -> bool:
    """Whether the file name has an image extension, as ``PurePath(path).suffix`` would say,
    lowering only the few characters of the suffix (it runs once per file of the data
    folder). A name that is only a suffix (".png") is hidden, not an image."""
    dot = path.rfind(".")
    return dot > 0 and path[dot - 1] != "/" and path[dot:].lower() in IMAGE_EXTENSIONS


def keep_images(paths: list[str], key: str) -> list[str]:
    """The paths with an image's file name, in order. The others (a stray ``notes.txt``) are
    skipped with one warning naming them, as Keras' ``image_dataset_from_directory`` skips
    files that are not images."""
    images = list(filter(is_image_name, paths))
    if len(images) < len(paths):
        warn_not_images([p for p in paths if not is_image_name(p)], key)
    return images


def warn_not_images(others: Sequence[str], key: str) -> None:
    """One warning for all the files skipped for not being images (none: no warning)."""
    if others:
        log.warning(
            "%s: skipped %d file(s) that are not images: %s. Only %s files are read.",
            key,
            len(others),
            first(list(others)),
            ", ".join(sorted(IMAGE_EXTENSIONS)),
        )


def find_bad_images(
    paths: Sequence[str], level: CheckLevel, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
) -> dict[str, str]:
    """``{path: problem}`` for the images that fail the check ``level``: ``header`` reads
    each header (a file Pillow cannot open, a damaged header, too many pixels), ``decode``
    also decodes each image fully with Pillow (a truncated or corrupt file), ``names``
    checks nothing. Decoding runs in a thread pool (Pillow decodes with the GIL released).
    """
    if level == "names":
        return {}
    decode = level == "decode"
    check = check_decode if decode else check_header
    problems = in_threads(
        lambda path: check(path, max_pixels), paths, "checking images", None if decode else False
    )
    return {path: problem for path, problem in zip(paths, problems, strict=True) if problem}


def check_header(path: str, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """What is wrong with the header of ``path``, or None."""
    return probe_image(path, max_pixels).problem


def check_decode(path: str, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """What stops Pillow from decoding ``path`` fully, or None. A large JPEG is decoded at
    1/8 scale: every byte is still read and checked, with an eighth of the work."""
    image_module = pillow_module()
    try:
        with image_module.open(path, formats=FORMATS) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                return too_large(image.size, max_pixels)
            if image.format in ("JPEG", "MPO"):
                image.draft(None, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except OSError as err:
        return open_problem(err, otherwise="undecodable")
    except Exception as err:  # Pillow's plugins raise many kinds on bad data
        return f"undecodable: {error_text(err)}"
    return None


def undecodable_images(paths: list[str]) -> list[str]:
    """The files Pillow cannot fully decode: the slow check, run only after a decode failure."""
    return list(find_bad_images(paths, "decode", max_pixels=None))


def decode_with_pillow(
    path: str,
    channels: int,
    least: tuple[int, int] | None = None,
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """The pixels of ``path`` as Pillow decodes them, uint8 ``(height, width, channels)``,
    as stored (the EXIF orientation is not applied: the caller does it, for every route).

    GIF and other animations give their first frame; 16-bit images are divided by 257;
    ``channels`` 1, 3 or 4 convert as Pillow's ``convert("L"/"RGB"/"RGBA")`` (CMYK to RGB
    included; an image without alpha gets an opaque one). ``least`` = ``(height, width)``
    lets a large JPEG decode at 1/2, 1/4 or 1/8 scale while keeping at least that size, as
    the native route does. Raises ValueError naming the file on any failure.
    """
    image_module = pillow_module()
    try:
        with image_module.open(path, formats=FORMATS) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ValueError(too_large(image.size, max_pixels))
            if least and image.format in ("JPEG", "MPO"):
                image.draft(None, (max(1, least[1]), max(1, least[0])))
            return pillow_pixels(image, channels)
    except ValueError:
        raise
    except Exception as err:  # reported as one kind, with the file named
        raise ValueError(f"{path}: {error_text(err)}") from None


def pillow_pixels(image: PILImage.Image, channels: int) -> np.ndarray:
    """``image`` (first frame) as uint8 ``(height, width, channels)`` with Pillow's
    conversions; 16-bit gray scaled by 1/257 rather than clipped as Pillow's convert does."""
    import numpy as np

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        image = pillow_module().fromarray(gray, mode="L")
    if image.mode != mode:
        try:
            image = image.convert(mode)
        except ValueError:  # no direct conversion (e.g. from LAB): through RGB
            image = image.convert("RGB").convert(mode)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(*pixels.shape[:2], channels)


def describe_problems(problems: dict[str, str] | Iterable[tuple[str, str]], count: int = 3) -> str:
    """``path (problem)`` for the first ``count`` files, and how many more (for messages)."""
    items = list(problems.items() if isinstance(problems, dict) else problems)
    return first([f"{path} ({problem})" for path, problem in items], count)


def first(paths: list[str], count: int = 5) -> str:
    """The first ``count`` paths, comma-separated, and how many more there are (for errors)."""
    shown = ", ".join(paths[:count])
    return shown + (f", and {len(paths) - count} more" if len(paths) > count else "")


def refuse_or_skip(problems: dict[str, str], policy: str, key: str, listed_in: str = "") -> None:
    """Handle the images that failed the check by ``INVENTORY.BAD_IMAGES``: ``fail`` raises
    one DataError naming them and the fix; ``skip`` logs one warning naming them (the
    caller leaves them out)."""
    if not problems:
        return
    shown = describe_problems(problems)
    if policy == "fail":
        raise DataError(
            f"{key}: {len(problems)} image(s) cannot be read: {shown}. Re-export or remove "
            "them, or set INVENTORY.BAD_IMAGES: skip to leave them out of the inventory."
        )
    where = f" (listed in {listed_in})" if listed_in else ""
    log.warning(
        "%s: skipped %d image(s) that cannot be read%s: %s.", key, len(problems), where, shown
    )
