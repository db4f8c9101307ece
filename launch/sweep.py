r"""Run a config's sweep: one resumable run per value, all under one directory.

  python -m launch.sweep --config=configs/gmm.py:cpu --workdir=runs/gmm_sweep [--dry_run]
      [--config.FIELD=VALUE ...] [--overwrite]

``cfg.sweep`` maps a field path to the tuple of values to try (``cfg.sweep.samples_per_generation
= (500, 1000)``; nested ``ConfigDict``s give dotted paths, ``cfg.sweep.gmm.tol = (...)`` sweeps
``gmm.tol``; ``--config.sweep.samples_per_generation='(500,1000)'`` overrides one). Several fields
give their Cartesian product. Run ``i`` goes to ``DIR/FIELD=VALUE[+FIELD=VALUE...]/`` (older
versions wrote ``,`` there; such a folder is kept) and is exactly the run of the printed command

  python -m launch.run --config=... --workdir=DIR/FIELD=VALUE --config.FIELD=VALUE [overrides]

so a sweep stopped anywhere is resumed by rerunning it (finished runs return at once, the
interrupted one resumes after its last checkpoint), and any one run can be resumed or inspected
alone. ``--dry_run`` prints those commands (one per line, e.g. for a SLURM array) and runs nothing.
A config with an empty or absent sweep is a single run in DIR. After its runs a sweep writes
``DIR/figures/compare_METRIC.png`` (``launch.compare`` of every run, the experiment's headline
metric, labelled by the swept fields); ``launch.report --workdir=DIR`` then writes the sweep's
report (every run's figures, the comparison figures, a table of the runs' final metrics), and
``launch.compare --workdirs=DIR --metric=NAME`` compares any metric of its runs. Runs go one
after the other in this process, each on every device it is given (``--config.num_devices=0``)
and, with the ``launch.run`` distributed flags, on every host. Ctrl-C ends with one line naming the
run and its last recorded generation (exit code 130); rerunning the command resumes.
"""

import itertools
import shlex
import sys
from pathlib import Path

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from collapse_jax import chain, compile_cache, distributed
from collapse_jax.errors import ConfigError
from launch import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/NAME.py[:VARIANT]", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory; one sub-directory per run.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the launch.run commands, run nothing.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete a run of another config in a run dir.")
flags.mark_flags_as_required(["config", "workdir"])


def sweep_fields(cfg) -> dict[str, list]:
    """``{dotted field path: values}`` from ``cfg.sweep`` (empty when there is no sweep)."""
    if "sweep" not in cfg:
        return {}
    out = {}

    def walk(node, prefix):
        for k, v in node.items():
            path = f"{prefix}{k}"
            if isinstance(v, ml_collections.ConfigDict):
                walk(v, path + ".")
            else:
                if not isinstance(v, list | tuple) or not v:
                    raise ConfigError(
                        f"sweep.{path}: expected a non-empty tuple of values, got {v!r}"
                    )
                _get(cfg, path)  # the swept field must exist
                out[path] = list(v)

    walk(cfg.sweep, "")
    return out


def _get(cfg, path: str):
    node = cfg
    for part in path.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise ConfigError(f"sweep.{path}: the config has no field {path}")
        node = node[part]
    return node


def _set(cfg, path: str, value) -> None:
    *parents, leaf = path.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[leaf] = value


def _text(v) -> str:
    return str(v).replace(" ", "")


SEPARATOR = "+"  # between the fields of a run's name; launch.compare splits --workdirs on ","


def run_dir(workdir: Path, point: dict) -> Path:
    """``DIR/FIELD=V+FIELD=V``: the folder of one point of the sweep. A sweep started by an older
    version named it ``FIELD=V,FIELD=V``; where that folder exists (and the new one does not) it
    is kept, so rerunning an old sweep resumes it in place."""
    parts = [f"{p}={_text(v)}" for p, v in point.items()]
    new, old = workdir / SEPARATOR.join(parts), workdir / ",".join(parts)
    return old if old.is_dir() and not new.exists() else new


def expand(cfg, workdir) -> list[tuple[Path, dict, ml_collections.ConfigDict]]:
    """``[(run dir, {field: value}, config)]`` for every point of the sweep, in order."""
    workdir = Path(workdir)
    fields = sweep_fields(cfg)
    if not fields:
        return [(workdir, {}, cfg)]
    runs = []
    for values in itertools.product(*fields.values()):
        point = dict(zip(fields, values, strict=True))
        run_cfg = cfg.copy_and_resolve_references()
        for path, v in point.items():
            _set(run_cfg, path, v)
        runs.append((run_dir(workdir, point), point, run_cfg))
    return runs


def command(config_arg: str, run_dir: Path, point: dict, extra: list[str]) -> str:
    """The ``launch.run`` command line of one run."""
    args = ["python", "-m", "launch.run", f"--config={config_arg}", f"--workdir={run_dir}"]
    args += [f"--config.{p}={_text(v)}" for p, v in point.items()]
    return shlex.join(args + extra)


def _passthrough(argv: list[str]) -> list[str]:
    """The user's ``--config.FIELD=VALUE`` overrides and distributed flags, for the commands."""
    keep = (
        "--config.",
        "--overwrite",
        "--coordinator_address",
        "--num_processes",
        "--process_id",
        "--distributed_auto",
        "--distributed_timeout_seconds",
    )
    return [a for a in argv[1:] if a.startswith(keep)]


def _config_arg(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if a == "--config":
            return argv[i + 1]
    raise ValueError("--config is required")


def main(argv):
    cfg = _CONFIG.value
    config_arg = _config_arg(sys.argv)
    runs = cli.run_or_fail(expand, cfg, _WORKDIR.value)
    extra = _passthrough(sys.argv)
    if _DRY_RUN.value:
        for run_dir, point, _ in runs:
            print(command(config_arg, run_dir, point, extra))
        return
    del argv
    distributed.initialize_from_flags()
    jax.config.update("jax_enable_x64", cfg.enable_x64)
    compile_cache.enable()
    run_all(runs, _OVERWRITE.value)
    logging.info(
        "sweep done: %d runs under %s; its report: python -m launch.report --workdir=%s",
        len(runs),
        _WORKDIR.value,
        _WORKDIR.value,
    )
    if len(runs) > 1 and jax.process_index() == 0:
        for path in (compare_figure(cfg, runs), family_sweep_figure(cfg, runs, _WORKDIR.value)):
            if path is not None:
                print(path)


def family_sweep_figure(cfg, runs, workdir):
    """The experiment's own figure of every run of the sweep, where its plots module has one
    (``sweep_figure(workdirs, outdir)``: the flow family's loops, the KDE's datasets), in
    ``DIR/figures/``."""
    from collapse_jax import experiments

    plots_module = experiments.get(cfg.experiment).plots_module
    if plots_module is None:
        return None
    draw = getattr(experiments.get(cfg.experiment).plots(), "sweep_figure", None)
    if draw is None:
        return None
    return draw([run_dir for run_dir, _, _ in runs], Path(workdir) / "figures")


def run_all(runs, overwrite: bool) -> None:
    """Every run of ``expand`` in turn; bad input is one ``error:`` line, Ctrl-C one line naming
    the run and its last recorded generation (exit code 130)."""
    for i, (run_dir, point, run_cfg) in enumerate(runs):
        logging.info("sweep run %d/%d: %s -> %s", i + 1, len(runs), point, run_dir)
        try:
            cli.run_or_fail(chain.run, run_cfg, run_dir, overwrite=overwrite, prefix=f"{run_dir}: ")
        except KeyboardInterrupt:
            cli.interrupted(run_dir, where=f"in run {i + 1} of {len(runs)} ({run_dir}) ")


def compare_figure(cfg, runs):
    """The runs of the sweep in one figure of their experiment's headline metric (for the GMM
    sweep over M, the paper's five-curve plot), labelled by the swept fields."""
    from collapse_jax import plots
    from collapse_jax.plots import compare

    plots.use_agg()
    metric = compare.HEADLINE.get(cfg.experiment)  # an experiment without one gets no figure
    if metric is None:
        return None
    # The runs differ exactly in the swept fields: the automatic label names them.
    return compare.compare([run_dir for run_dir, _, _ in runs], metric)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
