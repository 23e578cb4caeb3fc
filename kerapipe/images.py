"""Image files without TensorFlow: which files are images, what their headers say, how each
one must be decoded, the checks the inventory runs on them, and Pillow's decoding of the
files that TensorFlow's own decoders would get wrong.

A header probe (``probe_image``) opens a file with Pillow, which reads only the header: the
format, the pixel mode, the size and the EXIF orientation. From those it picks the file's
*route*: TensorFlow's fast native decoder for the files it decodes as Pillow does (8-bit
gray, gray+alpha, RGB and RGBA PNG; gray and RGB JPEG), its 16-bit PNG decoder for 16-bit
PNGs (scaled to 8 bits), and Pillow for every other file (BMP, GIF, palette and low-bit PNG,
PNG with a transparent colour, CMYK JPEG, WebP, TIFF). Whatever the route, the pixels are
Pillow's: ``ImageOps.exif_transpose`` then ``convert("L"/"RGB"/"RGBA")``, 16-bit values
divided by 257 (see kerapipe/datasets.py, which applies the orientation for every route).

kerapipe refuses images larger than ``PIPELINE.MAX_IMAGE_PIXELS`` itself, from the header,
before anything is decoded; Pillow's own decompression-bomb check is turned off for that
reason, so the param decides alone.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from kerapipe.config import DEFAULT_MAX_IMAGE_PIXELS
from kerapipe.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

# The image files kerapipe reads, by extension, and the Pillow plug-ins that may open them
# (the JPEG one also opens MPO: a camera JPEG holding more than one picture, the first being
# the photo). No other plug-in runs on a user's file.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, BMP, GIF, WebP or TIFF"

# How a file is decoded (kerapipe/datasets.py); chosen per file by ``probe_image``. Each one
# is a branch of one switch in the tf.data map, so the format costs no further test there.
JPEG = 0  # TensorFlow's JPEG decoder: a colour (YCbCr or RGB) JPEG
JPEG_GRAY = 1  # the same, for a grayscale JPEG
PNG = 2  # TensorFlow's PNG decoder: an 8-bit RGB or RGBA PNG
PNG_GRAY = 3  # the same, for an 8-bit gray or gray+alpha PNG
PNG_16 = 4  # TensorFlow's 16-bit PNG decoder, scaled to 8 bits (value / 257)
PILLOW = 5  # Pillow, inside the tf.data map (tf.numpy_function): every other file
ROUTES = (JPEG, JPEG_GRAY, PNG, PNG_GRAY, PNG_16, PILLOW)
NATIVE = frozenset(ROUTES) - {PILLOW}  # TensorFlow's own decoders

CheckLevel = Literal["decode", "header", "names"]
ORIENTATION_TAG = 0x0112  # EXIF Orientation: 1 as stored, 2-8 flipped and/or rotated
_PNG_COLOUR_TYPES = {0, 2, 4, 6}  # IHDR colour types: gray, RGB, gray+alpha, RGBA
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_CHUNK = 512  # files per task of the checking thread pool
_TIMED, _THREADS_FROM = 32, 150e-6  # in_threads(threads=None): files timed, and the bar
_ANY = TypeVar("_ANY")


@dataclass(frozen=True)
class ImageInfo:
    """What the header of one image file says, and how to decode it.

    Args:
        path: the file.
        route: ``NATIVE``, ``NATIVE_16`` or ``PILLOW``.
        orientation: the EXIF orientation, 1-8 (1: as stored).
        size: ``(width, height)`` as stored, before the orientation is applied.
        problem: why the file cannot be used ("too large: ...", "not an image: ..."), or
            None when it can.
    """

    path: str
    route: int = PILLOW
    orientation: int = 1
    size: tuple[int, int] = (0, 0)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def oriented_size(self) -> tuple[int, int]:
        """``(width, height)`` as the image is seen, after its EXIF orientation (5-8 turn it
        a quarter, swapping the two)."""
        width, height = self.size
        return (height, width) if self.orientation >= 5 else (width, height)


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


def _pillow() -> Any:
    """PIL.Image, with Pillow's own decompression-bomb check off: kerapipe refuses large
    images itself, from the header, at ``PIPELINE.MAX_IMAGE_PIXELS`` (which may be set
    above Pillow's limit)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


def probe_image(
    path: str, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, plain: bool = True
) -> ImageInfo:
    """Read the header of ``path`` (Pillow decodes nothing yet) and say how to decode it, or
    what is wrong with it. Never raises for a bad file: the problem is in the result.

    With ``plain`` the usual PNG and JPEG headers are read by ``_plain_header``, a few times
    faster than Pillow's general reader (which matters for prediction on many small files);
    anything it is not sure of goes to Pillow, as every file does without ``plain``.
    """
    image_module = _pillow()
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
            found = _plain_header(_Reader(handle, head)) if plain else None
            if found is not None:
                route, size, orientation = found
                if max_pixels is not None and size[0] * size[1] > max_pixels:
                    return ImageInfo(path, size=size, problem=_too_large(size, max_pixels))
                return ImageInfo(path, route, orientation, size)
            handle.seek(0)
            with image_module.open(handle, formats=FORMATS) as image:
                return _describe(path, image, head, max_pixels)
    except OSError as err:
        return ImageInfo(path, problem=_open_problem(err))
    except (SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError) as err:
        return ImageInfo(path, problem=f"damaged header: {_text(err)}")


_HEAD = 2048  # bytes read first: a PNG's chunks before its pixels, a JPEG's usual markers
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
# PNG chunks before the pixels that make Pillow's reader necessary: a transparent colour, EXIF
# (an orientation), animation (Pillow decodes its first frame), and text that may hold EXIF
# or XMP (keywords "Raw profile type exif", "XML:com.adobe.xmp").
_PNG_FOR_PILLOW = frozenset({b"tRNS", b"eXIf", b"acTL"})
_PNG_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PNG_ORIENTING_TEXT = (b"Raw profile type exif\x00", b"XML:com.adobe.xmp\x00")


class _Reader:
    """Bytes of an open file by position: the head read first, more read only when asked."""

    def __init__(self, handle, head: bytes) -> None:
        self.handle, self.data = handle, head

    def at(self, start: int, length: int) -> bytes:
        end = start + length
        if end > len(self.data):
            self.data += self.handle.read(end - len(self.data))
        return self.data[start:end]


def _plain_header(reader: _Reader) -> tuple[int, tuple[int, int], int] | None:
    """``(route, (width, height), orientation)`` for a plain 8- or 16-bit gray/RGB(A) PNG or
    a gray/RGB JPEG, read from its header as Pillow reads it; None for anything else or
    anything unusual (Pillow then reads it)."""
    head = reader.at(0, 8)
    if head == _PNG_SIGNATURE:
        return _plain_png(reader)
    if head[:3] == b"\xff\xd8\xff":
        return _plain_jpeg(reader)
    return None


def _plain_png(reader: _Reader) -> tuple[int, tuple[int, int], int] | None:
    ihdr = reader.at(8, 25)
    if len(ihdr) < 25 or ihdr[:8] != b"\x00\x00\x00\x0dIHDR":
        return None
    if zlib.crc32(ihdr[4:21]) != int.from_bytes(ihdr[21:25], "big"):
        return None  # a damaged header: Pillow says so
    width, height, depth, colour, compression, filters, interlace = struct.unpack(
        ">IIBBBBB", ihdr[8:21]
    )
    plain = colour in _PNG_COLOUR_TYPES and depth in (8, 16) and not (compression or filters)
    if not (plain and width and height and interlace < 2):
        return None
    position = 33
    for _ in range(256):  # the chunks before the pixels
        chunk = reader.at(position, 8)
        if len(chunk) < 8:
            return None
        length, kind = int.from_bytes(chunk[:4], "big"), chunk[4:]
        if kind == b"IDAT":
            route = PNG_16 if depth == 16 else PNG_GRAY if colour in (0, 4) else PNG
            return route, (width, height), 1
        if kind in _PNG_FOR_PILLOW:
            return None
        if kind in _PNG_TEXT and reader.at(position + 8, 24).startswith(_PNG_ORIENTING_TEXT):
            return None
        position += 12 + length
    return None


def _plain_jpeg(reader: _Reader) -> tuple[int, tuple[int, int], int] | None:
    position, orientation = 2, 1
    for _ in range(256):  # the markers before the frame header
        marker = reader.at(position, 4)
        if len(marker) < 4 or marker[0] != 0xFF or marker[1] in (0xD8, 0xD9, 0xDA, 0xFF):
            return None
        kind, length = marker[1], int.from_bytes(marker[2:], "big")
        if kind in _JPEG_SOF:
            frame = reader.at(position + 4, 6)
            if len(frame) < 6:
                return None
            precision, height, width, components = struct.unpack(">BHHB", frame)
            if precision != 8 or not (height and width) or components not in (1, 3):
                return None  # 12-bit, height in a later DNL marker, CMYK: Pillow decides
            return (JPEG_GRAY if components == 1 else JPEG), (width, height), orientation
        if kind == 0xE1:  # APP1: EXIF, or XMP (which may hold an orientation: Pillow's)
            segment = reader.at(position + 4, length - 2)
            if segment.startswith(b"Exif\x00\x00"):
                found = _exif_orientation(segment[6:])
                if found is None:
                    return None
                orientation = found
            elif segment.startswith(b"http://ns.adobe.com/xap/1.0/"):
                return None
        position += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """The Orientation of an EXIF block's first directory (1 if none, or not 1-8, as
    ``exif_transpose`` reads it); None if the block is not plain (Pillow reads it)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8 or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return None
    directory = struct.unpack(order + "I", tiff[4:8])[0]
    if directory + 2 > len(tiff):
        return None
    count = struct.unpack(order + "H", tiff[directory : directory + 2])[0]
    for entry in range(directory + 2, directory + 2 + 12 * count, 12):
        if entry + 12 > len(tiff):
            return None
        tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
        if tag == ORIENTATION_TAG:
            if kind != 3:  # not a SHORT
                return None
            value = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def _open_problem(err: OSError, otherwise: str = "damaged header") -> str:
    """A short reason for an OSError from Pillow or the system."""
    from PIL import UnidentifiedImageError

    if isinstance(err, UnidentifiedImageError):
        return f"not an image: not a {FORMAT_NAMES} file (or a damaged one)"
    if err.strerror:  # the system's words: missing file, dangling link, no permission
        return f"unreadable: {err.strerror.lower()}"
    return f"{otherwise}: {_text(err)}"


def _describe(path: str, image: PILImage.Image, head: bytes, max_pixels: int | None) -> ImageInfo:
    size = image.size
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        return ImageInfo(path, size=size, problem=_too_large(size, max_pixels))
    return ImageInfo(path, _route(image, head), _orientation(image), size)


def _too_large(size: tuple[int, int], max_pixels: int) -> str:
    width, height = size
    return (
        f"too large: {width}x{height} is {width * height} pixels, over "
        f"PIPELINE.MAX_IMAGE_PIXELS ({max_pixels})"
    )


def _route(image: PILImage.Image, head: bytes) -> int:
    """One of TensorFlow's decoders where it decodes the file exactly as Pillow does (PNG_16
    for 16-bit PNGs, whose full values Pillow would cut to their high byte for RGB), PILLOW
    otherwise."""
    if image.format in ("JPEG", "MPO"):  # CMYK JPEGs go to Pillow
        return {"L": JPEG_GRAY, "RGB": JPEG}.get(image.mode, PILLOW)
    if image.format != "PNG" or getattr(image, "is_animated", False):
        return PILLOW  # an animated PNG: Pillow's first frame
    # IHDR: bit depth at byte 24, colour type at 25. A transparent colour (tRNS) and palette
    # or 1-4 bit images go to Pillow, which turns them into gray/RGB/RGBA as its convert does.
    depth, colour = (head[24], head[25]) if len(head) > 25 else (0, 3)
    if colour not in _PNG_COLOUR_TYPES or "transparency" in image.info:
        return PILLOW
    if depth == 16:
        return PNG_16
    return (PNG_GRAY if colour in (0, 4) else PNG) if depth == 8 else PILLOW


def _orientation(image: PILImage.Image) -> int:
    """The EXIF orientation ``ImageOps.exif_transpose`` would apply (1 if none or invalid).

    A PNG's EXIF comes before its pixels or after them; Pillow reads the later kind only by
    decoding the whole file, so the probe reads only the earlier one (the usual place)."""
    if image.format == "PNG" and not {"exif", "XML:com.adobe.xmp", "xmp"} & image.info.keys():
        return 1
    try:
        orientation = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: read as no orientation
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def probe_images(
    paths: Sequence[str], max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
) -> list[ImageInfo]:
    """``probe_image`` for every path, in order (about 15 microseconds a file on local disk,
    in this thread: see ``in_threads``)."""
    return in_threads(
        lambda path: probe_image(path, max_pixels), paths, "reading image headers", threads=False
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
    image_module = _pillow()
    try:
        with image_module.open(path, formats=FORMATS) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                return _too_large(image.size, max_pixels)
            if image.format in ("JPEG", "MPO"):
                image.draft(None, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except OSError as err:
        return _open_problem(err, otherwise="undecodable")
    except Exception as err:  # Pillow's plugins raise many kinds on bad data
        return f"undecodable: {_text(err)}"
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
    image_module = _pillow()
    try:
        with image_module.open(path, formats=FORMATS) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ValueError(_too_large(image.size, max_pixels))
            if least and image.format in ("JPEG", "MPO"):
                image.draft(None, (max(1, least[1]), max(1, least[0])))
            return pillow_pixels(image, channels)
    except ValueError:
        raise
    except Exception as err:  # reported as one kind, with the file named
        raise ValueError(f"{path}: {_text(err)}") from None


def pillow_pixels(image: PILImage.Image, channels: int) -> np.ndarray:
    """``image`` (first frame) as uint8 ``(height, width, channels)`` with Pillow's
    conversions; 16-bit gray scaled by 1/257 rather than clipped as Pillow's convert does."""
    import numpy as np

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        image = _pillow().fromarray(gray, mode="L")
    if image.mode != mode:
        try:
            image = image.convert(mode)
        except ValueError:  # no direct conversion (e.g. from LAB): through RGB
            image = image.convert("RGB").convert(mode)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(*pixels.shape[:2], channels)


def in_threads(
    function: Callable[[_ANY], Any],
    items: Sequence[_ANY],
    desc: str = "checking images",
    threads: bool | None = True,
) -> list[Any]:
    """``function(item)`` for every item, in order, with a progress bar on a terminal when
    it takes more than a second (none in CI logs).

    With ``threads``, in a small thread pool: right for work that releases the GIL (Pillow's
    decoding of real images, the latency of remote files). Work that is mostly Python holds
    the GIL, and two threads then take longer than one (header reads: two to three times;
    decoding 16-32 px images: 1.4 times). ``None`` decides from the first items, timed in
    this thread: threads when each took more than ``_THREADS_FROM`` seconds.
    """
    if len(items) <= 8:
        return [function(item) for item in items]
    if threads is None:
        return _timed_then_threads(function, items, desc)
    from tqdm import tqdm

    size = max(8, min(_CHUNK, len(items) // (4 * _workers())))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    results: list[Any] = []
    with (
        ThreadPoolExecutor(_workers()) if threads else nullcontext() as pool,
        tqdm(total=len(items), unit="file", desc=desc, disable=None, delay=1) as bar,
    ):
        run = pool.map if pool else map
        for part in run(lambda chunk: [function(item) for item in chunk], chunks):
            results += part
            bar.update(len(part))
    return results


def _timed_then_threads(
    function: Callable[[_ANY], Any], items: Sequence[_ANY], desc: str
) -> list[Any]:
    """``in_threads(threads=None)``: ``_TIMED`` items spread over the list are done first,
    in this thread and timed (after one untimed, which pays for imports and the like); the
    rest in threads if they took more than ``_THREADS_FROM`` seconds each."""
    step = max(1, len(items) // (_TIMED + 1))
    sample = list(range(0, len(items), step))[: _TIMED + 1]
    done = {sample[0]: function(items[sample[0]])}
    start = time.perf_counter()
    done.update((i, function(items[i])) for i in sample[1:])
    threads = (time.perf_counter() - start) / max(1, len(sample) - 1) > _THREADS_FROM
    rest = [i for i in range(len(items)) if i not in done]
    found = in_threads(function, [items[i] for i in rest], desc, threads)
    done.update(zip(rest, found, strict=True))
    return [done[i] for i in range(len(items))]


def _workers() -> int:
    return max(2, min(8, os.cpu_count() or 1))


def describe_problems(problems: dict[str, str] | Iterable[tuple[str, str]], count: int = 3) -> str:
    """``path (problem)`` for the first ``count`` files, and how many more (for messages)."""
    items = list(problems.items() if isinstance(problems, dict) else problems)
    return first([f"{path} ({problem})" for path, problem in items], count)


def _text(err: BaseException) -> str:
    return str(err).strip() or type(err).__name__


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
