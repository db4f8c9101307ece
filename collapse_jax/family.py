"""The interface a model family implements. This module imports no family.

A family is pure and single-seed; ``chain/`` adds the seed axis with ``jax.vmap`` and the
generation axis with a loop inside one XLA call (``Family``), or loops over both in Python for a
family that cannot be vmapped (``HostFamily``: the LM). ``SingleRun`` is an experiment that is one call and
no chain (a single fine-tuning). Shapes must be static given ``cfg`` (``Family`` only). The
families live in ``collapse_jax/families/``; ``collapse_jax.experiments`` is the one table naming
them.

Each callable's signature is a ``Protocol`` below, so a type checker reads the interface from the
types rather than from this docstring. ``Origin`` is what generation ``g`` is compared against.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

Key = jax.Array
Config = Any  # ml_collections.ConfigDict: the resolved, locked run config
Truth = Any  # reference(cfg): true parameters or a real dataset, shared by every seed
State = Any  # a pytree of arrays: one seed's fitted model
Samples = Any  # x_N...: an array (or pytree of arrays) with a leading sample axis


class Data(NamedTuple):
    """A dataset or pool: samples ``x_N...`` and their weights ``weight_N`` (0 for an empty slot,
    else the sample's frequency weight in the fit; ``mixing`` fills them)."""

    x: jax.Array
    weight: jax.Array


def full(x) -> Data:
    """All slots filled, weight 1."""
    return Data(x, jnp.ones(x.shape[:1], jnp.float32))


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


class Location(Protocol):
    def __call__(self, state: State, cfg: Config) -> jax.Array:
        """``loc_P``: where a fit sits (the Gaussian's mean); the lineage spread is the mean
        squared distance between two lineages' locations (``chain/lineages.py``)."""


class RowsPerGeneration(Protocol):
    def __call__(self, cfg: Config) -> int:
        """Pool rows one generation's dataset takes, when a family's samples are records standing
        for many samples (the statistics samplers, ``sufficient.py``)."""


class Once(Protocol):
    def __call__(
        self, name: str, template: State, compute: Callable[[], tuple[State, dict]]
    ) -> State:
        """The state ``compute()`` returns, checkpointed as ``name`` the first time it is made
        and restored (into ``template``'s structure) by every later run of the workdir."""


class HostReference(Protocol):
    def __call__(self, cfg: Config, workdir: Path, once: Once) -> Truth:
        """What every seed shares (a corpus, a base model), built once per run on the host. May
        keep files of its own in ``workdir`` (the LM's tokenizer and ``reference.json``) and
        cache expensive pieces with ``once``."""


class HostOriginalData(Protocol):
    def __call__(self, key: Key, truth: Truth, cfg: Config) -> Samples:
        """D_0 for one seed (its rows set the mixing plan's M)."""


class HostInit(Protocol):
    def __call__(self, truth: Truth, cfg: Config) -> State:
        """The state generation 0 is fitted from; also the template a checkpoint restores into."""


class Fitted(NamedTuple):
    """What a host family's ``fit`` returns."""

    state: State
    metrics: dict[str, Any]  # metrics the fit itself measures (e.g. the kept validation loss)
    record: dict[str, Any]  # JSON kept in the checkpoint's metadata (e.g. the training history)


class HostFit(Protocol):
    def __call__(self, key: Key, state: State, data: Data, truth: Truth, cfg: Config) -> Fitted:
        """F on ``data`` (its 0-weight slots are empty), starting from ``state`` or afresh."""


class HostSample(Protocol):
    def __call__(self, key: Key, state: State, n: int, truth: Truth, cfg: Config) -> Samples:
        """``n`` samples from the fitted model (the LM: continuations of ``n`` original blocks)."""


class HostFreshData(Protocol):
    def __call__(self, key: Key, truth: Truth, n: int, generation: int, cfg: Config) -> Samples:
        """``n`` original examples never used before, for regime ``fresh`` at ``generation``
        (>= 1): disjoint from D_0 and from every other generation's."""


class HostLogProb(Protocol):
    def __call__(self, state: State, x: Samples, truth: Truth, cfg: Config) -> Any:
        """``logp_N``: each sample's log-likelihood under a fitted state (curation scores
        ``current`` and ``initial``; the LM: each block's summed token log-probabilities)."""


class Measured(NamedTuple):
    """What a host family's ``metrics`` returns for one seed at one generation."""

    metrics: dict[str, Any]  # scalars: one value per seed in metrics.jsonl
    per_sample: Any = None  # values per training sample: DIR/arrays/gen_{g}_seed_{s}.npy
    note: dict | None = None  # one JSON line per seed in the family's ``notes`` file


class HostMetrics(Protocol):
    def __call__(self, key: Key, state: State, data: Data, origin: Origin, cfg: Config) -> Measured:
        """Metrics of one seed at one generation (``origin.truth`` is ``reference``'s truth);
        ``key`` serves metrics that sample (the LM's example continuation)."""


class SavedModels(Protocol):
    """A host family's saved generations opened for analysis (``runs.open_run``)."""

    template: State  # the abstract state one seed's model checkpoint restores into

    def sample(self, key: Key, state: State, n: int) -> Samples:
        """``n`` samples of a restored state, as the chain draws the next generation's."""

    def export(self, state: State, directory: Path) -> Path:
        """Write a restored state in the format other tools load (the LM: a Hugging Face dir)."""


class OpenSaved(Protocol):
    def __call__(self, cfg: Config, workdir: Path) -> SavedModels:
        """Read what a run's files hold (the LM: its tokenizer), without building the truth."""


class Finish(Protocol):
    def __call__(self, cfg: Config, workdir: Path) -> None:
        """Files derived from the complete records once the run ends (the LM's examples.md)."""


class RunOnce(Protocol):
    def __call__(self, cfg: Config, workdir: Path) -> Any:
        """Run a whole experiment in ``workdir`` (config.json is written already)."""


@dataclass(frozen=True)
class Family:
    """A family ``chain/`` runs as ``jit(vmap(...))`` over seeds, generations looped inside.

    The optional pieces serve the regimes and curation of ``mixing``; without
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
    location: Location | None = None  # mixing.num_lineages > 1: the lineage spread metric
    outputs: tuple[
        str, ...
    ] = ()  # workdir files besides the run contract's; --overwrite deletes them


@dataclass(frozen=True)
class HostFamily:
    """A family ``chain/`` runs as a Python loop over generations and seeds on the host: the
    same generation function, keys, mixing plan, metrics, checkpoints and resume as ``Family``,
    with each generation's sub-steps checkpointed (``chain/host.py``)."""

    name: str
    validate: Validate
    reference: HostReference
    original_data: HostOriginalData
    init: HostInit
    fit: HostFit
    sample: HostSample
    metrics: HostMetrics
    finish: Finish | None = None
    fresh_data: HostFreshData | None = None  # regime fresh
    log_prob: HostLogProb | None = None  # curation scores initial and current
    notes: str | None = None  # file name in the workdir of Measured.note lines ("examples.jsonl")
    open_saved: OpenSaved | None = None  # runs.open_run's model / sample / export
    outputs: tuple[
        str, ...
    ] = ()  # workdir files besides the run contract's; --overwrite deletes them


@dataclass(frozen=True)
class SingleRun:
    """An experiment that is one call, not a chain: no seeds, generations or mixing."""

    name: str
    validate: Validate
    run: RunOnce
    outputs: tuple[
        str, ...
    ] = ()  # workdir files besides the run contract's; --overwrite deletes them


AnyFamily = Family | HostFamily | SingleRun
