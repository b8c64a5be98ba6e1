"""What ``add-model --verify`` prints: the table of variants, the problems with the photos, the warning."""

from __future__ import annotations

from collections.abc import Sequence

from triton_vision_authoring.add_model.verify import MIN_PHOTOS, OWN_SCALING, RULE, SHOWN, Report, Variant, numbers


def report_lines(report: Report) -> list[str]:
    """The table, the problems with the photos, and the warnings (lines starting ``WARNING``)."""
    spec = report.spec
    lines = [
        f"verify {spec.name}: {report.photos} photos of {len(report.classes)} classes from {report.photos_dir} "
        f"(at most {report.limit} per class), model run in-process (ONNX Runtime, CPU)",
        "  " + ", ".join(f"{name} {count}" for name, count in report.classes.items()),
    ]
    if report.left_over:
        lines.append(f"  {report.left_over} more photos not used (--verify-limit {report.limit})")
    if report.unmatched:
        lines.append(f"  folders naming no label of {spec.label_name} (skipped): {_shown(report.unmatched)}")
    for name, lines_of in report.ambiguous.items():
        meant = ", ".join(f"line {i + 1}" for i in lines_of)
        lines.append(
            f"  folder '{name}' could be any of {meant} of {spec.label_name} (skipped: name it by the whole line)"
        )
    if report.unreadable:
        shown = _shown([f"{p.parent.name}/{p.name} ({why})" for p, why in report.unreadable])
        lines.append(f"  {len(report.unreadable)} photos could not be read (skipped): {shown}")
    lines.extend(f"  note: {note}" for note in report.notes)
    lines.append("")
    lines.append(f"  {'colour':<7}{'scaling':<10}{'resize':<28}{'right':>9}{'top-1':>8}{'p(true)':>9}")
    ranked = sorted(report.outcomes, key=lambda o: (-o.correct, -o.mean_probability, not o.variant.own))
    for outcome in ranked:
        v = outcome.variant
        right = f"{outcome.correct}/{outcome.right.size}"
        lines.append(
            f"{'*' if v.own else ' '} {v.colour:<7}{v.scaling:<10}{v.resize:<28}{right:>9}"
            f"{outcome.accuracy * 100:>7.1f}%{outcome.mean_probability:>9.3f}"
        )
    pre = spec.preprocess
    lines.append(
        "  * the spec's own preprocessing; right, top-1: photos whose true class ranks first; "
        "p(true): the true class's mean probability"
    )
    if report.own.variant.scaling == OWN_SCALING:
        lines.append(
            f"  own scaling: the spec's mean {numbers(pre.mean)}, std {numbers(pre.std)} ({pre.channels} order)"
        )
    lines.append(f"  rule: {RULE}")
    if not report.warnings and report.photos < MIN_PHOTOS:
        lines.append(
            f"cannot judge: {report.photos} photos are too few for the rule to call any alternative clearly "
            f"better (it needs at least {MIN_PHOTOS}, each favouring it); give more photos per class "
            "(--verify-limit) or more classes"
        )
        return lines
    if not report.warnings:
        lines.append("ok: no alternative is clearly better than the spec's preprocessing")
        return lines
    best = report.warnings[0]
    also = ""
    if len(report.warnings) > 1:
        also = "; also clearly better: " + _shown([_name(f.better.variant) for f in report.warnings[1:]])
    lines.append(
        f"WARNING: {spec.source.name} [preprocess] looks wrong: {_name(best.better.variant)} gets "
        f"{best.better.correct}/{best.better.right.size} photos right, the spec's own ({_name(best.own.variant)}) "
        f"{best.own.correct}, and gives the true class a higher probability on {best.higher} photos, a lower on "
        f"{best.lower} (sign test p = {best.p_value:.2g}); for it write: {best.change}{also}"
    )
    return lines


def _name(variant: Variant) -> str:
    return f"{variant.colour}, {variant.scaling}, {variant.resize}"


def _shown(items: Sequence[str]) -> str:
    more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
