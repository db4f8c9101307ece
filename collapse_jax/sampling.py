"""Sampling bias: how a fitted model is sampled for the next generation (``cfg.sampling``).

MAD's quality-over-diversity knob (Alemohammad et al. 2024) and the tail cutting of Dohmatob et
al., "A tale of tails" (2024). One block every config shares:

  temperature  lambda > 0; 1 samples the model as fitted. Each family that samples reads it:
               Gaussian: N(mean, lambda^2 cov) (the std scaled); discrete: p_i^(1/lambda)
               renormalised; GMM: every component's noise scaled (covariances lambda^2 C_k); KDE:
               the kernel noise scaled (bandwidth lambda h); VAE: z ~ N(0, lambda^2 I); linear
               regression: the label noise scaled. The LM has its decoder's own
               ``generate.temperature`` and refuses this field.
  top_k        0 (off) or k >= 1: keep the k most probable states of the fitted distribution
               (discrete only), after the temperature.
  top_p        1.0 (off) or p in (0, 1): keep the smallest set of most probable states whose mass
               reaches p (discrete only), after top-k.

Metrics describe the fitted model, not its tempered sampler: a temperature changes what the next
generation sees, never generation 0. At the defaults every family runs the program it ran before
these fields existed (each family applies a knob only when it is set), so the metrics are the
same bytes.
"""

import math

from collapse_jax.errors import require


def temperature(cfg) -> float:
    """``cfg.sampling.temperature``, checked: a finite number > 0."""
    t = cfg.sampling.temperature
    require(
        isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and t > 0,
        "sampling.temperature",
        "a finite temperature > 0",
        t,
    )
    return float(t)


def tail_cut(cfg) -> tuple[int, float]:
    """``(top_k, top_p)`` of ``cfg.sampling``, checked (0 and 1.0 switch them off)."""
    k, p = cfg.sampling.top_k, cfg.sampling.top_p
    require(
        isinstance(k, int) and not isinstance(k, bool) and k >= 0,
        "sampling.top_k",
        "0 (off) or a positive integer",
        k,
    )
    require(
        isinstance(p, int | float) and not isinstance(p, bool) and 0.0 < p <= 1.0,
        "sampling.top_p",
        "a mass in (0, 1] (1 switches it off)",
        p,
    )
    return k, float(p)


def validate(cfg, family: str, tail_cutting: bool = False) -> float:
    """Check ``cfg.sampling`` for a family; return its temperature. A family without tail cutting
    refuses top-k / top-p (one ``error:`` line naming the field)."""
    t = temperature(cfg)
    k, p = tail_cut(cfg)
    if not tail_cutting:
        require(k == 0, "sampling.top_k", f"0: family {family} has no top-k truncation", k)
        require(p == 1.0, "sampling.top_p", f"1.0: family {family} has no top-p truncation", p)
    return t


def refuse(cfg, family: str, instead: str) -> None:
    """For a family with a sampler of its own (the LM's decoder): every field at its default."""
    t, (k, p) = temperature(cfg), tail_cut(cfg)
    for name, value, default in (("temperature", t, 1.0), ("top_k", k, 0), ("top_p", p, 1.0)):
        require(
            value == default,
            f"sampling.{name}",
            f"{default!r}: family {family} samples through {instead}",
            value,
        )
