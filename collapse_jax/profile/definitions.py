"""The definitions of model collapse, and per experiment the metrics that measure each.

Schaeffer, Kazdan, Arulandu and Koyejo ("Position: Model collapse does not mean what you think",
2025) count eight definitions in the literature. ``DEFINITIONS`` names them (docs/ecosystems.md
gives the papers behind each); ``MEASURES`` says, per experiment, which of the run's metrics (or
quantities ``DERIVED`` from them) measures which definition and in which direction collapse moves
it; ``UNMEASURED`` what no metric of a family measures. Families stay free of this module: the
tables are keyed by ``cfg.experiment``.
"""

from dataclasses import dataclass

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


def with_derived(cfg, metrics) -> dict:
    """``metrics`` (a mapping of arrays) with the experiment's ``DERIVED`` quantities added."""
    metrics = dict(metrics)
    derive = DERIVED.get(cfg["experiment"])
    if derive is not None:
        metrics |= derive(cfg, metrics)
    return metrics
