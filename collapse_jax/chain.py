"""The generational chain: the only module that knows seeds and generations.

Generation 0 draws D_0 and fits it; generation g >= 1 draws the next dataset from the mixture of
the previous model's samples, kept data and original data (``mixing.py``) and fits it. One
generation of every seed is ``vmap`` of a pure single-seed step; the generations between two
checkpoints are a ``lax.scan`` inside the same XLA call, so the host only touches the device
once per checkpoint interval.

Keys depend only on (cfg.seed, seed index, generation) (``rng.py``): seed s is the same stream
whatever the number of seeds, and resuming needs no stored keys. Chunks always end on multiples of
``cfg.checkpoint.every_generations`` and on every generation of ``cfg.checkpoint.keep_generations``
(so each kept generation is a checkpoint, held for good beside the latest ``max_to_keep``): the
chunk ends are a fixed set given the config, a resumed run makes exactly the calls of an
uninterrupted one and its ``metrics.jsonl`` is byte-identical.
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

from collapse_jax import experiments, mixing, rng, sharding
from collapse_jax import metrics as metrics_lib
from collapse_jax.checkpoint import Checkpointer, restore_newest
from collapse_jax.data import fetch
from collapse_jax.errors import CheckpointError, ConfigError, require
from collapse_jax.family import HostFamily, Origin


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
    prec = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")
    require(
        cfg.matmul_precision in prec, "matmul_precision", f"one of {prec}", cfg.matmul_precision
    )
    nd = cfg.num_devices
    require(isinstance(nd, int) and nd >= 0, "num_devices", "0 (all) or a positive integer", nd)
    mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    metrics_lib.validate(cfg)


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


# Keys of the newer purposes are folded into the generation key with their own constants, so the
# four-way split every regime has always used (and its numbers) stays as it was.
FRESH_PURPOSE = 0x46524553  # "FRES": new original draws (regime fresh)
CURATE_PURPOSE = 0x43555241  # "CURA": curation's resampling


def fresh_data(fam, key, truth, n: int, generation, cfg):
    """``n`` new draws of the original distribution (the family's ``fresh_data``, if it has one)."""
    if fam.fresh_data is not None:
        return fam.fresh_data(key, truth, n, generation, cfg)
    return fam.original_data(key, truth, cfg)[:n]


def _scores(fam, plan, cfg, truth, carry: Carry, x):
    if plan.score == "oracle":
        return fam.truth_log_prob(truth, x, cfg)
    return fam.log_prob(carry.model0 if plan.score == "initial" else carry.model, x, cfg)


def _model_samples(fam, plan, cfg, truth, carry: Carry, k_sample, gen_key):
    """The generation's ``plan.num_model`` model samples, curated when ``plan.curates``."""
    if not plan.curates:
        return fam.sample(k_sample, carry.model, plan.num_model, cfg)
    cand_x = fam.sample(k_sample, carry.model, plan.num_model * plan.oversample, cfg)
    scores = _scores(fam, plan, cfg, truth, carry, cand_x)
    return mixing.curate(jax.random.fold_in(gen_key, CURATE_PURPOSE), plan, cand_x, scores)


def check_family(fam, plan: mixing.Plan) -> None:
    """The optional family functions the regime and curation need (``family.py``)."""
    need = {"oracle": "truth_log_prob", "initial": "log_prob", "current": "log_prob"}
    if plan.curates and getattr(fam, need[plan.score]) is None:
        raise ConfigError(
            f"mixing.curation.score={plan.score}: family {fam.name} has no "
            f"{need[plan.score]}; use one of the scores it supports or none"
        )


def _step(fam, plan, cfg, seed_key, truth, carry: Carry, generation):
    gen_key = rng.generation_key(seed_key, generation)
    k_sample, k_mix, k_train, k_fit = jax.random.split(gen_key, 4)
    model_x = _model_samples(fam, plan, cfg, truth, carry, k_sample, gen_key)
    fresh_x = None
    if plan.regime == "fresh":
        k_fresh = jax.random.fold_in(gen_key, FRESH_PURPOSE)
        fresh_x = fresh_data(fam, k_fresh, truth, plan.num_original, generation, cfg)
    pool = mixing.next_pool(k_mix, plan, carry.pool, model_x, carry.data0, generation, fresh_x)
    data = mixing.training_data(k_train, plan, pool)
    model = fam.fit(k_fit, carry.model, data, cfg)
    metrics = fam.metrics(model, data, Origin(truth, carry.data0, carry.model0), cfg)
    return carry._replace(model=model, pool=pool), metrics


def build(cfg, fam=None, mesh=None) -> Steps:
    """Jit the vmapped steps for ``cfg`` (shapes are static given the config).

    With a ``"seeds"`` mesh (``sharding.seed_mesh``) the seed axis of keys, carry and metrics is
    split over its devices and the truth and generations are replicated.
    """
    fam = fam or experiments.family(cfg.experiment)
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
    fam = experiments.family(cfg.experiment)
    fam.validate(cfg)
    check_family(fam, mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations))
    if isinstance(fam, HostFamily):
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


def simulate_per_seed(cfg) -> dict[str, np.ndarray]:
    """``simulate`` without ``vmap``: the same single-seed steps, jitted, seed after seed and
    generation after generation in Python. The reference the vmapped chain is tested against."""
    fam = experiments.family(cfg.experiment)
    fam.validate(cfg)
    plan = mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    truth = fam.reference(cfg)
    first = jax.jit(partial(_first, fam, plan, cfg))
    step = jax.jit(partial(_step, fam, plan, cfg))
    seeds = []
    with jax.default_matmul_precision(cfg.matmul_precision):
        for key in rng.seed_keys(cfg.seed, cfg.num_seeds):
            carry, m = first(key, truth)
            rows = [jax.device_get(m)]
            for g in range(1, cfg.num_generations):
                carry, m = step(key, truth, carry, np.int32(g))
                rows.append(jax.device_get(m))
            seeds.append({k: np.stack([r[k] for r in rows]) for k in rows[0]})
    return {k: np.stack([s[k] for s in seeds], axis=1) for k in seeds[0]}


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
        if grows and not mixing.plan(cfg.mixing, cfg.samples_per_generation, 1).accumulates:
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
            for name in (
                "checkpoints",
                "metrics.jsonl",
                metrics_lib.STORE,
                "figures",
                "summary.md",
            ):
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


def chunk_ends(start: int, num_generations: int, every: int, keep=()) -> list[int]:
    """Last generation of each chunk after ``start``: multiples of ``every``, the generations in
    ``keep`` and the final one."""
    ends = set(range((start // every + 1) * every, num_generations, every))
    ends |= {g for g in keep if g < num_generations}
    ends.add(num_generations - 1)
    return sorted(e for e in ends if e > start)


def call_lengths(start: int, end: int, every: int, num_generations: int) -> list[int]:
    """How generations ``start + 1 .. end`` (one checkpoint's stretch) split into jitted calls.

    A whole interval of ``every`` generations, or the final remainder after a multiple of
    ``every``, is one scanned call, as without kept generations. A stretch that starts or ends at
    a kept generation off that grid runs as one-generation calls instead: each distinct scan
    length is another XLA compile (seconds), while a one-generation call costs what a scan step
    does. Kept generations so add one program (length 1), not one per stretch length. The split
    depends only on the stretch, so a resumed run makes exactly an uninterrupted run's calls.
    """
    n = end - start
    if start % every == 0 and (n == every or end == num_generations - 1):
        return [n]
    return [1] * n


def run(cfg, workdir, overwrite: bool = False) -> Path:
    """Run (or resume) ``cfg`` in ``workdir`` following the output contract (README.md, "Output
    contract" under "Running experiments")."""
    fam, mesh = _resolve(cfg)
    is_main = jax.process_index() == 0
    workdir = prepare_workdir(cfg, workdir, overwrite, write=is_main)
    metrics_lib.quiet_orbax()
    fetch.reset()
    if isinstance(fam, HostFamily):
        fam.driver(cfg, workdir)
        return workdir

    G = cfg.num_generations
    with (
        jax.default_matmul_precision(cfg.matmul_precision),
        Checkpointer(
            workdir / "checkpoints",
            cfg.checkpoint.max_to_keep,
            keep_steps=cfg.checkpoint.keep_generations,
        ) as ckpt,
        # Closed first: its background lines are flushed even when the guard below raises.
        metrics_lib.Recorder(workdir, cfg, enabled=is_main) as writer,
    ):
        steps = build(cfg, fam, mesh)
        truth, keys_S = _inputs(cfg, fam, mesh)
        if is_main:
            fetch.write_record(workdir)
        last = ckpt.latest_step()
        if last is not None and last >= G:
            raise CheckpointError(
                f"{workdir}/checkpoints holds generation {last} but num_generations is {G}"
            )
        if last is not None:
            # Restored onto this run's devices, whatever the devices of the run that saved it.
            # An unreadable newest checkpoint is set aside and an earlier one used.
            abstract = sharding.with_sharding(jax.eval_shape(steps.first, keys_S, truth)[0], mesh)
            last, carry, meta = restore_newest(ckpt, abstract)
            if last is not None and meta.get("generation") != last:
                raise CheckpointError(f"{workdir}/checkpoints/{last}: metadata names {meta}")
        writer.resume(last)
        if last is None:
            carry, m0 = steps.first(keys_S, truth)
            if mesh is None:
                # A restored carry is committed to the first local device (with_sharding): commit
                # this one alike, so that a resumed run calls the very program of the run it resumes and
                # finds it in the XLA cache (an uncommitted carry makes another program).
                carry = jax.device_put(carry, jax.local_devices()[0])
            m0 = {k: v[None] for k, v in sharding.to_host(m0).items()}
            _write_or_raise(writer, [0], m0)
            ckpt.save(0, carry, {"generation": 0})
            last = 0
        else:
            logging.info("resuming %s after generation %d", workdir, last)
        progress = metrics_lib.Progress(G - 1, last, cfg.log_every_seconds)
        every = cfg.checkpoint.every_generations
        for end in chunk_ends(last, G, every, cfg.checkpoint.keep_generations):
            parts, first = [], last + 1
            for n in call_lengths(last, end, every, G):
                gens_n = np.arange(first, first + n, dtype=np.int32)
                carry, m = steps.chunk(keys_S, truth, carry, gens_n)
                parts.append({k: np.swapaxes(v, 0, 1) for k, v in sharding.to_host(m).items()})
                first += n
            gens = np.arange(last + 1, end + 1, dtype=np.int32)
            m = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            # Every seed's values are on disk before the checkpoint of the same generations is
            # saved; the jsonl lines follow on the writer's thread while the next chunk computes.
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
    writer.wait()  # the finite generations' lines are on disk before the error propagates
    raise FloatingPointError(msg)
