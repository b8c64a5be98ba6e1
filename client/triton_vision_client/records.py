"""One record per image, as text, JSON Lines or CSV; reading an output file back for ``--resume``.

A record is a JSON-ready dict built once per image (``path`` and the answer, or ``path``,
``error`` and ``reason``); the CSV row and the text lines are rendered from it: the one renderer
of answers, for folder jobs and the demo alike. Pure standard library.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .jobs import ImageResult

FORMATS = ("text", "jsonl", "csv")
RESUMABLE_FORMATS = ("jsonl", "csv")
LIST_SEPARATOR = "|"  # between the items of a list in one CSV cell
TEXT_DETECTIONS = 10  # detections listed per image in text output (the rest counted); jsonl/csv keep all
KEYPOINT_SHOWN = 0.5  # text output lists a keypoint at or above this confidence (jsonl/csv keep all)
SMALLEST_FRACTION = 0.00005  # text output: a class below it would print as 0.00%: shown as <0.01%

Record = dict[str, Any]


def _error_record(result: ImageResult) -> Record:
    return {"path": result.path, "error": result.error, "reason": result.reason}


def classification_record(result: ImageResult, files: Mapping[str, str] | None = None) -> Record:
    if not result.ok:
        return _error_record(result)
    answer = result.answer
    classes = [
        {"class_id": int(i), "label": label, "score": round(float(s), 6)}
        for i, s, label in zip(answer.class_ids, answer.scores, answer.labels, strict=True)
    ]
    return {"path": result.path, "classes": classes, **(files or {})}


def detection_record(result: ImageResult, files: Mapping[str, str] | None = None) -> Record:
    if not result.ok:
        return _error_record(result)
    answer = result.answer
    detections = [
        {"label": label, "class_id": int(i), "score": round(float(s), 6), "box": [round(float(v), 2) for v in box]}
        for box, s, i, label in zip(answer.boxes, answer.scores, answer.class_ids, answer.labels, strict=True)
    ]
    return {"path": result.path, "detections": detections, **(files or {})}


def pipeline_record(result: ImageResult, files: Mapping[str, str] | None = None) -> Record:
    """The image's objects, each with its box, its detector label and its second-stage top-k."""
    if not result.ok:
        return _error_record(result)
    answer = result.answer
    objects = []
    for box, s, i, label, second in zip(
        answer.boxes, answer.scores, answer.class_ids, answer.labels, answer.objects, strict=True
    ):
        found: Record = {
            "label": label,
            "class_id": int(i),
            "score": round(float(s), 6),
            "box": [round(float(v), 2) for v in box],
        }
        if hasattr(second, "vector"):  # an embedder's answer
            found["embedding"] = [round(float(v), 6) for v in second.vector]
        else:
            found["classes"] = [
                {"class_id": int(c), "label": name, "score": round(float(p), 6)}
                for c, p, name in zip(second.class_ids, second.scores, second.labels, strict=True)
            ]
        objects.append(found)
    return {"path": result.path, "objects": objects, **(files or {})}


def segmentation_record(result: ImageResult, files: Mapping[str, str] | None = None) -> Record:
    if not result.ok:
        return _error_record(result)
    answer = result.answer
    height, width = answer.mask.shape
    classes = [
        {"class_id": class_id, "label": label, "fraction": round(float(fraction), 6)}
        for class_id, label, fraction in answer.present()
    ]
    return {"path": result.path, "height": int(height), "width": int(width), "classes": classes, **(files or {})}


EMBEDDING_DECIMALS = 8  # of each value in a JSON record: a unit vector's cosines move by < 1e-7
TEXT_VALUES = 4  # values of an embedding shown in text output


def embedding_record(result: ImageResult, files: Mapping[str, str] | None = None) -> Record:
    if not result.ok:
        return _error_record(result)
    vector = result.answer.vector
    return {
        "path": result.path,
        "dim": int(vector.shape[0]),
        "norm": round(result.answer.norm, 6),
        "embedding": [round(float(v), EMBEDDING_DECIMALS) for v in vector],
        **(files or {}),
    }


def _joined(items: list[Any]) -> str:
    return LIST_SEPARATOR.join(str(item) for item in items)


def _error_text(record: Record) -> list[str]:
    return [f"{record['path']}: error ({record['reason']}): {record['error']}"]


def _files_text(record: Record, keys: tuple[str, ...]) -> list[str]:
    return [f"  wrote {record[key]}" for key in keys if record.get(key)]


def classification_text(record: Record, limit: int | None = None) -> list[str]:
    lines = [f"{record['path']}:"]
    lines += [f"  {c['score']:7.4f}  {c['class_id']:4d}  {c['label']}" for c in record["classes"]]
    return lines


def classification_csv(record: Record) -> dict[str, Any]:
    classes = record["classes"]
    best = classes[0] if classes else {}
    return {
        "label": best.get("label", ""),
        "class_id": best.get("class_id", ""),
        "score": best.get("score", ""),
        "labels": _joined([c["label"] for c in classes]),
        "class_ids": _joined([c["class_id"] for c in classes]),
        "scores": _joined([c["score"] for c in classes]),
    }


def detection_text(record: Record, limit: int | None = TEXT_DETECTIONS) -> list[str]:
    """The image's detections, the first ``limit`` of them listed (None: all), the rest counted."""
    found = record["detections"]
    lines = [f"{record['path']}: {len(found)} detection{'' if len(found) == 1 else 's'}"]
    for d in found[:limit]:
        x1, y1, x2, y2 = d["box"]
        lines.append(
            f"  {d['score']:6.3f}  {d['class_id']:3d} {d['label']:<16s} [{x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}]"
        )
    if limit is not None and len(found) > limit:
        lines.append(f"  ... and {len(found) - limit} more")
    return lines + _files_text(record, ("annotated",))


def detection_csv(record: Record) -> dict[str, Any]:
    found = record["detections"]
    return {
        "count": len(found),
        "labels": _joined([d["label"] for d in found]),
        "class_ids": _joined([d["class_id"] for d in found]),
        "scores": _joined([d["score"] for d in found]),
        "boxes": _joined([" ".join(str(v) for v in d["box"]) for d in found]),
        "annotated": record.get("annotated", ""),
    }


def _answer_text(found: Record) -> str:
    if "embedding" in found:
        return f"{len(found['embedding'])}-d embedding"
    return " | ".join(f"{c['score']:.3f} {c['label']}" for c in found["classes"])


def pipeline_text(record: Record, limit: int | None = TEXT_DETECTIONS) -> list[str]:
    """Each object: its detection, then its second-stage answer (the first ``limit`` objects; None: all)."""
    found = record["objects"]
    lines = [f"{record['path']}: {len(found)} object{'' if len(found) == 1 else 's'}"]
    for o in found[:limit]:
        x1, y1, x2, y2 = o["box"]
        lines.append(
            f"  {o['score']:6.3f} {o['label']:<12s} [{x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}]  {_answer_text(o)}"
        )
    if limit is not None and len(found) > limit:
        lines.append(f"  ... and {len(found) - limit} more")
    return lines + _files_text(record, ("annotated",))


def instance_record(result: ImageResult, files: Mapping[str, str] | None = None) -> Record:
    """Detections with each instance's pixel count and outline polygons ([[x, y], ...] per outer boundary)."""
    if not result.ok:
        return _error_record(result)
    answer = result.answer
    record = detection_record(ImageResult(result.source, answer.detections), files)
    for index, (detection, pixels) in enumerate(zip(record["detections"], answer.pixels(), strict=True)):
        detection["pixels"] = pixels
        detection["polygons"] = [[[x, y] for x, y in polygon] for polygon in answer.polygons(index)]
    height, width = answer.instance_map.shape
    return {**record, "height": int(height), "width": int(width)}


def instance_text(record: Record, limit: int | None = TEXT_DETECTIONS) -> list[str]:
    found = record["detections"]
    lines = [f"{record['path']}: {len(found)} instance{'' if len(found) == 1 else 's'}"]
    for d in found[:limit]:
        x1, y1, x2, y2 = d["box"]
        share = d["pixels"] / max(1, record["width"] * record["height"])
        lines.append(
            f"  {d['score']:6.3f}  {d['class_id']:3d} {d['label']:<16s} [{x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}]"
            f" {d['pixels']:8d} px {percent(share)}"
        )
    if limit is not None and len(found) > limit:
        lines.append(f"  ... and {len(found) - limit} more")
    return lines + _files_text(record, ("annotated",))


def pipeline_csv(record: Record) -> list[dict[str, Any]]:
    """One row per object (an image without objects: one row, its object cells empty)."""
    rows = []
    for index, o in enumerate(record["objects"]):
        best = o["classes"][0] if o.get("classes") else {}
        rows.append(
            {
                "object": index,
                "label": o["label"],
                "class_id": o["class_id"],
                "score": o["score"],
                "box": " ".join(str(v) for v in o["box"]),
                "answer": best.get("label", ""),
                "answer_class_id": best.get("class_id", ""),
                "answer_score": best.get("score", ""),
                "answers": _joined([f"{c['label']}:{c['score']}" for c in o.get("classes", [])]),
                "embedding": " ".join(str(v) for v in o.get("embedding", [])),
                "annotated": record.get("annotated", ""),
            }
        )
    return rows or [{"annotated": record.get("annotated", "")}]


def instance_csv(record: Record) -> dict[str, Any]:
    """Detection's cells, plus each instance's pixels and polygons (polygons of one instance split by ';',
    points as "x y" pairs, all space-separated)."""
    found = record["detections"]
    polygons = [";".join(" ".join(f"{x} {y}" for x, y in poly) for poly in d["polygons"]) for d in found]
    return {**detection_csv(record), "pixels": _joined([d["pixels"] for d in found]), "polygons": _joined(polygons)}


def keypoint_record(result: ImageResult, files: Mapping[str, str] | None = None) -> Record:
    """Detections with each one's keypoints, [x, y, confidence] in ``keypoint_names`` order."""
    if not result.ok:
        return _error_record(result)
    answer = result.answer
    record = detection_record(ImageResult(result.source, answer.detections), files)
    for detection, points in zip(record["detections"], answer.points, strict=True):
        detection["keypoints"] = [
            [round(float(v), 2) for v in point[:2]] + [round(float(point[2]), 4)] for point in points
        ]
    return {**record, "keypoint_names": list(answer.names), "skeleton": [list(pair) for pair in answer.skeleton]}


def keypoint_text(record: Record, limit: int | None = TEXT_DETECTIONS) -> list[str]:
    """Each detection as detect prints it, then its keypoints seen (confidence >= 0.5) by name."""
    names = record["keypoint_names"]
    lines = detection_text(record, limit)
    shown = record["detections"][:limit]
    files = [line for line in lines if line.startswith("  wrote ")]
    out = [lines[0]]
    for line, d in zip(lines[1 : 1 + len(shown)], shown, strict=True):
        seen = [(n, p) for n, p in zip(names, d["keypoints"], strict=True) if p[2] >= KEYPOINT_SHOWN]
        out.append(f"{line} {len(seen)}/{len(names)} keypoints")
        out += [f"      {n:<16s} {p[0]:7.1f} {p[1]:7.1f}  {p[2]:.2f}" for n, p in seen]
    return out + [line for line in lines[1 + len(shown) :] if line not in files] + files


def keypoint_csv(record: Record) -> dict[str, Any]:
    """Detection's cells, plus each detection's keypoints as "x y confidence" triples, space-separated."""
    found = record["detections"]
    points = [" ".join(" ".join(str(v) for v in p) for p in d["keypoints"]) for d in found]
    return {**detection_csv(record), "keypoint_names": _joined(record["keypoint_names"]), "keypoints": _joined(points)}


def percent(fraction: float) -> str:
    """``12.34%``, 7 wide; a fraction too small to show as one (but above 0) is ``<0.01%``."""
    return f"{'<0.01%':>7s}" if 0 < fraction < SMALLEST_FRACTION else f"{fraction:7.2%}"


def segmentation_text(record: Record, limit: int | None = None) -> list[str]:
    lines = [f"{record['path']}: {record['width']}x{record['height']} mask, classes present:"]
    lines += [f"  {percent(c['fraction'])}  {c['class_id']:3d}  {c['label']}" for c in record["classes"]]
    return lines + _files_text(record, ("mask", "overlay"))


def segmentation_csv(record: Record) -> dict[str, Any]:
    return {
        "height": record["height"],
        "width": record["width"],
        "classes": _joined([f"{c['label']}:{c['fraction']}" for c in record["classes"]]),
        "mask": record.get("mask", ""),
        "overlay": record.get("overlay", ""),
    }


def embedding_text(record: Record, limit: int | None = None) -> list[str]:
    shown = ", ".join(f"{v:.4f}" for v in record["embedding"][:TEXT_VALUES])
    more = ", ..." if record["dim"] > TEXT_VALUES else ""
    lines = [f"{record['path']}: {record['dim']}-d embedding, norm {record['norm']:.4f}  [{shown}{more}]"]
    return lines + _files_text(record, ("npy",))


def embedding_csv(record: Record) -> dict[str, Any]:
    return {"dim": record["dim"], "norm": record["norm"], "npy": record.get("npy", "")}


@dataclass(frozen=True)
class RecordKind:
    """How one command's answers become records, text lines and CSV cells."""

    record: Callable[[ImageResult, Mapping[str, str] | None], Record]
    text: Callable[[Record, int | None], list[str]]  # (record, most detections listed) -> lines
    csv: Callable[[Record], dict[str, Any] | list[dict[str, Any]]]  # a row, or several (one per object)
    csv_columns: tuple[str, ...]


BASE_COLUMNS = ("path", "error", "reason")
CLASSIFICATION = RecordKind(
    classification_record,
    classification_text,
    classification_csv,
    (*BASE_COLUMNS, "label", "class_id", "score", "labels", "class_ids", "scores"),
)
DETECTION = RecordKind(
    detection_record,
    detection_text,
    detection_csv,
    (*BASE_COLUMNS, "count", "labels", "class_ids", "scores", "boxes", "annotated"),
)
PIPELINE = RecordKind(
    pipeline_record,
    pipeline_text,
    pipeline_csv,
    (
        *BASE_COLUMNS,
        "object",
        "label",
        "class_id",
        "score",
        "box",
        "answer",
        "answer_class_id",
        "answer_score",
        "answers",
        "embedding",
        "annotated",
    ),
)
INSTANCES = RecordKind(
    instance_record,
    instance_text,
    instance_csv,
    (*BASE_COLUMNS, "count", "labels", "class_ids", "scores", "boxes", "pixels", "polygons", "annotated"),
)
KEYPOINTS = RecordKind(
    keypoint_record,
    keypoint_text,
    keypoint_csv,
    (*BASE_COLUMNS, "count", "labels", "class_ids", "scores", "boxes", "keypoint_names", "keypoints", "annotated"),
)
SEGMENTATION = RecordKind(
    segmentation_record,
    segmentation_text,
    segmentation_csv,
    (*BASE_COLUMNS, "height", "width", "classes", "mask", "overlay"),
)

EMBEDDING = RecordKind(
    embedding_record,
    embedding_text,
    embedding_csv,
    (*BASE_COLUMNS, "dim", "norm", "npy"),
)


class RecordWriter:
    """Writes one record per image to ``stream`` in ``fmt``, each record whole and flushed."""

    def __init__(
        self,
        stream: TextIO,
        fmt: str,
        kind: RecordKind,
        *,
        write_header: bool = True,
        text_limit: int | None = TEXT_DETECTIONS,
    ) -> None:
        """``text_limit``: detections listed per image in text output (None: all)."""
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got '{fmt}'")
        self.stream, self.fmt, self.kind, self.text_limit = stream, fmt, kind, text_limit
        if fmt == "csv" and write_header:
            self._emit(self._csv_line({c: c for c in kind.csv_columns}))

    def _csv_line(self, row: Mapping[str, Any]) -> str:
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=self.kind.csv_columns, lineterminator="\n").writerow(row)
        return buffer.getvalue()

    def _emit(self, text: str) -> None:
        self.stream.write(text)  # one write per record: an interrupted job never leaves half a record
        self.stream.flush()

    def render(self, record: Record) -> str:
        failed = "error" in record
        if self.fmt == "jsonl":
            return json.dumps(record, ensure_ascii=False) + "\n"
        if self.fmt == "csv":
            row = {"path": record["path"], "error": record.get("error", ""), "reason": record.get("reason", "")}
            cells = [{}] if failed else self.kind.csv(record)
            return "".join(self._csv_line({**row, **part}) for part in (cells if isinstance(cells, list) else [cells]))
        return "\n".join(_error_text(record) if failed else self.kind.text(record, self.text_limit)) + "\n"

    def write(self, record: Record) -> None:
        self._emit(self.render(record))


def read_back(path: Path, fmt: str) -> tuple[set[str], set[str]]:
    """The paths an earlier output file has answered, and those it has failed (for ``--resume``).

    A last line cut short (a job killed while writing) is removed from the file, so that
    appending continues with whole records. A missing or empty file has no records.
    """
    if fmt not in RESUMABLE_FORMATS:
        raise ValueError(f"--resume needs --format {' or '.join(RESUMABLE_FORMATS)} (text output cannot be read back)")
    answered: set[str] = set()
    failed: set[str] = set()
    if not path.exists() or path.stat().st_size == 0:
        return answered, failed
    _drop_partial_last_line(path)
    for record in _read_records(path, fmt):
        (failed if _is_failed(record) else answered).add(record["path"])
    return answered, failed


def _read_records(path: Path, fmt: str) -> Iterator[Mapping[str, Any]]:
    """Each record of an output file (a CSV row as its cells), checked to be this tool's."""
    with open(path, encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict) or "path" not in record:
                    raise ValueError(f"{path}:{number} is not a record of this tool (no JSON with a 'path')")
                yield record
        else:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ValueError(f"{path} is not a CSV output of this tool (no 'path' column)")
            yield from reader


def _is_failed(record: Mapping[str, Any]) -> bool:
    return bool(record.get("error"))


def drop_failed_records(path: Path, fmt: str) -> None:
    """Rewrite ``path`` without its failed records (a new file beside it, then renamed over it), so
    that the images sent again keep one record each."""
    descriptor, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".resume")
    try:
        os.chmod(scratch, stat.S_IMODE(path.stat().st_mode))
        with (
            open(descriptor, "w", encoding="utf-8", newline="") as out,
            open(path, encoding="utf-8", newline="") as handle,
        ):
            if fmt == "jsonl":
                for line in handle:
                    if line.strip() and not _is_failed(json.loads(line)):
                        out.write(line)
            else:
                reader = csv.DictReader(handle)
                writer = csv.DictWriter(out, fieldnames=list(reader.fieldnames or []), lineterminator="\n")
                writer.writeheader()
                writer.writerows(row for row in reader if not _is_failed(row))
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _drop_partial_last_line(path: Path) -> None:
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        # Walk back to the last newline (in blocks) and cut what follows it.
        position = size
        while position > 0:
            start = max(0, position - 65536)
            handle.seek(start)
            block = handle.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                handle.truncate(start + newline + 1)
                return
            position = start
        handle.truncate(0)
