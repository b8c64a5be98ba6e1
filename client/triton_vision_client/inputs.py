"""Image inputs as people give them: files, directories, globs and ``-`` (paths on standard input).

Everything here is lazy: a folder of any size is walked one directory at a time and yields one
:class:`ImageSource` per file, so nothing holds the whole list. Pure standard library.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TextIO

# Files taken from a directory: the formats the server decodes, and image formats it refuses with
# a message naming the format (so a HEIC photo in a folder is reported, not silently ignored).
DECODED_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png"})
REFUSED_IMAGE_SUFFIXES = frozenset(
    {".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".jxl"}
)
IMAGE_SUFFIXES = DECODED_SUFFIXES | REFUSED_IMAGE_SUFFIXES
GLOB_CHARACTERS = frozenset("*?[")
STDIN = "-"


@dataclass(frozen=True)
class ImageSource:
    """One image to send: where it is, how records name it, where its outputs go under ``--out``.

    ``problem`` is set when the input is known to be bad before reading (a glob that matched no
    file); reading the source then fails with that message. ``data``, when set, is the encoded
    image itself (bytes given in memory): nothing is read from ``path``.
    """

    path: Path
    name: str  # the path as records show it (as given, or as found under a directory)
    relative: PurePath  # its place under --out: relative to the directory or glob it came from
    problem: str | None = None
    data: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def in_memory(cls, index: int, data: bytes) -> ImageSource:
        """Encoded bytes given in memory, named "image <index>"."""
        name = f"image {index}"
        return cls(Path(name), name, PurePath(name), data=data)


@dataclass
class ExpansionStats:
    """What expanding the inputs skipped (files in directories that are not images, subfolders)."""

    skipped_not_images: int = 0
    skipped_hidden: int = 0
    skipped_subfolders: int = 0  # of a directory given without ``recursive``
    examples: list[str] = field(default_factory=list)  # a few skipped names, for the summary

    def skip(self, name: str) -> None:
        self.skipped_not_images += 1
        if len(self.examples) < 3:
            self.examples.append(name)


def has_glob(text: str) -> bool:
    return any(c in GLOB_CHARACTERS for c in text)


def _glob_root(pattern: str) -> Path:
    """The longest leading directory of ``pattern`` without glob characters."""
    parts = PurePath(pattern).parts
    prefix: list[str] = []
    for part in parts[:-1]:
        if has_glob(part):
            break
        prefix.append(part)
    return Path(*prefix) if prefix else Path(".")


def _safe_relative(path: Path, root: Path) -> PurePath:
    try:
        relative = PurePath(os.path.relpath(path, root))
    except ValueError:  # another drive (Windows)
        return PurePath(path.name)
    return PurePath(path.name) if ".." in relative.parts else relative


def walk_directory(directory: Path, recursive: bool, stats: ExpansionStats | None = None) -> Iterator[Path]:
    """Image files in ``directory`` (sorted by name; subdirectories too if ``recursive``).

    Hidden entries (names starting with '.') are skipped; symbolic links to directories are not
    followed (no cycles). One directory listing is held at a time per level.
    """
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    subdirectories = []
    for entry in entries:
        if entry.name.startswith("."):
            if stats is not None:
                stats.skipped_hidden += 1
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                subdirectories.append(entry.path)
                continue
            is_file = entry.is_file()
        except OSError:
            is_file = True  # let reading it report the problem
        if not is_file:
            continue
        if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
            yield Path(entry.path)
        elif stats is not None:
            stats.skip(entry.path)
    del entries
    if recursive:
        for sub in subdirectories:
            yield from walk_directory(Path(sub), recursive, stats)
    elif stats is not None:
        stats.skipped_subfolders += len(subdirectories)


def _expand_one(argument: str, recursive: bool, stats: ExpansionStats | None) -> Iterator[ImageSource]:
    path = Path(argument)
    if path.is_dir():
        for found in walk_directory(path, recursive, stats):
            yield ImageSource(found, str(found), _safe_relative(found, path))
    elif has_glob(argument) and not path.exists():
        root = _glob_root(argument)
        matched = False
        for match in glob.iglob(argument, recursive=True):  # streamed, in directory order
            found = Path(match)
            if found.is_dir():
                continue
            matched = True
            yield ImageSource(found, match, _safe_relative(found, root))
        if not matched:
            yield ImageSource(path, argument, PurePath(path.name), problem="no file matches this pattern")
    else:
        yield ImageSource(path, argument, PurePath(path.name))


def expand_inputs(
    arguments: Iterable[str],
    *,
    recursive: bool = False,
    stdin: TextIO | None = None,
    stats: ExpansionStats | None = None,
) -> Iterator[ImageSource]:
    """One :class:`ImageSource` per image named by ``arguments``, lazily, in the order given.

    - a file: itself (sent whatever its name; the server says if it is no image);
    - a directory: its image files (see :data:`IMAGE_SUFFIXES`), the whole tree with ``recursive``;
    - a glob (``'photos/**/*.jpg'``, quoted so the shell leaves it): its matching files;
    - ``-``: one path per line of ``stdin`` (each a file, directory or glob, as above).

    A missing path is still yielded: reading it reports "no such file or directory" for it.
    """
    for argument in arguments:
        if argument == STDIN:
            if stdin is None:
                raise ValueError("'-' (paths on standard input) needs a stdin")
            for line in stdin:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield from _expand_one(line, recursive, stats)
        else:
            yield from _expand_one(argument, recursive, stats)


def count_inputs(arguments: Iterable[str], *, recursive: bool = False) -> int | None:
    """How many sources :func:`expand_inputs` will yield (walks the tree once); None with ``-``."""
    arguments = list(arguments)
    if STDIN in arguments:
        return None
    return sum(1 for _ in expand_inputs(arguments, recursive=recursive))
