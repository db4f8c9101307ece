"""The analysis API: open a workdir, read its metrics, restore and sample any kept generation.

    run = collapse_jax.open_run("/tmp/gmm_cpu")
    run.metrics["l2_to_gmm0"]            # array [G, S]: generation x seed (plus trailing axes)
    run.frame()                          # long-form pandas.DataFrame: generation, seed, metric, value
    run.saved_generations                # checkpoints on disk: checkpoint.keep_generations + latest
    state = run.model(100, seed=3)       # the Carry (model, pool, data0, model0) of seed 3
    states = run.model(100, seeds=[3, 5])  # the same with a leading seed axis (all: no seed)
    x = run.sample(100, 500, seed=3, key=jax.random.key(0))   # the family's own sampler
    run.export(2, seed=0, directory="/tmp/opt_gen2")  # a host family's export (the LM: HF format)

One keyword per concept, as ``metrics.read_metrics``: ``seed`` is one seed index (the result has
no seed axis), ``seeds`` a list of them (a leading seed axis in that order). Models are restored with the abstract tree the config implies
(``jax.eval_shape`` of the chain's first step, as ``chain.run`` does on resume; a host family's
``open_saved`` template), onto one CPU device by default whatever devices wrote them. Nothing in
the workdir is written or deleted.
"""

from functools import cached_property
from typing import Any

import jax
import ml_collections
import numpy as np

from collapse_jax import experiments
from collapse_jax import family as family_lib
from collapse_jax.chain import checks, step
from collapse_jax.chain.workdir import Workdir
from collapse_jax.checkpoint import Checkpointer
from collapse_jax.errors import CheckpointError, ConfigError


def _on(abstract, device):
    """``abstract`` with every leaf placed on ``device``."""
    put = jax.sharding.SingleDeviceSharding(device)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=put), abstract)


def _listed(values) -> str:
    values = list(values)
    return ", ".join(map(str, values)) if values else "none"


class Metrics(dict):
    """``metric -> array [G, S, ...]``; an unknown name raises a KeyError naming the recorded."""

    def __missing__(self, name):
        raise KeyError(
            f"metric {name!r} is not recorded; recorded metrics: {_listed(sorted(self))}"
        )


class RunView:
    """A finished or running workdir, read-only: config, metrics, and its kept generations."""

    def __init__(self, workdir, device=None):
        self.workdir = Workdir(workdir)
        # The metrics' storage is load_run's business; config.json is the workdir's mark.
        if not self.workdir.config.is_file():
            raise FileNotFoundError(
                f"{self.workdir.config}: missing; is this a launch.run workdir?"
            )
        from collapse_jax.metrics import load_run

        loaded = load_run(self.workdir.path)
        # Rebuilt from config.json, so the family functions accept it as they accept the original
        # (fields added to the code since the run started take their defaults, as on resume).
        self.config = ml_collections.ConfigDict(self.workdir.saved_config())
        self.generations = np.asarray(loaded.generations)  # rows of metrics, in order
        self.metrics: dict[str, np.ndarray] = Metrics(loaded.metrics)  # metric -> [G, S, ...]
        self.num_seeds = int(self.config.num_seeds)
        self.device = device if device is not None else jax.devices("cpu")[0]
        self._jitted: dict = {}

    def __repr__(self):
        return (
            f"RunView({str(self.workdir.path)!r}, experiment={self.config.experiment!r}, "
            f"generations={len(self.generations)}, seeds={self.num_seeds}, "
            f"saved={self.saved_generations})"
        )

    @property
    def is_host(self) -> bool:
        """A run of the chain's host path: one checkpoint directory per seed."""
        return isinstance(self.family, family_lib.HostFamily)

    @cached_property
    def family(self) -> family_lib.AnyFamily:
        return experiments.family(self.config.experiment)

    def frame(self):
        """The ``[G, S]`` metrics as a long-form ``pandas.DataFrame`` (generation, seed, metric,
        value); metrics with more axes (e.g. GMM weights ``[G, S, K]``) stay in ``metrics``."""
        import pandas as pd

        parts = []
        for name, v in self.metrics.items():
            if v.ndim != 2:
                continue
            G, S = v.shape
            parts.append(
                pd.DataFrame(
                    {
                        "generation": np.repeat(self.generations, S),
                        "seed": np.tile(np.arange(S), G),
                        "metric": name,
                        "value": np.asarray(v).reshape(-1),
                    }
                )
            )
        if not parts:
            return pd.DataFrame(columns=["generation", "seed", "metric", "value"])
        return pd.concat(parts, ignore_index=True)

    # -- checkpoints --------------------------------------------------------------------------

    @property
    def saved_generations(self) -> list[int]:
        """Generations with a checkpoint (of a host family: with the model of every seed)."""
        if not self.workdir.checkpoints.is_dir():
            return []
        if self.is_host:
            steps = None
            for s in range(self.num_seeds):
                with Checkpointer(self.workdir.seed_model(s), read_only=True) as c:
                    got = set(c.all_steps())
                steps = got if steps is None else steps & got
            return sorted(steps or ())
        with Checkpointer(self.workdir.checkpoints, read_only=True) as c:
            return sorted(c.all_steps())

    def _check_generation(self, generation: int) -> None:
        saved = self.saved_generations
        if generation not in saved:
            raise CheckpointError(
                f"{self.workdir.path}: generation {generation} is not saved; saved generations: "
                f"{_listed(saved)} (checkpoint.keep_generations="
                f"{list(self.config.checkpoint.keep_generations)} and the latest "
                f"{self.config.checkpoint.max_to_keep})"
            )

    def _seed_index(self, seed=None, seeds=None) -> tuple[list[int], bool]:
        """``(indices, squeeze)``: one ``seed`` (no seed axis), a list of ``seeds``, or every seed."""
        if seed is not None and seeds is not None:
            raise TypeError("pass seed (one index) or seeds (a list of them), not both")
        if seeds is not None and not isinstance(seeds, list | tuple | np.ndarray):
            raise TypeError(f"seeds: expected a list of seed indices, got {seeds!r} (one: seed=)")
        if seed is not None and not isinstance(seed, int | np.integer):
            raise TypeError(f"seed: expected one seed index, got {seed!r} (several: seeds=)")
        squeeze = seed is not None
        idx = [seed] if squeeze else list(range(self.num_seeds)) if seeds is None else list(seeds)
        bad = [s for s in idx if not (isinstance(s, int | np.integer) and 0 <= s < self.num_seeds)]
        if bad or not idx:
            raise CheckpointError(
                f"{self.workdir.path}: seed {bad[0] if bad else idx!r} does not exist; seeds are "
                f"0 .. {self.num_seeds - 1}"
            )
        return [int(s) for s in idx], squeeze

    def _require_x64(self) -> None:
        if self.config.enable_x64 != jax.config.jax_enable_x64:
            raise ConfigError(
                f"enable_x64: {self.workdir.path} ran with enable_x64={self.config.enable_x64}; "
                f"call jax.config.update('jax_enable_x64', {self.config.enable_x64}) before "
                "open_run"
            )

    @cached_property
    def _abstract_carry(self):
        """The chain's Carry ``[S, ...]`` as shapes: ``eval_shape`` of its first step."""
        self._require_x64()
        fam, cfg = self.family, self.config
        fam.validate(cfg)
        program = step.build(cfg, fam, None)
        truth, keys_S = checks.inputs(cfg, fam, None)
        return _on(jax.eval_shape(program.first, keys_S, truth)[0], self.device)

    @cached_property
    def saved_models(self) -> family_lib.SavedModels:
        """A host family's ``open_saved`` of this run (template, sample, export)."""
        fam = self.family
        if not isinstance(fam, family_lib.HostFamily) or fam.open_saved is None:
            raise ConfigError(
                f"model: {self.config.experiment} runs keep no models to restore (metrics only)"
            )
        return fam.open_saved(self.config, self.workdir.path)

    def _restore(self, directory, generation: int, template):
        with Checkpointer(directory, read_only=True) as c:
            state, meta = c.restore(generation, template)
        if meta.get("generation") != generation:
            raise CheckpointError(
                f"{directory / str(generation)}: metadata names generation {meta.get('generation')}"
            )
        return state

    def model(self, generation: int, seed: int | None = None, seeds=None) -> Any:
        """Generation ``generation``'s state: for a vmapped family the chain's ``Carry``
        (``model``, ``pool``, ``data0``, ``model0``), for a host family its fitted state (the LM:
        the OPT parameters): of one ``seed``, of a list of ``seeds`` (leading axis), or of every
        seed (leading axis S)."""
        generation = int(generation)
        idx, squeeze = self._seed_index(seed, seeds)
        self._check_generation(generation)
        if self.is_host:
            template = _on(self.saved_models.template, self.device)
            trees = [self._restore(self.workdir.seed_model(s), generation, template) for s in idx]
            return trees[0] if squeeze else jax.tree.map(lambda *x: np.stack(x), *trees)
        if not isinstance(self.family, family_lib.Family):
            raise ConfigError(
                f"model: {self.config.experiment} runs keep no chain checkpoints to restore "
                "(metrics only)"
            )
        carry = self._restore(self.workdir.checkpoints, generation, self._abstract_carry)
        pick = idx[0] if squeeze else np.asarray(idx)
        return jax.tree.map(lambda x: x[pick], carry)

    def sample(self, generation: int, n: int, seed: int, key: jax.Array, lineage: int = 0):
        """``n`` draws from seed ``seed``'s model of ``generation`` by the family's sampler
        (points for Gaussian/GMM, categories for discrete, uint8 images for the VAE; for the LM
        the chain's continuations ``new_NxT`` of ``n`` original training blocks chosen by
        ``key``); of lineage ``lineage`` where the run has several (``mixing.num_lineages``)."""
        (seed,), _ = self._seed_index(seed)
        n = int(n)
        mix = self.config.get("mixing") or {}
        lineages = int(mix.get("num_lineages", 1))
        if not (isinstance(lineage, int) and 0 <= lineage < lineages):
            raise ConfigError(f"lineage: expected an integer in [0, {lineages}), got {lineage!r}")
        if self.is_host:
            state = self.model(generation, seed)
            with jax.default_matmul_precision(self.config.matmul_precision):
                return self.saved_models.sample(key, state, n)
        model = self.model(generation, seed).model
        if lineages > 1:
            model = jax.tree.map(lambda x: x[lineage], model)
        if n not in self._jitted:
            fam, cfg = self.family, self.config
            self._jitted[n] = jax.jit(lambda k, state: fam.sample(k, state, n, cfg))
        with jax.default_matmul_precision(self.config.matmul_precision):
            return self._jitted[n](jax.device_put(key, self.device), model)

    def export(self, generation: int, seed: int, directory):
        """Write seed ``seed``'s model of ``generation`` in the format the family exports to
        (the LM: a Hugging Face directory that ``transformers`` loads); returns its path."""
        return self.saved_models.export(self.model(generation, seed), directory)


def open_run(workdir, device=None) -> RunView:
    """Open a ``launch.run`` workdir for analysis (read-only); ``device`` defaults to the CPU."""
    return RunView(workdir, device)
