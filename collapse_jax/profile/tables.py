"""The profile as markdown tables, and ``profile.md`` / ``profile.json`` of a run or a sweep."""

import json
import math
from pathlib import Path

from collapse_jax.profile.definitions import CATASTROPHIC_FACTOR, DEFINITIONS, UNMEASURED
from collapse_jax.profile.rows import config_and_metrics, of_run
from collapse_jax.profile.scaling import scaling_rows, sweep_runs


def _num(x, log=False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if log:
        return f"{math.exp(x):.3g}"
    return f"{x:.3g}"


def _definition_cell(row) -> str:
    if row["definition"] != "risk":
        return DEFINITIONS[row["definition"]]
    return "Population risk (the three risk definitions)"


def _verdict_cell(row) -> str:
    v = row["verdict"]
    if row["definition"] != "risk" or v.startswith("n/a"):
        return v
    parts = [f"any increase: {'yes' if row['first_significant'] is not None else 'no'}"]
    parts.append(f"diverging: {'yes' if v == 'diverges' else 'no'}")
    r = row.get("ratio")
    if r is not None and row["direction"] > 0:
        cat = "yes" if r >= CATASTROPHIC_FACTOR else "no"
        parts.append(f"x{r:.3g} (catastrophic: {cat})")
    return f"{v}; " + ", ".join(parts)


def _cell(text: str) -> str:
    """``text`` in a markdown table cell: a pipe inside it (``KL(truth || model)``) escaped."""
    return text.replace("|", "\\|")


def markdown(rows, title: str | None = None) -> str:
    """The profile table (change and trend on the log scale for ``log`` measures: ln-ratios)."""
    head = (
        "| definition | measure | collapse is | generation 0 | final | change (95% CI) "
        "| first significant (Bonferroni) | trend at end / gen (95% CI) | verdict |"
    )
    lines = [f"### {title}", ""] if title else []
    lines += [head, "|" + "---|" * 9]
    arrow = {1: "up", -1: "down", 0: "either"}
    for r in rows:
        unit = " (ln)" if r["log"] else ""
        change = f"{_num(r['change'])} ± {_num(r['change_ci'])}{unit}"
        trend = f"{_num(r['trend'])} ± {_num(r['trend_ci'])}{unit}"
        first = "none" if r["first_significant"] is None else f"g={r['first_significant']}"
        if r["verdict"].startswith("n/a"):
            first = "n/a"
        lines.append(
            f"| {_definition_cell(r)} | {_cell(r['label'])} | {arrow[r['direction']]} "
            f"| {_num(r['generation0'], r['log'])} | {_num(r['final'], r['log'])} | {change} "
            f"| {first} | {trend} | {_verdict_cell(r)} |"
        )
    if any(r["log"] for r in rows):
        lines += [
            "",
            "(ln): compared on the log scale; generation 0 and final are then geometric seed "
            "means, change and trend differences of logs.",
        ]
    return "\n".join(lines)


def unmeasured_line(experiment: str) -> str:
    names = [
        DEFINITIONS[k] if k != "risk" else "population risk" for k in UNMEASURED.get(experiment, ())
    ]
    if not names:
        return ""
    return "Not measured by this family's metrics: " + "; ".join(names) + "."


def write(workdir) -> Path:
    """``DIR/profile.md`` and ``DIR/profile.json`` of one run; returns the markdown's path."""
    workdir = Path(workdir)
    cfg, _, _ = config_and_metrics(workdir)
    rows = of_run(workdir)
    text = markdown(rows, f"Collapse profile: {workdir.name}")
    extra = unmeasured_line(cfg["experiment"])
    text += ("\n\n" + extra if extra else "") + "\n"
    (workdir / "profile.md").write_text(text)
    (workdir / "profile.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")
    return workdir / "profile.md"


def scaling_markdown(rows) -> str:
    if not rows:
        return ""
    lines = [
        "| definition | measure | sizes M | slope d log(risk) / d log M at g=0 | at the end "
        "| verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {DEFINITIONS['scaling_law']} | {r['label']} | {r['sizes']} "
            f"| {r['slope_generation0']:.3g} ± {r['slope_generation0_se']:.2g} "
            f"| {r['slope_final']:.3g} ± {r['slope_final_se']:.2g} (g={r['final_generation']}) "
            f"| {r['verdict']} |"
        )
    return "\n".join(lines)


def write_sweep(sweep_dir) -> Path:
    """``DIR/profile.md`` of a sweep: each run's profile (written into the run too), then the
    scaling-law rows when the runs differ in sample size only."""
    sweep_dir = Path(sweep_dir)
    parts = ["# Collapse profiles", ""]
    dirs = sweep_runs(sweep_dir)
    for d in dirs:
        if not (d / "metrics.jsonl").exists():
            continue
        write(d)
        parts += [(d / "profile.md").read_text(), ""]
    scaling = scaling_markdown(scaling_rows(dirs))
    if scaling:
        parts += ["### Across sample sizes", "", scaling, ""]
    (sweep_dir / "profile.md").write_text("\n".join(parts))
    return sweep_dir / "profile.md"
