"""The generational chain: the only module that knows seeds and generations.

Generation 0 draws D_0 and fits it; generation g >= 1 draws the next dataset from the mixture of
the previous model's samples, kept data and original data (``mixing.py``) and fits it. One
generation of every seed is ``vmap`` of a pure single-seed step (or, with ``cfg.seed_batch``,
``lax.map`` over batches of that many vmapped seeds); the generations between two
checkpoints are a loop inside the same XLA call (``build_span``), so the host only touches the
device once per checkpoint, and records that chunk's metrics (``metrics.Recorder``) and saves its
checkpoint on background threads while the device computes the next.

Keys depend only on (cfg.seed, seed index, generation) (``rng.py``): seed s is the same stream
whatever the number of seeds, and resuming needs no stored keys. Chunks always end on multiples of
``cfg.checkpoint.every_generations`` and on every generation of ``cfg.checkpoint.keep_generations``
(so each kept generation is a checkpoint, held for good beside the latest ``max_to_keep``): the
chunk ends are a fixed set given the config, a resumed run makes exactly the calls of an
uninterrupted one and its ``metrics.jsonl`` is byte-identical. It resumes from the newest
checkpoint whose metrics were recorded (a kill can come while the writer still holds a chunk).

The host path (``HostFamily``: the LM, which cannot be vmapped) loops over generations and seeds
in Python with the same keys, mixing plan, metrics recorder, progress line, non-finite guard,
retention and resume rules; see "The host path" below.
"""

import dataclasses
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from collapse_jax import experiments, mixing, rng, sharding
from collapse_jax import metrics as metrics_lib
from collapse_jax.checkpoint import Checkpointer, UnreadableCheckpoint, restore_newest
from collapse_jax.data import fetch
from collapse_jax.errors import CheckpointError, ConfigError, require
from collapse_jax.family import HostFamily, Origin, SingleRun
from collapse_jax.sharding import SEEDS


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
    mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    metrics_lib.validate(cfg)


@dataclasses.dataclass(frozen=True)
class Steps:
    """The jitted first generation and generation chunk of one config."""

    first: Any  # (keys_S, truth) -> (carry_S, metrics_S)
    chunk: Any  # (keys_S, truth, carry_S, generations_G) -> (carry_S, metrics_SxG)
    plan: mixing.Plan


def over_seeds(fn, cfg):
    """``fn`` of one seed's arguments, applied along their leading seed axis: ``jax.vmap``, or with
    ``cfg.seed_batch`` = k > 0, ``jax.lax.map`` over batches of k vmapped seeds (a remainder batch
    last). A seed's values do not depend on the others, so only the batching changes. It bounds
    the program's buffers: an accelerator's memory at many seeds, and on a CPU the temporary
    buffers XLA maps afresh on every call (the VAE at 8 seeds and 2 steps per call: 0.79x
    PyTorch vmapped, 0.93x one seed after another; at 8 steps per call the two tie)."""
    k = cfg.seed_batch
    if not k:
        return jax.vmap(fn)
    return lambda *xs: jax.lax.map(lambda a: fn(*a), xs, batch_size=k)


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
        return over_seeds(lambda key: _first(fam, plan, cfg, key, truth), cfg)(keys_S)

    def chunk(keys_S, truth, carry_S, generations_G):
        def one_seed(seed_key, carry):
            return jax.lax.scan(
                partial(_step, fam, plan, cfg, seed_key, truth), carry, generations_G
            )

        return over_seeds(one_seed, cfg)(keys_S, carry_S)

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
    plan = mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    if isinstance(fam, SingleRun):
        return fam, None
    if isinstance(fam, HostFamily):
        check_host_family(fam, plan)
        return fam, None
    check_family(fam, plan)
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


MISSING = "<missing>"


def _diff(a: dict, b: dict, prefix="") -> list[tuple[str, Any, Any]]:
    """``(dotted path, value in a, value in b)`` of every leaf that differs."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, MISSING), b.get(k, MISSING)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append((f"{prefix}{k}", va, vb))
    return out


def _lookup(d: dict, path: str):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return MISSING
        d = d[k]
    return d


def _merged(default: dict, saved: dict) -> dict:
    out = dict(default)
    for k, v in saved.items():
        out[k] = (
            _merged(default[k], v)
            if isinstance(v, dict) and isinstance(default.get(k), dict)
            else v
        )
    return out


def saved_config(saved: dict) -> dict:
    """A run's ``config.json`` with the fields the code gained since, at their defaults (what
    ``prepare_workdir`` accepts on resume), so that an older run opens under this version."""
    default = _variant_default(saved.get("experiment"), saved.get("variant"))
    return saved if default is None else _merged(default, saved)


def _variant_default(experiment, variant) -> dict | None:
    """``config_dict`` of what ``experiment``'s config file builds for ``variant`` (None: it
    cannot)."""
    try:
        return config_dict(experiments.get(experiment).config_module().get_config(variant))
    except Exception:  # no defaults only means that every difference counts
        return None


# What --overwrite deletes of every run (a family names its own further outputs).
RUN_OUTPUTS = (
    "checkpoints",
    "metrics.jsonl",
    metrics_lib.STORE,
    "figures",
    "summary.md",
    "data_source.json",
)


def prepare_workdir(cfg, workdir, overwrite: bool = False, write: bool = True, outputs=()) -> Path:
    """Make ``workdir`` absolute, refuse it if it holds another config's run, write config.json.

    With ``overwrite`` the old run (config, metrics, checkpoints, figures and the family's
    ``outputs``) is deleted first: the only path that loses saved work, and only when asked for.
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
        # A field the code gained after the run was started (absent from its config.json) at its
        # default value is the old behaviour, which is what a new field's default must keep: the
        # run resumes under the new version and its config.json gains the field.
        if any(o == MISSING for _, o, _ in diff):
            default = _variant_default(cfg.experiment, cfg.get("variant")) or {}
            diff = [d for d in diff if not (d[1] == MISSING and _lookup(default, d[0]) == d[2])]
        diff = [f"{k}: {o!r} -> {n!r}" for k, o, n in diff]
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
            for name in (*RUN_OUTPUTS, *outputs):
                p = workdir / name
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if write:
        metrics_lib.write_json(path, new, indent=2)
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


def build_span(cfg, fam, plan: mixing.Plan, mesh=None, length: int = 1, donate: bool = True):
    """Jit ``span(keys_S, truth, carry_S, start, n) -> (carry_S, metrics_LxS)``: generations
    ``start .. start + n - 1`` (``n <= length``) in one call, metrics in the first ``n`` of
    ``length`` rows.

    ``start`` and ``n`` are traced, so every stretch between two checkpoints (a whole interval, a
    remainder, one ending at a kept generation) is one call of one program: ``chain.run`` compiles
    what ``simulate`` does (the first generation and one loop) and calls the device once per
    checkpoint. The loop body is the vmapped ``_step``, what ``build``'s ``vmap(scan)`` batches
    into, so the values are the same bits (tests/test_metrics_store.py checks it, and
    benchmarks/metrics_store.py at 10^4 seeds). ``donate``: the input carry's buffers are reused
    for the output's (off when the caller still saves the input carry in the background).
    """

    def span(keys_S, truth, carry_S, start, n):
        def step_S(keys_S, truth, carry_S, generation):
            def one_seed(key, carry):
                return _step(fam, plan, cfg, key, truth, carry, generation)

            return over_seeds(one_seed, cfg)(keys_S, carry_S)

        shapes = jax.eval_shape(step_S, keys_S, truth, carry_S, start)[1]
        rows = jax.tree.map(lambda s: jax.numpy.zeros((length, *s.shape), s.dtype), shapes)

        def body(i, state):
            carry_S, rows = state
            carry_S, m_S = step_S(keys_S, truth, carry_S, start + i)
            rows = jax.tree.map(
                lambda r, x: jax.lax.dynamic_update_index_in_dim(r, x, i, 0), rows, m_S
            )
            return carry_S, rows

        return jax.lax.fori_loop(0, n, body, (carry_S, rows))

    donate_argnums = (2,) if donate else ()
    if mesh is None:
        return jax.jit(span, donate_argnums=donate_argnums)
    per_seed, rep = sharding.chain_shardings(mesh)
    per_seed_rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, SEEDS))
    return jax.jit(
        span,
        in_shardings=(per_seed, rep, per_seed, rep, rep),
        out_shardings=(per_seed, per_seed_rows),
        donate_argnums=donate_argnums,
    )


# Carries up to this size are checkpointed on a background thread while the next span computes,
# which costs a second copy of the carry (the span cannot donate the one being saved); larger
# ones (pools of images) are donated and saved between spans, as memory matters more there.
# Saves queue up behind each other (one thread, in order) while the carries they hold fit in
# this many bytes, at most SAVE_QUEUE_MAX: Orbax spends ~30 ms of CPU per save whatever its
# size, so short spans (the first generations of checkpoint.keep_generations) would otherwise
# wait on the previous save with the device idle.
OVERLAP_MAX_BYTES = 1 << 30
SAVE_QUEUE_MAX = 16


def _carry_bytes(abstract_carry) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract_carry))


def run(cfg, workdir, overwrite: bool = False) -> Path:
    """Run (or resume) ``cfg`` in ``workdir`` following the output contract (README.md, "Output
    contract" under "Running experiments")."""
    fam, mesh = _resolve(cfg)
    is_main = jax.process_index() == 0
    workdir = prepare_workdir(cfg, workdir, overwrite, write=is_main, outputs=fam.outputs)
    metrics_lib.quiet_orbax()
    fetch.reset()
    if isinstance(fam, SingleRun):
        fam.run(cfg, workdir)
        return workdir
    if isinstance(fam, HostFamily):
        run_host(fam, cfg, workdir, is_main)
        return workdir

    G = cfg.num_generations
    every = cfg.checkpoint.every_generations
    with (
        jax.default_matmul_precision(cfg.matmul_precision),
        Checkpointer(
            workdir / "checkpoints",
            cfg.checkpoint.max_to_keep,
            keep_steps=cfg.checkpoint.keep_generations,
        ) as ckpt,
        # Closed first: its background records are flushed even when the guard below raises.
        metrics_lib.Recorder(workdir, cfg, enabled=is_main) as writer,
    ):
        steps = build(cfg, fam, mesh)
        truth, keys_S = _inputs(cfg, fam, mesh)
        carry_shape = jax.eval_shape(steps.first, keys_S, truth)[0]
        carry_bytes = _carry_bytes(carry_shape)
        overlap = carry_bytes <= OVERLAP_MAX_BYTES
        queue = min(SAVE_QUEUE_MAX, max(1, OVERLAP_MAX_BYTES // max(carry_bytes, 1)))
        span = build_span(cfg, fam, steps.plan, mesh, min(every, G - 1), donate=not overlap)
        if is_main:
            fetch.write_record(workdir)
        restored = _restore_recorded(ckpt, writer, carry_shape, mesh, workdir, G)
        if restored is None:
            carry, m0 = steps.first(keys_S, truth)
            if mesh is None:
                # A restored carry is committed to the first local device (with_sharding): commit
                # this one alike, so that a resumed run calls the very program of the run it resumes and
                # finds it in the XLA cache (an uncommitted carry makes another program).
                carry = jax.device_put(carry, jax.local_devices()[0])
            m0 = {k: v[None] for k, v in sharding.to_host(m0).items()}
            _write_or_raise(writer, np.zeros(1, np.int32), m0)
            _save(ckpt, writer, 0, carry, overlap, queue)
            last = 0
        else:
            last, carry = restored
            logging.info("resuming %s after generation %d", workdir, last)
        progress = metrics_lib.Progress(G - 1, last, cfg.log_every_seconds)
        for end in chunk_ends(last, G, every, cfg.checkpoint.keep_generations):
            n = end - last
            carry, m = span(keys_S, truth, carry, np.int32(last + 1), np.int32(n))
            # One transfer of the whole pytree; the rows past n are the buffer's padding.
            m = {k: v[:n] for k, v in sharding.to_host(m).items()}
            _write_or_raise(writer, np.arange(last + 1, end + 1, dtype=np.int32), m)
            _save(ckpt, writer, end, carry, overlap, queue)
            last = end
            progress.update(last, force=last == G - 1)
    return workdir


def _restore_recorded(ckpt, writer, carry_shape, mesh, workdir, G):
    """``(generation, carry)`` of the newest readable checkpoint whose metrics are recorded
    (``Recorder.complete``), after truncating the records to it; None to start afresh.

    Checkpoints newer than the recorded metrics (a kill came while the writer still held their
    chunk) are deleted: the run recomputes them, bit for bit.
    """
    steps_on_disk = ckpt.all_steps()
    if steps_on_disk and max(steps_on_disk) >= G:
        raise CheckpointError(
            f"{workdir}/checkpoints holds generation {max(steps_on_disk)} but num_generations "
            f"is {G}"
        )
    usable = writer.complete(steps_on_disk)
    for step in steps_on_disk:
        if usable is None or step > usable:
            logging.info("checkpoint %d is ahead of the recorded metrics; recomputing it", step)
            ckpt.delete(step)
    last, carry = None, None
    if usable is not None:
        # Restored onto this run's devices, whatever the devices of the run that saved it.
        # An unreadable newest checkpoint is set aside and an earlier one used.
        abstract = sharding.with_sharding(carry_shape, mesh)
        last, carry, meta = restore_newest(ckpt, abstract)
        if last is not None and meta.get("generation") != last:
            raise CheckpointError(f"{workdir}/checkpoints/{last}: metadata names {meta}")
    writer.resume(last)
    return None if last is None else (last, carry)


def _save(ckpt, writer, generation: int, carry, background: bool, queue: int = 1) -> None:
    """Checkpoint ``generation`` (in the ``background`` while the next span computes, behind at
    most ``queue - 1`` earlier saves); the writer may still hold its chunk, never an older one's.

    With ``max_to_keep`` 1 the previous checkpoint goes when this one commits, so this one must
    not get ahead of its metrics: wait for them.
    """
    if ckpt.max_to_keep == 1:
        writer.wait()
    ckpt.save(
        generation, carry, {"generation": generation}, background=background, max_pending=queue
    )


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


# ---------------------------------------------------------------------------------------------
# The host path: a Python loop over generations and seeds, for families that cannot be vmapped.
#
# Keys: generation g of seed s splits ``rng.generation_key(seed_keys[s], g)`` four ways into
# (sample, mix, train, fit), as ``_step``; generation 0 does too (its sample key draws D_0, the
# mix key is unused), and a family's metrics get ``fold_in(generation key, METRICS_PURPOSE)``.
# Regime ``fresh`` and curation fold ``FRESH_PURPOSE`` / ``CURATE_PURPOSE`` into the generation key
# as ``_step`` does; the pool is ``mixing.next_pool``'s, so every regime's arithmetic is the one of
# the vmapped families.
#
# Checkpoints (Orbax, step = generation) under ``DIR/checkpoints/``:
#   ``seed_{s}/data``   the pool of generation g >= 1, saved after the sampling and mixing and
#                       before the fit (a sub-step: an interrupted fit reuses the samples)
#   ``seed_{s}/model``  the fitted state of generation g with the fit's record and metrics as JSON
#                       metadata, saved before the metrics are computed (a sub-step: an interrupted
#                       metrics computation reuses the fit); generation 0 is kept for good
#   ``seed_{s}/measured/{g}.json``  generation g's metrics and note (written by rename once they
#                       are computed; with the model checkpoint it marks the generation done)
#   ``<name>/``         run-level states made once by the family (``Once``: the LM's base model)
# Both per-seed directories keep the latest ``max(2, checkpoint.max_to_keep)`` generations
# (generation g starts from g - 1's state and pool) and ``checkpoint.keep_generations``.
#
# A generation is recorded (``metrics.Recorder``) once every seed has saved its state; the
# family's note lines go to their file just before. A rerun resumes after the newest recorded
# generation every seed can read back (an unreadable checkpoint is set aside with one warning line
# and its generation run again), truncates the records to it, reads back the seeds already done
# from their metadata and reuses a saved pool: every step is a deterministic function of (keys,
# saved arrays), so the files are byte-identical to an uninterrupted run's.

METRICS_PURPOSE = 0x4D455452  # "METR": a host family's metrics (the LM's example continuation)


def check_host_family(fam: HostFamily, plan: mixing.Plan) -> None:
    """The optional host-family functions the regime and curation need (one ConfigError line)."""
    if plan.regime == "fresh" and fam.fresh_data is None:
        raise ConfigError(f"mixing.regime=fresh: family {fam.name} draws no fresh original data")
    if plan.score == "oracle":
        raise ConfigError(
            f"mixing.curation.score=oracle: family {fam.name} has no true density; use initial, "
            "current or none"
        )
    if plan.curates and fam.log_prob is None:
        raise ConfigError(
            f"mixing.curation.score={plan.score}: family {fam.name} has no log_prob; use none"
        )


def _host_model_samples(fam, plan, cfg, truth, state, state0, k_sample, gen_key):
    """``_model_samples`` on the host: ``plan.num_model`` samples, curated when ``plan.curates``
    (``oversample`` times as many candidates scored by ``log_prob``, kept by ``mixing.curate``)."""
    if not plan.curates:
        return jnp.asarray(fam.sample(k_sample, state, plan.num_model, truth, cfg))
    cand_x = jnp.asarray(fam.sample(k_sample, state, plan.num_model * plan.oversample, truth, cfg))
    scorer = state0 if plan.score == "initial" else state
    scores = jnp.asarray(fam.log_prob(scorer, cand_x, truth, cfg))
    return mixing.curate(jax.random.fold_in(gen_key, CURATE_PURPOSE), plan, cand_x, scores)


def _float32(d: dict) -> dict:
    # Metrics are recorded as float32; rounding before they are stored in a checkpoint's JSON
    # makes a value read back on resume identical to the one an uninterrupted run computes.
    return {k: float(np.float32(v)) for k, v in d.items()}


def _save_array(path: Path, a) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, a)
    os.replace(tmp, path)


def _once(directory: Path):
    """``family.Once`` over ``directory``: each name is one checkpoint (step 0), made once."""

    def once(name: str, template, compute):
        with Checkpointer(directory / name, max_to_keep=1, async_save=False) as ckpt:
            if 0 in ckpt.all_steps():
                try:
                    return ckpt.restore(0, template)[0]
                except UnreadableCheckpoint as e:
                    aside = ckpt.set_aside(0)
                    logging.warning("%s; moved to %s, making it again", e, aside)
            state, meta = compute()
            ckpt.save(0, state, meta)
            return state

    return once


class _HostSeed:
    """One seed on the host path: its checkpoints and the (generation, value) it last held."""

    def __init__(self, fam, cfg, plan, truth, s: int, seed_key, x0, ckpt_dir: Path):
        self.fam, self.cfg, self.plan, self.truth, self.s = fam, cfg, plan, truth, s
        self.seed_key, self.x0 = seed_key, x0
        self.template = fam.init(truth, cfg)
        self.pool_template = jax.eval_shape(lambda x: mixing.initial_pool(plan, x), self.x0)
        keep = max(2, cfg.checkpoint.max_to_keep)
        kept = list(cfg.checkpoint.keep_generations)
        d = ckpt_dir / f"seed_{s}"
        self.data = Checkpointer(d / "data", keep, keep_steps=kept)
        self.model = Checkpointer(d / "model", keep, keep_steps=sorted({0, *kept}))
        self.measured = d / "measured"
        self.state: tuple[int, Any] | None = None
        self.pool: tuple[int, mixing.Data] | None = None
        self.state0 = None

    def close(self) -> None:
        for c in (self.data, self.model):
            c.close()

    def wait(self) -> None:
        for c in (self.data, self.model):
            c.wait()

    def readable(self, g: int) -> bool:
        """Restore generation ``g``'s state and pool (what ``g + 1`` starts from); an unreadable
        one is set aside with one warning line and False returned."""
        self.state = self.pool = None
        if g not in self.model.all_steps():
            return True  # missing, not unreadable: the generation loop says so
        try:
            self.state = (g, self.model.restore(g, self.template)[0])
            if g in self.data.all_steps():
                self.pool = (g, self.data.restore(g, self.pool_template)[0])
        except UnreadableCheckpoint as e:
            self.state = self.pool = None
            for c in (self.model, self.data):
                if g in c.all_steps() and str(c.directory / str(g)) in str(e):
                    aside = c.set_aside(g)
                    logging.warning(
                        "%s; moved to %s, resuming from an earlier generation", e, aside
                    )
            return False
        return True

    def state_at(self, g: int):
        """The fitted state of generation ``g`` (``init`` for g = -1)."""
        if g < 0:
            return self.template
        if self.state is not None and self.state[0] == g:
            return self.state[1]
        if g == 0 and self.state0 is not None:
            return self.state0
        if g not in self.model.all_steps():
            raise CheckpointError(
                f"{self.model.directory}: generation {g} is missing; the run cannot resume (use "
                "a new --workdir or --overwrite)"
            )
        return self.model.restore(g, self.template)[0]

    def pool_at(self, g: int) -> mixing.Data:
        if self.pool is not None and self.pool[0] == g:
            return self.pool[1]
        if g == 0:
            return mixing.initial_pool(self.plan, self.x0)
        if g not in self.data.all_steps():
            raise CheckpointError(
                f"{self.data.directory}: generation {g} is missing; the run cannot resume (use "
                "a new --workdir or --overwrite)"
            )
        return self.data.restore(g, self.pool_template)[0]

    def generation(self, g: int, arrays_dir: Path) -> dict:
        """Run (or read back) generation ``g``: its metadata (fit record, metrics, note).

        Sub-steps, each saved before the next starts: the pool (``data``), the fitted state with
        the fit's record (``model``), then the metrics and note (``measured/G.json``); a rerun
        redoes only what was not saved.
        """
        fam, cfg, plan, s = self.fam, self.cfg, self.plan, self.s
        gen_key = rng.generation_key(self.seed_key, g)
        k_sample, k_mix, k_train, k_fit = jax.random.split(gen_key, 4)
        measured_path = self.measured / f"{g}.json"
        if g in self.model.all_steps():  # fitted before an interruption
            state, meta = self.model.restore(g, self.template)
            self.state = (g, state)
            if "metrics" in meta:  # a run that saved its metrics in the model's metadata
                self.pool = None
                return meta
            if measured_path.exists():
                self.pool = None
                return {**meta, **json.loads(measured_path.read_text())}
            logging.info("seed %d generation %d: fitted model restored", s, g)
            fitted_before = state, meta
            pool = self.pool_at(g)
        else:
            fitted_before = None
            if g == 0:
                pool = mixing.initial_pool(plan, self.x0)
            elif g in self.data.all_steps():
                pool = self.data.restore(g, self.pool_template)[0]
                logging.info("seed %d generation %d: samples restored", s, g)
            else:
                state0 = self.state_at(0) if plan.score == "initial" else None
                model_x = _host_model_samples(
                    fam, plan, cfg, self.truth, self.state_at(g - 1), state0, k_sample, gen_key
                )
                fresh_x = None
                if plan.regime == "fresh":
                    k_fresh = jax.random.fold_in(gen_key, FRESH_PURPOSE)
                    fresh_x = jnp.asarray(
                        fam.fresh_data(k_fresh, self.truth, plan.num_original, g, cfg)
                    )
                pool = mixing.next_pool(
                    k_mix, plan, self.pool_at(g - 1), model_x, self.x0, g, fresh_x
                )
                self.data.save(g, pool, {"generation": g, "seed_index": s})
        data = mixing.training_data(k_train, plan, pool)
        if fitted_before is not None:
            fit_state, fit_meta = fitted_before
        else:
            logging.info("seed %d generation %d: fitting", s, g)
            fitted = fam.fit(k_fit, self.state_at(g - 1), data, self.truth, cfg)
            fit_state = fitted.state
            fit_meta = {
                "generation": g,
                "seed_index": s,
                "fit": fitted.record,
                "fit_metrics": _float32(fitted.metrics),
            }
            self.model.save(g, fit_state, fit_meta)
        if g == 0:
            self.state0 = fit_state
        origin = Origin(self.truth, self.x0, self.state_at(0) if g else fit_state)
        k_metrics = jax.random.fold_in(gen_key, METRICS_PURPOSE)
        measured = fam.metrics(k_metrics, fit_state, data, origin, cfg)
        if measured.per_sample is not None:
            _save_array(arrays_dir / f"gen_{g}_seed_{s}.npy", measured.per_sample)
        record = {
            "metrics": {**fit_meta["fit_metrics"], **_float32(measured.metrics)},
            "note": measured.note,
        }
        metrics_lib.write_json(measured_path, record, indent=None)
        self.state, self.pool = (g, fit_state), (g, pool)
        return {**fit_meta, **record}


def _note_line(meta: dict) -> str:
    note = {"generation": meta["generation"], "seed": meta["seed_index"], **meta["note"]}
    return json.dumps(note, ensure_ascii=False) + "\n"


def run_host(fam: HostFamily, cfg, workdir: Path, is_main: bool = True) -> None:
    """Run (or resume) a host family in ``workdir`` (``run`` calls it after the workdir checks)."""
    G, S = cfg.num_generations, cfg.num_seeds
    ckpt_dir = workdir / "checkpoints"
    arrays_dir = workdir / "arrays"
    arrays_dir.mkdir(parents=True, exist_ok=True)
    with (
        jax.default_matmul_precision(cfg.matmul_precision),
        metrics_lib.Recorder(workdir, cfg, enabled=is_main) as writer,
    ):
        truth = fam.reference(cfg, workdir, _once(ckpt_dir))
        if is_main:
            fetch.write_record(workdir)
        keys_S = rng.seed_keys(cfg.seed, S)
        x0_S = []
        for key in keys_S:
            k_data = jax.random.split(rng.generation_key(key, 0), 4)[0]
            x0_S.append(jnp.asarray(fam.original_data(k_data, truth, cfg)))
        plan = mixing.plan(cfg.mixing, x0_S[0].shape[0], G)
        seeds: list[_HostSeed] = []
        try:
            for s in range(S):
                seeds.append(_HostSeed(fam, cfg, plan, truth, s, keys_S[s], x0_S[s], ckpt_dir))
            last = writer.store.progress()["per_seed"] - 1
            if last >= G:
                raise CheckpointError(
                    f"{workdir}/metrics holds generation {last} but num_generations={G}"
                )
            while last >= 0 and not all(seed.readable(last) for seed in seeds):
                last -= 1
            writer.resume(last if last >= 0 else None)
            notes = metrics_lib.MetricsWriter(workdir / fam.notes, is_main) if fam.notes else None
            if notes is not None:
                notes.truncate(last if last >= 0 else None)
            if last >= 0:
                logging.info("resuming %s after generation %d", workdir, last)
            progress = metrics_lib.Progress(
                G - 1, max(last, 0), cfg.log_every_seconds, f"{fam.name} "
            )
            for g in range(last + 1, G):
                metas = [seed.generation(g, arrays_dir) for seed in seeds]
                for seed in seeds:
                    seed.wait()  # every seed's checkpoint is on disk before the generation is recorded
                if notes is not None:
                    notes.append([_note_line(m) for m in metas])
                names = sorted(metas[0]["metrics"])
                m_1xS = {
                    k: np.asarray([[m["metrics"][k] for m in metas]], np.float32) for k in names
                }
                _write_or_raise(writer, [g], m_1xS)
                progress.update(g, force=True)
        finally:
            for seed in seeds:
                seed.close()
    if is_main and fam.finish is not None:
        fam.finish(cfg, workdir)
