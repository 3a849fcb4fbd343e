"""Short human texts of wire values, shared by the agent's and the controller's terminals."""

from __future__ import annotations

from agent.protocol import ReferenceOutcome


def quality_text(outcome: ReferenceOutcome | None) -> str:
    """'hr@10 0.712 >= 0.600 (reached)' -- the quality reached against the target."""
    if outcome is None:
        return "-"
    t = outcome.target
    op = ">=" if t.direction == "max" else "<="
    got = "n/a" if outcome.quality is None else f"{outcome.quality:.4g}"
    return f"{t.metric} {got} {op} {t.value:.4g} ({'reached' if outcome.reached_target else 'not reached'})"
