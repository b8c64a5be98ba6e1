"""Segmentation answers as files: indexed PNG masks, and the overlay's legend (drawn with OpenCV)."""

from __future__ import annotations

import io

import numpy as np

import triton_vision_contract as contract

from .answers import Segmentation
from .answers import split_segmentations as split_outputs

# Segmentation and split_outputs are the answers module's, named here too for callers that read
# them from this module (the UI).
__all__ = ["LEGEND_ROWS", "Segmentation", "add_legend", "mask_png", "split_outputs"]


def mask_png(mask: np.ndarray) -> bytes:
    """An indexed (palette) PNG of a class-id mask: pixel values are the ids, colours VOC's."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))  # mode "L"
    # "L" + palette -> "P", the values kept
    image.putpalette(np.array(contract.voc_palette(), dtype=np.uint8).ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


LEGEND_ROWS = 12  # classes named in an overlay's legend, largest first; the rest counted
LEGEND_BACKGROUND = (32, 32, 32)  # BGR
LEGEND_TEXT = (255, 255, 255)


def add_legend(overlay_png: bytes, answer: Segmentation) -> bytes:
    """``overlay_png`` with a legend in its top-left corner: for each class present (largest first),
    a swatch of its VOC colour, its name and its fraction of the pixels. Drawn with OpenCV; the
    image keeps its size unless it is too small for the legend (then it grows right and down)."""
    import cv2

    from .records import percent

    image = cv2.imdecode(np.frombuffer(overlay_png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot decode the overlay PNG to draw its legend")
    present = answer.present()
    rows: list[tuple[int | None, str]] = [
        (class_id, f"{label} {percent(fraction).strip()}") for class_id, label, fraction in present[:LEGEND_ROWS]
    ]
    if len(present) > LEGEND_ROWS:
        rows.append((None, f"+{len(present) - LEGEND_ROWS} more"))
    height, width = image.shape[:2]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, min(height, width) / 900.0)
    thickness = max(1, round(scale * 1.5))
    sizes = [cv2.getTextSize(text, font, scale, thickness) for _, text in rows]
    text_h = max(size[0][1] + size[1] for size in sizes)
    pad = max(2, text_h // 3)
    line_h = text_h + pad
    panel_w = pad + text_h + pad + max(size[0][0] for size in sizes) + pad
    panel_h = pad + len(rows) * line_h
    if panel_w > width or panel_h > height:
        image = cv2.copyMakeBorder(
            image, 0, max(panel_h - height, 0), 0, max(panel_w - width, 0), cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    palette = contract.voc_palette()
    cv2.rectangle(image, (0, 0), (panel_w - 1, panel_h - 1), LEGEND_BACKGROUND, cv2.FILLED)
    for row, ((class_id, text), ((_, glyph_h), _)) in enumerate(zip(rows, sizes, strict=True)):
        top = pad + row * line_h
        if class_id is not None:
            red, green, blue = palette[class_id % len(palette)]
            cv2.rectangle(image, (pad, top), (pad + text_h - 1, top + text_h - 1), (blue, green, red), cv2.FILLED)
            cv2.rectangle(image, (pad, top), (pad + text_h - 1, top + text_h - 1), LEGEND_TEXT, 1)
        origin = (pad + text_h + pad, top + glyph_h)
        cv2.putText(image, text, origin, font, scale, LEGEND_TEXT, thickness, cv2.LINE_AA)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("cannot encode the overlay with its legend as PNG")
    return encoded.tobytes()
