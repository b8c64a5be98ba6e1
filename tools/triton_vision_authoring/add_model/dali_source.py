"""The ``dali.py`` of a ``NAME_preprocess`` model, written from a spec's ``[preprocess]`` table.

The pipeline follows the DALI backend's autoserialization convention and imports nothing but
DALI (the NGC container's native DALI backend serializes it). Every size is computed on the CPU
from the encoded image's header (``fn.peek_image_shape``), so the same file runs with the
``"mixed"`` (nvJPEG) decoder on a GPU: DALI arguments such as ``resize``'s size must live on the
CPU. The arithmetic transliterates :mod:`triton_vision_models.geometry` (the rules, stated once;
``tests/unit/models/test_torchvision_crop.py`` runs both on sizes that hit every rounding tie).
"""

from __future__ import annotations

import textwrap

from triton_vision_authoring.add_model.ensemble_spec import EnsembleSpec
from triton_vision_models import exact_resize, geometry
from triton_vision_models import tensors as t
from triton_vision_models.preprocessing import PreprocessSpec

WIDTH = 100  # docstring lines are wrapped to this width
INTERP = {"linear": "types.INTERP_LINEAR", "cubic": "types.INTERP_CUBIC", "nearest": "types.INTERP_NN"}
LIBRARY_NAMES = {exact_resize.PILLOW: "Pillow", exact_resize.OPENCV: "OpenCV"}


def _rounded(values) -> list[float]:
    """Pixel-unit values as written (x / 255 * 255 is not always x in floating point)."""
    return [round(float(v), 10) for v in values]


def _floats(values) -> str:
    return "[" + ", ".join(repr(v) for v in _rounded(values)) + "]"


def pixel_mean_std(pre: PreprocessSpec) -> tuple[list[float], list[float]]:
    """Mean and std in pixel units (x 255), as crop_mirror_normalize takes them."""
    return [m * 255 for m in pre.mean], [s * 255 for s in pre.std]


def fill_values(pre: PreprocessSpec) -> list[float]:
    """The padding's value per channel in the network input's units (after normalisation)."""
    if pre.dtype == "uint8":
        return [float(pre.fill)] * 3
    if pre.fill == "mean":
        return [0.0, 0.0, 0.0]
    mean, std = pixel_mean_std(pre)
    return [(float(pre.fill) - m) / s for m, s in zip(mean, std, strict=True)]


def describe(pre: PreprocessSpec) -> str:
    """One line of what the pipeline does, for docstrings and config comments."""
    rule = pre.rule
    size = f"{rule.network[0]}x{rule.network[1]}"
    if rule.mode == geometry.SHORTER_CROP:
        steps = (
            f"shorter side to {rule.shorter} (longer side truncated, as torchvision's Resize), centre crop "
            f"{size} (offset rounded half to even, as torchvision's CenterCrop)"
        )
    elif rule.mode == geometry.STRETCH:
        steps = f"resized to {size} (aspect not kept)"
    elif rule.mode == geometry.LETTERBOX:
        where = "at the top-left" if rule.pad == geometry.TOP_LEFT else "centred"
        steps = f"resized to fit {size} (aspect kept, sides rounded half up), placed {where} in a {size} canvas"
    else:
        padding = "each batch padded bottom/right to its largest height and width"
        if rule.size_divisible > 1:
            padding = f"padded bottom/right to multiples of {rule.size_divisible}, each batch to its largest"
        steps = (
            f"scaled by min({rule.min_size:g} / shorter side, {rule.max_size:g} / longer side), sides "
            f"floor(side x scale) in float64 (torchvision's GeneralizedRCNNTransform), {padding}"
        )
    filter_ = f"{pre.interpolation}{', antialiased' if pre.antialias else ''}"
    if pre.resize_like != exact_resize.DALI:
        filter_ += f"; on the CPU exactly as {LIBRARY_NAMES[pre.resize_like]}"
    if pre.dtype == "uint8":
        values = "raw 0..255 pixels (uint8)"
    elif pre.pixel_units:
        mean, std = (_rounded(v) for v in pixel_mean_std(pre))
        values = f"(x - mean) / std on 0..255 pixels (mean {mean}, std {std}) float32"
    else:
        values = f"(x/255 - mean) / std (mean {list(pre.mean)}, std {list(pre.std)}) float32"
    return f"{pre.channels} -> {steps} ({filter_}) -> {values}, {pre.layout[1:]}"


def _size_lines(rule: geometry.ResizeRule) -> list[str]:
    """DALI arithmetic for ``out_height``/``out_width`` (FLOAT64 whole numbers) from ``height``/``width``."""
    if rule.mode == geometry.STRETCH:
        return [
            "    # The network input's size, as per-sample values (the arithmetic keeps them DataNodes).",
            "    out_height = height * 0.0 + SIZE[0]",
            "    out_width = width * 0.0 + SIZE[1]",
        ]
    if rule.mode == geometry.LETTERBOX:
        return [
            "    # Fit the canvas, aspect kept; each side rounded half up, at least one pixel.",
            "    scale = math.min(SIZE[0] / height, SIZE[1] / width)",
            "    out_height = math.min(float(SIZE[0]), math.max(1.0, math.floor(height * scale + 0.5)))",
            "    out_width = math.min(float(SIZE[1]), math.max(1.0, math.floor(width * scale + 0.5)))",
        ]
    return [
        "    # torchvision's GeneralizedRCNNTransform: scale = min(MIN_SIZE / shorter, MAX_SIZE / longer).",
        "    scale = math.min(MIN_SIZE / math.min(height, width), MAX_SIZE / math.max(height, width))",
        "    out_height = math.floor(height * scale)",
        "    out_width = math.floor(width * scale)",
    ]


def _shorter_crop_lines(pre: PreprocessSpec) -> list[str]:
    """Resize and centre crop of ``shorter-crop``, in integers on the (height, width) pair.

    A dozen operators instead of forty: each DALI operator costs a fixed ~40 us per run on the CPU,
    which at one image per request was 1.5 ms of the pipeline's 8.6 ms (docs/performance.md). The
    crop comes before the normalisation, so that only the crop is normalised. Bit-identical to the
    float64 form (``floor(side * SHORTER / shorter)`` is an integer division of exact integers).
    """
    return [
        "    # torchvision's Resize(SHORTER): the shorter side becomes SHORTER, the longer",
        "    # int(SHORTER * longer / shorter), i.e. SHORTER * side // shorter in integers.",
        "    height_width = shape[0:2]",
        "    resized_size = height_width * SHORTER // fn.reductions.min(height_width)",
        *_resize_lines(pre, "fn.cast(resized_size, dtype=types.FLOAT)", "resized_size"),
        "    # torchvision's CenterCrop: start = round((resized - SIZE) / 2) with halves to even, i.e.",
        "    # half + (excess & 1 & half) with half = excess // 2, in integers.",
        "    excess = resized_size - types.Constant(list(SIZE), dtype=types.INT64)",
        "    half = excess // 2",
        "    start = fn.cast(half + (excess & 1 & half), dtype=types.INT32)",
        '    pixels = fn.slice(pixels, start=start, shape=list(SIZE), axis_names="HW")',
    ]


def _resize_lines(pre: PreprocessSpec, float_size: str, int_size: str) -> list[str]:
    """``pixels`` = ``images`` resized: DALI's resize, or with ``resize_like`` a library's own where the
    pipeline can run Python (the CPU decoder, unpipelined: this project's DALI backend)."""
    dali = [
        "pixels = fn.resize(",
        "    images,",
        f"    size={float_size},",
        f"    interp_type={INTERP[pre.interpolation]},",
        f"    antialias={pre.antialias},",
        *(["    dtype=types.FLOAT,"] if pre.rule.mode == geometry.KEEP_ASPECT and pre.dtype == "float32" else []),
        ")",
    ]
    if pre.resize_like == exact_resize.DALI:
        return [f"    {line}" for line in dali]
    return [
        '    if decoder == "cpu" and not Pipeline.current().exec_pipelined:',
        f"        # {LIBRARY_NAMES[pre.resize_like]}'s own resize and rounding, exactly (DALI runs Python only",
        "        # unpipelined, as this project's DALI backend does on the CPU).",
        "        pixels = fn.python_function(",
        "            images,",
        f"            {int_size},",
        "            function=exact_resize,",
        "            batch_processing=False,",
        '            output_layouts="HWC",',
        "        )",
        "    else:",
        "        # DALI's own resize (a GPU, the native DALI backend): one level from",
        f"        # {LIBRARY_NAMES[pre.resize_like]}'s on a few percent of pixels (docs/add-model.md#resize-rules).",
        *[f"        {line}" for line in dali],
    ]


def _place_lines(rule: geometry.ResizeRule, fill: list[float]) -> list[str]:
    """DALI operators that put ``pixels`` (the resized image) into the network input."""
    if rule.mode == geometry.LETTERBOX:
        if rule.pad == geometry.TOP_LEFT:
            start = ["    start = types.Constant([0, 0], dtype=types.INT32)"]
        else:
            start = [
                "    # Centred: the image starts (canvas - resized) // 2 pixels in (a negative slice start pads).",
                "    start = fn.stack(",
                "        0 - (SIZE[0] - fn.cast(out_height, dtype=types.INT64)) // 2,",
                "        0 - (SIZE[1] - fn.cast(out_width, dtype=types.INT64)) // 2,",
                "    )",
                "    start = fn.cast(start, dtype=types.INT32)",
            ]
        return [
            *start,
            "    pixels = fn.slice(",
            "        pixels,",
            "        start=start,",
            "        shape=list(SIZE),",
            '        axis_names="HW",',
            '        out_of_bounds_policy="pad",',
            f"        fill_values={_floats(fill)},",
            "    )",
        ]
    if rule.mode == geometry.KEEP_ASPECT:
        if rule.size_divisible > 1:
            return [
                "    # Zero after normalisation, as torchvision's own batching pads, each side up to a multiple of",
                "    # SIZE_DIVISIBLE and to the batch's largest; the sizes say what is image.",
                '    pixels = fn.pad(pixels, axis_names="HW", fill_value=0.0, align=[SIZE_DIVISIBLE, SIZE_DIVISIBLE])',
            ]
        return [
            "    # Zero after normalisation, as torchvision's own batching pads; the sizes say what is image.",
            '    pixels = fn.pad(pixels, axis_names="HW", fill_value=0.0)',
        ]
    return []


def dali_source(spec: EnsembleSpec, max_batch: int) -> str:
    """The whole ``dali.py`` text for ``spec`` (deterministic: committed built-ins are compared to it)."""
    pre = spec.preprocess
    rule = pre.rule
    name = spec.preprocess_name
    mean, std = pixel_mean_std(pre)
    fill = fill_values(pre)
    constants = []
    if rule.size is not None:
        constants.append(f"SIZE = ({rule.size[0]}, {rule.size[1]})  # the network input's (height, width)")
    if rule.mode == geometry.SHORTER_CROP:
        constants.append(f"SHORTER = {int(rule.shorter or 0)}  # the shorter side before the crop")
    if rule.mode == geometry.KEEP_ASPECT:
        constants.append(f"MIN_SIZE = {float(rule.min_size or 0)!r}")
        constants.append(f"MAX_SIZE = {float(rule.max_size or 0)!r}")
        if rule.size_divisible > 1:
            constants.append(f"SIZE_DIVISIBLE = {rule.size_divisible}  # padded height and width are multiples of it")
    if pre.resize_like != exact_resize.DALI:
        constants.append(f'RESIZE_LIKE = "{pre.resize_like}"  # whose resize the CPU path reproduces')
    if pre.dtype == "float32":
        constants.append(f"MEAN = {_floats(mean)}  # pixel units, {pre.channels} order")
        constants.append(f"STD = {_floats(std)}")
    outputs = ["pixels"] if spec.whole_image else ["pixels", "original_size", "resized_size"]
    outputs_text = ", ".join(o.upper() for o in outputs) + (
        " (the decoded and the resized (height, width), INT64 [2] each)" if len(outputs) > 1 else ""
    )
    summary = (
        f'Encoded JPEG/PNG -> {describe(pre)}. Outputs {outputs_text}. Decodes on "mixed" (nvJPEG) when the '
        'pipeline has a GPU, on "cpu" otherwise. Follows the DALI backend\'s autoserialization convention; '
        "imports nothing but DALI."
    )
    lines = [
        f'"""{spec.name} preprocessing, generated by `triton-vision add-model` from {spec.name}/spec.toml:',
        "edit the spec, not this file (a unit test compares the committed files with the generator's).",
        "",
        *textwrap.wrap(summary, WIDTH, break_on_hyphens=False),
        '"""',
        "",
        "from nvidia.dali import Pipeline, fn, "
        + ("" if rule.mode == geometry.SHORTER_CROP else "math, ")
        + "pipeline_def, types",
        "from nvidia.dali.plugin.triton import autoserialize",
        "",
        *constants,
        "",
    ]
    if pre.resize_like != exact_resize.DALI:
        lines += [
            "",
            "def exact_resize(image, size):",
            '    """One HWC image to size (height, width) by RESIZE_LIKE\'s own code (imported only where it runs)."""',
            "    from triton_vision_models.exact_resize import resize",
            "",
            f'    return resize(image, size, RESIZE_LIKE, "{pre.interpolation}")',
            "",
        ]
    lines += [
        "",
        "@autoserialize",
        f"@pipeline_def(batch_size={max_batch}, num_threads=2, device_id=0)",
        f"def {_identifier(name)}():",
        f'    encoded = fn.external_source(device="cpu", name="{t.IMAGE}", dtype=types.UINT8, ndim=1)',
        '    decoder = "mixed" if Pipeline.current().device_id is not None else "cpu"',
        f"    images = fn.decoders.image(encoded, device=decoder, output_type=types.{pre.channels})",
        "    # The decoded shape [H, W, C] (EXIF orientation applied), read from the encoded bytes on the",
        "    # CPU: resize's size and the crop's start must live on the CPU even when images are on the GPU.",
        "    shape = fn.peek_image_shape(encoded, dtype=types.INT64)",
    ]
    if rule.mode == geometry.SHORTER_CROP:
        lines += _shorter_crop_lines(pre)
    else:
        lines += [
            "    height = fn.cast(shape[0], dtype=types.FLOAT64)",
            "    width = fn.cast(shape[1], dtype=types.FLOAT64)",
            *_size_lines(rule),
            *_resize_lines(
                pre,
                "fn.stack(fn.cast(out_height, dtype=types.FLOAT), fn.cast(out_width, dtype=types.FLOAT))",
                "fn.cast(fn.stack(out_height, out_width), dtype=types.INT64)",
            ),
        ]
    if pre.dtype == "float32":
        lines.append(
            "    pixels = fn.crop_mirror_normalize(pixels, mean=MEAN, std=STD, dtype=types.FLOAT, "
            f'output_layout="{pre.layout[1:]}")'
        )
    elif pre.layout == "NCHW":
        lines.append('    pixels = fn.transpose(pixels, perm=[2, 0, 1], output_layout="CHW")')
    lines += _place_lines(rule, fill)
    if len(outputs) > 1:
        lines.append("    original_size = shape[0:2]")
        if rule.mode != geometry.SHORTER_CROP:  # shorter-crop has it already, in integers
            lines.append("    resized_size = fn.cast(fn.stack(out_height, out_width), dtype=types.INT64)")
    lines.append(f"    return {', '.join(outputs)}")
    return "\n".join(lines) + "\n"


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if not cleaned[0].isdigit() else f"_{cleaned}"
