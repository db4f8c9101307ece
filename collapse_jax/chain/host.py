"""The host path: generations and seeds looped in Python, for a family that cannot be vmapped
(``HostFamily``: the LM).

A generation is ``step.first`` / ``step.generation``, the function the vmapped path compiles,
with the family's host callables (``host_ops``) and a ``keep`` hook that puts each sub-step
through ``load_or``: read back if saved, else computed and saved before the next starts. The
keys, the mixing plan, the metrics recorder, the progress line, the non-finite guard and the
retention rules are the vmapped path's.

Saved per seed (``Workdir``: ``checkpoints/seed_{s}/``), step = generation:
  data/      the pool of generation g >= 1, saved after sampling and mixing, before the fit
  model/     the fitted state, with the fit's record and metrics as JSON metadata
  measured/  ``{g}.json``: generation g's metrics and note; with the model it marks g done
Both checkpoint folders keep the latest ``max(2, checkpoint.max_to_keep)`` generations (g starts
from g - 1's state and pool), ``checkpoint.keep_generations``, and the model of generation 0.

A generation is recorded once every seed has saved it. A rerun resumes after the newest recorded
generation every seed can read back (an unreadable checkpoint is set aside with one warning line
and its generation made again) and redoes only the sub-steps not saved: each is a deterministic
function of (keys, saved arrays), so the files are byte-identical to an uninterrupted run's.
"""

import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from collapse_jax import metrics as metrics_lib
from collapse_jax import mixing, rng
from collapse_jax.chain import step
from collapse_jax.chain.run import write_or_raise
from collapse_jax.chain.workdir import Workdir
from collapse_jax.checkpoint import Checkpointer, UnreadableCheckpoint
from collapse_jax.data import fetch
from collapse_jax.errors import CheckpointError
from collapse_jax.family import HostFamily


def host_ops(fam: HostFamily, cfg, truth) -> step.Ops:
    """``step.Ops`` of a ``HostFamily``: arrays brought to JAX, the fit's ``Fitted`` as
    ``(state, metadata)``, the metrics as ``(record, per-sample values)``."""

    def fit(key, state, data):
        fitted = fam.fit(key, state, data, truth, cfg)
        return fitted.state, {"fit": fitted.record, "fit_metrics": _float32(fitted.metrics)}

    def metrics(keys, fitted, data, origin):
        state, meta = fitted
        measured = fam.metrics(keys.metrics, state, data, origin, cfg)
        record = {
            "metrics": {**meta["fit_metrics"], **_float32(measured.metrics)},
            "note": measured.note,
        }
        return record, measured.per_sample

    def asarray(fn):
        return fn and (lambda *a: jnp.asarray(fn(*a)))

    return step.Ops(
        sample=asarray(lambda key, state, n: fam.sample(key, state, n, truth, cfg)),
        fit=fit,
        state=lambda fitted: fitted[0],
        metrics=metrics,
        log_prob=fam.log_prob and asarray(lambda state, x: fam.log_prob(state, x, truth, cfg)),
        truth_log_prob=None,
        fresh_data=fam.fresh_data
        and asarray(lambda key, n, g: fam.fresh_data(key, truth, n, g, cfg)),
        truth=truth,
    )


def _float32(d: dict) -> dict:
    # Metrics are recorded as float32; rounding before they are stored in a checkpoint's JSON
    # makes a value read back on resume identical to the one an uninterrupted run computes.
    return {k: float(np.float32(v)) for k, v in d.items()}


def load_or(store, g: int, compute: Callable[[], Any]) -> Any:
    """Generation ``g``'s value of ``store``: read back when saved, else computed and saved.

    An unreadable saved value is set aside with one warning line and made again."""
    if store.has(g):
        try:
            value = store.load(g)
            logging.info("%s generation %d: restored", store.label, g)
            return value
        except UnreadableCheckpoint as e:
            aside = store.set_aside(g)
            logging.warning("%s; moved to %s, making it again", e, aside)
    return store.save(g, compute())


class _Saved:
    """One sub-step's checkpoints of one seed (Orbax, step = generation)."""

    def __init__(self, ckpt: Checkpointer, template, label: str, s: int):
        self.ckpt, self.template, self.label, self.s = ckpt, template, label, s
        # The last checkpoint read: a format-1 run reads a model's metadata for its metrics,
        # then its state.
        self._held: tuple[int, Any] | None = None

    def has(self, g: int) -> bool:
        return g in self.ckpt.all_steps()

    def restore(self, g: int) -> tuple[Any, dict]:
        if self._held is None or self._held[0] != g:
            self._held = g, self.ckpt.restore(g, self.template)
        return self._held[1]

    def set_aside(self, g: int):
        self._held = None
        return self.ckpt.set_aside(g)

    def missing(self, g: int) -> CheckpointError:
        return CheckpointError(
            f"{self.ckpt.directory}: generation {g} is missing; the run cannot resume (use a new "
            "--workdir or --overwrite)"
        )


class _Pools(_Saved):
    def load(self, g: int):
        return self.restore(g)[0]

    def save(self, g: int, pool):
        self.ckpt.save(g, pool, {"generation": g, "seed_index": self.s})
        return pool


class _Models(_Saved):
    def load(self, g: int) -> tuple[Any, dict]:
        return self.restore(g)

    def save(self, g: int, fitted):
        state, fit_meta = fitted
        meta = {"generation": g, "seed_index": self.s, **fit_meta}
        self.ckpt.save(g, state, meta)
        return state, meta


class _Measured:
    """``measured/{g}.json`` of one seed, and its per-sample values in ``arrays/``."""

    def __init__(self, wd: Workdir, s: int, models: _Models, legacy: bool):
        self.wd, self.s, self.models, self.legacy = wd, s, models, legacy
        self.label = f"seed {s} metrics"

    def _in_model(self, g: int) -> bool:
        # Format 1 kept a generation's metrics and note in its model's metadata.
        return self.legacy and self.models.has(g) and "metrics" in self.models.restore(g)[1]

    def has(self, g: int) -> bool:
        # Metrics mark a generation done only beside its model: when the model was set aside as
        # unreadable, the metrics are measured again, which fits (and saves) the model again.
        measured = self.wd.measured(self.s, g).exists() and self.models.has(g)
        return measured or self._in_model(g)

    def load(self, g: int) -> dict:
        path = self.wd.measured(self.s, g)
        if path.exists():
            return json.loads(path.read_text())
        meta = self.models.restore(g)[1]
        return {"metrics": meta["metrics"], "note": meta["note"]}

    def save(self, g: int, measured) -> dict:
        record, per_sample = measured
        if per_sample is not None:
            path = self.wd.per_sample(g, self.s)
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, per_sample)
            tmp.replace(path)
        metrics_lib.write_json(self.wd.measured(self.s, g), record, indent=None)
        return record

    def set_aside(self, g: int):
        # The JSON is written whole or not at all: what was unreadable is format 1's model.
        return self.models.set_aside(g)


class _HostSeed:
    """One seed on the host path: its saved sub-steps and the generation it last made."""

    def __init__(self, fam, cfg, plan, ops, s: int, seed_key, x0, wd: Workdir, legacy: bool):
        self.plan, self.ops, self.s, self.seed_key, self.x0 = plan, ops, s, seed_key, x0
        self.template = fam.init(ops.truth, cfg)
        pool_template = jax.eval_shape(lambda x: mixing.initial_pool(plan, x), x0)
        keep = max(2, cfg.checkpoint.max_to_keep)
        kept = list(cfg.checkpoint.keep_generations)
        data = Checkpointer(wd.seed_data(s), keep, keep_steps=kept)
        model = Checkpointer(wd.seed_model(s), keep, keep_steps=sorted({0, *kept}))
        self.pools = _Pools(data, pool_template, f"seed {s} samples", s)
        self.models = _Models(model, self.template, f"seed {s} fitted model", s)
        self.measured = _Measured(wd, s, self.models, legacy)
        # Generation g's (fitted, pool) thunks, what g + 1 starts from; and generation 0's state.
        self.made: tuple[int, Callable, Callable] | None = None
        self.state0 = None

    def close(self) -> None:
        for c in (self.pools.ckpt, self.models.ckpt):
            c.close()

    def wait(self) -> None:
        for c in (self.pools.ckpt, self.models.ckpt):
            c.wait()

    def readable(self, g: int) -> bool:
        """Whether generation ``g``'s state and pool (what ``g + 1`` starts from) read back; an
        unreadable one is set aside with one warning line."""
        for store in (self.models, self.pools):
            if not store.has(g):
                continue  # missing, not unreadable: the generation loop says so
            try:
                store.ckpt.restore(g, store.template)  # read whole: only that finds a bad file
            except UnreadableCheckpoint as e:
                aside = store.set_aside(g)
                logging.warning("%s; moved to %s, resuming from an earlier generation", e, aside)
                return False
        return True

    def state_at(self, g: int):
        """The fitted state of generation ``g``."""
        if self.made is not None and self.made[0] == g:
            return self.made[1]()[0]
        if g == 0 and self.state0 is not None:
            return self.state0
        if not self.models.has(g):
            raise self.models.missing(g)
        state = self.models.load(g)[0]
        if g == 0:  # every generation's metrics compare with it
            self.state0 = state
        return state

    def pool_at(self, g: int):
        if self.made is not None and self.made[0] == g:
            return self.made[2]()
        if g == 0:
            return mixing.initial_pool(self.plan, self.x0)
        if not self.pools.has(g):
            raise self.pools.missing(g)
        return self.pools.load(g)

    def _keep(self, g: int):
        """``step``'s keep hook for generation ``g``: each sub-step through ``load_or``."""
        stores = {"pool": self.pools, "model": self.models, "metrics": self.measured}

        def keep(name, compute):
            if name == "model" and not self.models.has(g):
                logging.info("seed %d generation %d: fitting", self.s, g)
            return load_or(stores[name], g, compute)

        return keep

    def generation(self, g: int) -> dict:
        """Run (or read back) generation ``g``: its record (metrics and note)."""
        keys = rng.GenerationKeys.of(self.seed_key, g)
        if g == 0:
            pool0, fitted0, record = step.first(
                self.ops, self.plan, keys, self.x0, lambda d0: self.template, self._keep(g)
            )
            self.state0 = fitted0[0]
            self.made = (0, lambda: fitted0, lambda: pool0)
            return record
        prev = step.Previous(
            lambda: self.state_at(g - 1),
            lambda: self.pool_at(g - 1),
            lambda: self.state_at(0),
            self.x0,
        )
        pool, fitted, record = step.generation(self.ops, self.plan, keys, g, prev, self._keep(g))
        self.made = (g, fitted, pool)
        return record


def _note_line(g: int, s: int, note: dict) -> str:
    return json.dumps({"generation": g, "seed": s, **note}, ensure_ascii=False) + "\n"


def run_host(fam: HostFamily, cfg, wd: Workdir, is_main: bool = True) -> None:
    """Run (or resume) a host family in ``wd`` (``run`` calls it after the workdir checks)."""
    G, S = cfg.num_generations, cfg.num_seeds
    wd.arrays.mkdir(parents=True, exist_ok=True)
    with (
        jax.default_matmul_precision(cfg.matmul_precision),
        metrics_lib.Recorder(wd.path, cfg, enabled=is_main) as writer,
    ):
        truth = fam.reference(cfg, wd.path, _once(wd))
        if is_main:
            fetch.write_record(wd.data_source)
        keys_S = rng.seed_keys(cfg.seed, S)
        x0_S = [
            jnp.asarray(fam.original_data(rng.GenerationKeys.of(k, 0).sample, truth, cfg))
            for k in keys_S
        ]
        plan = mixing.plan_for(cfg, fam, rows=x0_S[0].shape[0])
        ops = host_ops(fam, cfg, truth)
        legacy = wd.format_version() == 1
        seeds: list[_HostSeed] = []
        try:
            for s in range(S):
                seeds.append(_HostSeed(fam, cfg, plan, ops, s, keys_S[s], x0_S[s], wd, legacy))
            last = writer.store.progress()["per_seed"] - 1
            if last >= G:
                raise CheckpointError(
                    f"{wd.metrics_store} holds generation {last} but num_generations={G}"
                )
            while last >= 0 and not all(seed.readable(last) for seed in seeds):
                last -= 1
            writer.resume(last if last >= 0 else None)
            notes = None
            if fam.notes:
                notes = metrics_lib.MetricsWriter(wd.output(fam.notes), is_main)
                notes.truncate(last if last >= 0 else None)
            if last >= 0:
                logging.info("resuming %s after generation %d", wd.path, last)
            progress = metrics_lib.Progress(
                G - 1, max(last, 0), cfg.log_every_seconds, f"{fam.name} "
            )
            for g in range(last + 1, G):
                records = [seed.generation(g) for seed in seeds]
                for seed in seeds:
                    seed.wait()  # every seed's checkpoint is on disk before the generation is recorded
                if notes is not None:
                    notes.append([_note_line(g, s, r["note"]) for s, r in enumerate(records)])
                names = sorted(records[0]["metrics"])
                m_1xS = {
                    k: np.asarray([[r["metrics"][k] for r in records]], np.float32) for k in names
                }
                write_or_raise(writer, [g], m_1xS)
                progress.update(g, force=True)
        finally:
            for seed in seeds:
                seed.close()
    if is_main and fam.finish is not None:
        fam.finish(cfg, wd.path)


def _once(wd: Workdir):
    """``family.Once`` over ``wd``: each name is one checkpoint (step 0), made once."""

    def once(name: str, template, compute):
        with Checkpointer(wd.once(name), max_to_keep=1, async_save=False) as ckpt:
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
