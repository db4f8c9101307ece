"""The interface a model family implements. This module imports no family.

A family is pure and single-seed; ``chain.py`` adds the seed axis with ``jax.vmap`` and the
generation axis with ``lax.scan`` (``Family``), or loops over both in Python for a family that
cannot be vmapped (``HostFamily``: the LM). Shapes must be static given ``cfg``. The families live
in ``collapse_jax/families/``; ``collapse_jax.experiments`` is the one table naming them.

Each callable's signature is a ``Protocol`` below, so a type checker reads the interface from the
types rather than from this docstring. ``Origin`` is what generation ``g`` is compared against.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import jax

from collapse_jax.mixing import Data

Key = jax.Array
Config = Any  # ml_collections.ConfigDict: the resolved, locked run config
Truth = Any  # reference(cfg): true parameters or a real dataset, shared by every seed
State = Any  # a pytree of arrays: one seed's fitted model
Samples = Any  # x_N...: an array (or pytree of arrays) with a leading sample axis


class Origin(NamedTuple):
    """What generation ``g`` is compared against."""

    truth: Truth  # family.reference(cfg), shared
    data0: Samples  # x of D_0 for this seed
    state0: State  # the generation-0 fit for this seed


class Validate(Protocol):
    def __call__(self, cfg: Config) -> None:
        """Raise ``ConfigError`` naming any bad ``cfg.<family>`` field."""


class Reference(Protocol):
    def __call__(self, cfg: Config) -> Truth:
        """Host-side truth shared by all seeds; broadcast, never copied per seed."""


class OriginalData(Protocol):
    def __call__(self, key: Key, truth: Truth, cfg: Config) -> Samples:
        """D_0 for one seed: ``cfg.samples_per_generation`` samples."""


class Init(Protocol):
    def __call__(self, key: Key, cfg: Config, data0: Data) -> State:
        """The state before generation 0's fit (also the shape template of a restore)."""


class Fit(Protocol):
    def __call__(self, key: Key, state: State, data: Data, cfg: Config) -> State:
        """The functional approximation F. ``state`` is the previous generation's model (a family
        may start fresh, or use it as a sampler, e.g. the VAE's fresh-per-batch samples)."""


class Sample(Protocol):
    def __call__(self, key: Key, state: State, n: int, cfg: Config) -> Samples:
        """``n`` samples from the fitted model (``n`` static)."""


class Metrics(Protocol):
    def __call__(self, state: State, data: Data, origin: Origin, cfg: Config) -> dict[str, Any]:
        """Scalar metrics of one seed at one generation."""


class FreshData(Protocol):
    def __call__(
        self, key: Key, truth: Truth, n: int, generation: jax.Array, cfg: Config
    ) -> Samples:
        """``n`` new draws of the original distribution for regime ``fresh`` (``generation`` is
        traced). Default: the first ``n`` of ``original_data`` with a key of its own. A family
        with a finite real pool (the VAE) returns real examples not used before."""


class LogProb(Protocol):
    def __call__(self, state: State, x: Samples, cfg: Config) -> jax.Array:
        """``logp_N``: each sample's log-likelihood under a fitted model (curation scores
        ``current`` and ``initial``)."""


class TruthLogProb(Protocol):
    def __call__(self, truth: Truth, x: Samples, cfg: Config) -> jax.Array:
        """``logp_N`` under the truth (curation score ``oracle``)."""


class RowsPerGeneration(Protocol):
    def __call__(self, cfg: Config) -> int:
        """Pool rows one generation's dataset takes, when a family's samples are records standing
        for many samples (the statistics samplers, ``sufficient.py``)."""


class Driver(Protocol):
    def __call__(self, cfg: Config, workdir: Any) -> None:
        """Run (or resume) a whole experiment in ``workdir``."""


@dataclass(frozen=True)
class Family:
    """A family ``chain.py`` runs as ``jit(vmap(scan))`` over seeds and generations.

    The optional pieces serve the regimes and curation of ``mixing.py``; without
    ``rows_per_generation`` a row is a sample and a dataset takes ``cfg.samples_per_generation``.
    """

    name: str
    validate: Validate
    reference: Reference
    original_data: OriginalData
    init: Init
    fit: Fit
    sample: Sample
    metrics: Metrics
    fresh_data: FreshData | None = None
    log_prob: LogProb | None = None
    truth_log_prob: TruthLogProb | None = None
    rows_per_generation: RowsPerGeneration | None = None


@dataclass(frozen=True)
class HostFamily:
    """A family that cannot be vmapped over seeds; ``chain.run`` hands it the workdir."""

    name: str
    validate: Validate
    driver: Driver


AnyFamily = Family | HostFamily
FamilyLoader = Callable[[], AnyFamily]
