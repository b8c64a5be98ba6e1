"""The batch job's output: a folder (local or any fsspec URL) of Parquet parts, one row per image
with the fields of the folder job's JSON Lines records (``path``, the answer, or ``error`` and
``reason``), and how a resumed job reads them back.

Each part is the answers of one chunk, written whole under a hidden name and then renamed to
``part-*.parquet``: a killed job leaves only whole parts, so what they hold is what is done.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import triton_vision_contract as contract
from triton_vision_contract.errors import UsageError

from .sources import _fs

PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"

_CLASS = pa.struct([("class_id", pa.int64()), ("label", pa.string()), ("score", pa.float64())])
_BOX = pa.list_(pa.float64())
_BASE = [("path", pa.string()), ("error", pa.string()), ("reason", pa.string())]
# The folder job's records (triton_vision_client.records) as Arrow types, field for field.
SCHEMAS: Mapping[str, pa.Schema] = {
    contract.CLASSIFICATION: pa.schema([*_BASE, ("classes", pa.list_(_CLASS))]),
    contract.DETECTION: pa.schema(
        [
            *_BASE,
            (
                "detections",
                pa.list_(
                    pa.struct(
                        [("label", pa.string()), ("class_id", pa.int64()), ("score", pa.float64()), ("box", _BOX)]
                    )
                ),
            ),
        ]
    ),
    contract.PIPELINE: pa.schema(
        [
            *_BASE,
            (
                "objects",
                pa.list_(
                    pa.struct(
                        [
                            ("label", pa.string()),
                            ("class_id", pa.int64()),
                            ("score", pa.float64()),
                            ("box", _BOX),
                            ("classes", pa.list_(_CLASS)),  # a classifier second stage's top-k
                            ("embedding", pa.list_(pa.float64())),  # an embedder second stage's vector
                        ]
                    )
                ),
            ),
        ]
    ),
    contract.SEGMENTATION: pa.schema(
        [
            *_BASE,
            ("height", pa.int64()),
            ("width", pa.int64()),
            (
                "classes",
                pa.list_(pa.struct([("class_id", pa.int64()), ("label", pa.string()), ("fraction", pa.float64())])),
            ),
        ]
    ),
}


def as_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A Parquet row as the folder job's record: the fields it has (an answer's or a failure's)."""
    return {key: _without_nulls(value) for key, value in row.items() if value is not None}


def _without_nulls(value: Any) -> Any:
    """Lists and structs as the records have them: a struct's null fields (a pipeline object's
    ``classes`` or ``embedding``, whichever its second stage does not answer) left out."""
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    return value


class PartStore:
    """The Parquet parts under ``url`` for one task."""

    def __init__(self, url: str, task: str) -> None:
        self.url, self.schema = url, SCHEMAS[task]
        self.fs, self.root = _fs(url)
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"  # parts of one run sort together
        self.written = 0

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def parts(self) -> list[str]:
        if not self.fs.isdir(self.root):
            return []
        return sorted(self.fs.glob(self._path(f"{PART_PREFIX}*{PART_SUFFIX}")))

    def prepare(self) -> None:
        """Create the folder; raise :class:`UsageError` when nothing can be written there."""
        try:
            if self.fs.exists(self.root) and not self.fs.isdir(self.root):
                raise UsageError(f"--output {self.url} is a file, not a folder")
            self.fs.makedirs(self.root, exist_ok=True)
            probe = self._path(f".probe-{self.run}")
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
        except OSError as exc:
            raise UsageError(f"--output {self.url}: cannot write there ({exc})") from None

    def _read(self, part: str, columns: Sequence[str] | None = None) -> pa.Table:
        with self.fs.open(part, "rb") as handle:
            table = pq.read_table(handle, columns=columns)
        missing = {name for name in self.schema.names if name not in table.schema.names} if columns is None else set()
        if missing or "path" not in table.schema.names:
            raise UsageError(f"{part} is not a part of this task's batch output (fields {table.schema.names})")
        return table

    def read_back(self) -> tuple[set[str], set[str]]:
        """The paths the parts have answered, and those they have failed."""
        answered: set[str] = set()
        failed: set[str] = set()
        for part in self.parts():
            table = self._read(part)
            for path, error in zip(table.column("path").to_pylist(), table.column("error").to_pylist(), strict=True):
                (failed if error else answered).add(path)
        return answered, failed

    def drop_failed(self) -> None:
        """Rewrite the parts that hold failed rows without them, so that the images sent again keep
        one row each."""
        for part in self.parts():
            table = self._read(part)
            kept = table.filter(pc.is_null(table.column("error")))
            if kept.num_rows == table.num_rows:
                continue
            if kept.num_rows:
                self._write_whole(kept, part)
            else:
                self.fs.rm_file(part)

    def _write_whole(self, table: pa.Table, target: str) -> None:
        scratch = self._path(f".{target.rsplit('/', 1)[-1]}.{secrets.token_hex(3)}.tmp")
        with self.fs.open(scratch, "wb") as handle:
            pq.write_table(table, handle)
        self.fs.mv(scratch, target)

    def write(self, records: Sequence[Mapping[str, Any]]) -> str:
        """One new part holding ``records`` (the folder job's records); its path."""
        self.written += 1
        target = self._path(f"{PART_PREFIX}{self.run}-{self.written:06d}{PART_SUFFIX}")
        self._write_whole(pa.Table.from_pylist(list(records), schema=self.schema), target)
        return target

    def records(self, parts: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every row of ``parts`` (default: every part), as records."""
        chosen = self.parts() if parts is None else parts
        return [as_record(row) for part in chosen for row in self._read(part).to_pylist()]
