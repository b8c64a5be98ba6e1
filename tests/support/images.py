"""Encoded test images of every kind the guard must accept or refuse (Pillow/OpenCV, in memory)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose IHDR declares width x height, followed by a tiny (wrong) IDAT: a bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def jpeg_with_sof(jpeg: bytes, marker: int) -> bytes:
    """The same JPEG with its baseline frame marker (FFC0) replaced, e.g. by arithmetic FFC9."""
    index = jpeg.index(b"\xff\xc0")
    return jpeg[:index] + bytes([0xFF, marker]) + jpeg[index + 2 :]


def accepted_images(rgb: np.ndarray) -> dict[str, bytes]:
    image = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    return {
        "baseline JPEG": encode(image, "JPEG", quality=90),
        "progressive JPEG": encode(image, "JPEG", progressive=True),
        "grayscale JPEG": encode(image.convert("L"), "JPEG"),
        "CMYK JPEG": encode(image.convert("CMYK"), "JPEG"),
        "EXIF-rotated JPEG": encode(image, "JPEG", exif=exif.tobytes()),
        "RGB PNG": encode(image, "PNG"),
        "RGBA PNG": encode(image.convert("RGBA"), "PNG"),
        "palette PNG": encode(image.convert("P"), "PNG"),
        "grayscale PNG": encode(image.convert("L"), "PNG"),
        "16-bit PNG": encode(Image.fromarray(rgb[..., 1].astype(np.uint16) * 257), "PNG"),
    }


def refused_images(rgb: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a phrase the error message must contain)."""
    image = Image.fromarray(rgb)
    jpeg = encode(image, "JPEG")
    return {
        "GIF": (encode(image, "GIF"), "GIF is not supported"),
        "BMP": (encode(image, "BMP"), "BMP is not supported"),
        "TIFF": (encode(image, "TIFF"), "TIFF is not supported"),
        "WebP": (encode(image, "WEBP"), "WebP is not supported"),
        "text": (b"hello, this is not an image", "not a JPEG or PNG"),
        "arithmetic JPEG": (jpeg_with_sof(jpeg, 0xC9), "arithmetic-coded JPEG is not supported"),
        "JPEG cut inside its header": (jpeg[:100], "truncated JPEG"),
        "PNG bomb header": (png_header_only(100_000, 100_000), "above the limit"),
        "PNG with zero width": (png_header_only(0, 10), "declares 0x10"),
        "PNG with a side over the limit": (png_header_only(20_000, 10), "side above the limit"),
        "PNG with an invalid bit depth": (png_header_only(10, 10, depth=7), "bit depth 7"),
        "truncated JPEG": (jpeg[: len(jpeg) // 3], "truncated JPEG: no end-of-image marker"),
        "truncated PNG": (encode(image, "PNG")[:5000], "truncated PNG: no IEND chunk"),
    }


def corrupt_images(rgb: np.ndarray) -> dict[str, bytes]:
    """Headers that pass the guard; the decoder fails on the data.

    (A JPEG whose scan data is cut short but still ends with an end-of-image marker is decoded
    by libjpeg-turbo with grey filling, as most viewers do, so it is not among these.)"""
    image = Image.fromarray(rgb)
    png = encode(image, "PNG")
    middle = len(png) // 2
    flipped = png[:middle] + bytes(b ^ 0xFF for b in png[middle : middle + 64]) + png[middle + 64 :]
    bad_crc = png[:29] + bytes([png[29] ^ 0xFF]) + png[30:]  # IHDR's CRC
    return {
        "PNG with corrupted image data": flipped,
        "PNG with a bad header checksum": bad_crc,
    }
