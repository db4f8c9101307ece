"""All key derivation, and the one table of key purposes.

A seed's stream depends only on (cfg.seed, seed index, generation): seed ``s`` sees the same
numbers whatever the number of seeds in the run, and a resumed run needs no stored keys.

    seed key        fold_in(key(cfg.seed), s)                               ``seed_keys``
    generation key  fold_in(seed key, g)                                    ``generation_key``

Generation g >= 1 splits its key four ways (``GenerationKeys``): model samples, the pool's mixing,
the training-data draw and the fit. Every other purpose is ``fold_in(generation key, PURPOSE)``,
so a new purpose changes no number drawn from the split. Generation 0 of the vmapped path splits
three ways (``FirstKeys``: D_0, ``init``, fit); the host path splits generation 0 four ways like
every other generation (``GenerationKeys``: D_0 from the sample key, the fit from the fit key).
Each path's recorded runs hold the numbers of its own split, so one split for both would change
every number of one of the two.

The table below holds every constant folded into a key, grouped by what it is folded into.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Folded into a generation key.
FRESH = 0x46524553  # "FRES": new original draws (regime fresh)
CURATE = 0x43555241  # "CURA": curation's resampling
METRICS = 0x4D455452  # "METR": a host family's metrics (the LM's example continuation)
LINEAGE = 0x4C494E45  # "LINE": lineage l's own keys (``lineage_keys``), then fold_in(l)
DETECT = 0x44455445  # "DETE": the detector's scores of the pool's slots (``detector_key``)
# Folded into a key a family was handed.
DECODE = 0x44454344  # "DECD": the LM's sample key -> its decoder's key (the prompts use the key)
SAMPLE = 0x53414D50  # "SAMP": a decoder's key -> its sampling draws (beam search draws none)
SCRATCH_INIT = 0x494E4954  # "INIT": the LM's fit key -> a fresh model's init (lm.fit_from=scratch)
# Folded into key(cfg.seed): run-level streams shared by every seed, outside the seed indices.
BASE = 0xFFFFFFFF  # the LM's scratch base model (init and pre-training)
FRESH_ORDER = 0xFFFFFFFE  # the order in which the LM's fresh blocks are used
CLASSIFIER = 0x6D6E6973  # "mnis": the digit classifier of the VAE and flow families (FID features)
# Folded into a family's fixed evaluation key (independent of cfg.seed, the same in every run).
REAL_SET = 0x5245414C  # "REAL": the flow family's choice of real images for precision/recall
PROBE = 0x50524F42  # "PROB": the flow family's Hutchinson probe of the ODE likelihood


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Typed keys ``keys_S``: ``fold_in(key(seed), s)`` for s in [0, num_seeds)."""
    base = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(num_seeds, dtype=jnp.uint32))


def run_key(seed: int, stream: int) -> jax.Array:
    """The key of a run-level ``stream`` (``BASE``, ``FRESH_ORDER``, ``CLASSIFIER``)."""
    return jax.random.fold_in(jax.random.key(seed), stream)


def generation_key(seed_key: jax.Array, generation) -> jax.Array:
    """The key of one seed at one generation (traceable in ``generation``)."""
    return jax.random.fold_in(seed_key, generation)


class GenerationKeys(NamedTuple):
    """One seed's keys at one generation: the four-way split, and the purposes folded in."""

    key: jax.Array  # the generation key
    sample: jax.Array
    mix: jax.Array
    train: jax.Array
    fit: jax.Array

    @classmethod
    def of(cls, seed_key: jax.Array, generation) -> "GenerationKeys":
        key = generation_key(seed_key, generation)
        return cls(key, *jax.random.split(key, 4))

    # Properties, not fields: a key is derived only where a generation uses it.
    @property
    def fresh(self) -> jax.Array:
        return jax.random.fold_in(self.key, FRESH)

    @property
    def curate(self) -> jax.Array:
        return jax.random.fold_in(self.key, CURATE)

    @property
    def metrics(self) -> jax.Array:
        return jax.random.fold_in(self.key, METRICS)


def lineage_keys(keys: GenerationKeys, num_lineages: int) -> GenerationKeys:
    """Each lineage's ``GenerationKeys`` (leading axis L): the split of
    ``fold_in(fold_in(generation key, LINEAGE), l)``. A lineage samples, curates, draws its training
    rows and fits with its own; the shared pool's mixing and fresh draws use the seed's ``keys``."""
    base = jax.random.fold_in(keys.key, LINEAGE)
    return jax.vmap(lambda l: GenerationKeys.of(base, l))(
        jnp.arange(num_lineages, dtype=jnp.uint32)
    )


def detector_key(seed_key: jax.Array, generation, accumulates: bool) -> jax.Array:
    """The key of the detector's scores of generation ``generation``'s pool (provenance
    detector), one for the seed's lineages. A replaced pool holds new rows every generation:
    ``fold_in(generation key, DETECT)``. An accumulated pool keeps each row in its slot, and a
    detector scores a row the same each time it sees it: the seed's generation-0 key, so a slot's
    score is drawn once for the chain."""
    return jax.random.fold_in(generation_key(seed_key, 0 if accumulates else generation), DETECT)


class FirstKeys(NamedTuple):
    """Generation 0 of the vmapped path: D_0, the family's ``init`` and the fit."""

    data: jax.Array
    init: jax.Array
    fit: jax.Array

    @classmethod
    def of(cls, seed_key: jax.Array) -> "FirstKeys":
        return cls(*jax.random.split(generation_key(seed_key, 0), 3))
