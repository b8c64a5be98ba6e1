"""The photos the bench sends: real JPEGs and PNGs of several sizes, at most :data:`MAX_IMAGES`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triton_vision_bench.messages import BenchError, BenchUsageError

MAX_IMAGES = 12
PNG_LONGER_SIDE = 640  # each photo also travels as a PNG of a copy shrunk to this longer side


@dataclass(frozen=True)
class BenchImage:
    name: str
    data: bytes
    width: int
    height: int

    @property
    def format(self) -> str:
        return "PNG" if self.data[:4] == b"\x89PNG" else "JPEG"


def encode(rgb: np.ndarray, ext: str) -> bytes:
    """An RGB image as the bytes of an ``ext`` (``.jpg``, ``.png``) file."""
    import cv2

    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BenchError(f"OpenCV could not encode a {ext} image")
    return data.tobytes()


def shrink(rgb: np.ndarray, longer: int) -> np.ndarray:
    """A copy whose longer side is at most ``longer`` (area interpolation); smaller images as they are."""
    import cv2

    height, width = rgb.shape[:2]
    scale = longer / max(height, width)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def default_photos(directory: Path | None = None) -> list[tuple[str, np.ndarray, bytes | None]]:
    """(name, RGB, original JPEG bytes or None): the JPEGs of ``directory`` (``--photos``), else
    scikit-image's photos."""
    import cv2

    found = sorted(directory.glob("*.jpg")) if directory is not None and directory.is_dir() else []
    photos: list[tuple[str, np.ndarray, bytes | None]] = []
    for path in found:
        data = path.read_bytes()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is not None:
            photos.append((path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), data))
    if photos:
        return photos
    from skimage import data as skdata

    return [(name, getattr(skdata, name)(), None) for name in ("chelsea", "astronaut", "coffee")]


def bench_images(paths: Sequence[Path] = (), limit: int = 8, photos: Path | None = None) -> list[BenchImage]:
    """Real photos as JPEG and PNG at several sizes, at most ``limit`` (and :data:`MAX_IMAGES`).

    Given files are used as they are. Otherwise each photo travels as its original JPEG (or a
    JPEG of quality 95) and as a PNG of its copy shrunk to 640 px on the longer side.
    """
    import cv2

    limit = max(1, min(limit, MAX_IMAGES))
    images: list[BenchImage] = []
    if paths:
        for path in list(paths)[:limit]:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise BenchUsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise BenchUsageError(f"{path}: not an image OpenCV can decode")
            images.append(BenchImage(Path(path).name, data, bgr.shape[1], bgr.shape[0]))
        return images
    for name, rgb, original in default_photos(photos):
        jpeg = original if original is not None else encode(rgb, ".jpg")
        images.append(BenchImage(f"{name}.jpg", jpeg, rgb.shape[1], rgb.shape[0]))
        small = shrink(rgb, PNG_LONGER_SIDE)
        label = f"{name}-{small.shape[1]}x{small.shape[0]}.png"
        images.append(BenchImage(label, encode(small, ".png"), small.shape[1], small.shape[0]))
    return images[:limit]


def median_jpeg(images: Sequence[BenchImage]) -> BenchImage:
    """The JPEG of median size (perf_analyzer's one image); the median image if there is no JPEG."""
    jpegs = sorted((i for i in images if i.format == "JPEG"), key=lambda i: len(i.data)) or list(images)
    return jpegs[len(jpegs) // 2]
