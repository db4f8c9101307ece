"""Fine-tuning and perplexity on tiny random OPTs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax.errors import ConfigError
from collapse_jax.families.lm import finetune, opt, perplexity
from configs import opt_finetune

V, L = 32, 12
TINY = opt.tiny_config(
    vocab_size=V,
    hidden_size=16,
    num_hidden_layers=1,
    ffn_dim=32,
    num_attention_heads=2,
    max_position_embeddings=16,
    dropout=0.1,
)


def pattern_blocks(key, n, step):
    """Blocks following ``x[t+1] = x[t] + step (mod V)`` from random starts: learnable exactly."""
    start_N = jax.random.randint(key, (n, 1), 0, V)
    return np.asarray((start_N + step * jnp.arange(L)[None, :]) % V, np.int32)


def ft_config(**overrides):
    ft = opt_finetune.finetune_fields()
    ft.update(
        num_epochs=3,
        batch_size=16,
        eval_batch_size=16,
        learning_rate=1e-2,
        final_learning_rate=1e-3,
        schedule_period="run",
    )
    ft.update(overrides)
    return ft


def test_block_perplexity_is_independent_of_batch_size_and_matches_a_direct_computation():
    params = opt.init_params(jax.random.key(0), TINY)
    blocks_NxL = np.asarray(jax.random.randint(jax.random.key(1), (7, L), 0, V), np.int32)
    # 3: a padded last batch; 7: one full batch.
    losses = {b: perplexity.block_losses(params, TINY, blocks_NxL, b) for b in (3, 7)}
    # Direct: log-softmax in float64 of the unjitted logits, mean over each block's L - 1 targets.
    logits, _ = opt.forward(params, TINY, jnp.asarray(blocks_NxL))
    logits = np.asarray(logits, np.float64)
    log_p = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    targets = np.take_along_axis(log_p[:, :-1], blocks_NxL[:, 1:, None], axis=-1)[..., 0]
    direct = -targets.mean(axis=1)
    for b, loss in losses.items():
        assert loss.shape == (7,)
        # float32 logits of O(1): rounding differences only (~1e-7 relative).
        np.testing.assert_allclose(loss, direct, rtol=1e-5, err_msg=f"batch_size={b}")
    ppl_N = perplexity.sequence_perplexities(params, TINY, blocks_NxL, 3)
    np.testing.assert_allclose(ppl_N, np.exp(direct), rtol=1e-5)
    # Equal target counts per block: the split perplexity is exp of the mean token loss.
    np.testing.assert_allclose(
        perplexity.split_perplexity(params, TINY, blocks_NxL, 3), np.exp(np.mean(direct)), rtol=1e-5
    )


def test_unigram_perplexity():
    train = np.array([[0, 1, 1, 1]])
    # add-one counts (2, 4, 1) over V = 3 -> p(1) = 4/7; the first token is not a target.
    assert perplexity.unigram_perplexity(train, np.array([[2, 1, 1]]), 3) == pytest.approx(7 / 4)


def test_finetuning_lowers_validation_loss_and_leaves_the_input_params_alone():
    k_init, k_train, k_valid, k_ft = jax.random.split(jax.random.key(2), 4)
    params = opt.init_params(k_init, TINY)
    before = jax.tree.map(np.array, params)
    train, valid = pattern_blocks(k_train, 256, 3), pattern_blocks(k_valid, 32, 3)
    result = finetune.finetune(k_ft, params, TINY, train, valid, ft_config(learning_rate=2e-2))
    h = result.history
    assert [r["step"] for r in h] == [0, 16, 32, 48]  # 256 // 16 steps per epoch
    # Untrained: ~log V = 3.47 per token. Every target follows from the block's first token, so
    # the loss of a model that learnt the rule tends to 0; a third of the start is a loose bar
    # (the trajectory of this seed reaches ~0.3 after 3 epochs).
    assert h[0]["valid_loss"] == pytest.approx(np.log(V), abs=0.3)
    assert h[-1]["valid_loss"] < h[0]["valid_loss"] / 3
    # Donation consumed copies only.
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), before)


def test_best_checkpoint_is_the_epoch_with_the_lowest_validation_loss():
    # Train on +1 steps and validate on -1 steps: validation improves while the model learns that
    # neighbouring tokens follow each other, then worsens as it learns the direction, so the best
    # evaluation is an intermediate one (step 12 of 24 for this seed), not the last.
    k_init, k_train, k_valid, k_ft = jax.random.split(jax.random.key(3), 4)
    params = opt.init_params(k_init, TINY)
    train, valid = pattern_blocks(k_train, 128, 1), pattern_blocks(k_valid, 32, V - 1)
    ft = ft_config(learning_rate=2e-2, eval_every_steps=4)
    result = finetune.finetune(k_ft, params, TINY, train, valid, ft)
    rows = result.history[1:]  # the starting point is not a candidate
    assert [r["step"] for r in rows] == [4, 8, 12, 16, 20, 24]
    best = min(rows, key=lambda r: r["valid_loss"])
    assert result.best_step == best["step"] < rows[-1]["step"]
    got = perplexity.block_losses(result.params, TINY, valid, 16).mean()
    np.testing.assert_allclose(got, best["valid_loss"], rtol=1e-6)


def test_learning_rate_schedules():
    per_epoch = finetune.learning_rate_schedule(ft_config(schedule_period="epoch"), 10)
    per_run = finetune.learning_rate_schedule(ft_config(schedule_period="run"), 10)
    lr, final = 1e-2, 1e-3
    assert float(per_epoch(0)) == pytest.approx(lr) == float(per_epoch(10))  # restarts
    assert float(per_epoch(5)) == pytest.approx((lr + final) / 2)  # half way down the cosine
    assert float(per_run(15)) == pytest.approx((lr + final) / 2)  # 3 epochs: half way is step 15
    assert float(per_run(29)) == pytest.approx(final, rel=0.05)
    with pytest.raises(ConfigError, match="schedule_period"):
        finetune.learning_rate_schedule(ft_config(schedule_period="step"), 10)
    with pytest.raises(ConfigError, match="batch_size"):
        finetune.finetune(
            jax.random.key(0), {}, TINY, np.zeros((4, L), np.int32), None, ft_config(batch_size=8)
        )


# The LM chain's smoke tests (test_pipeline.py) run the same fine-tuning end to end; this one is
# kept for `-m slow`.
@pytest.mark.slow
def test_smoke_run_end_to_end(shared_data, tmp_path):
    cfg = opt_finetune.get_config("smoke")
    cfg.tokenizer.cache_dir = str(tmp_path / "tokenizers")
    summary = finetune.run_finetune(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert (tmp_path / "run" / "model" / "tokenizer.json").exists()
    ppl_N = np.load(tmp_path / "run" / "test_sequence_perplexity.npy")
    assert ppl_N.shape == (cfg.data.max_eval_blocks,) and np.isfinite(ppl_N).all()
    assert summary["test_perplexity"] < summary["test_perplexity_start"]


# ------------------------------------------------------------------------------ memory options


def _one_step(memory, config=TINY, optimizer=None):
    """(loss, params) after one training step from fixed params on a fixed batch."""
    import optax

    optimizer = optimizer or optax.sgd(1.0)
    params = opt.init_params(jax.random.key(7), config)
    state = finetune.TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    step = finetune.make_train_step(config, optimizer, memory=memory)
    blocks = pattern_blocks(jax.random.key(8), 16, 3)
    state, loss = step(state, jnp.asarray(blocks), jnp.arange(16), jax.random.key(9))
    return float(loss), jax.tree.map(np.asarray, state.params)


def test_micro_batches_and_remat_make_the_same_update():
    # SGD with learning rate 1: the parameter change is the gradient itself. Without dropout the
    # mean over 4 equal micro-batches of their mean losses is the batch's mean loss, so loss and
    # gradient agree up to float32 summation order (relative ~1e-7 on O(1) terms summed over 16
    # blocks: 1e-5 relative and 1e-7 absolute leave a wide margin, while any slip in the
    # micro-batch averaging, e.g. a sum instead of a mean, is a factor of 4).
    config = opt.OPTConfig(**{**vars(TINY), "dropout": 0.0})
    loss, params = _one_step(finetune.Memory(), config)
    for memory in (
        finetune.Memory(micro_batches=4),
        finetune.Memory(remat_policy="nothing_saveable"),
        finetune.Memory(micro_batches=2, remat_policy="dots_with_no_batch_dims_saveable"),
    ):
        got_loss, got = _one_step(memory, config)
        assert got_loss == pytest.approx(loss, rel=1e-6), memory
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=str(memory))


def test_bfloat16_compute_copy_keeps_float32_masters():
    loss, _ = _one_step(finetune.Memory())
    bf16_config = opt.OPTConfig(**{**vars(TINY), "dtype": "bfloat16"})
    got_loss, got = _one_step(finetune.Memory(param_dtype="bfloat16"), bf16_config)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(got))
    # bf16 keeps 8 mantissa bits: the loss of O(log V) = 3.5 moves by a few 1e-2 at most.
    assert got_loss == pytest.approx(loss, abs=0.05)


def test_micro_batches_cut_the_steps_temporary_memory():
    """XLA's memory analysis of the compiled step (benchmarks/lm_memory.py at the paper's
    shapes): 4 micro-batches hold a quarter of the logits and activations at a time."""
    import optax

    config = opt.OPTConfig(**{**vars(TINY), "vocab_size": 512})
    temps = {}
    for k in (1, 4):
        optimizer = optax.adamw(1e-3)
        step = finetune.make_train_step(config, optimizer, memory=finetune.Memory(k), jit=False)
        params = jax.eval_shape(lambda: opt.init_params(jax.random.key(0), config))
        state = jax.eval_shape(
            lambda p: finetune.TrainState(p, optimizer.init(p), jnp.zeros((), jnp.int32)), params
        )
        args = (
            jax.ShapeDtypeStruct((64, L), jnp.int32),
            jax.ShapeDtypeStruct((64,), jnp.int32),
            jax.eval_shape(lambda: jax.random.key(0)),
        )
        compiled = jax.jit(step, donate_argnums=0).lower(state, *args).compile()
        temps[k] = compiled.memory_analysis().temp_size_in_bytes
    # The (64, 11, 512) float32 logits alone are 1.4 MB; a quarter batch needs well under half.
    assert temps[4] < 0.5 * temps[1], temps


def test_memory_fields_are_checked():
    with pytest.raises(ConfigError, match="micro_batches"):
        finetune.validate_memory(ft_config(micro_batches=3))  # 16 blocks per batch
    with pytest.raises(ConfigError, match="remat_policy"):
        finetune.validate_memory(ft_config(remat_policy="everything"))
    with pytest.raises(ConfigError, match="param_dtype"):
        finetune.validate_memory(ft_config(param_dtype="float16"))
