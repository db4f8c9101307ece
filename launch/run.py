r"""Run or resume one experiment.

  python -m launch.run --config=configs/gaussian.py:cpu --workdir=runs/gaussian_cpu \
      [--config.num_seeds=256 ...] [--overwrite]

Writes DIR/config.json, DIR/metrics.jsonl and DIR/checkpoints/ (the output contract:
docs/output-contract.md); rerunning the same command resumes after the last checkpoint. Bad
input ends with one ``error:`` line, exit code 2; Ctrl-C with one line naming the last recorded
generation, exit code 130.
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from collapse_jax import chain, compile_cache, distributed
from launch import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/NAME.py[:VARIANT]", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    f"Run directory (created; resumed if it exists); what it holds: {cli.CONTRACT}.",
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete a run of another config in --workdir.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    cfg = _CONFIG.value
    distributed.initialize_from_flags()
    jax.config.update("jax_enable_x64", cfg.enable_x64)
    compile_cache.enable()
    try:
        workdir = cli.run_or_fail(chain.run, cfg, _WORKDIR.value, overwrite=_OVERWRITE.value)
    except KeyboardInterrupt:
        cli.interrupted(_WORKDIR.value)
    logging.info("done: %s", workdir)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
