"""One generation, and the one compiled program that runs a span of generations.

``first`` and ``generation`` are the generation function of both paths: generation 0 fits D_0;
generation g >= 1 draws the model's samples (curated when the plan says so), the fresh data of
regime ``fresh``, makes the next pool (``mixing.next_pool``) and its training data, fits and
measures. A path passes the family's callables with its config bound (``Ops``) and a ``keep``
hook through which every sub-step (``"pool"``, ``"model"``, ``"metrics"``) goes: the vmapped
path computes each; the host path loads it from its checkpoint or computes and saves it
(``host.py``). A regime or a curation rule is therefore written once, in ``mixing`` and here.

``build`` compiles the vmapped path: ``first`` (generation 0 of every seed) and ``span``
(generations ``start .. start + n - 1`` of every seed in one XLA call, ``start`` and ``n``
traced). ``chain.run``, ``chain.simulate``, ``simulate_per_seed``, the tests and the benchmarks
all call these two programs, over the span ends ``Program.ends`` gives.
"""

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np

from collapse_jax import experiments, mixing, rng, sharding
from collapse_jax.family import Data, Origin, full
from collapse_jax.sharding import SEEDS

# A span keeps (does not donate) a carry up to this size, so ``run`` can checkpoint it on a
# background thread while the next span computes; a larger carry (a pool of images) is donated,
# as memory matters more there, and saved between spans.
DONATE_ABOVE_BYTES = 1 << 30


class Carry(NamedTuple):
    """One seed's state between generations."""

    model: Any  # the current fit p_theta(g)
    pool: Data  # D_g (for the accumulating regimes, D_0 .. D_g with empty slots after)
    data0: jax.Array  # D_0
    model0: Any  # the generation-0 fit, the reference of distance metrics


class Ops(NamedTuple):
    """A family's callables with its config (and the truth) bound: what a generation calls."""

    sample: Callable  # (key, state, n) -> x_N
    fit: Callable  # (key, state, data) -> fitted (what ``keep("model", ...)`` holds)
    state: Callable  # fitted -> state
    metrics: Callable  # (keys, fitted, data, origin) -> what ``keep("metrics", ...)`` holds
    log_prob: Callable | None  # (state, x) -> logp_N: curation scores initial and current
    truth_log_prob: Callable | None  # x -> logp_N: curation score oracle
    fresh_data: Callable | None  # (key, n, generation) -> x_n: regime fresh
    truth: Any


class Previous(NamedTuple):
    """What generation g starts from. Thunks, so that the host path restores only what a
    generation still has to compute."""

    model: Callable[[], Any]  # generation g - 1's state
    pool: Callable[[], Data]  # generation g - 1's pool
    model0: Callable[[], Any]  # generation 0's state
    data0: Any  # D_0


def compute(name: str, fn: Callable[[], Any]) -> Any:
    """The ``keep`` hook of a path that saves nothing between sub-steps."""
    del name
    return fn()


def model_samples(ops: Ops, plan: mixing.Plan, keys: rng.GenerationKeys, prev: Previous):
    """The generation's ``plan.num_model`` model samples, curated when ``plan.curates``
    (``oversample`` times as many candidates, scored, kept by ``mixing.curate``)."""
    model = prev.model()
    if not plan.curates:
        return ops.sample(keys.sample, model, plan.num_model)
    cand_x = ops.sample(keys.sample, model, plan.num_model * plan.oversample)
    if plan.score == "oracle":
        scores = ops.truth_log_prob(cand_x)
    else:
        scores = ops.log_prob(prev.model0() if plan.score == "initial" else model, cand_x)
    return mixing.curate(keys.curate, plan, cand_x, scores)


def next_pool(ops: Ops, plan: mixing.Plan, keys: rng.GenerationKeys, generation, prev: Previous):
    """Generation ``generation``'s pool: model samples, kept, original and fresh data."""
    return pool_of(ops, plan, keys, generation, prev, model_samples(ops, plan, keys, prev))


def pool_of(ops: Ops, plan: mixing.Plan, keys, generation, prev: Previous, model_x) -> Data:
    """``next_pool`` around the model samples ``model_x`` (all lineages' under ``lineages``)."""
    fresh_x = None
    if plan.fresh:
        fresh_x = ops.fresh_data(keys.fresh, plan.num_original, generation)
    return mixing.next_pool(keys.mix, plan, prev.pool(), model_x, prev.data0, generation, fresh_x)


def first(ops: Ops, plan: mixing.Plan, keys, x0, init: Callable[[Data], Any], keep=compute):
    """Generation 0: ``(pool, fitted, measured)`` of the fit of D_0 (weight 1) from ``init``."""
    data0 = full(x0)
    fitted = keep("model", lambda: ops.fit(keys.fit, init(data0), data0))
    pool = mixing.initial_pool(plan, x0)
    origin = Origin(ops.truth, x0, ops.state(fitted))
    measured = keep("metrics", lambda: ops.metrics(keys, fitted, data0, origin))
    return pool, fitted, measured


def generation(
    ops: Ops,
    plan: mixing.Plan,
    keys: rng.GenerationKeys,
    g,
    prev: Previous,
    keep=compute,
    detector_key=None,
):
    """Generation ``g >= 1``: thunks ``(pool, fitted)`` and the measured metrics.

    Each sub-step goes through ``keep(name, compute)``; one that ``keep`` returns without
    computing (the host path: saved before an interruption) computes none of those before it.
    ``detector_key``: the detector's scores under provenance detector (``rng.detector_key``).
    """
    once = functools.cache  # each thunk computes (or keeps) its sub-step at most once
    pool = once(lambda: keep("pool", lambda: next_pool(ops, plan, keys, g, prev)))
    data = once(lambda: mixing.training_data(keys.train, plan, pool(), detector_key))
    fitted = once(lambda: keep("model", lambda: ops.fit(keys.fit, prev.model(), data())))

    def measure():
        # This order (the fit, then the reference state) is the recorded runs' program: the
        # same operations traced in another order can compile to other float roundings.
        fit = fitted()
        origin = Origin(ops.truth, prev.data0, prev.model0())
        return ops.metrics(keys, fit, data(), origin)

    return pool, fitted, keep("metrics", measure)


# ---------------------------------------------------------------------------------------------
# The vmapped path: a ``Family``'s callables, one seed at a time, vmapped over seeds.


def family_ops(fam, cfg, truth) -> Ops:
    """``Ops`` of a ``Family`` (``family.Family``): fit returns the state, metrics a dict."""

    def fresh_data(key, n, generation):
        if fam.fresh_data is not None:
            return fam.fresh_data(key, truth, n, generation, cfg)
        # A vmapped family's D_0 is a draw from the truth: a key of its own draws new samples.
        return fam.original_data(key, truth, cfg)[:n]

    return Ops(
        sample=lambda key, state, n: fam.sample(key, state, n, cfg),
        fit=lambda key, state, data: fam.fit(key, state, data, cfg),
        state=lambda fitted: fitted,
        metrics=lambda keys, model, data, origin: fam.metrics(model, data, origin, cfg),
        log_prob=fam.log_prob and (lambda state, x: fam.log_prob(state, x, cfg)),
        truth_log_prob=fam.truth_log_prob and (lambda x: fam.truth_log_prob(truth, x, cfg)),
        fresh_data=fresh_data,
        truth=truth,
    )


def first_generation(fam, plan: mixing.Plan, cfg, seed_key, truth) -> tuple[Carry, dict]:
    """Generation 0 of one seed: ``(carry, metrics)``."""
    ops = family_ops(fam, cfg, truth)
    keys = rng.FirstKeys.of(seed_key)
    x0 = fam.original_data(keys.data, truth, cfg)
    pool, model, metrics = first(ops, plan, keys, x0, lambda d0: fam.init(keys.init, cfg, d0))
    return Carry(model, pool, x0, model), metrics


def next_generation(fam, plan: mixing.Plan, cfg, seed_key, truth, carry: Carry, g):
    """Generation ``g >= 1`` of one seed (``g`` traceable): ``(carry, metrics)``."""
    ops = family_ops(fam, cfg, truth)
    keys = rng.GenerationKeys.of(seed_key, g)
    prev = Previous(lambda: carry.model, lambda: carry.pool, lambda: carry.model0, carry.data0)
    detector = detector_key(plan, seed_key, g)
    pool, model, metrics = generation(ops, plan, keys, g, prev, detector_key=detector)
    return carry._replace(model=model(), pool=pool()), metrics


def detector_key(plan: mixing.Plan, seed_key, g):
    """``rng.detector_key`` of provenance detector; None (no key drawn) under unknown provenance,
    decided at trace time so those programs are unchanged."""
    if plan.provenance != "detector":
        return None
    return rng.detector_key(seed_key, g, plan.accumulates)


def over_seeds(fn, cfg):
    """``fn`` of one seed's arguments, applied along their leading seed axis: ``jax.vmap``, or with
    ``cfg.seed_batch`` = k > 0, ``jax.lax.map`` over batches of k vmapped seeds (a remainder batch
    last). A seed's values do not depend on the others, so only the batching changes; it bounds
    the buffers of the program (an accelerator's memory at many seeds, and on a CPU the temporary
    buffers XLA maps afresh on every call)."""
    k = cfg.seed_batch
    if not k:
        return jax.vmap(fn)
    return lambda *xs: jax.lax.map(lambda a: fn(*a), xs, batch_size=k)


def carry_bytes(carry_S) -> int:
    """Bytes of a carry (arrays or their shapes)."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(carry_S))


def chunk_ends(start: int, num_generations: int, every: int, keep=()) -> list[int]:
    """Last generation of each span after ``start``: multiples of ``every``, the generations in
    ``keep`` and the final one. A fixed set given the config, so a resumed run makes exactly the
    calls of an uninterrupted one."""
    ends = set(range((start // every + 1) * every, num_generations, every))
    ends |= {g for g in keep if g < num_generations}
    ends.add(num_generations - 1)
    return sorted(e for e in ends if e > start)


@dataclasses.dataclass(frozen=True)
class Program:
    """The compiled generations of one config (``build``)."""

    first: Any  # jitted (keys_S, truth) -> (carry_S, metrics_S)
    keeping: Any  # jitted span that leaves its input carry valid
    donating: Any  # jitted span that reuses the input carry's buffers for its output
    plan: mixing.Plan
    length: int  # the most generations one span call runs: rows of its metrics
    cfg: Any
    mesh: Any = None

    def begin(self, keys_S, truth):
        """Generation 0 of every seed: ``(carry_S, metrics_S)``. Without a mesh the carry is
        committed to the first local device, where a restored one lands
        (``sharding.with_sharding``): a chain started here and one resumed call the same span
        program (an uncommitted carry lowers to another one)."""
        carry_S, m_S = self.first(keys_S, truth)
        if self.mesh is None:
            carry_S = jax.device_put(carry_S, jax.local_devices()[0])
        return carry_S, m_S

    def donates(self, carry_S) -> bool:
        """Whether ``span`` reuses ``carry_S``'s buffers (a carry over ``DONATE_ABOVE_BYTES``)."""
        return carry_bytes(carry_S) > DONATE_ABOVE_BYTES

    def span_program(self, carry_S):
        """The jitted span ``span`` calls for ``carry_S`` (for ``.lower``)."""
        return self.donating if self.donates(carry_S) else self.keeping

    def span(self, keys_S, truth, carry_S, start, n):
        """Generations ``start .. start + n - 1`` (``n <= length``): ``(carry_S, metrics)``, the
        metrics of generation ``start + i`` in row ``i`` (``[length, S, ...]``; rows from ``n``
        on are padding)."""
        return self.span_program(carry_S)(keys_S, truth, carry_S, start, n)

    def ends(self, last: int) -> list[int]:
        """The span ends after generation ``last`` (``chunk_ends`` of the config)."""
        ck = self.cfg.checkpoint
        return chunk_ends(last, self.cfg.num_generations, ck.every_generations, ck.keep_generations)

    def spans(self, keys_S, truth, carry_S, last: int = 0) -> Iterator[tuple[np.ndarray, Any, Any]]:
        """Every generation after ``last``, one ``span`` call per end of ``ends(last)``: yields
        ``(generations, carry_S, metrics)``, the metrics still on the device (the first
        ``len(generations)`` rows are theirs)."""
        for end in self.ends(last):
            n = end - last
            carry_S, m = self.span(keys_S, truth, carry_S, np.int32(last + 1), np.int32(n))
            yield np.arange(last + 1, end + 1, dtype=np.int32), carry_S, m
            last = end


def build(cfg, fam=None, mesh=None) -> Program:
    """Jit ``first`` and the span of ``cfg`` (shapes are static given the config).

    With a ``"seeds"`` mesh (``sharding.seed_mesh``) the seed axis of keys, carry and metrics is
    split over its devices and the truth, ``start`` and ``n`` are replicated.
    """
    fam = fam or experiments.family(cfg.experiment)
    plan = mixing.plan_for(cfg, fam)
    length = max(1, min(cfg.checkpoint.every_generations, cfg.num_generations - 1))
    first_gen, next_gen = first_generation, next_generation
    if plan.num_lineages > 1:  # decided at trace time: one lineage is the program it always was
        from collapse_jax.chain import lineages  # (it builds on this module)

        first_gen, next_gen = lineages.first_generation, lineages.next_generation

    def first(keys_S, truth):
        return over_seeds(lambda key: first_gen(fam, plan, cfg, key, truth), cfg)(keys_S)

    def span(keys_S, truth, carry_S, start, n):
        def step_S(keys_S, truth, carry_S, generation):
            def one_seed(key, carry):
                return next_gen(fam, plan, cfg, key, truth, carry, generation)

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

    if mesh is None:
        jitted = functools.partial(jax.jit, span)
        return Program(jax.jit(first), jitted(), jitted(donate_argnums=(2,)), plan, length, cfg)
    per_seed, rep = sharding.chain_shardings(mesh)
    per_seed_rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, SEEDS))
    jitted = functools.partial(
        jax.jit,
        span,
        in_shardings=(per_seed, rep, per_seed, rep, rep),
        out_shardings=(per_seed, per_seed_rows),
    )
    first_jit = jax.jit(first, in_shardings=(per_seed, rep), out_shardings=per_seed)
    return Program(first_jit, jitted(), jitted(donate_argnums=(2,)), plan, length, cfg, mesh)
