"""The batch job's inputs: local files, folders and globs (named as the folder job names them) or
any fsspec URL (``s3://bucket/photos``, ``gs://...``, ``file://...``, ``memory://...``).

The driver lists every input before work starts (a missing folder or bucket is one error then);
each actor reads the images of its chunk lazily, as its requests go out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from triton_vision_client.inputs import IMAGE_SUFFIXES, ExpansionStats, ImageSource, expand_inputs, has_glob
from triton_vision_client.jobs import MAX_FILE_BYTES, TOO_LARGE, UNREADABLE, ImageResult
from triton_vision_contract.errors import UsageError


@dataclass(frozen=True)
class Item:
    """One image: its name in the records, and where an actor reads it (an absolute local path, or a URL)."""

    name: str
    location: str


@dataclass
class Listing:
    items: list[Item] = field(default_factory=list)
    skipped_not_images: int = 0


def is_url(text: str) -> bool:
    return "://" in text


def _fs(url: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its backend not installed
        raise UsageError(f"{url}: {exc}") from None


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _prefix(text: str) -> str:
    """``text`` up to its last '/' before a glob character (all of it, without a trailing '/', when none)."""
    globbed = [text.index(c) for c in "*?[" if c in text]
    return text[: text.rfind("/", 0, min(globbed))] if globbed else text.rstrip("/")


def _list_url(url: str, recursive: bool, listing: Listing) -> None:
    """The images under ``url``, each named as the URL given followed by its path below it."""
    fs, path = _fs(url)
    url_prefix, path_prefix = _prefix(url), _prefix(path)

    def named(found: str) -> Item:
        name = url_prefix + found[len(path_prefix) :] if found.startswith(path_prefix) else fs.unstrip_protocol(found)
        return Item(name, fs.unstrip_protocol(found))

    try:
        if has_glob(path):
            found = [p for p in fs.glob(path) if not fs.isdir(p)]
            if not found:
                raise UsageError(f"{url}: no file matches this pattern")
        elif fs.isdir(path):
            found = fs.find(path, maxdepth=None if recursive else 1)
        elif fs.exists(path):
            listing.items.append(Item(url, fs.unstrip_protocol(path)))
            return
        else:
            raise UsageError(f"{url}: no such file, folder or bucket")
    except (FileNotFoundError, PermissionError, OSError) as exc:  # a bucket that is not there or not ours
        raise UsageError(f"{url}: cannot list it ({exc})") from None
    for found_path in sorted(found):
        if _name(found_path).startswith("."):  # hidden, as the folder job skips them
            continue
        if os.path.splitext(_name(found_path))[1].lower() in IMAGE_SUFFIXES:
            listing.items.append(named(found_path))
        else:
            listing.skipped_not_images += 1


def list_inputs(inputs: Sequence[str], *, recursive: bool = False) -> Listing:
    """Every image the inputs name, in order, each once; raises :class:`UsageError` for an input
    that names nothing (a missing file, folder or bucket, a glob matching no file)."""
    listing = Listing()
    stats = ExpansionStats()
    for text in inputs:
        if is_url(text):
            _list_url(text, recursive, listing)
            continue
        if not Path(text).exists() and not has_glob(text):
            raise UsageError(f"{text}: no such file or folder")
        for source in expand_inputs([text], recursive=recursive, stats=stats):
            if source.problem:
                raise UsageError(f"{source.name}: {source.problem}")
            listing.items.append(Item(source.name, str(source.path.absolute())))
    listing.skipped_not_images += stats.skipped_not_images
    seen: set[str] = set()
    listing.items = [item for item in listing.items if not (item.name in seen or seen.add(item.name))]  # type: ignore[func-returns-value]
    return listing


def sources(items: Sequence[Item], unreadable: list[ImageResult]) -> Iterator[ImageSource]:
    """An :class:`ImageSource` per item, read only when the engine takes it: a local one is read by
    the engine (its usual checks), a URL's bytes here; one that cannot be read goes to ``unreadable``."""
    for item in items:
        if not is_url(item.location):
            yield ImageSource(Path(item.location), item.name, PurePath(item.name))
            continue
        source = ImageSource(Path(item.name), item.name, PurePath(item.name))
        try:
            fs, path = _fs(item.location)
            size = fs.size(path)
            if size is not None and size > MAX_FILE_BYTES:
                unreadable.append(
                    ImageResult(
                        source,
                        error=f"{size} bytes, more than the client's limit of {MAX_FILE_BYTES} bytes",
                        reason=TOO_LARGE,
                    )
                )
                continue
            data = fs.cat_file(path)
        except FileNotFoundError:
            yield ImageSource(source.path, source.name, source.relative, problem=f"no such file: {item.location}")
            continue
        except (OSError, UsageError) as exc:
            unreadable.append(ImageResult(source, error=str(exc), reason=UNREADABLE))
            continue
        yield ImageSource(source.path, source.name, source.relative, data=data)
