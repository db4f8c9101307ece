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
"""

import ml_collections

from configs import common


def get_config(arg=None):
    variant = common.variant(arg)
    cfg = common.base("discrete")
    cfg.variant = variant

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
    return cfg
