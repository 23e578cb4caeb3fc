"""Every accepted image format decodes as Pillow decodes it, for 1, 3 and 4 channels, on real
files through kerapipe's real decoder (``kerapipe.datasets.decode_image``, the function the
tf.data map runs, and ``image_dataset`` itself), with INPUT_SHAPE equal to the image size so
the resize changes nothing. Also: EXIF orientation, the first frame of an animated GIF, the
16-bit scale, the pixel limit, and the header probe's verdict on damaged files.

The reference is Pillow: ``ImageOps.exif_transpose`` then ``convert("L"/"RGB"/"RGBA")``, with
16-bit values divided by 257 (Pillow's own convert would clip them)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from kerapipe.errors import DataError
from kerapipe.image_probe import (
    JPEG,
    JPEG_GRAY,
    PILLOW,
    PNG,
    PNG_16,
    PNG_GRAY,
    probe_image,
)
from kerapipe.images import (
    check_decode,
    find_bad_images,
    is_image_name,
)

tf = pytest.importorskip("tensorflow")

from kerapipe.datasets import image_dataset  # noqa: E402
from kerapipe.decoding import decode_image  # noqa: E402

HEIGHT, WIDTH = 12, 20  # every test image, as it is seen (after its EXIF orientation)
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def pattern(seed: int, channels: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Smooth gradients plus noise: every channel different, values across 0-255."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    layers = [(x * (7 + 3 * c) + y * (11 + 5 * c) + 40 * c) % 200 for c in range(channels)]
    noise = rng.integers(0, 56, size=(height, width, channels))
    return (np.stack(layers, axis=-1) + noise).astype(np.uint8)


def png_bytes(array: np.ndarray, depth: int) -> bytes:
    """A PNG of ``array`` (h, w) or (h, w, c) at bit depth 8 or 16, written by hand (Pillow
    cannot write 16-bit RGB); also used to craft a header of any size."""
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    dtype = ">u2" if depth == 16 else "u1"
    rows = b"".join(b"\x00" + np.ascontiguousarray(row, dtype=dtype).tobytes() for row in array)
    return png_chunks(width, height, depth, colour, zlib.compress(rows))


def png_chunks(width: int, height: int, depth: int, colour: int, data: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def exif(orientation: int) -> bytes:
    data = Image.Exif()
    data[0x0112] = orientation
    return data.tobytes()


SIXTEEN_BIT_RGB = pattern(30, 3).astype(np.uint16) * 257 + np.arange(WIDTH)[None, :, None] * 3


def write_all(folder: Path) -> dict[str, Path]:
    """One file per case, every one of them HEIGHT x WIDTH as seen."""
    rgb, rgba, gray = pattern(1, 3), pattern(2, 4), pattern(3, 1)[..., 0]
    palette = Image.fromarray(pattern(4, 3)).quantize(16)
    files: dict[str, Path] = {}

    def save(name: str, image: Image.Image, **options) -> None:
        files[name] = folder / name
        image.save(files[name], **options)

    save("gray.png", Image.fromarray(gray))
    save("gray_alpha.png", Image.fromarray(np.dstack([gray, rgb[..., 0]]), "LA"))
    save("rgb.png", Image.fromarray(rgb))
    save("rgba.png", Image.fromarray(rgba))
    save("bilevel.png", Image.fromarray(gray).convert("1"))
    save("palette.png", palette)
    save("palette_transparent.png", palette, transparency=3)
    files["gray16.png"] = folder / "gray16.png"
    files["gray16.png"].write_bytes(png_bytes(gray.astype(np.uint16) * 257 + 128, 16))
    files["rgb16.png"] = folder / "rgb16.png"
    files["rgb16.png"].write_bytes(png_bytes(SIXTEEN_BIT_RGB, 16))
    save("gray.jpg", Image.fromarray(gray), quality=90)
    save("rgb.jpg", Image.fromarray(rgb), quality=90)
    save("cmyk.jpg", Image.fromarray(rgba, "CMYK"), quality=90)
    # Stored 20 x 12, seen 12 x 20: orientation 6 turns it a quarter clockwise.
    save("rotated.jpg", Image.fromarray(pattern(5, 3, WIDTH, HEIGHT)), exif=exif(6), quality=95)
    save("rotated.png", Image.fromarray(pattern(6, 3, WIDTH, HEIGHT)), exif=exif(8))
    save("rgb.bmp", Image.fromarray(rgb))
    save("palette.bmp", palette)
    frames = [Image.fromarray(pattern(10 + i, 3)).quantize(32) for i in range(3)]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=50)
    save("rgb.webp", Image.fromarray(rgb), quality=90)
    save("rgba.webp", Image.fromarray(rgba), lossless=True)
    save("rgb.tif", Image.fromarray(rgb))
    save("gray16.tiff", Image.fromarray(gray.astype(np.uint16) * 257 + 77))
    return files


CASES = [
    "gray.png", "gray_alpha.png", "rgb.png", "rgba.png", "bilevel.png", "palette.png",
    "palette_transparent.png", "gray16.png", "rgb16.png", "gray.jpg", "rgb.jpg", "cmyk.jpg",
    "rotated.jpg", "rotated.png", "rgb.bmp", "palette.bmp", "animated.gif", "rgb.webp",
    "rgba.webp", "rgb.tif", "gray16.tiff",
]  # fmt: skip
ROUTES = {"gray.png": PNG_GRAY, "gray_alpha.png": PNG_GRAY, "rgb.png": PNG, "rgba.png": PNG,
          "gray.jpg": JPEG_GRAY, "rgb.jpg": JPEG, "rotated.jpg": JPEG, "rotated.png": PNG,
          "gray16.png": PNG_16, "rgb16.png": PNG_16}  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("formats"))


def reference(path: Path, channels: int) -> np.ndarray:
    """Pillow's pixels: EXIF orientation applied, 16-bit divided by 257, then converted."""
    if path.name == "rgb16.png":  # Pillow keeps only the high byte of 16-bit RGB: use the truth
        image = Image.fromarray(np.rint(SIXTEEN_BIT_RGB / 257).astype(np.uint8))
    else:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
        if image.mode.startswith("I"):
            image = Image.fromarray(np.rint(np.asarray(image) / 257).astype(np.uint8))
    pixels = np.asarray(image.convert(MODES[channels]))
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


@pytest.fixture(scope="module")
def decoder():
    """kerapipe's decode of one file (route and orientation from its header probe), as the
    tf.data map runs it: one traced graph per channel count."""
    traced = {}

    def decode(path: Path, channels: int) -> np.ndarray:
        if channels not in traced:
            shape = (HEIGHT, WIDTH, channels)
            traced[channels] = tf.function(lambda p, r, o: decode_image(p, shape, r, o))
        info = probe_image(str(path))
        assert info.ok, info.problem
        args = (tf.constant(str(path)), tf.constant(info.route), tf.constant(info.orientation))
        return traced[channels](*args).numpy()

    return decode


def tolerance(name: str) -> int:
    return 2 if name.endswith(".jpg") else 0  # JPEG: libjpeg builds may round apart


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("name", CASES)
def test_every_format_decodes_as_pillow_does(files, decoder, name, channels):
    expected = reference(files[name], channels)
    assert expected.shape == (HEIGHT, WIDTH, channels)
    got = decoder(files[name], channels)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    difference = np.abs(got.astype(int) - expected.astype(int)).max()
    assert difference <= tolerance(name), f"{name}: max difference {difference}"


@pytest.mark.parametrize("channels", [1, 4])
def test_image_dataset_decodes_a_folder_of_every_format(files, channels):
    """The whole training pipeline on all the files at once: the per-file decoders mix in
    one parallel map, in file order."""
    paths = [str(files[name]) for name in CASES]
    labels = np.arange(len(paths), dtype=np.int32)
    data = image_dataset(paths, labels, (HEIGHT, WIDTH, channels), batch_size=len(paths))
    images, order = next(iter(data))
    assert order.numpy().tolist() == labels.tolist()
    for name, image in zip(CASES, images.numpy(), strict=True):
        difference = np.abs(image - reference(files[name], channels)).max()
        assert difference <= tolerance(name), f"{name}: max difference {difference}"


def test_each_file_takes_the_fast_native_decoder_when_it_decodes_right(files):
    for name in CASES:
        assert probe_image(str(files[name])).route == ROUTES.get(name, PILLOW), name


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="3"/></rdf:RDF></x:xmpmeta>'
)


def test_the_fast_header_reader_says_what_pillows_says(files, tmp_path):
    """Plain PNG and JPEG headers are read without Pillow's general reader; for every file
    it must agree with Pillow's, including orientations kept in XMP, big-endian EXIF and
    PNG text, which it leaves to Pillow."""
    extra = {
        "xmp.jpg": lambda p: Image.fromarray(pattern(1, 3)).save(p, xmp=XMP),
        "motorola.jpg": lambda p: Image.fromarray(pattern(2, 3)).save(
            p,
            exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03"
            b"\x00\x00\x00\x01\x00\x07\x00\x00\x00\x00\x00\x00",
        ),
        "text.png": lambda p: Image.fromarray(pattern(3, 3)).save(
            p, pnginfo=_text_info("Raw profile type exif", "\nexif\n0\n")
        ),
        "comment.png": lambda p: Image.fromarray(pattern(4, 3)).save(
            p, pnginfo=_text_info("Software", "kerapipe tests")
        ),
    }
    paths = [str(files[name]) for name in CASES]
    for name, write in extra.items():
        write(tmp_path / name)
        paths.append(str(tmp_path / name))
    for path in paths:
        assert probe_image(path) == probe_image(path, plain=False), path
    assert probe_image(str(tmp_path / "xmp.jpg")).orientation == 3
    assert probe_image(str(tmp_path / "motorola.jpg")).orientation == 7


def _text_info(key: str, value: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_exif_transpose_does(tmp_path, decoder, orientation):
    quarter = orientation >= 5  # stored WIDTH x HEIGHT, seen HEIGHT x WIDTH
    stored = pattern(orientation, 3, *((WIDTH, HEIGHT) if quarter else (HEIGHT, WIDTH)))
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif(orientation), quality=95)
    info = probe_image(str(path))
    assert info.orientation == orientation and info.oriented_size == (WIDTH, HEIGHT)
    got = decoder(path, 3)
    assert np.abs(got.astype(int) - reference(path, 3)).max() <= tolerance("x.jpg")
    if orientation > 1:  # and it is not the stored picture
        assert quarter or np.abs(got.astype(int) - stored.astype(int)).max() > 20


def test_large_rotated_jpeg_decodes_at_reduced_scale_the_right_way_up(tmp_path):
    """A big phone photo with orientation 6 still takes libjpeg's reduced-scale decode,
    chosen on its stored size; a big CMYK one takes Pillow's (draft), and both come out close
    to a full decode resized."""
    y, x = np.mgrid[0:320, 0:480]
    stored = np.stack([x * 255 // 480, y * 255 // 320, (x + y) * 255 // 800], -1).astype(np.uint8)
    rotated, cmyk = tmp_path / "rotated.jpg", tmp_path / "cmyk.jpg"
    Image.fromarray(stored).save(rotated, exif=exif(6), quality=95)
    Image.fromarray(np.dstack([stored, stored[..., :1]]), "CMYK").save(cmyk, quality=95)
    for path in (rotated, cmyk):
        info = probe_image(str(path))
        got = decode_image(tf.constant(str(path)), (60, 40, 3), info.route, info.orientation)
        with Image.open(path) as image:
            full = ImageOps.exif_transpose(image).convert("RGB").resize((40, 60), Image.BILINEAR)
        assert got.shape == (60, 40, 3)
        assert np.abs(got.numpy().astype(float) - np.asarray(full, float)).mean() < 4.0, path.name


def test_animated_gif_gives_its_first_frame(files, decoder):
    with Image.open(files["animated.gif"]) as gif:
        assert gif.n_frames == 3
        gif.seek(1)
        second = np.asarray(gif.convert("RGB"))
    got = decoder(files["animated.gif"], 3)
    assert np.abs(got.astype(int) - reference(files["animated.gif"], 3)).max() == 0
    assert np.abs(got.astype(int) - second.astype(int)).max() > 20


def test_sixteen_bit_images_are_scaled_not_clipped(files, decoder):
    for name in ("gray16.png", "gray16.tiff"):
        with Image.open(files[name]) as image:
            values = np.asarray(image).astype(float)
        assert values.max() > 1000  # really 16-bit
        got = decoder(files[name], 1)[..., 0]
        np.testing.assert_array_equal(got, np.rint(values / 257).astype(np.uint8))
        assert 0 < got.mean() < 250  # not all 255, as a clip to 8 bits gives


def test_palette_bmp_decodes_colours_not_palette_indices(files, decoder):
    got = decoder(files["palette.bmp"], 3)
    with Image.open(files["palette.bmp"]) as image:
        assert image.mode == "P"
        indices = np.asarray(image)
    assert indices.max() < 16 and got.max() > 100  # colours, not indices 0-15
    np.testing.assert_array_equal(got, reference(files["palette.bmp"], 3))


def test_transparent_palette_png_keeps_its_alpha_for_four_channels(files, decoder):
    got = decoder(files["palette_transparent.png"], 4)
    with Image.open(files["palette_transparent.png"]) as image:
        transparent = np.asarray(image) == 3
    assert transparent.any()
    assert (got[..., 3][transparent] == 0).all() and (got[..., 3][~transparent] == 255).all()


def test_jpeg_asked_for_four_channels_gets_an_opaque_alpha(files, decoder):
    for name in ("gray.jpg", "rgb.jpg", "cmyk.jpg"):
        assert (decoder(files[name], 4)[..., 3] == 255).all(), name


def test_a_huge_png_is_refused_from_its_header_naming_the_param(tmp_path):
    """A 30000 x 30000 PNG header (a few bytes on disk, 900 million pixels) is refused before
    anything is decoded, by PIPELINE.MAX_IMAGE_PIXELS (Pillow's own limit by default)."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_chunks(30000, 30000, 8, 0, zlib.compress(b"")))
    info = probe_image(str(huge))
    assert info.size == (30000, 30000)
    assert info.problem.startswith("too large: 30000x30000 is 900000000 pixels")
    assert "PIPELINE.MAX_IMAGE_PIXELS (89478485)" in info.problem
    assert "too large" in check_decode(str(huge))
    with pytest.raises(DataError, match=r"huge\.png \(too large: .*PIPELINE\.MAX_IMAGE_PIXELS"):
        image_dataset([str(huge)], None, (8, 8, 1), 1)
    # The param decides, above or below Pillow's own limit.
    assert probe_image(str(huge), max_pixels=30000 * 30000).ok
    small = tmp_path / "small.png"
    Image.fromarray(pattern(1, 3)).save(small)
    assert "over PIPELINE.MAX_IMAGE_PIXELS (100)" in probe_image(str(small), 100).problem
    assert probe_image(str(small), HEIGHT * WIDTH).ok


def test_damaged_and_foreign_files_are_named_with_a_reason(tmp_path, files):
    truncated = tmp_path / "truncated.jpg"
    whole = files["rgb.jpg"].read_bytes()
    truncated.write_bytes(whole[: whole.index(b"\xff\xda") + 40])  # cut inside the pixels
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.gif"
    empty.write_bytes(b"")
    dangling = tmp_path / "gone.png"
    os.symlink(tmp_path / "nowhere.png", dangling)
    assert probe_image(str(truncated)).ok  # its header is whole
    assert probe_image(str(text)).problem.startswith("not an image")
    assert probe_image(str(empty)).problem.startswith("not an image")
    assert probe_image(str(dangling)).problem == "unreadable: no such file or directory"
    paths = [str(p) for p in (truncated, text, empty, dangling, files["rgb.png"])]
    header = find_bad_images(paths, "header")
    decode = find_bad_images(paths, "decode")
    assert set(header) == set(paths[1:4]) and set(decode) == set(paths[:4])
    assert decode[str(truncated)].startswith("undecodable: image file is truncated")
    assert find_bad_images(paths, "names") == {}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.webp", True), ("a.TIF", True), ("x/a.tiff", True), ("a.gif", True), ("a.txt", False),
     ("a.heic", False)],
)  # fmt: skip
def test_webp_and_tiff_are_accepted_names(name, expected):
    assert is_image_name(name) is expected


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_the_decode_has_no_stateful_op_so_the_map_stays_parallel(channels):
    """tf.data runs a map whose function holds a stateful op (an assertion, say) on one
    thread when op determinism is on, as training turns it on: half the speed on 2 cores."""
    from tensorflow.python.framework import op_def_registry

    decode = tf.function(lambda p, r, o: decode_image(p, (8, 8, channels), r, o))
    specs = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32))
    graph = decode.get_concrete_function(*specs).graph.as_graph_def()
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert "PyFuncStateless" in ops and "DecodeJpeg" in ops  # every route is in the graph
    assert not [op for op in ops if op_def_registry.get(op).is_stateful]


@pytest.mark.parametrize("seconds", [0.0, 0.0005])
def test_checks_keep_the_order_whether_they_run_in_threads_or_not(seconds):
    """Checks run in threads only where each file takes long enough to pay for them (a
    timed sample decides); either way the results come back in the files' order."""
    import time

    from kerapipe.parallel import in_threads

    def check(item: int) -> int:
        time.sleep(seconds)
        return item * 2

    items = list(range(300))
    assert in_threads(check, items, threads=None) == [i * 2 for i in items]
