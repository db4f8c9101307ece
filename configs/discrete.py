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
  tails  tail cutting (Dohmatob et al. 2024, "A tale of tails"): one sweep over
         ``sampling.top_p`` in {1 (plain resampling), 0.95, 0.9, 0.8} on K = 20 Zipf(1.5) states,
         M = 50, 100 generations, 1000 seeds, the fitted frequencies recorded:
             python -m launch.sweep --config=configs/discrete.py:tails --workdir=/tmp/tails
             python -m launch.ecosystem --workdir=/tmp/tails --metrics=tail_mass,support_size
         Expected: the tail (q_i <= 1/M) and the support vanish faster the smaller top_p.
         ``tails_topk``: the same over ``sampling.top_k`` in {0 (off), 10, 5}. ``tails_exact``: K = 5,
         M = 12, 4000 seeds, 30 generations, small enough for the exact law
         (``theory.truncated_chain_law``), over top_p in {1, 0.9, 0.8}. ``tails_smoke``: seconds.
"""

import ml_collections

from configs import common

VARIANTS = (
    *common.VARIANTS,
    "regimes",
    "regimes_smoke",
    "tails",
    "tails_topk",
    "tails_exact",
    "tails_smoke",
)
REGIMES = ["replace", "accumulate", "accumulate_subsample", "augment", "fresh"]


def get_config(arg=None):
    name = arg or "paper"
    if name not in VARIANTS:
        raise ValueError(f"config variant: expected one of {VARIANTS}, got {name!r}")
    variant = name if name in common.VARIANTS else "cpu"
    cfg = common.base("discrete")
    cfg.variant = name

    cfg.discrete = ml_collections.ConfigDict()
    cfg.discrete.num_states = 100  # K
    cfg.discrete.distribution = "zipf"  # zipf | uniform | explicit
    cfg.discrete.zipf_exponent = 1.1  # q_i proportional to (i + 1)^-zipf_exponent
    cfg.discrete.probs = ()  # explicit: K probabilities summing to 1
    # samples (draw M states, count them) | statistics (draw the counts directly, multinomial:
    # exact in distribution, O(K) a generation whatever M is)
    cfg.discrete.sampler = "samples"
    # Record each state's fitted frequency per generation (metric ``frequencies``, K per seed):
    # the rank-frequency curves of the tails variants.
    cfg.discrete.record_frequencies = False

    # Field path -> values; launch/sweep.py runs one job per value, a single run uses the field.
    cfg.sweep = ml_collections.ConfigDict()

    if variant == "paper":
        cfg.num_seeds = 1000
        cfg.num_generations = 5000
        cfg.samples_per_generation = 100
        cfg.sweep.samples_per_generation = [10, 100, 1000]
        cfg.checkpoint.every_generations = 500
    elif variant == "cpu":
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
    if name.startswith("regimes"):
        # K = 20 Zipf, M = 50 (the cpu chain); augment lambda = 1, fresh gamma = 0.1.
        cfg.mixing.augment_ratio = 1.0
        cfg.mixing.fresh_fraction = 0.1
        cfg.sweep.mixing = ml_collections.ConfigDict({"regime": list(REGIMES)})
        cfg.num_seeds, cfg.num_generations = (1000, 200) if name == "regimes" else (8, 6)
        cfg.checkpoint.every_generations = 100 if name == "regimes" else 3
    if name.startswith("tails"):
        cfg.discrete.zipf_exponent = 1.5
        cfg.discrete.record_frequencies = True
        cfg.discrete.num_states, cfg.samples_per_generation = 20, 50
        cfg.num_seeds, cfg.num_generations = 1000, 100
        cfg.checkpoint.every_generations = 50
        if name == "tails_topk":
            cfg.sweep.sampling = ml_collections.ConfigDict({"top_k": [0, 10, 5]})
        else:
            cfg.sweep.sampling = ml_collections.ConfigDict({"top_p": [1.0, 0.95, 0.9, 0.8]})
        if name == "tails_exact":
            cfg.discrete.num_states, cfg.samples_per_generation = 5, 12
            cfg.num_seeds, cfg.num_generations = 4000, 30
            cfg.sweep.sampling.top_p = [1.0, 0.9, 0.8]
            cfg.checkpoint.every_generations = 30
        if name == "tails_smoke":
            cfg.discrete.num_states, cfg.samples_per_generation = 5, 12
            cfg.num_seeds, cfg.num_generations = 8, 6
            cfg.checkpoint.every_generations = 3
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
