"""Discrete chains (Shumailov et al., Sec. 3.1): resample a categorical q, refit by frequencies.

    python -m launch.run --config=configs/discrete.py:cpu --workdir=/tmp/discrete_cpu
    python -m launch.report --workdir=/tmp/discrete_cpu

q is Zipf-like over K states (q_i ~ (i+1)^-1.1), so there is a real tail of states with
q_i <= 1/M. Expected: the tail states vanish first (tail mass falls fastest), the support shrinks,
and every seed is eventually absorbed in a delta, at state i with frequency q_i (``theory.py``).

Variants:
  paper  K = 100, M in {10, 100, 1000} (``cfg.sweep``; a single run uses M = 100), 5000
         generations, 1000 seeds (mean absorption time ~ 2M generations, Littler's diffusion
         approximation). Minutes on a GPU.
  cpu    K = 20, M = 50, 400 generations, 1000 seeds: well under a minute on 2 CPU cores; nearly all
         seeds absorbed, absorption histogram matching q.
  smoke  K = 5, M = 10, 20 generations, 8 seeds: seconds.
  regimes  one sweep over replace, accumulate, accumulate_subsample, augment (lambda = 1) and fresh
         (gamma = 0.1) on the cpu chain (K = 20, M = 50), 200 generations, 1000 seeds:
             python -m launch.sweep --config=configs/discrete.py:regimes --workdir=/tmp/dregimes
             python -m launch.regimes --workdir=/tmp/dregimes --metrics=gini_simpson,support_size
         Gini-Simpson has exact theory for replace and accumulate. ``regimes_smoke``: smoke size.
"""

import ml_collections

from configs import common

ARGS = {"variant": common.VARIANTS, "sweep": ("default", "regimes")}
LEGACY = {"regimes": "variant=cpu,sweep=regimes", "regimes_smoke": "variant=smoke,sweep=regimes"}
REGIMES = ("replace", "accumulate", "accumulate_subsample", "augment", "fresh")


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS, LEGACY)
    cfg = common.base("discrete", a)

    cfg.discrete = ml_collections.ConfigDict()
    cfg.discrete.num_states = 100  # K
    cfg.discrete.distribution = "zipf"  # zipf | uniform | explicit
    cfg.discrete.zipf_exponent = 1.1  # q_i proportional to (i + 1)^-zipf_exponent
    cfg.discrete.probs = ()  # explicit: K probabilities summing to 1
    # samples (draw M states, count them) | statistics (draw the counts directly, multinomial:
    # exact in distribution, O(K) a generation whatever M is)
    cfg.discrete.sampler = "samples"

    # Field path -> values; launch/sweep.py runs one job per value, a single run uses the field.
    cfg.sweep = ml_collections.ConfigDict()

    if a.variant == "paper":
        cfg.num_seeds = 1000
        cfg.num_generations = 5000
        cfg.samples_per_generation = 100
        cfg.checkpoint.every_generations = 500
        if a.sweep == "default":
            cfg.sweep.samples_per_generation = (10, 100, 1000)
    elif a.variant == "cpu":
        cfg.discrete.num_states = 20
        cfg.num_seeds = 1000
        cfg.num_generations = 400
        cfg.samples_per_generation = 50
        cfg.checkpoint.every_generations = 100
    else:
        cfg.discrete.num_states = 5
        cfg.num_seeds = 8
        cfg.num_generations = 20
        cfg.samples_per_generation = 10
        cfg.checkpoint.every_generations = 5
    if a.sweep == "regimes":
        # The cpu chain (K = 20 Zipf, M = 50) at cpu and smoke sizes, the paper's at paper size;
        # augment lambda = 1, fresh gamma = 0.1.
        if a.variant != "paper":
            cfg.discrete.num_states = 20
            cfg.samples_per_generation = 50
        cfg.mixing.augment_ratio = 1.0
        cfg.mixing.fresh_fraction = 0.1
        cfg.sweep.mixing = ml_collections.ConfigDict({"regime": REGIMES})
        cfg.num_generations, cfg.checkpoint.every_generations = {
            "paper": (1000, 100),
            "cpu": (200, 100),
            "smoke": (6, 3),
        }[a.variant]
        cfg.num_seeds = 8 if a.variant == "smoke" else 1000
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
