"""Every check that can fail on a config, made before anything is written or computed."""

import jax

from collapse_jax import experiments, mixing, sharding
from collapse_jax import metrics as metrics_lib
from collapse_jax.errors import ConfigError, require
from collapse_jax.family import AnyFamily, HostFamily, SingleRun

PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")


def validate(cfg) -> None:
    """The fields every experiment shares; each family validates its own."""
    for field in ("num_seeds", "num_generations", "samples_per_generation"):
        v = cfg[field]
        require(isinstance(v, int) and v > 0, field, "a positive integer", v)
    require(isinstance(cfg.seed, int) and cfg.seed >= 0, "seed", "a non-negative integer", cfg.seed)
    every = cfg.checkpoint.every_generations
    require(
        isinstance(every, int) and every > 0,
        "checkpoint.every_generations",
        "a positive integer",
        every,
    )
    keep = cfg.checkpoint.max_to_keep
    require(
        isinstance(keep, int) and keep > 0, "checkpoint.max_to_keep", "a positive integer", keep
    )
    kept = cfg.checkpoint.keep_generations
    require(
        isinstance(kept, list | tuple)
        and all(isinstance(g, int) and g >= 0 for g in kept)
        and len(set(kept)) == len(kept),
        "checkpoint.keep_generations",
        "distinct non-negative integers (generations a chain does not reach are not kept)",
        kept,
    )
    require(cfg.log_every_seconds >= 0, "log_every_seconds", ">= 0", cfg.log_every_seconds)
    require(
        cfg.matmul_precision in PRECISIONS,
        "matmul_precision",
        f"one of {PRECISIONS}",
        cfg.matmul_precision,
    )
    nd = cfg.num_devices
    require(isinstance(nd, int) and nd >= 0, "num_devices", "0 (all) or a positive integer", nd)
    sb = cfg.seed_batch
    require(
        isinstance(sb, int) and sb >= 0, "seed_batch", "0 (all seeds) or a positive integer", sb
    )
    require(
        sb == 0 or nd == 1,
        "seed_batch",
        f"0 when the seeds are sharded over devices (num_devices={nd})",
        sb,
    )
    mixing.plan_for(cfg)
    metrics_lib.validate(cfg)


# Families whose pools follow the plan alone (no regime read elsewhere): regime composed's.
COMPOSES = ("gaussian", "discrete", "gmm")
_SCORERS = {"oracle": "truth_log_prob", "initial": "log_prob", "current": "log_prob"}


def check_family(fam: AnyFamily, plan: mixing.Plan) -> None:
    """The optional family functions the regime and curation need (one ConfigError line).

    A ``Family`` without ``fresh_data`` draws regime fresh's data as a new D_0 (its D_0 is a
    draw from the truth); a ``HostFamily``'s D_0 is a fixed dataset, so it needs its own.
    """
    if plan.regime == "fresh" and isinstance(fam, HostFamily) and fam.fresh_data is None:
        raise ConfigError(f"mixing.regime=fresh: family {fam.name} draws no fresh original data")
    if plan.regime == "composed" and fam.name not in COMPOSES:
        raise ConfigError(
            f"mixing.regime: composed runs on the families {COMPOSES}, not {fam.name} (whose "
            "datasets are sized by the named regimes); use a named regime"
        )
    if plan.curates and getattr(fam, _SCORERS[plan.score], None) is None:
        raise ConfigError(
            f"mixing.curation.score={plan.score}: family {fam.name} has no "
            f"{_SCORERS[plan.score]}; use one of the scores it supports or none"
        )


def check_x64(cfg) -> None:
    if cfg.enable_x64 != jax.config.jax_enable_x64:
        raise ConfigError(
            f"enable_x64: the config asks for {cfg.enable_x64} but JAX was started with "
            f"jax_enable_x64={jax.config.jax_enable_x64} (the launcher sets it from the config)"
        )


def resolve(cfg) -> tuple[AnyFamily, jax.sharding.Mesh | None]:
    """``(family, seed mesh)`` of ``cfg``, after every check of the config."""
    validate(cfg)
    fam = experiments.family(cfg.experiment)
    fam.validate(cfg)
    if isinstance(fam, SingleRun):
        return fam, None
    check_family(fam, mixing.plan_for(cfg, fam))
    if isinstance(fam, HostFamily):
        return fam, None
    check_x64(cfg)
    return fam, sharding.seed_mesh(cfg)


def inputs(cfg, fam, mesh):
    """``(truth, keys_S)`` of a vmapped run, placed on ``mesh`` (replicated, split over seeds)."""
    truth = fam.reference(cfg)
    if mesh is not None:
        truth = sharding.replicate(truth, mesh)
    return truth, sharding.seed_keys(cfg, mesh)
