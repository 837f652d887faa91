"""Decoding real image bytes, and every way it must refuse them."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from shared.errors import InvalidFrame
from shared.image_header import read_header
from shared.vision.decode import decode_image
from tests.conftest import MEDIA

MAX = 4096 * 4096


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(MEDIA / "obama.jpg"))


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_with_size(width: int, height: int) -> bytes:
    """A syntactically valid PNG header that claims ``width`` x ``height``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_decodes_each_format_to_bgr(photo: np.ndarray, ext: str) -> None:
    image = decode_image(encode(photo, ext), MAX)
    assert image.shape == photo.shape
    assert image.dtype == np.uint8
    # Lossy codecs change pixels a little, not the picture.
    assert np.abs(image.astype(int) - photo.astype(int)).mean() < 6


def test_reads_media_files_as_sent() -> None:
    for path in (MEDIA / "astronaut.png", MEDIA / "two_people.jpg"):
        image = decode_image(path.read_bytes(), MAX)
        assert image.ndim == 3
        assert image.shape[2] == 3


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello, this is not an image at all", "unsupported_format"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00", "unsupported_format"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "unsupported_format"),
    ],
)
def test_refuses_non_images(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode_image(data, MAX)
    assert caught.value.reason == reason


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_truncated_files_are_refused_as_truncated(photo: np.ndarray, ext: str) -> None:
    data = encode(photo, ext)
    with pytest.raises(InvalidFrame) as caught:
        decode_image(data[: len(data) // 2], MAX)
    assert caught.value.reason == "truncated"


def test_header_only_jpeg_is_truncated(photo: np.ndarray) -> None:
    data = encode(photo, ".jpg")
    with pytest.raises(InvalidFrame) as caught:
        decode_image(data[:40], MAX)
    assert caught.value.reason == "truncated"


def test_corrupt_but_complete_jpeg_is_undecodable(photo: np.ndarray) -> None:
    data = bytearray(encode(photo, ".jpg"))
    # Keep the SOI and the end marker, overwrite everything between with junk.
    data[3:-2] = b"\x00" * (len(data) - 5)
    with pytest.raises(InvalidFrame) as caught:
        decode_image(bytes(data), MAX)
    assert caught.value.reason == "undecodable"


def test_png_header_claiming_a_huge_image_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode_image(png_with_size(100_000, 100_000), MAX)
    assert caught.value.reason == "too_many_pixels"


def test_pixel_limit_is_the_setting(photo: np.ndarray) -> None:
    data = encode(photo, ".png")
    h, w = photo.shape[:2]
    assert decode_image(data, w * h).shape[:2] == (h, w)
    with pytest.raises(InvalidFrame) as caught:
        decode_image(data, w * h - 1)
    assert caught.value.reason == "too_many_pixels"


def test_zero_size_png_is_empty() -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode_image(png_with_size(0, 10), MAX)
    assert caught.value.reason in {"empty", "undecodable"}


def test_read_header_reads_only_the_header(photo: np.ndarray) -> None:
    data = encode(photo, ".webp")
    info = read_header(data, MAX)
    assert (info.format, info.width, info.height) == ("webp", photo.shape[1], photo.shape[0])


def pil_bytes(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def test_sixteen_bit_png_becomes_8_bit(photo: np.ndarray) -> None:
    image = decode_image(encode(photo.astype(np.uint16) * 257, ".png"), MAX)
    assert image.dtype == np.uint8
    assert np.array_equal(image, photo)


def test_cmyk_jpeg_becomes_bgr() -> None:
    rgb = Image.open(MEDIA / "obama.jpg").convert("RGB")
    image = decode_image(pil_bytes(rgb.convert("CMYK"), "JPEG", quality=95), MAX)
    reference = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)
    assert image.shape == reference.shape
    assert np.abs(image.astype(int) - reference.astype(int)).mean() < 8


def test_grayscale_and_alpha_become_three_channels() -> None:
    gray = decode_image(pil_bytes(Image.new("L", (40, 30), 77), "PNG"), MAX)
    assert gray.shape == (30, 40, 3)
    assert (gray == 77).all()
    rgba = decode_image(pil_bytes(Image.new("RGBA", (40, 30), (10, 20, 30, 128)), "PNG"), MAX)
    assert rgba.shape == (30, 40, 3)
    assert tuple(rgba[0, 0]) == (30, 20, 10)


def test_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "blue")]
    data = pil_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    image = decode_image(data, MAX)
    assert image.shape == (48, 64, 3)
    assert tuple(image[10, 10]) == (0, 0, 255)  # red in BGR
