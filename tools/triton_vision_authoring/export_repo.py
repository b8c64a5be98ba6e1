"""``triton-vision export-repo``: a copy of the repository to drop beside a user's own models.

Every exported model is renamed ``<prefix><name>``: its directory, its config's ``name``, the
``model_name`` of every ensemble step, and every string parameter that names a model or a file of
another model (``labels: "resnet18/imagenet_labels.txt"`` becomes
``"tv_resnet18/imagenet_labels.txt"``). The Python models hold no model names (``model_info``
reports its repository's model files by directory name, so the prefixed names). Configs are
rewritten in place as text, so their comments survive; each rewritten text is parsed again and
must equal the renamed protobuf, else the protobuf is written out instead.

Clients address the prefixed ensembles by their new names (``tv_classification``); the project's
client takes ``--model-prefix tv_`` (``VisionClient(model_prefix="tv_")``).

The copies are readable by everyone the umask allows (files 0644, folders 0755 under 022),
whatever the source's modes: the Triton that serves them often runs as another user.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from triton_vision_authoring.models import readable_mode
from triton_vision_contract.errors import UsageError
from triton_vision_models import tensors as t
from triton_vision_models.repository import ModelConfig, ModelRepository, new_config

PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]*")
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.partial")


@dataclass(frozen=True)
class ExportedModel:
    source: str
    name: str


def _with_execute(mode: int) -> int:
    """x wherever r is (0644 -> 0755): for folders and executable files."""
    return mode | (mode >> 2) & 0o111


def copy_readable(source: str, target: str) -> str:
    """``shutil.copytree``'s copy function: the bytes, with a mode others can read."""
    shutil.copyfile(source, target)
    executable = os.stat(source).st_mode & 0o100
    os.chmod(target, _with_execute(readable_mode()) if executable else readable_mode())
    return target


def make_folders_readable(root: Path) -> None:
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        folder.chmod(_with_execute(readable_mode()))


def rename_reference(value: str, renames: dict[str, str]) -> str:
    """A parameter value naming a model (``resnet18``) or a model's file (``resnet18/labels.txt``)."""
    if value in renames:
        return renames[value]
    head, sep, tail = value.partition("/")
    if sep and head in renames:
        return f"{renames[head]}/{tail}"
    return value


def renamed_config(config: ModelConfig, renames: dict[str, str]) -> ModelConfig:
    renamed = new_config()
    renamed.CopyFrom(config)
    if config.name:
        renamed.name = renames.get(config.name, config.name)
    for step in renamed.ensemble_scheduling.step:
        step.model_name = renames.get(step.model_name, step.model_name)
    for key in list(renamed.parameters):
        value = renamed.parameters[key]
        if value.string_value:
            value.string_value = rename_reference(value.string_value, renames)
    return renamed


def _quoted(rewrite: Callable[[str], str]) -> Callable[[re.Match], str]:
    return lambda m: f'{m.group(1)}"{rewrite(m.group(2))}"'


def rename_config_text(text: str, config: ModelConfig, renames: dict[str, str]) -> str:
    """``config.pbtxt`` text with the models renamed, comments kept (checked against the protobuf)."""
    rewritten = re.sub(
        r'^(name\s*:\s*)"([^"]*)"', _quoted(lambda v: renames.get(v, v)), text, count=1, flags=re.MULTILINE
    )
    rewritten = re.sub(r'(\bmodel_name\s*:\s*)"([^"]*)"', _quoted(lambda v: renames.get(v, v)), rewritten)
    rewritten = re.sub(r'(\bstring_value\s*:\s*)"([^"]*)"', _quoted(lambda v: rename_reference(v, renames)), rewritten)
    expected = renamed_config(config, renames)
    parsed = new_config()
    text_format.Parse(rewritten, parsed)
    if parsed == expected:
        return rewritten
    return "# Written by triton-vision export-repo.\n" + text_format.MessageToString(expected)


SPEC_FILENAME = "spec.toml"  # an ensemble's spec (triton-vision add-model keeps it there)


def rename_spec_text(text: str, renames: dict[str, str]) -> str:
    """An ensemble's ``spec.toml`` with its names renamed: ``name``, ``model_name``, and the paths
    into the repository (``labels = "../resnet18/imagenet_labels.txt"``), so that regenerating from
    the exported copy writes the exported names."""

    def path(value: str) -> str:
        head, sep, tail = value.partition("/")
        if head == ".." and sep:
            return "../" + rename_reference(tail, renames)
        return value

    rewritten = re.sub(
        r'^((?:name|model_name)\s*=\s*)"([^"]*)"', _quoted(lambda v: renames.get(v, v)), text, flags=re.MULTILINE
    )
    rewritten = re.sub(r'^((?:model|labels)\s*=\s*)"([^"]*)"', _quoted(path), rewritten, flags=re.MULTILINE)
    # A pipeline's stages name ensembles ([detect] and [then] ensemble = "..."); it calls no shared model.
    rewritten = re.sub(
        r'^(ensemble\s*=\s*)"([^"]*)"', _quoted(lambda v: renames.get(v, v)), rewritten, flags=re.MULTILINE
    )
    if re.search(r'^task\s*=\s*"pipeline"', rewritten, flags=re.MULTILINE):
        return rewritten
    guard = renames.get(t.IMAGE_GUARD, t.IMAGE_GUARD)
    prefix = guard[: -len(t.IMAGE_GUARD)]
    rewritten = re.sub(r"^shared_prefix\s*=.*\n", "", rewritten, flags=re.MULTILINE)
    if not prefix:
        return rewritten
    # The shared models' prefix goes right after the name (before any table).
    return re.sub(
        r"^(name\s*=.*\n)",
        lambda m: f'{m.group(1)}shared_prefix = "{prefix}"\n',
        rewritten,
        count=1,
        flags=re.MULTILINE,
    )


def export_repository(
    source: Path,
    dest: Path,
    *,
    prefix: str = "",
    models: Iterable[str] | None = None,
    force: bool = False,
) -> list[ExportedModel]:
    """Copy ``models`` (default: all) and what they need from ``source`` into ``dest``, renamed.

    ``dest`` may be an existing model repository: a model directory that is already there is
    refused (a name clash) unless ``force`` replaces it.
    """
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise UsageError(f"prefix '{prefix}' may hold only letters, digits, '_', '.' and '-'")
    repository = ModelRepository.load(source)
    configs = repository.configs
    unknown = [name for name in models or () if name not in repository]
    if unknown:
        raise UsageError(
            f"model '{unknown[0]}' is not in the repository {source} (models: {', '.join(sorted(configs)) or 'none'})"
        )
    names = repository.closure(list(models) if models else sorted(configs))
    renames = {name: prefix + name for name in configs}
    if dest.resolve() == source.resolve():
        raise UsageError("the destination is the source repository")
    clashes = sorted(renames[n] for n in names if (dest / renames[n]).exists())
    if clashes and not force:
        raise UsageError(f"{dest} already has {', '.join(clashes)} (choose another --prefix, or --force to replace)")
    dest.mkdir(parents=True, exist_ok=True)
    exported = []
    for name in names:
        target = dest / renames[name]
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source / name, target, ignore=COPY_IGNORE, copy_function=copy_readable)
        make_folders_readable(target)
        config_path = target / "config.pbtxt"
        config_path.write_text(
            rename_config_text(config_path.read_text(encoding="utf-8"), configs[name], renames), encoding="utf-8"
        )
        spec_path = target / SPEC_FILENAME
        if spec_path.is_file():
            spec_path.write_text(rename_spec_text(spec_path.read_text(encoding="utf-8"), renames), encoding="utf-8")
        exported.append(ExportedModel(source=name, name=renames[name]))
    return exported
