"""Discrete chains (Shumailov et al., Sec. 3.1): resample a categorical q, refit by frequencies.

    python -m launch.run --config=configs/discrete.py:cpu --workdir=/tmp/discrete_cpu
    python -m launch.report --workdir=/tmp/discrete_cpu

q is Zipf-like over K states (q_i ~ (i+1)^-1.1), so there is a real tail of states with
q_i <= 1/M. Expected: the tail states vanish first (tail mass falls fastest), the support shrinks,
and every seed is eventually absorbed in a delta, at state i with probability q_i
(``theory.absorption_probability``).

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke
  sweep    default (default) | regimes | tails | tails_topk | tails_exact
Legacy names, kept so that the runs they started resume: ``regimes`` (``variant=cpu,sweep=regimes``)
and ``regimes_smoke`` (``variant=smoke,sweep=regimes``); from the ``eco`` branch, ``tails``,
``tails_topk``, ``tails_exact`` (``variant=cpu,sweep=...``) and ``tails_smoke``
(``variant=smoke,sweep=tails``).

variant=paper  K = 100, M in {10, 100, 1000} (``cfg.sweep``; a single run uses M = 100), 5000
  generations, 1000 seeds (the mean absorption time is ~2M generations, Littler's diffusion
  approximation). Not timed yet.
variant=cpu  K = 20, M = 50, 400 generations, 1000 seeds: every seed absorbed, at state i with
  the frequency q_i.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/discrete.py:cpu
  --workdir=/tmp/discrete_cpu`` on the shared 2-core AMD EPYC dev machine (loaded: load average
  13-24 that hour; no XLA compile cache): 69 s wall, 16 s CPU. Seed mean of the support 14.4 states
  at generation 0 (theory 14.4), 5.4 at 10, 2.0 at 50; 25% of the seeds absorbed by generation 50,
  95% by 200, all by 399; mean absorption generation 89.3 (standard error 1.7; first-order theory
  92.1, ``theory.first_order_absorption_time``); the absorbing states' frequencies within 2.0
  standard errors of q on each of the 20 states.
variant=smoke  K = 5, M = 10, 20 generations, 8 seeds: what the tests run.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/discrete.py:smoke
  --workdir=/tmp/discrete_smoke`` on the shared 2-core AMD EPYC dev machine (loaded: load average
  13-24 that hour; no XLA compile cache): 41 s wall, 13 s CPU, compilation included.

sweep=default  the variant's own sweep (paper: the three M; cpu and smoke: none, a single run).
sweep=regimes  one sweep over replace, accumulate, accumulate_subsample, augment (lambda = 1) and
  fresh (gamma = 0.1), 1000 seeds: the cpu chain (K = 20, M = 50) for 200 generations at cpu size
  (6 generations and 8 seeds at smoke size), the paper chain (K = 100, M = 100) for 1000 at paper
  size:
      python -m launch.sweep --config=configs/discrete.py:cpu,sweep=regimes --workdir=/tmp/dregimes
      python -m launch.regimes --workdir=/tmp/dregimes --metrics=gini_simpson,support_size
  Gini-Simpson has exact theory for replace and accumulate (``theory.expected_gini_simpson``,
  ``theory.accumulate_expected_gini_simpson``).

  Measured 2026-12-07 with ``python -m launch.sweep --config=configs/discrete.py:cpu,sweep=regimes
  --workdir=/tmp/dregimes`` and the ``launch.regimes`` command above on the shared 2-core AMD EPYC
  dev machine (loaded: load average 13-24 that hour; no XLA compile cache): 712 s wall for the 5
  runs, 133 s CPU. Seed mean of the Gini-Simpson index at generation 199, ± its standard error
  (theory): replace 0.019 ± 0.003 (0.015), accumulate 0.828 ± 0.001 (0.828), augment 0.834 ± 0.001,
  fresh 0.770 ± 0.003, accumulate_subsample 0.806 ± 0.002 (0.839 at generation 0).
sweep=tails  tail cutting (Dohmatob et al. 2024, "A tale of tails"): one sweep over
  ``sampling.top_p`` in {1 (plain resampling), 0.95, 0.9, 0.8} on K = 20 Zipf(1.5) states, M = 50,
  100 generations, 1000 seeds (smoke: K = 5, M = 12, 6 generations, 8 seeds), the fitted
  frequencies recorded:
      python -m launch.sweep --config=configs/discrete.py:cpu,sweep=tails --workdir=/tmp/tails
      python -m launch.ecosystem --workdir=/tmp/tails --metrics=tail_mass,support_size
  Expected: the tail (q_i <= 1/M) and the support vanish faster the smaller top_p.
sweep=tails_topk  the same over ``sampling.top_k`` in {0 (off), 10, 5} (smoke: {0, 3, 2}).
sweep=tails_exact  K = 5, M = 12, 4000 seeds, 30 generations (smoke: 8 seeds, 6 generations),
  small enough for the exact law (``theory.truncated_chain_law``), over top_p in {1, 0.9, 0.8}.
  Measurements of the three: ``docs/ecosystems.md``.
"""

import ml_collections

from configs import common

ARGS = {
    "variant": common.VARIANTS,
    "sweep": ("default", "regimes", "tails", "tails_topk", "tails_exact"),
}
LEGACY = {
    "regimes": "variant=cpu,sweep=regimes",
    "regimes_smoke": "variant=smoke,sweep=regimes",
    "tails": "variant=cpu,sweep=tails",
    "tails_topk": "variant=cpu,sweep=tails_topk",
    "tails_exact": "variant=cpu,sweep=tails_exact",
    "tails_smoke": "variant=smoke,sweep=tails",
}
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
    # Record each state's fitted frequency per generation (metric ``frequencies``, K per seed):
    # the rank-frequency curves of the tails sweeps.
    cfg.discrete.record_frequencies = False

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
    if a.sweep.startswith("tails"):
        exact, small = a.sweep == "tails_exact", a.variant == "smoke"
        cfg.discrete.zipf_exponent = 1.5
        cfg.discrete.record_frequencies = True
        cfg.discrete.num_states, cfg.samples_per_generation = (
            (5, 12) if exact or small else (20, 50)
        )
        if small:
            cfg.num_seeds, cfg.num_generations, cfg.checkpoint.every_generations = 8, 6, 3
        elif exact:
            cfg.num_seeds, cfg.num_generations, cfg.checkpoint.every_generations = 4000, 30, 30
        else:
            cfg.num_seeds, cfg.num_generations, cfg.checkpoint.every_generations = 1000, 100, 50
        if a.sweep == "tails_topk":
            top_k = (0, 3, 2) if small else (0, 10, 5)
            cfg.sweep.sampling = ml_collections.ConfigDict({"top_k": top_k})
        else:
            top_p = (1.0, 0.9, 0.8) if exact else (1.0, 0.95, 0.9, 0.8)
            cfg.sweep.sampling = ml_collections.ConfigDict({"top_p": top_p})
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
