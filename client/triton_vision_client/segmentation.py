"""Segmentation answers on the client: crop the padded masks, write indexed PNGs (pure helpers)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import triton_vision_contract as t


@dataclass(frozen=True, eq=False)
class Segmentation:
    """One image's answer: ``mask`` UINT8 [H, W] of class ids at the size of the image sent."""

    mask: np.ndarray
    fractions: tuple[float, ...]  # per class id: fraction of the image's pixels
    labels: tuple[str, ...]  # per class id: VOC name
    overlay_png: bytes | None  # the image blended 50/50 with the coloured mask, if asked

    def present(self) -> list[tuple[int, str, float]]:
        """(class id, name, pixel fraction) of the classes in the mask, largest first."""
        found = [(i, self.labels[i], f) for i, f in enumerate(self.fractions) if f > 0.0]
        return sorted(found, key=lambda item: (-item[2], item[0]))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def split_outputs(outputs: Mapping[str, np.ndarray]) -> list[Segmentation]:
    """The ensemble's batched outputs -> one :class:`Segmentation` per image, masks cropped."""
    results = []
    for index, (height, width) in enumerate(outputs[t.MASK_SIZE]):
        overlay = outputs[t.OVERLAY][index][0] if t.OVERLAY in outputs else b""
        results.append(
            Segmentation(
                mask=np.ascontiguousarray(outputs[t.MASK][index, :height, :width]),
                fractions=tuple(float(f) for f in outputs[t.CLASS_FRACTIONS][index]),
                labels=tuple(_text(label) for label in outputs[t.LABELS][index]),
                overlay_png=bytes(overlay) or None,
            )
        )
    return results


def mask_png(mask: np.ndarray) -> bytes:
    """An indexed (palette) PNG of a class-id mask: pixel values are the ids, colours VOC's."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))  # mode "L"
    image.putpalette(np.array(t.voc_palette(), dtype=np.uint8).ravel().tolist())  # "L" + palette -> "P", values kept
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_files(result: Segmentation, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>_mask.png`` (indexed) and, if present, ``<stem>_overlay.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_path = out_dir / f"{stem}_mask.png"
    mask_path.write_bytes(mask_png(result.mask))
    written = [mask_path]
    if result.overlay_png:
        overlay_path = out_dir / f"{stem}_overlay.png"
        overlay_path.write_bytes(result.overlay_png)
        written.append(overlay_path)
    return written


def describe(result: Segmentation) -> list[str]:
    """One line per class present: fraction and name."""
    return [f"  {fraction:7.2%}  {class_id:3d}  {label}" for class_id, label, fraction in result.present()]
