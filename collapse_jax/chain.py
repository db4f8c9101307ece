"""The generational chain: the only module that knows seeds and generations.

Generation 0 draws D_0 and fits it; generation g >= 1 draws the next dataset from the mixture of
the previous model's samples, kept data and original data (``mixing.py``) and fits it. One
generation of every seed is ``vmap`` of a pure single-seed step; the generations between two
checkpoints are a ``lax.scan`` inside the same XLA call, so the host only touches the device
once per checkpoint interval.

Keys depend only on (cfg.seed, seed index, generation) (``rng.py``): seed s is the same stream
whatever the number of seeds, and resuming needs no stored keys. Chunks always end on multiples of
``cfg.checkpoint.every_generations``, so a resumed run makes exactly the calls of an uninterrupted
one and its ``metrics.jsonl`` is byte-identical.
"""

import dataclasses
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import logging

from collapse_jax import family as family_lib
from collapse_jax import metrics as metrics_lib
from collapse_jax import mixing, rng, sharding
from collapse_jax.checkpoint import Checkpointer
from collapse_jax.errors import CheckpointError, ConfigError, require
from collapse_jax.family import Origin


class Carry(NamedTuple):
    """One seed's state between generations."""

    model: Any  # the current fit p_theta(g)
    pool: mixing.Data  # D_g (for the accumulating regimes, D_0 .. D_g with empty slots after)
    data0: jax.Array  # D_0
    model0: Any  # the generation-0 fit, the reference of distance metrics


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
    require(cfg.log_every_seconds >= 0, "log_every_seconds", ">= 0", cfg.log_every_seconds)
    prec = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")
    require(
        cfg.matmul_precision in prec, "matmul_precision", f"one of {prec}", cfg.matmul_precision
    )
    nd = cfg.num_devices
    require(isinstance(nd, int) and nd >= 0, "num_devices", "0 (all) or a positive integer", nd)
    mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)


@dataclasses.dataclass(frozen=True)
class Steps:
    """The jitted first generation and generation chunk of one config."""

    first: Any  # (keys_S, truth) -> (carry_S, metrics_S)
    chunk: Any  # (keys_S, truth, carry_S, generations_G) -> (carry_S, metrics_SxG)
    plan: mixing.Plan


def _first(fam, plan, cfg, seed_key, truth):
    k_data, k_init, k_fit = jax.random.split(rng.generation_key(seed_key, 0), 3)
    x0 = fam.original_data(k_data, truth, cfg)
    data0 = mixing.full(x0)
    model = fam.fit(k_fit, fam.init(k_init, cfg, data0), data0, cfg)
    carry = Carry(model, mixing.initial_pool(plan, x0), x0, model)
    return carry, fam.metrics(model, data0, Origin(truth, x0, model), cfg)


def _step(fam, plan, cfg, seed_key, truth, carry: Carry, generation):
    k_sample, k_mix, k_train, k_fit = jax.random.split(rng.generation_key(seed_key, generation), 4)
    model_x = fam.sample(k_sample, carry.model, plan.num_model, cfg)
    pool = mixing.next_pool(k_mix, plan, carry.pool, model_x, carry.data0, generation)
    data = mixing.training_data(k_train, plan, pool)
    model = fam.fit(k_fit, carry.model, data, cfg)
    metrics = fam.metrics(model, data, Origin(truth, carry.data0, carry.model0), cfg)
    return carry._replace(model=model, pool=pool), metrics


def build(cfg, fam=None, mesh=None) -> Steps:
    """Jit the vmapped steps for ``cfg`` (shapes are static given the config).

    With a ``"seeds"`` mesh (``sharding.seed_mesh``) the seed axis of keys, carry and metrics is
    split over its devices and the truth and generations are replicated.
    """
    fam = fam or family_lib.get(cfg.experiment)
    rows = fam.rows_per_generation(cfg) if fam.rows_per_generation else cfg.samples_per_generation
    plan = mixing.plan(cfg.mixing, rows, cfg.num_generations)

    def first(keys_S, truth):
        return jax.vmap(partial(_first, fam, plan, cfg), in_axes=(0, None))(keys_S, truth)

    def chunk(keys_S, truth, carry_S, generations_G):
        def one_seed(seed_key, carry):
            return jax.lax.scan(
                partial(_step, fam, plan, cfg, seed_key, truth), carry, generations_G
            )

        return jax.vmap(one_seed)(keys_S, carry_S)

    if mesh is None:
        return Steps(jax.jit(first), jax.jit(chunk, donate_argnums=(2,)), plan)
    per_seed, rep = sharding.chain_shardings(mesh)
    return Steps(
        jax.jit(first, in_shardings=(per_seed, rep), out_shardings=per_seed),
        jax.jit(
            chunk,
            in_shardings=(per_seed, rep, per_seed, rep),
            out_shardings=per_seed,
            donate_argnums=(2,),
        ),
        plan,
    )


def _check_x64(cfg) -> None:
    if cfg.enable_x64 != jax.config.jax_enable_x64:
        raise ConfigError(
            f"enable_x64: the config asks for {cfg.enable_x64} but JAX was started with "
            f"jax_enable_x64={jax.config.jax_enable_x64} (the launcher sets it from the config)"
        )


def _resolve(cfg):
    """Every check that can fail on the config, before anything is written: ``(family, mesh)``."""
    validate(cfg)
    fam = family_lib.get(cfg.experiment)
    fam.validate(cfg)
    if fam.driver is not None:
        return fam, None
    _check_x64(cfg)
    return fam, sharding.seed_mesh(cfg)


def _inputs(cfg, fam, mesh):
    """``(truth, keys_S)``, placed on ``mesh`` (replicated, split over seeds) when given."""
    truth = fam.reference(cfg)
    if mesh is not None:
        truth = sharding.replicate(truth, mesh)
    return truth, sharding.seed_keys(cfg, mesh)


def simulate(cfg) -> dict[str, np.ndarray]:
    """Run every generation of every seed in memory: ``{metric: array [G, S, ...]}``.

    No workdir, no checkpoints: for tests, notebooks and benchmarks.
    """
    fam, mesh = _resolve(cfg)
    with jax.default_matmul_precision(cfg.matmul_precision):
        steps = build(cfg, fam, mesh)
        truth, keys_S = _inputs(cfg, fam, mesh)
        carry, m0 = steps.first(keys_S, truth)
        out = {k: [v[None]] for k, v in sharding.to_host(m0).items()}
        if cfg.num_generations > 1:
            gens = np.arange(1, cfg.num_generations, dtype=np.int32)
            _, m = steps.chunk(keys_S, truth, carry, gens)
            for k, v in sharding.to_host(m).items():
                out[k].append(np.swapaxes(v, 0, 1))
    return {k: np.concatenate(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Workdir: config.json first, refuse another config's workdir.


def config_dict(cfg) -> dict:
    return json.loads(cfg.to_json_best_effort(sort_keys=True))


def _diff(a: dict, b: dict, prefix="") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def prepare_workdir(cfg, workdir, overwrite: bool = False, write: bool = True) -> Path:
    """Make ``workdir`` absolute, refuse it if it holds another config's run, write config.json.

    With ``overwrite`` the old run (config, metrics, checkpoints, figures) is deleted first: the
    only path that loses saved work, and only when asked for.
    """
    workdir = Path(os.path.abspath(workdir))
    path = workdir / "config.json"
    new = config_dict(cfg)
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(
                f"{path}: not valid JSON ({e}); move it away or pass --overwrite"
            ) from e
        diff = _diff(old, new)
        # Extending a chain to more generations is a resume, not another config, except where
        # the accumulating regimes size their buffer by num_generations.
        grows = old.get("num_generations", 0) <= new["num_generations"]
        if grows and not mixing.plan(cfg.mixing, 1, 1).accumulates:
            diff = [d for d in diff if not d.startswith("num_generations:")]
        # Seeds give the same results on any number of devices: a run may resume on another.
        diff = [d for d in diff if not d.startswith("num_devices:")]
        if diff and not overwrite:
            shown = "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "")
            raise CheckpointError(
                f"{workdir} holds a run of another config ({shown}); "
                "use a new --workdir, or --overwrite to delete that run"
            )
        if diff and overwrite and write:
            for name in ("checkpoints", "metrics.jsonl", "figures", "summary.md"):
                p = workdir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if write:
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(new, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    return workdir


# ---------------------------------------------------------------------------------------------
# The run.


def chunk_ends(start: int, num_generations: int, every: int) -> list[int]:
    """Last generation of each chunk after ``start``: multiples of ``every`` and the final one."""
    ends = list(range((start // every + 1) * every, num_generations, every))
    if not ends or ends[-1] != num_generations - 1:
        ends.append(num_generations - 1)
    return [e for e in ends if e > start]


def run(cfg, workdir, overwrite: bool = False) -> Path:
    """Run (or resume) ``cfg`` in ``workdir`` following the output contract of DESIGN.md."""
    fam, mesh = _resolve(cfg)
    is_main = jax.process_index() == 0
    workdir = prepare_workdir(cfg, workdir, overwrite, write=is_main)
    if fam.driver is not None:
        fam.driver(cfg, workdir)
        return workdir

    metrics_lib.quiet_orbax()
    writer = metrics_lib.MetricsWriter(workdir / "metrics.jsonl", enabled=is_main)
    G = cfg.num_generations
    with (
        jax.default_matmul_precision(cfg.matmul_precision),
        Checkpointer(workdir / "checkpoints", cfg.checkpoint.max_to_keep) as ckpt,
    ):
        steps = build(cfg, fam, mesh)
        truth, keys_S = _inputs(cfg, fam, mesh)
        last = ckpt.latest_step()
        if last is not None and last >= G:
            raise CheckpointError(
                f"{workdir}/checkpoints holds generation {last} but num_generations is {G}"
            )
        writer.truncate(last)
        if last is None:
            carry, m0 = steps.first(keys_S, truth)
            m0 = {k: v[None] for k, v in sharding.to_host(m0).items()}
            _write_or_raise(writer, [0], m0)
            ckpt.save(0, carry, {"generation": 0})
            last = 0
        else:
            # Restored onto this run's devices, whatever the devices of the run that saved it.
            abstract = sharding.with_sharding(jax.eval_shape(steps.first, keys_S, truth)[0], mesh)
            carry, meta = ckpt.restore(last, abstract)
            if meta.get("generation") != last:
                raise CheckpointError(f"{workdir}/checkpoints/{last}: metadata names {meta}")
            logging.info("resuming %s after generation %d", workdir, last)
        progress = metrics_lib.Progress(G - 1, last, cfg.log_every_seconds)
        for end in chunk_ends(last, G, cfg.checkpoint.every_generations):
            gens = np.arange(last + 1, end + 1, dtype=np.int32)
            carry, m = steps.chunk(keys_S, truth, carry, gens)
            m = {k: np.swapaxes(v, 0, 1) for k, v in sharding.to_host(m).items()}
            _write_or_raise(writer, gens, m)
            ckpt.save(end, carry, {"generation": end})
            last = end
            progress.update(last, force=last == G - 1)
    return workdir


def _write_or_raise(writer, gens, m_GxS) -> None:
    """Write the finite generations; stop at the first non-finite one, naming it and the seeds."""
    bad = metrics_lib.first_nonfinite(gens, m_GxS)
    if bad is None:
        writer.write(gens, m_GxS)
        return
    i, msg = bad
    writer.write(gens[:i], {k: v[:i] for k, v in m_GxS.items()})
    raise FloatingPointError(msg)
