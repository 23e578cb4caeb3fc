"""What an image file's header says, and how the file must be decoded, without TensorFlow.

A header probe (``probe_image``) opens a file with Pillow, which reads only the header: the
format, the pixel mode, the size and the EXIF orientation. From those it picks the file's
*route*: TensorFlow's fast native decoder for the files it decodes as Pillow does (8-bit
gray, gray+alpha, RGB and RGBA PNG; gray and RGB JPEG), its 16-bit PNG decoder for 16-bit
PNGs (scaled to 8 bits), and Pillow for every other file (BMP, GIF, palette and low-bit PNG,
PNG with a transparent colour, CMYK JPEG, WebP, TIFF). Whatever the route, the pixels are
Pillow's: ``ImageOps.exif_transpose`` then ``convert("L"/"RGB"/"RGBA")``, 16-bit values
divided by 257 (see kerapipe/decoding.py, which applies the orientation for every route).

kerapipe refuses images larger than ``PIPELINE.MAX_IMAGE_PIXELS`` itself, from the header,
before anything is decoded; Pillow's own decompression-bomb check is turned off for that
reason, so the param decides alone.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kerapipe.config import DEFAULT_MAX_IMAGE_PIXELS
from kerapipe.parallel import in_threads

if TYPE_CHECKING:
    from PIL import Image as PILImage

# The Pillow plug-ins that may open a user's file (the JPEG one also opens MPO: a camera JPEG
# holding more than one picture, the first being the photo). No other plug-in runs.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, BMP, GIF, WebP or TIFF"

# How a file is decoded (kerapipe/decoding.py); chosen per file by ``probe_image``. Each one
# is a branch of one switch in the tf.data map, so the format costs no further test there.
JPEG = 0  # TensorFlow's JPEG decoder: a colour (YCbCr or RGB) JPEG
JPEG_GRAY = 1  # the same, for a grayscale JPEG
PNG = 2  # TensorFlow's PNG decoder: an 8-bit RGB or RGBA PNG
PNG_GRAY = 3  # the same, for an 8-bit gray or gray+alpha PNG
PNG_16 = 4  # TensorFlow's 16-bit PNG decoder, scaled to 8 bits (value / 257)
PILLOW = 5  # Pillow, inside the tf.data map (tf.numpy_function): every other file
ROUTES = (JPEG, JPEG_GRAY, PNG, PNG_GRAY, PNG_16, PILLOW)
NATIVE = frozenset(ROUTES) - {PILLOW}  # TensorFlow's own decoders

ORIENTATION_TAG = 0x0112  # EXIF Orientation: 1 as stored, 2-8 flipped and/or rotated
_PNG_COLOUR_TYPES = {0, 2, 4, 6}  # IHDR colour types: gray, RGB, gray+alpha, RGBA
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


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


def pillow_module() -> Any:
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
    image_module = pillow_module()
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
            found = _plain_header(_Reader(handle, head)) if plain else None
            if found is not None:
                route, size, orientation = found
                if max_pixels is not None and size[0] * size[1] > max_pixels:
                    return ImageInfo(path, size=size, problem=too_large(size, max_pixels))
                return ImageInfo(path, route, orientation, size)
            handle.seek(0)
            with image_module.open(handle, formats=FORMATS) as image:
                return _describe(path, image, head, max_pixels)
    except OSError as err:
        return ImageInfo(path, problem=open_problem(err))
    except (SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError) as err:
        return ImageInfo(path, problem=f"damaged header: {error_text(err)}")


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


def open_problem(err: OSError, otherwise: str = "damaged header") -> str:
    """A short reason for an OSError from Pillow or the system."""
    from PIL import UnidentifiedImageError

    if isinstance(err, UnidentifiedImageError):
        return f"not an image: not a {FORMAT_NAMES} file (or a damaged one)"
    if err.strerror:  # the system's words: missing file, dangling link, no permission
        return f"unreadable: {err.strerror.lower()}"
    return f"{otherwise}: {error_text(err)}"


def _describe(path: str, image: PILImage.Image, head: bytes, max_pixels: int | None) -> ImageInfo:
    size = image.size
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        return ImageInfo(path, size=size, problem=too_large(size, max_pixels))
    return ImageInfo(path, _route(image, head), _orientation(image), size)


def too_large(size: tuple[int, int], max_pixels: int) -> str:
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


def error_text(err: BaseException) -> str:
    return str(err).strip() or type(err).__name__
