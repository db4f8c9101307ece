"""The vmapped run: spans of generations between checkpoints, their records and saves, resume.

``run_vmapped`` calls ``Program.begin`` once and ``Program.span`` once per span end (``Program.ends``):
multiples of ``cfg.checkpoint.every_generations`` and every generation of
``cfg.checkpoint.keep_generations``, a fixed set given the config, so a resumed run makes exactly
the calls of an uninterrupted one and its records are byte-identical. Each span's metrics are
recorded (``metrics.Recorder``) and its carry checkpointed on background threads while the device
computes the next. A rerun resumes from the newest checkpoint whose metrics were recorded (a kill
can come while the recorder still holds a span). ``simulate`` makes the same calls in memory.
"""

import jax
import numpy as np
from absl import logging

from collapse_jax import experiments, rng, sharding
from collapse_jax import metrics as metrics_lib
from collapse_jax.chain import checks, step
from collapse_jax.chain.workdir import Workdir
from collapse_jax.checkpoint import Checkpointer, restore_newest
from collapse_jax.data import fetch
from collapse_jax.errors import CheckpointError

# Checkpoint saves queue up behind each other (one thread, in order) while the carries they hold
# fit in ``step.DONATE_ABOVE_BYTES``, at most this many: Orbax spends tens of milliseconds of CPU
# per save whatever its size, so short spans (the first kept generations) would otherwise wait on
# the previous save with the device idle.
SAVE_QUEUE_MAX = 16


def run_vmapped(fam, cfg, wd: Workdir, mesh, is_main: bool = True) -> None:
    """Run (or resume) a vmapped family in ``wd`` (``chain.run`` calls it after the checks)."""
    G = cfg.num_generations
    with (
        jax.default_matmul_precision(cfg.matmul_precision),
        Checkpointer(
            wd.checkpoints,
            cfg.checkpoint.max_to_keep,
            keep_steps=cfg.checkpoint.keep_generations,
        ) as ckpt,
        # Closed first: its background records are flushed even when the guard below raises.
        metrics_lib.Recorder(wd.path, cfg, enabled=is_main) as writer,
    ):
        program = step.build(cfg, fam, mesh)
        truth, keys_S = checks.inputs(cfg, fam, mesh)
        carry_shape = jax.eval_shape(program.first, keys_S, truth)[0]
        background = not program.donates(carry_shape)
        size = max(step.carry_bytes(carry_shape), 1)
        queue = min(SAVE_QUEUE_MAX, max(1, step.DONATE_ABOVE_BYTES // size))
        if is_main:
            fetch.write_record(wd.data_source)
        restored = _restore_recorded(ckpt, writer, carry_shape, mesh, wd, G)
        if restored is None:
            carry, m0 = program.begin(keys_S, truth)
            m0 = {k: v[None] for k, v in sharding.to_host(m0).items()}
            write_or_raise(writer, np.zeros(1, np.int32), m0)
            _save(ckpt, writer, 0, carry, background, queue)
            last = 0
        else:
            last, carry = restored
            logging.info("resuming %s after generation %d", wd.path, last)
        progress = metrics_lib.Progress(G - 1, last, cfg.log_every_seconds)
        for gens, carry_S, m in program.spans(keys_S, truth, carry, last):
            # One transfer of the whole pytree; the rows past the span's are the buffer's padding.
            m = {k: v[: len(gens)] for k, v in sharding.to_host(m).items()}
            write_or_raise(writer, gens, m)
            _save(ckpt, writer, int(gens[-1]), carry_S, background, queue)
            progress.update(int(gens[-1]), force=gens[-1] == G - 1)


def _restore_recorded(ckpt, writer, carry_shape, mesh, wd: Workdir, G):
    """``(generation, carry)`` of the newest readable checkpoint whose metrics are recorded
    (``Recorder.complete``), after truncating the records to it; None to start afresh.

    Checkpoints newer than the recorded metrics (a kill came while the writer still held their
    span) are deleted: the run recomputes them, bit for bit.
    """
    steps_on_disk = ckpt.all_steps()
    if steps_on_disk and max(steps_on_disk) >= G:
        raise CheckpointError(
            f"{wd.checkpoints} holds generation {max(steps_on_disk)} but num_generations is {G}"
        )
    usable = writer.complete(steps_on_disk)
    for s in steps_on_disk:
        if usable is None or s > usable:
            logging.info("checkpoint %d is ahead of the recorded metrics; recomputing it", s)
            ckpt.delete(s)
    last, carry = None, None
    if usable is not None:
        # Restored onto this run's devices, whatever the devices of the run that saved it.
        # An unreadable newest checkpoint is set aside and an earlier one used.
        abstract = sharding.with_sharding(carry_shape, mesh)
        last, carry, meta = restore_newest(ckpt, abstract)
        if last is not None and meta.get("generation") != last:
            raise CheckpointError(f"{wd.checkpoints / str(last)}: metadata names {meta}")
    writer.resume(last)
    return None if last is None else (last, carry)


def _save(ckpt, writer, generation: int, carry, background: bool, queue: int = 1) -> None:
    """Checkpoint ``generation`` (in the ``background`` while the next span computes, behind at
    most ``queue - 1`` earlier saves); the writer may still hold its span, never an older one's.

    With ``max_to_keep`` 1 the previous checkpoint goes when this one commits, so this one must
    not get ahead of its metrics: wait for them.
    """
    if ckpt.max_to_keep == 1:
        writer.wait()
    ckpt.save(
        generation, carry, {"generation": generation}, background=background, max_pending=queue
    )


def write_or_raise(writer, gens, m_GxS) -> None:
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
# In memory: the same programs and calls, no workdir.


def _collect(program, keys_S, truth) -> dict[str, np.ndarray]:
    carry, m0 = program.begin(keys_S, truth)
    out = {k: [v[None]] for k, v in sharding.to_host(m0).items()}
    for gens, _, m in program.spans(keys_S, truth, carry):
        for k, v in sharding.to_host(m).items():
            out[k].append(v[: len(gens)])
    return {k: np.concatenate(v) for k, v in out.items()}


def simulate(cfg) -> dict[str, np.ndarray]:
    """Run every generation of every seed in memory: ``{metric: array [G, S, ...]}``.

    No workdir, no checkpoints: the calls of ``run`` (for tests, notebooks and benchmarks).
    """
    fam, mesh = checks.resolve(cfg)
    with jax.default_matmul_precision(cfg.matmul_precision):
        program = step.build(cfg, fam, mesh)
        truth, keys_S = checks.inputs(cfg, fam, mesh)
        return _collect(program, keys_S, truth)


def simulate_per_seed(cfg) -> dict[str, np.ndarray]:
    """``simulate`` seed after seed: the same programs built for one seed, each called with one
    seed's key. The reference the vmapped chain is tested against (no seed sees another)."""
    fam = experiments.family(cfg.experiment)
    fam.validate(cfg)
    one = cfg.copy_and_resolve_references()
    with one.unlocked():
        one.num_seeds, one.seed_batch, one.num_devices = 1, 0, 1
    truth = fam.reference(cfg)
    seeds = []
    with jax.default_matmul_precision(cfg.matmul_precision):
        program = step.build(one, fam)
        keys_S = rng.seed_keys(cfg.seed, cfg.num_seeds)
        for s in range(cfg.num_seeds):
            seeds.append(_collect(program, keys_S[s : s + 1], truth))
    return {k: np.concatenate([o[k] for o in seeds], axis=1) for k in seeds[0]}
