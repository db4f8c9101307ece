"""The analysis API: open a workdir, read its metrics, restore and sample any kept generation.

    run = collapse_jax.open_run("/tmp/gmm_cpu")
    run.metrics["l2_to_gmm0"]            # array [G, S]: generation x seed (plus trailing axes)
    run.frame()                          # long-form pandas.DataFrame: generation, seed, metric, value
    run.saved_generations                # checkpoints on disk: checkpoint.keep_generations + latest
    state = run.model(100, seeds=3)      # the Carry (model, pool, data0, model0) of seed 3
    x = run.sample(100, 500, seed=3, key=jax.random.key(0))   # the family's own sampler
    run.export_hf(2, 0, "/tmp/opt_gen2") # the LM: generation 2, seed 0 as an HF directory

Models are restored with the abstract tree the config implies (``jax.eval_shape`` of the chain's
first step, as ``chain.run`` does on resume), onto one CPU device by default whatever devices
wrote them. Nothing in the workdir is written or deleted.
"""

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from collapse_jax import chain, experiments, sharding
from collapse_jax import family as family_lib
from collapse_jax.checkpoint import Checkpointer
from collapse_jax.errors import CheckpointError, ConfigError

_LM = ("opt_wikitext",)


def _on(abstract, device):
    """``abstract`` with every leaf placed on ``device``."""
    put = jax.sharding.SingleDeviceSharding(device)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=put), abstract)


def _listed(values) -> str:
    values = list(values)
    return ", ".join(map(str, values)) if values else "none"


class RunView:
    """A finished or running workdir, read-only: config, metrics, and its kept generations."""

    def __init__(self, workdir, device=None):
        self.workdir = Path(os.path.abspath(workdir))
        # The metrics' storage is load_run's business; config.json is the workdir's mark.
        if not (self.workdir / "config.json").is_file():
            raise FileNotFoundError(
                f"{self.workdir / 'config.json'}: missing; is this a launch.run workdir?"
            )
        from collapse_jax.metrics import load_run

        loaded = load_run(self.workdir)
        # Rebuilt from config.json, so the family functions accept it as they accept the original
        # (fields added to the code since the run started take their defaults, as on resume).
        saved = json.loads((self.workdir / "config.json").read_text())
        self.config = ml_collections.ConfigDict(chain.saved_config(saved))
        self.generations = np.asarray(loaded.generations)  # rows of metrics, in order
        self.metrics: dict[str, np.ndarray] = loaded.metrics  # metric -> [G, S, ...]
        self.num_seeds = int(self.config.num_seeds)
        self.device = device if device is not None else jax.devices("cpu")[0]
        self._jitted: dict = {}

    def __repr__(self):
        return (
            f"RunView({str(self.workdir)!r}, experiment={self.config.experiment!r}, "
            f"generations={len(self.generations)}, seeds={self.num_seeds}, "
            f"saved={self.saved_generations})"
        )

    @property
    def is_lm(self) -> bool:
        return self.config.experiment in _LM

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

    def _checkpointer(self, *parts) -> Checkpointer:
        return Checkpointer(self.workdir.joinpath("checkpoints", *parts), read_only=True)

    @property
    def saved_generations(self) -> list[int]:
        """Generations with a checkpoint (for the LM: with parameters of every seed)."""
        if not (self.workdir / "checkpoints").is_dir():
            return []
        if self.is_host:
            steps = None
            for s in range(self.num_seeds):
                with self._checkpointer(f"seed_{s}", "model") as c:
                    got = set(c.all_steps())
                steps = got if steps is None else steps & got
            return sorted(steps or ())
        with self._checkpointer() as c:
            return sorted(c.all_steps())

    def _check_generation(self, generation: int) -> None:
        saved = self.saved_generations
        if generation not in saved:
            raise CheckpointError(
                f"{self.workdir}: generation {generation} is not saved; saved generations: "
                f"{_listed(saved)} (checkpoint.keep_generations="
                f"{list(self.config.checkpoint.keep_generations)} and the latest "
                f"{self.config.checkpoint.max_to_keep})"
            )

    def _seed_index(self, seeds) -> tuple[list[int], bool]:
        """``(indices, squeeze)``: None -> every seed; an int -> that seed, without a seed axis."""
        squeeze = isinstance(seeds, int | np.integer)
        idx = list(range(self.num_seeds)) if seeds is None else [seeds] if squeeze else seeds
        bad = [s for s in idx if not (isinstance(s, int | np.integer) and 0 <= s < self.num_seeds)]
        if bad or not idx:
            raise CheckpointError(
                f"{self.workdir}: seed {bad[0] if bad else idx!r} does not exist; seeds are "
                f"0 .. {self.num_seeds - 1}"
            )
        return [int(s) for s in idx], squeeze

    def _require_x64(self) -> None:
        if self.config.enable_x64 != jax.config.jax_enable_x64:
            raise ConfigError(
                f"enable_x64: {self.workdir} ran with enable_x64={self.config.enable_x64}; call "
                f"jax.config.update('jax_enable_x64', {self.config.enable_x64}) before open_run"
            )

    @cached_property
    def _abstract_carry(self):
        """The chain's Carry ``[S, ...]`` as shapes: ``eval_shape`` of its first step."""
        self._require_x64()
        fam, cfg = self.family, self.config
        if not isinstance(fam, family_lib.Family):
            raise ConfigError(
                f"model: {cfg.experiment} runs keep no chain checkpoints to restore (metrics only)"
            )
        fam.validate(cfg)
        steps = chain.build(cfg, fam, None)
        truth = fam.reference(cfg)
        keys_S = sharding.seed_keys(cfg, None)
        return _on(jax.eval_shape(steps.first, keys_S, truth)[0], self.device)

    def model(self, generation: int, seeds=None) -> Any:
        """Generation ``generation``'s state: for the small families the chain's ``Carry``
        (``model``, ``pool``, ``data0``, ``model0``), for the LM the OPT parameters.

        ``seeds``: None (every seed, leading axis S), a list (leading axis len(seeds)), or an int
        (one seed, no seed axis: what the family functions take).
        """
        generation = int(generation)
        idx, squeeze = self._seed_index(seeds)
        self._check_generation(generation)
        if self.is_lm:
            trees = [self.lm_params(generation, s) for s in idx]
            return trees[0] if squeeze else jax.tree.map(lambda *x: np.stack(x), *trees)
        with self._checkpointer() as c:
            carry, meta = c.restore(generation, self._abstract_carry)
        if meta.get("generation") != generation:
            raise CheckpointError(
                f"{self.workdir}/checkpoints/{generation}: metadata names generation "
                f"{meta.get('generation')}"
            )
        pick = idx[0] if squeeze else np.asarray(idx)
        return jax.tree.map(lambda x: x[pick], carry)

    def sample(self, generation: int, n: int, seed: int, key: jax.Array) -> jax.Array:
        """``n`` draws from seed ``seed``'s model of ``generation`` by the family's ``sample``
        (points for Gaussian/GMM, categories for discrete, uint8 images for the VAE; for the LM
        the chain's beam-search continuations ``new_NxT`` of ``n`` original training blocks
        chosen by ``key``, see ``lm_sample``)."""
        if self.is_lm:
            return self._lm_sample(generation, n, seed, key)
        model = self.model(generation, int(seed)).model
        n = int(n)
        if n not in self._jitted:
            fam, cfg = self.family, self.config
            self._jitted[n] = jax.jit(lambda k, state: fam.sample(k, state, n, cfg))
        with jax.default_matmul_precision(self.config.matmul_precision):
            return self._jitted[n](jax.device_put(key, self.device), model)

    # -- the LM ---------------------------------------------------------------------------------

    @cached_property
    def _lm_abstract(self):
        """``(OPTConfig, abstract params)`` of the run's base model, sized by its tokenizer."""
        from transformers import AutoTokenizer

        from collapse_jax.families.lm import finetune

        tok_dir = self.workdir / "tokenizer"
        if not tok_dir.is_dir():
            raise FileNotFoundError(f"{tok_dir}: missing; the LM family saves its tokenizer here")
        vocab_size = len(AutoTokenizer.from_pretrained(tok_dir))
        box = {}

        def params(key):
            box["config"], p = finetune.build_model(self.config.lm, vocab_size, key)
            return p

        abstract = jax.eval_shape(params, jax.random.key(0))
        return box["config"], _on(abstract, self.device)

    def lm_params(self, generation: int, seed: int):
        """The fine-tuned OPT parameters of (generation, seed) (``collapse_jax.families.lm.opt`` layout)."""
        if not self.is_lm:
            raise ConfigError(f"lm_params: {self.workdir} is a {self.config.experiment} run")
        generation = int(generation)
        (s,), _ = self._seed_index(int(seed))
        self._check_generation(generation)
        with self._checkpointer(f"seed_{s}", "model") as c:
            params, meta = c.restore(generation, self._lm_abstract[1])
        if meta.get("generation") != generation:
            raise CheckpointError(
                f"{self.workdir}/checkpoints/seed_{s}/model/{generation}: metadata names "
                f"generation {meta.get('generation')}"
            )
        return params

    @cached_property
    def _lm_corpus(self):
        from collapse_jax.families.lm import corpus

        return corpus.load(self.config)

    def _lm_sample(self, generation: int, n: int, seed: int, key: jax.Array) -> np.ndarray:
        """Continue ``n`` of D_0's blocks (drawn without replacement by ``key``) with model
        (generation, seed), as the chain makes generation ``generation + 1``'s data."""
        from collapse_jax.families.lm import family as lm_family

        params = self.lm_params(generation, seed)
        train_MxL = self._lm_corpus.train_MxL
        M = train_MxL.shape[0]
        if not 1 <= int(n) <= M:
            raise ConfigError(f"sample: n must be in [1, {M}] (the original blocks), got {n}")
        with jax.default_matmul_precision(self.config.matmul_precision):
            return lm_family.continue_prompts(
                key, params, self.lm_config, train_MxL, int(n), self.config.generate
            )

    @property
    def lm_config(self):
        """The ``opt.OPTConfig`` of the run's models."""
        return self._lm_abstract[0]

    def export_hf(self, generation: int, seed: int, directory) -> Path:
        """Write (generation, seed) as a Hugging Face directory (model and tokenizer) that
        ``transformers.OPTForCausalLM.from_pretrained`` and ``AutoTokenizer`` load."""
        import shutil

        from collapse_jax.families.lm import convert

        params = self.lm_params(generation, seed)
        directory = convert.save_pretrained(params, self.lm_config, directory)
        for f in (self.workdir / "tokenizer").iterdir():
            if f.is_file():
                shutil.copy2(f, directory / f.name)
        return Path(directory)


def open_run(workdir, device=None) -> RunView:
    """Open a ``launch.run`` workdir for analysis (read-only); ``device`` defaults to the CPU."""
    return RunView(workdir, device)
