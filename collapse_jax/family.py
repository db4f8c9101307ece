"""The interface every model family implements, and the registry ``chain.run`` dispatches on.

A family is pure and single-seed; ``chain.py`` adds the seed axis with ``jax.vmap`` (and the
generation axis with ``lax.scan``). Shapes must be static given ``cfg``.

  validate(cfg) -> None                        raise ConfigError naming any bad ``cfg.<family>`` field
  reference(cfg) -> truth                      host-side, shared by all seeds (true parameters or a real
                                               dataset); broadcast, never copied per seed
  original_data(key, truth, cfg) -> x_M...     D_0 for one seed (``cfg.samples_per_generation`` samples)
  init(key, cfg, data0: Data) -> state         a pytree of arrays
  fit(key, state, data: Data, cfg) -> state    the functional approximation F; ``state`` is the previous
                                               generation's model (a family may start fresh, or use it as
                                               a sampler, e.g. the VAE's fresh-per-batch samples)
  sample(key, state, n, cfg) -> x_n...         n samples from the fitted model (n static)
  metrics(state, data, origin, cfg) -> dict    scalar metrics of one seed at one generation; ``origin``
                                               holds truth, D_0 and the generation-0 state

Optional, for the regimes and curation of ``mixing.py``:

  fresh_data(key, truth, n, generation, cfg) -> x_n...
                          ``n`` new draws of the original distribution for generation ``generation``
                          (traced) of regime ``fresh``. Default: the first ``n`` of
                          ``original_data(key, truth, cfg)`` with a key of its own (a new sample
                          of the truth). A family with a finite real pool (the VAE) returns real
                          examples not used before.
  log_prob(state, x_N..., cfg) -> logp_N        log-likelihood of each sample under a fitted model
                          (curation scores ``current`` and ``initial``).
  truth_log_prob(truth, x_N..., cfg) -> logp_N  the true log-density (curation score ``oracle``).

``rows_per_generation(cfg) -> int`` (optional) is how many pool rows one generation's dataset takes
when a family's samples are records standing for many samples (the statistics samplers,
``sufficient.py``); without it a row is a sample and a dataset takes ``cfg.samples_per_generation``.

Families that cannot be vmapped over seeds (the OPT pipeline) set ``driver``: a function
``driver(cfg, workdir) -> None`` that ``chain.run`` calls instead of the generic loop, built from the
same pieces (``checkpoint.py``, ``metrics.py``, ``rng.py``, ``mixing.py``).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from collapse_jax.errors import require


class Origin(NamedTuple):
    """What generation ``g`` is compared against."""

    truth: Any  # family.reference(cfg), shared
    data0: Any  # x of D_0 for this seed
    state0: Any  # the generation-0 fit for this seed


class Family(NamedTuple):
    name: str
    validate: Callable
    reference: Callable | None = None
    original_data: Callable | None = None
    init: Callable | None = None
    fit: Callable | None = None
    sample: Callable | None = None
    metrics: Callable | None = None
    driver: Callable | None = None
    fresh_data: Callable | None = None
    log_prob: Callable | None = None
    truth_log_prob: Callable | None = None
    rows_per_generation: Callable | None = None


def _gaussian():
    from collapse_jax import gaussian

    return gaussian.FAMILY


def _discrete():
    from collapse_jax import discrete

    return discrete.FAMILY


def _gmm():
    from collapse_jax import gmm

    return gmm.FAMILY


def _linear_regression():
    from collapse_jax import linear_regression

    return linear_regression.FAMILY


def _kde():
    from collapse_jax import kde

    return kde.FAMILY


def _vae():
    from collapse_jax.vae import family

    return family.FAMILY


def _opt():
    from collapse_jax.lm import pipeline

    return pipeline.FAMILY


def _opt_finetune():
    from collapse_jax.lm import finetune

    def driver(cfg, workdir):
        finetune.run_finetune(cfg, workdir)

    return Family(name="opt_finetune", validate=finetune.validate, driver=driver)


# Imports are deferred so a Gaussian run never imports transformers.
REGISTRY: dict[str, Callable[[], Family]] = {
    "gaussian": _gaussian,
    "discrete": _discrete,
    "gmm": _gmm,
    "linear_regression": _linear_regression,
    "kde": _kde,
    "vae": _vae,
    "opt_wikitext": _opt,
    "opt_finetune": _opt_finetune,
}


def get(name: str) -> Family:
    require(name in REGISTRY, "experiment", f"one of {sorted(REGISTRY)}", name)
    return REGISTRY[name]()
