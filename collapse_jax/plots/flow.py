"""Figures of flow / diffusion chains (``families/flow``; experiments ``flow`` and ``mad``).

metrics   the metrics against generation, seed mean (line), median (dashed), 10-90% band:
          low-dimensional data: MMD, held-out NLL, precision and recall, density and coverage,
          the model's covariance trace (with theory.py's Gaussian MLE expectation for the
          Gaussian source under replace and accumulate); images: FID (MNIST classifier
          features), precision and recall, density and coverage, class entropy and the rarest
          digit's share.
samples   one seed's samples at a few generations: scatter panels (low-dimensional data, needs
          ``flow.snapshot_points`` > 0) or 8x8 grids (images, ``flow.grid_images`` > 0).
loops     ``sweep_figure``: several runs (MAD's three loops, Bertrand's lambdas) in one figure,
          one panel per metric, one line per run labelled by what differs between them.
"""

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from collapse_jax import plots, theory
from collapse_jax.plots import compare, style

LOW_DIM = (
    ("mmd", "MMD to the truth"),
    ("nll", "held-out NLL (nats)"),
    (("precision", "recall"), "k-NN precision / recall"),
    (("density", "coverage"), "density / coverage"),
    ("cov_trace", "trace of the model covariance"),
)
IMAGES = (
    ("fid", "FID (MNIST classifier features, not Inception)"),
    (("precision", "recall"), "k-NN precision / recall (classifier features)"),
    (("density", "coverage"), "density / coverage"),
    ("class_entropy", "class entropy (nats; log 10 = 2.30)"),
)


def _is_image(run) -> bool:
    return run.config["flow"]["source"] == "mnist"


def _title(run) -> str:
    c, f = run.config, run.config["flow"]
    data = {"toy": f["toy"]["dataset"], "gaussian": f"Gaussian d={f['gaussian']['dim']}"}.get(
        f["source"], "MNIST"
    )
    s = next(iter(run.metrics.values())).shape[1]
    return (
        f"{f['model']} / {f['objective']} ({f['sampler']}), {data}, M={c['samples_per_generation']}, "
        f"{c['mixing']['regime']}, init={f['init']}, {s} seeds"
    )


def _panels(run):
    return [p for p in (IMAGES if _is_image(run) else LOW_DIM) if _present(run, p[0])]


def _present(run, names) -> bool:
    names = (names,) if isinstance(names, str) else names
    return all(n in run.metrics for n in names)


def _theory(run):
    """theory.py's E[tr Sigma_n] for the Gaussian MLE refit, where it applies (else None)."""
    c, f = run.config, run.config["flow"]
    regime = c["mixing"]["regime"]
    if f["source"] != "gaussian" or regime not in ("replace", "accumulate"):
        return None
    n, m, d = run.generations, c["samples_per_generation"], f["gaussian"]["dim"]
    s2 = f["gaussian"]["std"] ** 2
    if regime == "replace":
        return theory.expected_variance(n, m, "mle", sigma=s2**0.5, dim=d)
    return d * theory.accumulate_expected_variance(n, m, "mle", sigma=s2**0.5)


def _wrapped(text: str, width_in: float, fontsize: float = 9) -> str:
    """``text`` wrapped to a figure ``width_in`` inches wide (about 0.55 em per character)."""
    return textwrap.fill(text, max(20, int(width_in * 72 / (0.55 * fontsize))))


def _series_colors(run, names) -> list:
    """The run's regime colour for the first metric of a panel, a lighter shade for the second."""
    color = style.run_color(run.config)
    return [color] if isinstance(names, str) else [color, style.shades(color, 3)[-1]]


def figures(run, outdir) -> list[Path]:
    panels = _panels(run)
    width = 3.6 * len(panels) + 1.6
    fig, axes = style.new(len(panels), width=width, height=3.6, squeeze=False)
    for ax, (names, label) in zip(axes[0], panels, strict=True):
        series = (names,) if isinstance(names, str) else names
        for name, color in zip(series, _series_colors(run, names), strict=True):
            plots.seed_band(ax, run.generations, run.metrics[name], label=name, color=color)
        if names == "cov_trace" and (th := _theory(run)) is not None:
            style.theory(ax, run.generations, th, style.run_color(run.config),
                         label="Gaussian MLE (theory.py)")  # fmt: skip
        if names == "class_entropy" and "min_class_share" in run.metrics:
            shade = style.shades(style.run_color(run.config), 3)[-1]
            share = run.metrics["min_class_share"] * 10
            plots.seed_band(ax, run.generations, share, label="10 x rarest share", color=shade)
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(textwrap.fill(label, 26))
        style.legend(ax, key=False, fontsize=7)
    style.figure_legend(fig, axes, labelled=False)
    fig.suptitle(_wrapped(_title(run), width), fontsize=9)
    out = [plots.save(fig, outdir, "flow_metrics")]
    samples = _samples(run, outdir)
    return out + ([samples] if samples else [])


def shown_generations(generations, most=6) -> list[int]:
    g = len(generations)
    if g <= most:
        return list(range(g))
    return sorted(set(np.linspace(0, g - 1, most).round().astype(int).tolist()))


def _grid(images_NxHxW, side=8):
    n = min(len(images_NxHxW), side * side)
    rows, cols = int(np.ceil(n / side)), min(n, side)
    canvas = np.ones((rows * 29 + 1, cols * 29 + 1))
    for i in range(n):
        r, c = divmod(i, side)
        canvas[1 + r * 29 : 29 + r * 29, 1 + c * 29 : 29 + c * 29] = images_NxHxW[i] / 255
    return canvas


def _samples(run, outdir, seed=0) -> Path | None:
    key = "sample_images" if _is_image(run) else "snapshot"
    if key not in run.metrics or run.metrics[key].shape[2] == 0:
        return None
    shown = shown_generations(run.generations)
    width = 2.6 * len(shown)
    fig, axes = style.new(len(shown), width=width, height=3.0, squeeze=False)
    first = np.asarray(run.metrics[key][shown[0], seed], float)
    for ax, i in zip(axes[0], shown, strict=True):
        x = np.asarray(run.metrics[key][i, seed], float)
        if _is_image(run):
            ax.imshow(_grid(x), cmap="gray", vmin=0, vmax=1)
        else:
            color = style.run_color(run.config)
            label = f"samples of seed {seed}" if i == shown[0] else "_samples"
            ax.scatter(x[:, 0], x[:, -1], s=3, color=color, label=label, gid="samples")
            lo, hi = first.min(0), first.max(0)
            pad = 0.3 * (hi - lo)
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[-1] - pad[-1], hi[-1] + pad[-1])
        ax.set_title(f"generation {run.generations[i]}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if not _is_image(run):
        style.figure_legend(fig, axes, loc="outside lower center")
    fig.suptitle(_wrapped(_title(run) + f"; samples of seed {seed}", width), fontsize=9)
    return plots.save(fig, outdir, "flow_samples")


def summary(run) -> str:
    g = int(run.generations[-1])
    lines = [
        f"## {_title(run)}",
        "",
        f"| metric | generation 0 (seed mean) | generation {g} (seed mean ± s.e.) |",
        "| --- | --- | --- |",
    ]
    names = [n for p, _ in _panels(run) for n in ((p,) if isinstance(p, str) else p)]
    for k in [*names, "train_loss"]:
        if k not in run.metrics:
            continue
        v0, v = np.asarray(run.metrics[k][0], float), np.asarray(run.metrics[k][-1], float)
        se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
        lines.append(f"| {k} | {v0.mean():.4g} | {v.mean():.4g} ± {se:.2g} |")
    if _is_image(run):
        acc = float(np.mean(run.metrics["classifier_heldout_accuracy"]))
        lines += [
            "",
            f"FID features: the MNIST classifier's hidden layer (held-out accuracy {acc:.3f}).",
        ]
    return "\n".join(lines) + "\n"


def sweep_figure(workdirs, outdir) -> Path:
    """The runs side by side, one panel per metric (MAD's loops: ``flow_loops.png``)."""
    runs = [plots.load_run(w) for w in workdirs]
    fields = compare.differing_fields([r.config for r in runs])
    panels = _panels(runs[0])
    width = 3.6 * len(panels) + 2.4
    fig, axes = style.new(len(panels), width=width, height=3.6, squeeze=False)
    colors = style.run_colors([r.config for r in runs])
    for run, color in zip(runs, colors, strict=True):
        regime = run.config["mixing"]["regime"]
        label = ", ".join(f"{f}={compare._value(run.config, f)}" for f in fields) or regime
        for ax, (names, title) in zip(axes[0], panels, strict=True):
            first = names if isinstance(names, str) else names[0]
            if first not in run.metrics:
                continue
            plots.seed_band(ax, run.generations, run.metrics[first], label=label, color=color)
            if not isinstance(names, str):  # the second of a pair dotted, same colour
                mean, _, _ = plots.seed_stats(run.metrics[names[1]])
                ax.plot(run.generations, mean, color=color, ls=":", lw=1.5,
                        label=f"{label} ({names[1]}, dotted)")  # fmt: skip
            ylabel = title if isinstance(names, str) else f"{title} ({names[1]} dotted)"
            ax.set_ylabel(textwrap.fill(ylabel, 26))
            ax.set_xlabel("generation")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    style.figure_legend(fig, axes)
    fig.suptitle(f"{_title(runs[0]).split(',')[0]}: the loops compared", fontsize=9)
    return plots.save(fig, outdir, "flow_loops")
