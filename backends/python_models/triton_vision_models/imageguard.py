"""A cheap check of each encoded image before any decoder sees it (pure Python/NumPy).

Reads only the header: the format signature, the declared width/height, the JPEG frame type
and PNG bit depth/colour type. Refuses anything that is not a JPEG or PNG the decoders handle,
anything whose declared pixel count is above the limit, and any request whose images together
declare more pixels than the request budget, so a decompression bomb (one huge image, or many
allowed ones) is refused before a single pixel is allocated.

It reads only what it must, in place (memoryviews of the request's tensor, never a copy of a
row): a request above ``max_request_bytes`` is refused from its shape alone; a row's length is
found from its end; a header is parsed from its first bytes; the end marker is looked for at the
end of the file first and searched for only when it is not there.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import tensors as t
from .errors import ImageRejectedError
from .model_config import ModelConfig, RequestData

# Signatures of formats we refuse, so the message can name them.
OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"%PDF", "PDF"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers the decoders (libjpeg-turbo, nvJPEG) handle: baseline,
# extended sequential, progressive. Lossless, hierarchical and arithmetic-coded frames are refused.
JPEG_SUPPORTED_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive"}
JPEG_REFUSED_SOF = {
    0xC3: "lossless",
    0xC5: "hierarchical",
    0xC6: "hierarchical progressive",
    0xC7: "hierarchical lossless",
    0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded progressive",
    0xCB: "arithmetic-coded lossless",
    0xCD: "arithmetic-coded hierarchical",
    0xCE: "arithmetic-coded hierarchical progressive",
    0xCF: "arithmetic-coded hierarchical lossless",
}
PNG_VALID_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
PNG_COLOUR = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}
JPEG_EOI = b"\xff\xd9"
PNG_IEND = b"IEND"
_JPEG_EOI = re.compile(re.escape(JPEG_EOI))
_PNG_IEND = re.compile(PNG_IEND)
LENGTH_BLOCK = 1 << 16  # a row's zero padding is skipped from its end in blocks of this many bytes
# An encoded image as the guard reads it: bytes, or a memoryview of a request's row (no copy).
Encoded = bytes | memoryview


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 50_000_000  # e.g. 8660 x 5773
    max_side: int = 16_384  # nvJPEG's and many decoders' limit per side
    # Sum over one request's images: 256 M pixels = 32 images of 8 MP; ~0.8 GB decoded RGB and
    # a few seconds of decoding on 2 cores. 32 x 49 MP images (4.7 GB decoded) are refused.
    max_request_pixels: int = 256_000_000
    # The request's IMAGE tensor (rows x its longest row, zero-padded): 64 MiB, the thin client's
    # own cap per request. 32 rows of 8 MB (256 MiB) are refused from the tensor's shape alone.
    max_request_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_config(cls, config: ModelConfig) -> ImageLimits:
        defaults = cls()
        return cls(
            max_bytes=config.int_setting("max_bytes", defaults.max_bytes),
            max_pixels=config.int_setting("max_pixels", defaults.max_pixels),
            max_side=config.int_setting("max_side", defaults.max_side),
            max_request_pixels=config.int_setting("max_request_pixels", defaults.max_request_pixels),
            max_request_bytes=config.int_setting("max_request_bytes", defaults.max_request_bytes),
        )


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "JPEG" | "PNG"
    width: int
    height: int
    detail: str  # e.g. "progressive, 3 components" or "RGBA, 16-bit"


def encoded_length(row: np.ndarray) -> int:
    """Length of the file in a zero-padded row (valid JPEG and PNG files end in non-zero bytes),
    read from the row's end block by block: a row that is not padded costs one byte's look."""
    end = int(row.shape[0])
    if end and row[end - 1]:  # not padded (one image per request): no scan at all
        return end
    while end > 0:
        start = max(0, end - LENGTH_BLOCK)
        backwards = row[start:end][::-1] != 0
        last = int(backwards.argmax())  # the first True from the end; 0 also when there is none
        if backwards[last]:
            return end - last
        end = start
    return 0


def row_view(row: np.ndarray) -> memoryview:
    """The encoded file in a zero-padded row, as a view of the row's own memory."""
    return memoryview(np.ascontiguousarray(row).data)[: encoded_length(row)]


def _ends_with_marker(data: Encoded, marker: bytes, search: re.Pattern[bytes], after: int) -> bool:
    """Whether ``marker`` occurs at or after ``after``: at the very end (a file as written), else anywhere
    (data after the marker, as some cameras append) - the search runs only for files without it at the end."""
    if len(data) >= after + len(marker) and data[len(data) - len(marker) :] == marker:
        return True
    return search.search(data, after) is not None


def _jpeg_header(data: Encoded) -> ImageHeader:
    pos = 2
    size = len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise ImageRejectedError(f"corrupt JPEG: expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > size:
            raise ImageRejectedError("truncated JPEG: a header segment runs past the end of the data")
        if marker in JPEG_REFUSED_SOF:
            raise ImageRejectedError(f"{JPEG_REFUSED_SOF[marker]} JPEG is not supported (baseline and progressive are)")
        if marker in JPEG_SUPPORTED_SOF:
            if length < 8:
                raise ImageRejectedError("corrupt JPEG: frame header too short")
            precision, height, width, components = struct.unpack(">BHHB", data[pos + 4 : pos + 10])
            if precision != 8:
                raise ImageRejectedError(f"{precision}-bit JPEG is not supported (8-bit is)")
            if components not in (1, 3, 4):
                raise ImageRejectedError(f"JPEG with {components} colour components is not supported (1, 3 or 4)")
            kind = {1: "grayscale", 3: "colour", 4: "CMYK/YCCK"}[components]
            # Entropy-coded data never contains FF D9, so an end-of-image marker after the frame
            # header means the image data is complete; a truncated upload has none (and zero
            # padding would otherwise let the decoder "finish" it with grey).
            if not _ends_with_marker(data, JPEG_EOI, _JPEG_EOI, pos):
                raise ImageRejectedError("truncated JPEG: no end-of-image marker after the image data")
            return ImageHeader("JPEG", width, height, f"{JPEG_SUPPORTED_SOF[marker]}, {kind}")
        pos += 2 + length
    raise ImageRejectedError("corrupt or truncated JPEG: no frame header (SOF) before the image data")


def _png_header(data: Encoded) -> ImageHeader:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageRejectedError("corrupt or truncated PNG: no IHDR header")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    # The IEND chunk ends a PNG: its 4 type bytes come before a 4-byte CRC.
    if not (len(data) >= 41 and data[len(data) - 8 : len(data) - 4] == PNG_IEND) and not _PNG_IEND.search(data, 33):
        raise ImageRejectedError("truncated PNG: no IEND chunk after the image data")
    if colour not in PNG_VALID_DEPTHS or depth not in PNG_VALID_DEPTHS[colour]:
        raise ImageRejectedError(f"corrupt PNG: bit depth {depth} with colour type {colour} is invalid")
    return ImageHeader("PNG", width, height, f"{PNG_COLOUR[colour]}, {depth}-bit")


def read_header(data: Encoded) -> ImageHeader:
    """The header of a JPEG or PNG file; :class:`ImageRejectedError` for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_header(data)
    if data[:8] == PNG_SIGNATURE:
        return _png_header(data)
    for signature, name in OTHER_FORMATS:
        if data[: len(signature)] == signature:
            raise ImageRejectedError(f"{name} is not supported (JPEG and PNG are)")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise ImageRejectedError("WebP is not supported (JPEG and PNG are)")
    if data[4:8] == b"ftyp":
        raise ImageRejectedError("HEIF/AVIF is not supported (JPEG and PNG are)")
    raise ImageRejectedError(f"not a JPEG or PNG file (starts with {bytes(data[:8]).hex(' ')})")


def check_image(data: Encoded, limits: ImageLimits) -> ImageHeader:
    if not data:
        raise ImageRejectedError("empty (0 bytes, or only zero padding)")
    if len(data) > limits.max_bytes:
        raise ImageRejectedError(f"{len(data)} bytes is above the limit of {limits.max_bytes}")
    header = read_header(data)
    if header.width == 0 or header.height == 0:
        raise ImageRejectedError(f"{header.format} declares {header.width}x{header.height} pixels")
    if max(header.width, header.height) > limits.max_side:
        raise ImageRejectedError(
            f"{header.format} of {header.width}x{header.height} has a side above the limit of {limits.max_side}"
        )
    if header.width * header.height > limits.max_pixels:
        raise ImageRejectedError(
            f"{header.format} of {header.width}x{header.height} = {header.width * header.height} pixels "
            f"is above the limit of {limits.max_pixels}"
        )
    return header


def check_request_bytes(batch: np.ndarray, limits: ImageLimits) -> None:
    """:class:`ImageRejectedError` when the request's tensor (rows x longest row) is above ``max_request_bytes``:
    decided from its shape, before any row is read."""
    if batch.nbytes > limits.max_request_bytes:
        rows, width = (batch.shape[0], batch.shape[-1]) if batch.ndim == 2 else (1, batch.size)
        raise ImageRejectedError(
            f"input '{t.IMAGE}': the request is {rows} rows of {width} bytes = {batch.nbytes} bytes (each row "
            f"zero-padded to the longest image), above the limit of {limits.max_request_bytes} bytes per request "
            "(send fewer images per request, or images of similar sizes together)"
        )


def check_request_pixels(headers: Sequence[ImageHeader], limits: ImageLimits) -> int:
    """The request's declared decoded pixels; :class:`ImageRejectedError` above ``max_request_pixels``."""
    total = sum(header.width * header.height for header in headers)
    if total > limits.max_request_pixels:
        raise ImageRejectedError(
            f"input '{t.IMAGE}': the request's {len(headers)} images declare {total} pixels in total, "
            f"above the limit of {limits.max_request_pixels} per request (send fewer or smaller images per request)"
        )
    return total


def declared_pixels(row: np.ndarray) -> int:
    """Declared width x height of the encoded image in a zero-padded row; 0 if its header is unreadable
    (the decoder then fails on it and the request is refused as corrupt)."""
    try:
        header = read_header(row_view(row))
    except ImageRejectedError:
        return 0
    return header.width * header.height


class ImageGuard:
    """Runner of the ``image_guard`` model: passes IMAGE through when every image is acceptable."""

    def __init__(self, limits: ImageLimits) -> None:
        self.limits = limits

    @classmethod
    def from_config(cls, config: ModelConfig) -> ImageGuard:
        return cls(ImageLimits.from_config(config))

    def check_batch(self, batch: np.ndarray) -> list[ImageHeader]:
        check_request_bytes(batch, self.limits)
        headers = []
        for index, row in enumerate(batch):
            try:
                headers.append(check_image(row_view(row), self.limits))
            except ImageRejectedError as exc:
                raise ImageRejectedError(f"input '{t.IMAGE}', image {index}: {exc}") from None
        check_request_pixels(headers, self.limits)
        return headers

    def __call__(self, requests: Sequence[RequestData]) -> list[dict[str, np.ndarray] | ImageRejectedError]:
        """Each request passes whole or is refused alone, naming its first bad image."""
        results: list[dict[str, np.ndarray] | ImageRejectedError] = []
        for request in requests:
            batch = request.inputs[t.IMAGE]
            try:
                self.check_batch(batch)
                results.append({t.CHECKED_IMAGE: batch})
            except ImageRejectedError as exc:
                results.append(exc)
        return results
