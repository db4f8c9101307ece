"""The one table: experiment name -> family, figures and config file.

``chain``, ``runs``, ``plots``, the launchers and the tests find a family here, so a new family
is one line below. Modules are imported only when their entry is used: a Gaussian run never
imports the LM stack.
"""

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapse_jax import family as family_lib
from collapse_jax.errors import require

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class Experiment:
    """Where an experiment's pieces live: modules by dotted path, imported on first use."""

    name: str
    family_module: str  # defines FAMILY
    plots_module: str | None  # defines figures(run, outdir) and summary(run)
    config: str  # the config file under configs/

    def family(self) -> family_lib.AnyFamily:
        return importlib.import_module(self.family_module).FAMILY

    def plots(self) -> Any:
        require(self.plots_module is not None, "experiment", "one with figures", self.name)
        return importlib.import_module(self.plots_module)

    @property
    def config_path(self) -> Path:
        return CONFIGS / self.config

    def config_module(self) -> Any:
        """The config file as a module (``get_config(arg)``, ``ARGS``, ``LEGACY``), loaded by path:
        ``configs/`` need not be importable."""
        path = self.config_path
        spec = importlib.util.spec_from_file_location(f"cfg_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


_F, _P = "collapse_jax.families.", "collapse_jax.plots."
EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment("gaussian", _F + "gaussian", _P + "gaussian", "gaussian.py"),
        Experiment("discrete", _F + "discrete", _P + "discrete", "discrete.py"),
        Experiment("gmm", _F + "gmm", _P + "gmm", "gmm.py"),
        Experiment(
            "linear_regression",
            _F + "linear_regression",
            _P + "linear_regression",
            "linear_regression.py",
        ),
        Experiment("kde", _F + "kde", _P + "kde", "kde.py"),
        Experiment("vae", _F + "vae.family", _P + "vae", "vae.py"),
        Experiment("flow", _F + "flow.family", _P + "flow", "flow.py"),
        Experiment("mad", _F + "flow.family", _P + "flow", "mad.py"),
        Experiment("opt_wikitext", _F + "lm.family", _P + "opt", "opt_wikitext.py"),
        # The same LM host family on GPT-2 (fine-tuned, as the paper) and on Llama-architecture
        # models pre-trained from scratch every generation (Gerstgrasser et al.).
        Experiment("gpt2_wikitext", _F + "lm.family", _P + "opt", "gpt2_wikitext.py"),
        Experiment("llama_tinystories", _F + "lm.family", _P + "opt", "llama_tinystories.py"),
        Experiment("opt_finetune", _F + "lm.finetune", None, "opt_finetune.py"),
    ]
}


def get(name: str) -> Experiment:
    require(name in EXPERIMENTS, "experiment", f"one of {sorted(EXPERIMENTS)}", name)
    return EXPERIMENTS[name]


def family(name: str) -> family_lib.AnyFamily:
    """The family of experiment ``name`` (``cfg.experiment``)."""
    return get(name).family()
