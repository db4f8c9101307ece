"""Thin absl entry points: run, sweep, report, compare, regimes.

Importing the package keeps notices that are not the user's business out of every launcher's
output, before JAX or transformers are imported:
- JAX logs "Unable to initialize backend 'tpu'" (INFO, shown by absl's INFO verbosity) wherever
  no TPU is present; its warnings (e.g. a GPU present but unusable) still show.
- transformers warns "PyTorch was not found" on import: the LM family uses its tokenizers only.
"""

import logging
import os

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
