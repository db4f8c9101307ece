"""The collapse profile of a run: the run measured against each definition of model collapse.

Schaeffer, Kazdan, Arulandu and Koyejo ("Position: Model collapse does not mean what you think",
2025) count eight definitions in the literature, and propose reporting a run against all of them.
``DEFINITIONS`` names them (docs/ecosystems.md gives the papers behind each); ``MEASURES`` says,
per experiment, which of the run's metrics (or quantities derived from them) measures which
definition and in which direction collapse moves it. Families stay free of this module: the table
is keyed by ``cfg.experiment``.

For each measure, with S seeds (a seed is one independent chain):
  change at g     the seed mean of y_g - y_0 (paired per seed; log y where ``log``), with a
                  Student-t 95% interval over seeds;
  first g         the first generation whose change is significant in the collapse direction, at a
                  Bonferroni level 0.05 / (G - 1) over the generations tested (so a run of 1000
                  generations does not flag noise);
  trend at end    each seed's least-squares slope over the last third of the generations (at
                  least 3), its seed mean and 95% interval;
  verdict         ``diverges`` (changed significantly and still moving away at the end),
                  ``plateaus`` (changed significantly, no significant trend at the end),
                  ``recovers`` (changed significantly at some generation, and moving back at the
                  end or back within noise of generation 0), ``none`` (never significant), or
                  ``n/a`` with one seed (no seed interval exists; the values are still shown).
For the population-risk definitions the ratio of the final to the generation-0 seed mean is also
given; ``catastrophic`` marks a ratio of at least ``CATASTROPHIC_FACTOR`` (the paper names no
number: this cut is ours). "Change in scaling law" needs runs at several sample sizes and is read
from a sweep (``scaling_rows``).

Pure NumPy/SciPy over metric arrays ``[G, S, ...]`` (trailing axes averaged unless a measure picks
an index); ``of_run`` takes a workdir or anything with ``config`` and ``metrics``.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

CATASTROPHIC_FACTOR = 10.0

# key -> (the definition, as the position paper's list names it)
DEFINITIONS = {
    "risk_catastrophic": "Catastrophic increase of population risk",
    "risk_any": "Any increase of population risk",
    "risk_diverging": "Asymptotically diverging population risk",
    "scaling_law": "Change in scaling law",
    "variance": "Collapsing variance",
    "modes": "Entanglement of real data mode(s)",
    "tails": "Disappearance of real tail data",
    "hallucination": "Appearance of hallucinated data",
    # Beside the eight: what the issue and the original papers also measure.
    "original": "Distance to the generation-0 model",
    "gen0_perplexity": "The data's perplexity under the generation-0 model",
}
RISK = ("risk_catastrophic", "risk_any", "risk_diverging")


@dataclass(frozen=True)
class Measure:
    """One metric read as one definition (``risk`` covers the three population-risk ones)."""

    definition: str  # a DEFINITIONS key, or "risk"
    metric: str  # a metric name, a derived name (DERIVED), or a prefix ending in "*"
    direction: int  # +1: an increase is collapse; -1: a decrease is; 0: either way, report only
    log: bool = False  # compare log(y): multiplicative trends (variances, perplexities)
    index: int | None = None  # pick one entry of a trailing axis (GMM weights[..., -1])
    label: str = ""  # shown instead of the metric name


def _norm_sf(z):
    return stats.norm.sf(z)


def _gaussian_derived(cfg, metrics):
    """1-D Gaussian: KL(truth || model), and the model's mass on the truth's tails / beyond."""
    g = cfg["gaussian"]
    if g["dim"] != 1 or "variance" not in metrics:
        return {}
    s0, mu0 = float(g["std"]), float(g["mean"])
    var = np.maximum(np.asarray(metrics["variance"], float), np.finfo(np.float64).tiny)
    mean = np.asarray(metrics["mean"], float)
    sd = np.sqrt(var)
    kl = np.log(sd / s0) + (s0**2 + (mean - mu0) ** 2) / (2 * var) - 0.5

    def upper(k):  # the model's mass above mu0 + k sigma0, and below mu0 - k sigma0
        return _norm_sf((mu0 + k * s0 - mean) / sd), _norm_sf((mean - (mu0 - k * s0)) / sd)

    hi2, lo2 = upper(2.0)
    hi4, lo4 = upper(4.0)
    return {
        "kl_to_truth": kl,
        # The thinner of the truth's two 2-sigma tails: both thin as the variance collapses, and
        # the far one as the mean drifts (the truth has 0.0228 in each).
        "tail_mass_2sd": np.minimum(hi2, lo2),
        "mass_beyond_4sd": hi4 + lo4,  # the truth has 6.3e-5 there
    }


DERIVED = {"gaussian": _gaussian_derived}

MEASURES: dict[str, tuple[Measure, ...]] = {
    "gaussian": (
        Measure("risk", "kl_to_truth", +1, log=True, label="KL(truth || model)"),
        Measure("risk", "w2_squared", +1, log=True, label="W2^2 to the truth"),
        Measure("variance", "variance", -1, log=True),
        Measure("variance", "cov_trace", -1, log=True),
        Measure(
            "tails", "tail_mass_2sd", -1, label="mass on the thinner 2 sigma_0 tail (truth 0.0228)"
        ),
        Measure(
            "hallucination", "mass_beyond_4sd", +1, label="mass beyond 4 sigma_0 (truth 6.3e-5)"
        ),
    ),
    "discrete": (
        Measure("risk", "tv_distance", +1, label="TV to the truth"),
        Measure("variance", "entropy", -1),
        Measure("variance", "gini_simpson", -1),
        Measure("tails", "tail_mass", -1, label="original mass of surviving tail states"),
        Measure("tails", "support_size", -1),
    ),
    "gmm": (
        Measure("risk", "heldout_loglik", -1, label="held-out log-likelihood"),
        Measure("risk", "l2_to_truth", +1, log=True, label="L2^2 to the truth"),
        # 0 at generation 0 by definition: compared as it is, not on the log scale.
        Measure("original", "l2_to_gmm0", +1, label="L2^2 to GMM_0"),
        Measure("variance", "component_std", -1, log=True, label="component std (mean over K)"),
        Measure("tails", "weights", -1, index=-1, label="lightest component's weight"),
    ),
    "kde": (
        Measure("risk", "nll", +1, label="held-out NLL"),
        Measure("risk", "mmd", +1, label="MMD to the truth"),
        Measure("variance", "bandwidth", -1, log=True),
    ),
    "linear_regression": (
        Measure("risk", "test_mse", +1, log=True),
        Measure("risk", "test_error", +1, log=True, label="|w - w*|^2"),
    ),
    "vae": (
        Measure("variance", "latent_std", -1, label="latent std under the gen-0 encoder"),
        Measure("variance", "class_entropy", -1),
        Measure("tails", "min_class_share", -1, label="rarest digit's share"),
        Measure("original", "latent_mean", 0, label="latent mean under the gen-0 encoder"),
    ),
    "opt_wikitext": (
        Measure("risk", "test_perplexity", +1, log=True),
        Measure("tails", "rare_token_nll_*", +1),
        Measure("tails", "rare_mass_*", -1, log=True),
        Measure("tails", "data_rare_share_*", -1),
        Measure("variance", "diversity", -1),
        Measure("variance", "distinct_*", -1),
        Measure("variance", "self_bleu_*", +1),
        Measure("gen0_perplexity", "data_log_ppl_mean", 0, label="mean log-perplexity"),
        Measure("hallucination", "data_ppl_q95", +1, log=True, label="95th pct perplexity"),
    ),
    "flow": (
        Measure("risk", "nll", +1, label="held-out NLL"),
        Measure("risk", "mmd", +1, label="MMD to the truth"),
        Measure("risk", "mean_error", +1, log=True, label="|mean - truth mean|^2"),
        Measure("variance", "cov_trace", -1, log=True, label="covariance trace"),
        # Recall: the share of real points inside the samples' k-NN balls (modes still covered);
        # precision: the share of samples inside the real points' balls (not hallucinated).
        Measure("modes", "recall", -1, label="recall (real modes covered)"),
        Measure("hallucination", "precision", -1, label="precision (samples on the data)"),
    ),
    "mad": (
        Measure("risk", "fid", +1, log=True, label="FID (classifier features)"),
        Measure("variance", "class_entropy", -1),
        Measure("tails", "min_class_share", -1, label="rarest digit's share"),
        Measure("modes", "recall", -1, label="recall (real modes covered)"),
        Measure("hallucination", "precision", -1, label="precision (samples on the data)"),
    ),
}
# The LM host family on other architectures and data measures what it measures on OPT.
MEASURES["gpt2_wikitext"] = MEASURES["llama_tinystories"] = MEASURES["opt_wikitext"]

# What no metric of a family measures (the docs table says why).
UNMEASURED = {
    "gaussian": ("modes", "original"),
    "discrete": ("modes", "hallucination", "original"),
    "gmm": ("modes", "hallucination"),
    "kde": ("modes", "tails", "hallucination", "original"),
    "linear_regression": ("variance", "modes", "tails", "hallucination", "original"),
    "vae": ("risk", "modes", "hallucination"),
    "opt_wikitext": ("modes", "original"),
    "gpt2_wikitext": ("modes", "original"),
    "llama_tinystories": ("modes", "original"),
    "flow": ("tails", "original"),
    "mad": ("original",),
}


def _expand(measure: Measure, names) -> list[Measure]:
    if measure.metric.endswith("*"):
        prefix = measure.metric[:-1]
        return [
            Measure(measure.definition, n, measure.direction, measure.log, measure.index)
            for n in sorted(names)
            if n.startswith(prefix)
        ]
    return [measure] if measure.metric in names else []


def _values(metrics, m: Measure) -> np.ndarray:
    y = np.asarray(metrics[m.metric], dtype=float)
    if m.index is not None:
        y = y[..., m.index]
    while y.ndim > 2:
        y = y.mean(axis=-1)
    if m.log:
        y = np.log(np.maximum(y, np.finfo(np.float64).tiny))
    return y


def _t_interval(x_S, alpha=0.05):
    """``(mean, half-width)`` of a Student-t interval over seeds (half-width nan for one seed)."""
    s = x_S.shape[0]
    mean = float(np.mean(x_S))
    if s < 2:
        return mean, math.nan
    se = float(np.std(x_S, ddof=1)) / math.sqrt(s)
    return mean, float(stats.t.ppf(1 - alpha / 2, s - 1)) * se


def measure(y_GxS, direction: int, generations=None) -> dict:
    """The profile statistics of one measure (module docstring), from values ``[G, S]``."""
    y = np.asarray(y_GxS, float)
    G, S = y.shape
    gens = np.arange(G) if generations is None else np.asarray(generations)
    d_GxS = y - y[:1]
    mean_G = d_GxS.mean(axis=1)
    out = {
        "generation0": float(y[0].mean()),
        "final": float(y[-1].mean()),
        "final_generation": int(gens[-1]),
        "seeds": S,
        "change": float(mean_G[-1]),
    }
    if S < 2 or G < 2:
        out |= {"change_ci": math.nan, "first_significant": None, "trend": math.nan}
        out |= {"trend_ci": math.nan, "verdict": "n/a (1 seed)" if S < 2 else "n/a (1 generation)"}
        return out
    se_G = d_GxS.std(axis=1, ddof=1) / math.sqrt(S)
    out["change_ci"] = float(stats.t.ppf(0.975, S - 1) * se_G[-1])
    # Bonferroni over the G - 1 generations tested.
    crit = float(stats.t.ppf(1 - 0.05 / (2 * max(G - 1, 1)), S - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z_G = np.where(se_G > 0, mean_G / se_G, np.sign(mean_G) * np.inf)
    z_G[0] = 0.0
    signed = z_G if direction else np.abs(z_G)
    sig = np.flatnonzero((direction or 1) * signed > crit)
    out["first_significant"] = int(gens[sig[0]]) if sig.size else None
    # Trend over the last third (at least 3 generations).
    n_tail = max(3, G // 3)
    if G >= 3:
        x = gens[-n_tail:].astype(float)
        x = x - x.mean()
        slopes_S = (x[:, None] * (y[-n_tail:] - y[-n_tail:].mean(0))).sum(0) / (x**2).sum()
        trend, trend_ci = _t_interval(slopes_S)
    else:
        trend, trend_ci = math.nan, math.nan
    out["trend"], out["trend_ci"] = trend, trend_ci
    sign = direction or (1 if out["change"] >= 0 else -1)
    end_sig = sign * out["change"] > out["change_ci"]
    worsening = math.isfinite(trend_ci) and sign * trend > trend_ci
    improving = math.isfinite(trend_ci) and -sign * trend > trend_ci
    if out["first_significant"] is None and not end_sig:
        verdict = "none"
    elif improving or not end_sig:
        verdict = "recovers"
    elif worsening:
        verdict = "diverges"
    else:
        verdict = "plateaus"
    out["verdict"] = verdict
    return out


def _config_and_metrics(run):
    if isinstance(run, str | Path):
        from collapse_jax.metrics import load_run

        loaded = load_run(run)
        return loaded.config, loaded.metrics, np.asarray(loaded.generations)
    cfg = run.config.to_dict() if hasattr(run.config, "to_dict") else dict(run.config)
    return cfg, run.metrics, np.asarray(getattr(run, "generations", None))


def of_run(run) -> list[dict]:
    """One row per measure of the run's experiment: ``measure``'s statistics plus its names."""
    cfg, metrics, gens = _config_and_metrics(run)
    exp = cfg["experiment"]
    metrics = dict(metrics)
    if exp in DERIVED:
        metrics |= DERIVED[exp](cfg, metrics)
    rows = []
    for base in MEASURES.get(exp, ()):
        for m in _expand(base, metrics):
            y = _values(metrics, m)
            if y.ndim != 2 or y.shape[0] == 0:
                continue
            g = gens if gens is not None and gens.shape == (y.shape[0],) else None
            stat = measure(y, m.direction, g)
            label = base.label if base.label and not base.metric.endswith("*") else m.metric
            row = {"definition": m.definition, "metric": m.metric, "label": label}
            row |= {"direction": m.direction, "log": m.log} | stat
            if m.definition == "risk":
                ratio = math.exp(stat["final"] - stat["generation0"]) if m.log else None
                if not m.log and stat["generation0"] != 0:
                    ratio = stat["final"] / stat["generation0"]
                row["ratio"] = ratio
            rows.append(row)
    return rows


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
            f"| {_definition_cell(r)} | {r['label']} | {arrow[r['direction']]} "
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
    cfg, _, _ = _config_and_metrics(workdir)
    rows = of_run(workdir)
    text = markdown(rows, f"Collapse profile: {workdir.name}")
    extra = unmeasured_line(cfg["experiment"])
    text += ("\n\n" + extra if extra else "") + "\n"
    (workdir / "profile.md").write_text(text)
    (workdir / "profile.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")
    return workdir / "profile.md"


# ------------------------------------------------------------------------------------------------
# Sweeps: every run's profile, and the scaling-law definition across sample sizes.


def sweep_runs(sweep_dir) -> list[Path]:
    """The run directories of a sweep (``launch.sweep``), in name order."""
    return sorted(p.parent for p in Path(sweep_dir).glob("*/config.json"))


def _loglog_slope(sizes, y_list, g: int, log: bool):
    """``(slope, se)`` of log(seed mean) against log M at generation g, weighted least squares
    with the delta-method variances ``se^2 / mean^2`` (a log-scale measure: its mean and se as
    they are); None if a mean is not positive."""
    x, t, w = [], [], []
    for size, y in zip(sizes, y_list, strict=True):
        v = y[g]
        mean = float(v.mean())
        se = float(v.std(ddof=1)) / math.sqrt(v.size) if v.size > 1 else 0.0
        if log:
            val, var = mean, se**2
        elif mean > 0:
            val, var = math.log(mean), (se / mean) ** 2
        else:
            return None
        x.append(math.log(size))
        t.append(val)
        w.append(1 / var if var > 0 else 1e12)
    x, t, w = np.array(x), np.array(t), np.array(w)
    xm, tm = (w * x).sum() / w.sum(), (w * t).sum() / w.sum()
    sxx = (w * (x - xm) ** 2).sum()
    return float((w * (x - xm) * (t - tm)).sum() / sxx), float(math.sqrt(1 / sxx))


def scaling_rows(run_dirs) -> list[dict]:
    """ "Change in scaling law": the log-log slope of each risk measure's seed mean against M at
    generation 0 and at the last generation every run reached, from runs that differ in
    ``samples_per_generation`` only (at least 3 sizes). The change is significant when the two
    slopes differ by more than 1.96 combined standard errors."""
    loaded = [_config_and_metrics(d) for d in run_dirs]
    if len(loaded) < 3:
        return []
    sizes = [c["samples_per_generation"] for c, _, _ in loaded]

    def rest(c):
        c = {k: v for k, v in c.items() if k not in ("samples_per_generation", "checkpoint")}
        return json.dumps(c, sort_keys=True, default=str)

    if len(set(sizes)) < 3 or len({rest(c) for c, _, _ in loaded}) != 1:
        return []
    exp = loaded[0][0]["experiment"]
    every = []
    for cfg, metrics, _ in loaded:
        metrics = dict(metrics)
        if exp in DERIVED:
            metrics |= DERIVED[exp](cfg, metrics)
        every.append(metrics)
    out = []
    for m in MEASURES.get(exp, ()):
        if m.definition != "risk" or m.metric.endswith("*"):
            continue
        if not all(m.metric in metrics for metrics in every):
            continue
        ys = [_values(metrics, m) for metrics in every]
        g_end = min(y.shape[0] for y in ys) - 1
        first, last = (_loglog_slope(sizes, ys, g, m.log) for g in (0, g_end))
        if first is None or last is None:
            continue
        (s0, e0), (s1, e1) = first, last
        out.append(
            {
                "definition": "scaling_law",
                "metric": m.metric,
                "label": m.label or m.metric,
                "sizes": sorted(set(sizes)),
                "slope_generation0": s0,
                "slope_generation0_se": e0,
                "slope_final": s1,
                "slope_final_se": e1,
                "final_generation": g_end,
                "verdict": "changes" if abs(s1 - s0) > 1.96 * math.hypot(e0, e1) else "none",
            }
        )
    return out


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
