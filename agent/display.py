"""Short human texts of wire values, shared by the agent's and the controller's terminals."""

from __future__ import annotations

import math

from agent.protocol import ReferenceOutcome

#: The one throughput every result carries (result.json, `results`, the report).
THROUGHPUT_DEFINITION = ("training throughput: samples trained per second of training "
                         "(data loading included; evaluation and the first step excluded)")
SAMPLES_PER_J_DEFINITION = ("samples trained in the timed window / energy over the timed "
                            "window")


def quality_text(outcome: ReferenceOutcome | None) -> str:
    """'hr@10 0.712 >= 0.600 (reached)' -- the quality reached against the target."""
    if outcome is None:
        return "-"
    t = outcome.target
    op = ">=" if t.direction == "max" else "<="
    got = "n/a" if outcome.quality is None else f"{outcome.quality:.4g}"
    text = (f"{t.metric} {got} {op} {t.value:.4g} "
            f"({'reached' if outcome.reached_target else 'not reached'})")
    return text + (f": {parts_text(outcome.quality_parts)}" if outcome.quality_parts else "")


def parts_text(parts: dict[str, float] | None) -> str:
    """'bbox_map 0.3812, segm_map 0.3402': each part of a joint quality, as measured."""
    return ", ".join(f"{name} {value:.4g}" for name, value in (parts or {}).items())


def significant(x: float | None, digits: int = 3) -> str:
    """A figure to ``digits`` significant digits with thousands separators; never rounds a
    small positive figure to 0 (0.00049 -> '0.00049')."""
    if x is None or not math.isfinite(x):
        return "-"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    rounded = round(x, decimals)
    return f"{rounded:,.{decimals}f}"
