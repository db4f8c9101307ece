r"""Analyse runs: restore a generation, sample it, score it with a metric of our own, compare runs.

    python -m examples.analyse_run [--out=DIR]    # default: runs/examples/analyse_run

Runs the smoke Gaussian chain at two sample sizes M and the smoke GMM chain (seconds each), then:
  1. opens a run (``collapse_jax.open_run``) and reads its metrics as arrays and as a DataFrame;
  2. restores the Gaussian models of a kept generation for every seed and scores them with
     KL(N(mu, s^2) || N(0, 1)), which the chain does not record;
  3. draws from the last GMM generation through the family's own sampler and measures the share
     of draws within the unit circle (1 - exp(-1/2) = 0.393 under the true N(0, I));
  4. puts the two Gaussian runs in one figure (``launch.compare`` does the same from the shell).

Runs and the figure stay in ``--out`` (rerunning resumes the finished runs at once).
"""

import argparse
from pathlib import Path

import jax
import numpy as np

import collapse_jax
from collapse_jax import chain
from collapse_jax.plots import compare
from configs import gaussian, gmm


def kl_to_standard_normal(mean, var):
    """KL(N(mean, var) || N(0, 1)) in nats."""
    return 0.5 * (var + mean**2 - 1.0 - np.log(var))


def main(workdir) -> dict:
    workdir = Path(workdir)
    runs = []
    for m in (20, 80):
        cfg = gaussian.get_config("smoke")
        cfg.samples_per_generation = m
        runs.append(chain.run(cfg, workdir / "gaussian" / f"samples_per_generation={m}"))
    gmm_dir = chain.run(gmm.get_config("smoke"), workdir / "gmm")

    # 1. Metrics: arrays [generation, seed] and a long-form table.
    run = collapse_jax.open_run(runs[0])
    df = run.frame()
    print(run)
    print(df[df.metric == "variance"].groupby("generation")["value"].median().tail(3))

    # 2. Restore a kept generation of every seed and score it with our own metric.
    k = run.saved_generations[len(run.saved_generations) // 2]
    state = run.model(k).model  # gaussian.State with a leading seed axis
    mean_S = np.asarray(state.mean_D[:, 0], np.float64)
    var_S = np.asarray(state.cov_DxD[:, 0, 0], np.float64)
    kl_S = kl_to_standard_normal(mean_S, var_S)
    print(f"generation {k}: KL to N(0, 1) per seed {np.round(kl_S, 3)}")

    # 3. Sample the last GMM generation of seed 0 and measure its mass near the origin.
    g_run = collapse_jax.open_run(gmm_dir)
    last = g_run.saved_generations[-1]
    x_NxD = np.asarray(g_run.sample(last, 4000, seed=0, key=jax.random.key(0)))
    inside = float(np.mean(np.sum(x_NxD**2, axis=1) < 1.0))
    print(f"GMM generation {last}, seed 0: {inside:.3f} of draws in the unit circle (truth 0.393)")

    # 4. The two Gaussian runs side by side, labelled by the field that differs.
    figure = compare.compare(runs, "variance")
    print(figure)
    return {
        "generation": k,
        "kl_S": kl_S,
        "recorded_mean_S": run.metrics["mean"][list(run.generations).index(k)],
        "recorded_variance_S": run.metrics["variance"][list(run.generations).index(k)],
        "gmm_inside": inside,
        "figure": figure,
    }


DEFAULT_OUT = Path("runs") / "examples" / "analyse_run"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"where the runs and the figure go ({DEFAULT_OUT})"
    )
    main(parser.parse_args().out)
