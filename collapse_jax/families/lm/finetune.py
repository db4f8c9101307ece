"""Fine-tuning OPT on token blocks with optax, keeping the best checkpoint on validation.

The paper fine-tunes ``facebook/opt-125m`` with HF's Trainer: AdamW (lr 2e-5, weight decay 0.01,
betas (0.9, 0.999), eps 1e-8), cosine decay to 1e-6, batch 128, and keeps the checkpoint that is
best on the real validation set ("the best-performing model on the original task"). As HF's
Trainer, weight decay skips biases and layer-norm parameters (every 1-D leaf), and dropout is on
while training.

Each epoch visits a fresh permutation of the training blocks in ``N // batch_size`` full batches;
the last partial batch is dropped (a different remainder each epoch, so every block is seen in
expectation and one compiled shape serves all steps).

Memory (``Memory``, from ``finetune.micro_batches``, ``remat_policy``, ``param_dtype``): a batch
may run as ``micro_batches`` equal micro-batches inside the one compiled step (a ``lax.scan``
summing their gradients: the mean over micro-batches of their mean losses is the batch's mean
loss, so the update is the same up to float summation order; dropout draws per micro-batch);
each layer may be rematerialised in the backward pass (``jax.checkpoint`` with a named policy of
``jax.checkpoint_policies``); parameters may enter the forward and backward passes as a bfloat16
copy of the float32 master parameters that the optimiser updates (pair it with
``lm.dtype=bfloat16``: a float32 compute dtype casts them back). ``benchmarks/paper_path.py
--memory`` measures what each saves with XLA's memory analysis.

Sample weights (the chain's per-source weights, ``mixing.real_weight`` / ``synthetic_weight``) are
frequency weights, as in the small families: the objective is the weighted mean over blocks of
each block's token-mean loss, ``sum_b w_b l_b / sum_b w_b``. A batch's loss is
``mean_B(w_b / wbar * l_b)`` with ``wbar`` the mean weight of all training blocks: an unbiased
estimate of that objective under the uniform shuffle, equal to the plain mean when the weights
are equal (then no weights are passed at all, and the step is the unweighted one, bit for bit).
Only the weights' ratios matter. Validation is unweighted.

Command (a single fine-tuning run; the recursive chain is ``configs/opt_wikitext.py``):

    python -m launch.run --config=configs/opt_finetune.py:cpu --workdir=/tmp/ft
"""

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from collapse_jax import family
from collapse_jax.errors import require
from collapse_jax.families.lm import architectures, nn, perplexity

SCHEDULE_PERIODS = ("epoch", "run")
PARAM_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class Memory:
    """How a training step trades time for memory (module docstring); hashable: part of the key
    of the compiled step."""

    micro_batches: int = 1
    remat_policy: str = "none"
    param_dtype: str = "float32"

    @classmethod
    def from_config(cls, ft_cfg) -> "Memory":
        return cls(ft_cfg.micro_batches, ft_cfg.remat_policy, ft_cfg.param_dtype)


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: optimiser steps taken


class Result(NamedTuple):
    params: Any  # the parameters with the lowest validation loss
    best_step: int
    history: list[dict]  # one row per evaluation (step 0 is the starting point)


def validate(cfg) -> None:
    """Check ``cfg.finetune`` before any data or model is loaded (one ConfigError line)."""
    ft = cfg.finetune
    require(ft.num_epochs >= 1, "finetune.num_epochs", ">= 1", ft.num_epochs)
    require(ft.batch_size >= 1, "finetune.batch_size", ">= 1", ft.batch_size)
    require(ft.eval_batch_size >= 1, "finetune.eval_batch_size", ">= 1", ft.eval_batch_size)
    require(ft.eval_every_steps >= 0, "finetune.eval_every_steps", ">= 0", ft.eval_every_steps)
    require(
        ft.num_devices >= 0, "finetune.num_devices", "0 (all) or a positive integer", ft.num_devices
    )
    validate_memory(ft)
    make_optimizer(ft, steps_per_epoch=1)


def validate_memory(ft) -> None:
    """Check the memory fields of a ``finetune``-like section (one ConfigError line)."""
    require(
        isinstance(ft.micro_batches, int) and ft.micro_batches >= 1,
        "finetune.micro_batches",
        "an integer >= 1",
        ft.micro_batches,
    )
    require(
        ft.batch_size % ft.micro_batches == 0,
        "finetune.micro_batches",
        f"a divisor of batch_size={ft.batch_size} (equal micro-batches: the same update)",
        ft.micro_batches,
    )
    require(
        ft.remat_policy in nn.REMAT_POLICIES,
        "finetune.remat_policy",
        f"one of {nn.REMAT_POLICIES}",
        ft.remat_policy,
    )
    require(
        ft.param_dtype in PARAM_DTYPES,
        "finetune.param_dtype",
        f"one of {PARAM_DTYPES}",
        ft.param_dtype,
    )


def learning_rate_schedule(ft_cfg, steps_per_epoch: int) -> optax.Schedule:
    """Cosine from ``learning_rate`` to ``final_learning_rate``, per epoch (restarting) or per run."""
    require(
        ft_cfg.schedule_period in SCHEDULE_PERIODS,
        "finetune.schedule_period",
        f"one of {SCHEDULE_PERIODS}",
        ft_cfg.schedule_period,
    )
    require(ft_cfg.learning_rate > 0, "finetune.learning_rate", "> 0", ft_cfg.learning_rate)
    require(
        0 <= ft_cfg.final_learning_rate <= ft_cfg.learning_rate,
        "finetune.final_learning_rate",
        f"in [0, learning_rate={ft_cfg.learning_rate}]",
        ft_cfg.final_learning_rate,
    )
    period = steps_per_epoch * (ft_cfg.num_epochs if ft_cfg.schedule_period == "run" else 1)
    cosine = optax.cosine_decay_schedule(
        ft_cfg.learning_rate, period, alpha=ft_cfg.final_learning_rate / ft_cfg.learning_rate
    )
    return lambda count: cosine(count % period)


def make_optimizer(ft_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """AdamW with the cosine schedule, and global-norm clipping when ``grad_clip_norm`` > 0."""
    require(ft_cfg.grad_clip_norm >= 0, "finetune.grad_clip_norm", ">= 0", ft_cfg.grad_clip_norm)
    adamw = optax.adamw(
        learning_rate_schedule(ft_cfg, steps_per_epoch),
        b1=ft_cfg.adam_b1,
        b2=ft_cfg.adam_b2,
        eps=ft_cfg.adam_eps,
        weight_decay=ft_cfg.weight_decay,
        # HF's Trainer decays neither biases nor layer-norm parameters: the 1-D leaves here.
        mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params),
    )
    if ft_cfg.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(ft_cfg.grad_clip_norm), adamw)
    return adamw


def _optimizer_key(ft_cfg, steps_per_epoch: int) -> tuple:
    """The fields the optimizer depends on: a hashable cache key."""
    fields = ("learning_rate", "final_learning_rate", "schedule_period", "num_epochs")
    fields += ("weight_decay", "adam_b1", "adam_b2", "adam_eps", "grad_clip_norm")
    return (steps_per_epoch, *((f, ft_cfg[f]) for f in fields))


def make_train_step(
    config,
    optimizer: optax.GradientTransformation,
    weighted: bool = False,
    memory: Memory = Memory(),
    jit: bool = True,
) -> Callable:
    """``step(state, train_NxL, index_B, dropout_key[, weight_N]) -> (state, loss)``, jitted, state
    donated. ``weighted``: the step takes ``weight_N``, each block's weight over the mean weight.
    ``memory``: micro-batches, rematerialisation and the parameters' compute copy (module
    docstring). ``jit=False`` returns the plain function (to lower it for a memory analysis).

    The training blocks stay on the device and the batch is gathered inside the step, so a step
    moves only ``index_B`` from the host.
    """
    k = memory.micro_batches
    compute_dtype = nn.DTYPES[memory.param_dtype]

    def loss_fn(params, batch_BxL, dropout_key, weight_B):
        if memory.param_dtype != "float32":
            # The float32 master stays in the state; the cast's transpose brings the gradient
            # back to float32.
            params = jax.tree.map(lambda p: p.astype(compute_dtype), params)
        losses = perplexity.token_losses(
            params,
            config,
            batch_BxL,
            deterministic=False,
            dropout_key=dropout_key,
            remat_policy=memory.remat_policy,
        )
        if weight_B is None:
            return losses.mean()
        return (weight_B * losses.mean(axis=-1)).mean()

    grad_fn = jax.value_and_grad(loss_fn)

    def micro_batched(params, batch_BxL, dropout_key, weight_B):
        """Mean loss and gradient over ``k`` equal micro-batches, one at a time."""
        b = batch_BxL.shape[0]
        batches = batch_BxL.reshape(k, b // k, *batch_BxL.shape[1:])
        weights = None if weight_B is None else weight_B.reshape(k, b // k)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(dropout_key, jnp.arange(k))

        def body(carry, xs):
            loss_sum, grad_sum = carry
            loss, grads = grad_fn(params, *xs)
            return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

        zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        (loss_sum, grad_sum), _ = jax.lax.scan(body, zero, (batches, keys, weights))
        return loss_sum / k, jax.tree.map(lambda g: g / k, grad_sum)

    def step(state: TrainState, train_NxL, index_B, dropout_key, weight_N=None):
        weight_B = None if weight_N is None else weight_N[index_B]
        fn = grad_fn if k == 1 else micro_batched
        loss, grads = fn(state.params, train_NxL[index_B], dropout_key, weight_B)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), loss

    return jax.jit(step, donate_argnums=0) if jit else step


@functools.lru_cache(maxsize=8)
def _cached_step(config, optimizer_key: tuple, weighted: bool = False, memory: Memory = Memory()):
    """``(optimizer, train_step)`` built once per model config, optimizer, weighting and memory
    options: every generation of the recursive chain reuses one compiled step instead of tracing
    a new closure."""
    steps_per_epoch, *fields = optimizer_key
    optimizer = make_optimizer(ml_collections.ConfigDict(dict(fields)), steps_per_epoch)
    return optimizer, make_train_step(config, optimizer, weighted, memory)


def finetune(
    key: jax.Array,
    params,
    config,
    train_NxL,
    valid_MxL,
    ft_cfg,
    log: Callable[[dict], None] = lambda row: None,
    weight_N=None,
) -> Result:
    """Train for ``ft_cfg.num_epochs`` and return the parameters best on ``valid_MxL``.

    Validation runs after every epoch (and every ``eval_every_steps`` steps when > 0); the step-0
    evaluation is recorded but not a candidate, as in HF's ``load_best_model_at_end``. ``params``
    is not modified. ``log`` receives each history row as it is made. ``weight_N``: positive
    frequency weights of the training blocks (module docstring), or None for equal ones.
    """
    train_NxL = np.asarray(train_NxL, np.int32)
    num_blocks, batch_size = train_NxL.shape[0], ft_cfg.batch_size
    extra = ()
    if weight_N is not None:
        weight_N = np.asarray(weight_N, np.float64)
        if weight_N.shape != (num_blocks,) or not np.all(np.isfinite(weight_N) & (weight_N > 0)):
            raise ValueError(f"weight_N: {num_blocks} finite weights > 0 expected")
        extra = (jnp.asarray((weight_N / weight_N.mean()).astype(np.float32)),)
    require(ft_cfg.num_epochs >= 1, "finetune.num_epochs", ">= 1", ft_cfg.num_epochs)
    require(
        0 < batch_size <= num_blocks,
        "finetune.batch_size",
        f"in [1, {num_blocks}] (the number of training blocks)",
        batch_size,
    )
    require(
        ft_cfg.eval_every_steps >= 0, "finetune.eval_every_steps", ">= 0", ft_cfg.eval_every_steps
    )
    validate_memory(ft_cfg)
    steps_per_epoch = num_blocks // batch_size
    optimizer, train_step = _cached_step(
        config,
        _optimizer_key(ft_cfg, steps_per_epoch),
        weight_N is not None,
        Memory.from_config(ft_cfg),
    )
    schedule = learning_rate_schedule(ft_cfg, steps_per_epoch)
    shuffle_key, dropout_key = jax.random.split(key)

    # A copy, so donating the state never invalidates the caller's params.
    params = jax.tree.map(jnp.array, params)
    state = TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    train_dev = jnp.asarray(train_NxL)
    mesh = None
    if ft_cfg.num_devices != 1:
        # Data parallel over a "data" axis: batches split, params and optimiser state replicated
        # (or split leaf-wise with fsdp); jit follows the input shardings, same step function.
        from collapse_jax import sharding

        mesh = sharding.mesh_1d(sharding.DATA, ft_cfg.num_devices)
        state = sharding.put(state, sharding.state_shardings(mesh, state, ft_cfg.fsdp))
        train_dev = sharding.replicate(train_NxL, mesh)
        extra = tuple(sharding.replicate(np.asarray(w), mesh) for w in extra)

    def evaluate(epoch: int, step: int, train_losses: list) -> dict:
        valid = perplexity.block_losses(state.params, config, valid_MxL, ft_cfg.eval_batch_size)
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": float(np.mean(jax.device_get(train_losses))) if train_losses else None,
            "valid_loss": float(valid.mean()),
            "valid_perplexity": float(np.exp(valid.mean())),
            "learning_rate": float(schedule(max(step - 1, 0))),
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        log(row)
        if not np.isfinite(row["valid_loss"]):
            raise FloatingPointError(f"fine-tuning: non-finite validation loss at step {step}")
        return row

    history: list[dict] = []
    t0 = time.perf_counter()
    evaluate(0, 0, [])
    best_loss, best_step, best_params = np.inf, 0, None
    step = 0
    for epoch in range(1, ft_cfg.num_epochs + 1):
        perm_N = np.asarray(
            jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_blocks)
        )
        losses = []
        for i in range(steps_per_epoch):
            index_B = perm_N[i * batch_size : (i + 1) * batch_size]
            if mesh is not None:
                index_B = sharding.shard_batch(mesh, index_B)
            state, loss = train_step(
                state, train_dev, index_B, jax.random.fold_in(dropout_key, step), *extra
            )
            losses.append(loss)  # kept on the device: no host sync per step
            step += 1
            last = i == steps_per_epoch - 1
            if last or (ft_cfg.eval_every_steps and step % ft_cfg.eval_every_steps == 0):
                row = evaluate(epoch, step, losses)
                losses = []
                if row["valid_loss"] < best_loss:
                    best_loss, best_step = row["valid_loss"], step
                    # The state is donated to the next step: keep a copy, not a view.
                    best_params = jax.tree.map(jnp.copy, state.params)
    return Result(best_params, best_step, history)


# --- a single fine-tuning run from a config (``launch.run`` with configs/opt_finetune.py) ---


def special_ids(tokenizer=None) -> dict:
    """The pad/bos/eos ids a scratch model shares with its tokenizer (the trained BPE's, OPT's
    1/2/2, without one)."""
    from collapse_jax.families.lm import tokenizer as tokenizer_lib

    if tokenizer is None:
        pad, bos, eos = tokenizer_lib.PAD_ID, tokenizer_lib.BOS_ID, tokenizer_lib.BOS_ID
    else:
        pad, bos, eos = tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id
        bos = eos if bos is None else bos
    return dict(pad_token_id=pad, bos_token_id=bos, eos_token_id=eos)


def build_model(lm_cfg, vocab_size: int, key: jax.Array, tokenizer=None) -> tuple[Any, Any]:
    """``(config, params)``: a scratch model of ``lm.architecture`` sized by ``lm.scratch`` (its
    special ids the tokenizer's), or an HF checkpoint (its ``model_type`` must be
    ``lm.architecture`` unless that is ``auto``)."""
    if lm_cfg.source == "scratch":
        config = architectures.scratch_config(lm_cfg, vocab_size, special_ids(tokenizer))
        return config, nn.init_params(key, config)
    from collapse_jax.families.lm import convert

    config, params = convert.load_pretrained(lm_cfg.source.removeprefix("hub:"), dtype=lm_cfg.dtype)
    require(
        lm_cfg.architecture in ("auto", config.architecture),
        "lm.architecture",
        f"'{config.architecture}' (the model_type of lm.source={lm_cfg.source}) or 'auto'",
        lm_cfg.architecture,
    )
    return config, params


def run_finetune(cfg, workdir) -> dict:
    """Fine-tune once as ``cfg`` says; write ``finetune.jsonl``, ``summary.json``,
    ``test_sequence_perplexity.npy`` and the best model as an HF directory ``model/``
    (``chain.run`` has written ``config.json``)."""
    from collapse_jax.families.lm import corpus as corpus_lib

    workdir = Path(workdir).expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / "model"
    with jax.default_matmul_precision(cfg.matmul_precision):
        corpus = corpus_lib.load(cfg, model_dir)
        blocks = {"train": corpus.train_MxL, "valid": corpus.valid_NxL, "test": corpus.test_NxL}
        init_key, train_key = jax.random.split(jax.random.key(cfg.seed))
        config, params = build_model(cfg.lm, len(corpus.tokenizer), init_key, corpus.tokenizer)
        corpus_lib.check_vocabulary(cfg, config.vocab_size, corpus)
        logging.info(
            "blocks %s; model %s params",
            {k: v.shape for k, v in blocks.items()},
            f"{nn.param_count(params):,}",
        )
        eval_bs = cfg.finetune.eval_batch_size
        test_start = perplexity.split_perplexity(params, config, blocks["test"], eval_bs)
        log_file = (workdir / "finetune.jsonl").open("w")

        def log(row):
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
            logging.info("finetune %s", {k: v for k, v in row.items() if v is not None})

        t0 = time.perf_counter()
        with log_file:
            result = finetune(
                train_key, params, config, blocks["train"], blocks["valid"], cfg.finetune, log
            )
        train_seconds = time.perf_counter() - t0
        test_ppl_N = perplexity.sequence_perplexities(
            result.params, config, blocks["test"], eval_bs
        )
    np.save(workdir / "test_sequence_perplexity.npy", test_ppl_N)
    from collapse_jax.families.lm import convert

    convert.save_pretrained(result.params, config, model_dir)
    summary = {
        "train_seconds": train_seconds,
        "best_step": result.best_step,
        "test_perplexity_start": test_start,
        "test_perplexity": float(np.exp(np.log(test_ppl_N).mean())),
        "test_unigram_perplexity": perplexity.unigram_perplexity(
            blocks["train"], blocks["test"], config.vocab_size
        ),
        "num_blocks": {k: int(v.shape[0]) for k, v in blocks.items()},
        "num_params": nn.param_count(params),
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logging.info("summary %s", summary)
    return summary


# One fine-tuning, not a chain: no seeds, generations or mixing, so it needs none of the chain's
# loop, and its outputs (an HF model directory, the fine-tuning log) are its own.
FAMILY = family.SingleRun(
    name="opt_finetune",
    validate=validate,
    run=run_finetune,
    outputs=("model", "finetune.jsonl", "test_sequence_perplexity.npy", "summary.json"),
)
