"""What the report shows, before any HTML: per benchmark and mode, one row per device with
every figure labelled, and the runs behind them. Figures come from controller.runs and
controller.scoring; here they are only chosen, averaged for display and labelled."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean

from agent.display import parts_text
from controller.runs import Run
from controller.scoring import Score

MODE_ORDER = {"full": 0, "reduced": 1, "smoke": 2}
KIND_OF_MODE = {"full": "result", "reduced": "projection", "smoke": "smoke"}
TIME_NAME = {"full": "time-to-train", "reduced": "projected time-to-train",
             "smoke": "time to smoke target"}


@dataclass
class Row:
    """One device in one benchmark and mode: its score and the figures shown for it."""

    score: Score
    time_s: float | None = None
    time_label: str = ""
    time_eligible: bool = False            # may be crowned fastest
    spread_s: tuple[float, float] | None = None
    energy_j: float | None = None
    energy_method: str | None = None       # measured | estimated | mixed | None
    energy_label: str = ""
    energy_doubted: bool = False
    energy_eligible: bool = False          # may be crowned least energy
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    throughput_sps: float | None = None
    nodes: int = 1                         # a group of nodes trained each run together
    scaling_efficiency: float | None = None   # its throughput / (N x one node's)
    samples_per_j: float | None = None
    runs_text: str = ""
    target: str = ""

    @property
    def device(self) -> str:
        return self.score.device

    @property
    def runs(self) -> list[Run]:
        return self.score.runs

    def values(self, attr: str) -> list[str]:
        """The distinct values of a run attribute over this row's runs (provenance)."""
        seen: list[str] = []
        for r in self.runs:
            v = getattr(r, attr)
            for item in (v if isinstance(v, tuple) else (v,)):
                if item and str(item) not in seen:
                    seen.append(str(item))
        return seen


@dataclass
class Group:
    """One benchmark in one mode: the rows that may be compared with each other."""

    benchmark: str
    mode: str
    rows: list[Row]
    runs: list[Run]                        # every run of the group, retried attempts included

    @property
    def kind(self) -> str:
        return KIND_OF_MODE.get(self.mode, self.mode)

    @property
    def time_name(self) -> str:
        return TIME_NAME.get(self.mode, "time")

    @property
    def methods(self) -> list[str]:
        """The power methods of its runs: measured, estimated, none."""
        return sorted({r.power_method or "none" for r in self.runs})


@dataclass
class Section:
    """One benchmark: its groups (one per mode), full mode first."""

    benchmark: str
    groups: list[Group] = field(default_factory=list)

    @property
    def failed(self) -> list[Run]:
        """Runs without a figure: failed, lost, cancelled, not converged, or still going."""
        return [r for g in self.groups for r in g.runs if not has_figure(r)]


def _avg(values) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def has_figure(r: Run) -> bool:
    """A run the figures are made of: it answered its run with a time of its kind (reduced
    runs stop early by design: their projection is their figure)."""
    return (r.final and r.state == "done" and r.time_shown_s is not None
            and (r.converged or r.mode == "reduced"))


def _converged(sc: Score) -> list[Run]:
    return [r for r in sc.runs if has_figure(r)]


def build_row(sc: Score) -> Row:
    """The row of one device's score: which time it is known by, with what label, whether it
    may be crowned, and its energy, power and throughput over the runs with a figure."""
    row = Row(score=sc)
    conv = _converged(sc)
    final = [r for r in sc.runs if r.final]
    times = [r.time_shown_s for r in conv]
    row.spread_s = (min(times), max(times)) if times else None
    if sc.status == "scored":
        row.time_s, row.time_eligible = sc.time_to_train_s, True
        row.time_label = "MLPerf score: olympic mean"
        row.runs_text = (f"{len(sc.counted)} of {len(final)}, fastest and slowest dropped"
                         + (" (the non-converged run as the slowest)"
                            if sc.not_converged else ""))
    elif sc.status == "emulated":
        row.time_s = _avg(r.time_shown_s for r in conv)
        row.time_label = (f"mean of {len(conv)} run(s) under qemu emulation: the emulator's "
                          "time, never a board's, compared with no device")
        row.runs_text = f"{len(conv)} of {len(sc.runs)} with a figure, all averaged"
    elif sc.status in ("smoke", "projection"):
        row.time_s = _avg(r.time_shown_s for r in conv)
        row.time_eligible = row.time_s is not None
        row.time_label = f"mean of {len(conv)} run(s)" + (
            ", never an MLPerf result" if sc.status == "smoke" else ", an estimate")
        done = "reached the smoke target" if sc.status == "smoke" else "were projected"
        row.runs_text = f"{len(conv)} of {len(sc.runs)} {done}, all averaged"
    else:
        row.time_s = _avg(r.time_shown_s for r in conv)
        row.time_label = (f"mean of {len(conv)} converged run(s), not a score "
                          f"({sc.status})")
        row.runs_text = (f"{len(final)} of the {sc.required} runs a score needs"
                         if sc.status == "incomplete"
                         else f"{sc.not_converged} of {len(final)} did not converge")
    if sc.pending:
        row.runs_text += f"; {sc.pending} still running"
    missed = len([r for r in final if r not in conv])
    if missed and sc.status != "invalid":
        row.runs_text += f"; {missed} without a figure (see below)"
    _energy(row, sc, conv)
    row.throughput_sps = _avg(r.throughput_sps for r in conv)
    row.nodes = max((r.nodes for r in sc.runs), default=1)
    row.scaling_efficiency = _avg(r.scaling_efficiency for r in conv
                                  if r.scaling_efficiency is not None)
    first = sc.runs[0]
    if first.metric:
        sign = {"max": "≥", "min": "≤"}.get(first.direction or "", "")
        reached = _avg(r.quality for r in conv)
        quality = f"{reached:.4g}" if reached is not None else "-"
        row.target = f"{first.metric} {quality} (target {sign} {first.target:g})" \
            if first.target is not None else f"{first.metric} {quality}"
        names = [n for n in (first.quality_parts or {})]
        parts = {n: _avg((r.quality_parts or {}).get(n) for r in conv) for n in names}
        if parts and all(v is not None for v in parts.values()):    # box and mask AP, say
            row.target += f"; {parts_text(parts)}"
    return row


def _energy(row: Row, sc: Score, conv: list[Run]) -> None:
    """Energy, power and samples/J of a row, labelled; only a figure from runs all trusted
    and of one method may win."""
    with_energy = [r for r in conv if r.energy_j is not None]
    methods = {r.power_method for r in with_energy}
    row.energy_doubted = any(r.doubts for r in with_energy)
    row.energy_method = ("mixed" if len(methods) > 1 else methods.pop()) if methods else None
    row.avg_power_w = _avg(r.avg_power_w for r in with_energy)
    peaks = [r.peak_power_w for r in with_energy if r.peak_power_w is not None]
    row.peak_power_w = max(peaks) if peaks else None
    row.samples_per_j = _avg(r.samples_per_j for r in with_energy)
    if not with_energy:
        why = next((r.power_note for r in conv if r.power_note), None)
        row.energy_label = "no energy figure" + (f": {why}" if why else "")
        return
    if row.energy_method == "mixed":
        row.energy_label = "measured and estimated runs cannot be averaged"
        row.avg_power_w = row.peak_power_w = row.samples_per_j = None
        return
    if sc.status == "scored":
        row.energy_j = sc.energy_j
        row.energy_label = "olympic mean over the counted runs" if sc.energy_j is not None \
            else sc.energy_note or ""
        if sc.energy_j is None and row.energy_doubted:
            row.energy_j = _avg(r.energy_j for r in with_energy)
            row.energy_label = f"mean of {len(with_energy)} run(s), not scored"
    else:
        row.energy_j = _avg(r.energy_j for r in with_energy)
        over = "over the bounded run, not to train" if sc.mode == "reduced" else \
            "to the smoke target" if sc.mode == "smoke" else "not a score"
        row.energy_label = f"mean of {len(with_energy)} run(s); {over}"
        if len(with_energy) < len(conv):
            row.energy_label += f" ({len(conv) - len(with_energy)} run(s) without energy)"
    if row.energy_doubted:
        row.energy_label += "; doubted (see the notes): never crowned"
    if sc.status == "emulated":
        row.energy_label += "; under emulation: the host's power, never a board's"
    row.energy_eligible = (row.energy_j is not None and not row.energy_doubted
                           and len(with_energy) == len(conv)
                           and (sc.status == "scored" or sc.mode in ("smoke", "reduced"))
                           and sc.status != "emulated")


def build_sections(runs: list[Run], scores: list[Score]) -> list[Section]:
    """Sections by benchmark, groups by mode (full first), rows best first."""
    sections: dict[str, Section] = {}
    groups: dict[tuple[str, str], Group] = {}
    for sc in scores:
        key = (sc.benchmark, sc.mode)
        if key not in groups:
            groups[key] = Group(sc.benchmark, sc.mode, [], [])
        groups[key].rows.append(build_row(sc))
    for r in runs:
        key = (r.benchmark, r.mode)
        if key not in groups:                    # only cancelled or superseded runs
            groups[key] = Group(r.benchmark, r.mode, [], [])
        groups[key].runs.append(r)
    for key in sorted(groups, key=lambda k: (k[0], MODE_ORDER.get(k[1], 9), k[1])):
        sections.setdefault(key[0], Section(key[0])).groups.append(groups[key])
    return list(sections.values())
