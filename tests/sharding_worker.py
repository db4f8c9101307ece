"""Checks that need 8 CPU devices; ``tests/test_sharding.py`` runs this file in a subprocess.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharding_worker.py OUT.json

Each check runs independently; OUT.json maps its name to "ok" or the traceback, so one failure
does not hide the others and the test names the failing check.
"""

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from collapse_jax import chain, compile_cache, experiments, sharding
from collapse_jax.errors import ConfigError
from configs import gaussian
from tests import float_bounds

CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def _smoke(**kw):
    cfg = gaussian.get_config("smoke")
    cfg.num_seeds = 16  # two seeds per device: see test_sharded_chain_equals_single_device
    cfg.log_every_seconds = 0.0
    for k, v in kw.items():
        cfg[k] = v
    return cfg


_SINGLE = {}


def _single_device():
    """The single-device reference, computed once for the checks that compare with it."""
    if not _SINGLE:
        _SINGLE.update(chain.simulate(_smoke()))
    return _SINGLE


def _assert_same_as_single(got, one):
    cfg = _smoke()
    float_bounds.assert_chains_close(
        got, one, float_bounds.chain_rtol(cfg.num_generations, cfg.samples_per_generation)
    )


@check
def sharded_chain_equals_single_device():
    assert jax.device_count() == 8, jax.device_count()
    for nd in (0, 2):  # all 8 devices; a 2-device mesh
        _assert_same_as_single(chain.simulate(_smoke(num_devices=nd)), _single_device())


@check
def indivisible_seed_count_is_rejected():
    try:
        chain.simulate(_smoke(num_devices=0, num_seeds=12))
    except ConfigError as e:
        assert "num_seeds" in str(e) and "8 devices" in str(e), e
    else:
        raise AssertionError("12 seeds on 8 devices were accepted")
    try:
        chain.simulate(_smoke(num_devices=9))
    except ConfigError as e:
        assert "num_devices" in str(e), e
    else:
        raise AssertionError("num_devices=9 on 8 devices was accepted")


@check
def checkpoints_restore_across_device_counts():
    def read(d):
        rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        return {k: np.array([r[k] for r in rows], np.float32) for k in rows[0] if k != "generation"}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The reference is an uninterrupted single-device run: the records of runs resumed on
        # other devices are compared with records, line for line.
        chain.run(_smoke(num_devices=1), tmp / "straight")
        straight = read(tmp / "straight")
        # Saved sharded (8 devices), resumed on one device; then saved on one, resumed sharded.
        # Stopping after generation 10 keeps every chunk 5 or 4 generations long (fewer compiles).
        for name, first, second in (("s_to_1", 0, 1), ("1_to_s", 1, 0)):
            d = tmp / name
            chain.run(_smoke(num_devices=first, num_generations=11), d)
            chain.run(_smoke(num_devices=second), d)
            _assert_same_as_single(read(d), straight)
        # The restored carry really lives on the mesh it was asked for.
        mesh = sharding.mesh_1d(sharding.SEEDS, 8)
        from collapse_jax.checkpoint import Checkpointer

        cfg = _smoke(num_devices=0)
        steps = chain.build(cfg, None, mesh)
        truth, keys_S = chain.checks.inputs(cfg, experiments.family(cfg.experiment), mesh)
        abstract = sharding.with_sharding(jax.eval_shape(steps.first, keys_S, truth)[0], mesh)
        with Checkpointer(tmp / "s_to_1" / "checkpoints") as ckpt:
            carry, _ = ckpt.restore(ckpt.latest_step(), abstract)
        for leaf in jax.tree.leaves(carry):
            assert leaf.sharding == sharding.leading(mesh, sharding.SEEDS), leaf.sharding
            assert len(leaf.addressable_shards) == 8


def _tiny_opt():
    from collapse_jax.families.lm import finetune, opt
    from configs import opt_finetune

    config = opt.tiny_config(
        vocab_size=96,
        hidden_size=32,
        num_hidden_layers=1,
        ffn_dim=64,
        num_attention_heads=2,
        max_position_embeddings=32,
        dropout=0.1,
    )  # on: the dropout masks must not depend on the sharding either
    ft = ml_collections.ConfigDict(opt_finetune.finetune_fields())
    ft.learning_rate = 1e-3
    ft.final_learning_rate = 1e-4
    ft.num_epochs = 1
    optimizer = finetune.make_optimizer(ft, steps_per_epoch=10)
    params = opt.init_params(jax.random.key(0), config)
    train_NxL = np.asarray(jax.random.randint(jax.random.key(1), (40, 16), 3, 96), np.int32)
    return finetune, config, optimizer, params, train_NxL


def _train(finetune, config, optimizer, params, train_NxL, place, steps=2):
    """``steps`` train steps; ``place(state, train_NxL, index_B)`` puts the inputs on devices."""
    step_fn = finetune.make_train_step(config, optimizer)
    state = finetune.TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    losses = []
    for i in range(steps):
        index_B = np.arange(8 * i, 8 * i + 16) % train_NxL.shape[0]  # batch 16, 2 per device
        s, t, idx = place(state, train_NxL, index_B)
        state, loss = step_fn(s, t, idx, jax.random.fold_in(jax.random.key(2), i))
        losses.append(float(loss))
    return state, np.array(losses)


@check
def sharded_opt_train_step_equals_unsharded():
    finetune, config, optimizer, params, train_NxL = _tiny_opt()

    def copy(tree):
        return jax.tree.map(jnp.array, tree)  # the step donates its state

    ref_state, ref_losses = _train(
        finetune, config, optimizer, copy(params), train_NxL, lambda s, t, i: (s, t, i)
    )
    mesh = sharding.mesh_1d(sharding.DATA, 8)
    for fsdp in (False, True):
        # min_size=256 so the tiny model's matrices are really split (OPT-125m's are far larger).
        def place(state, t, i, fsdp=fsdp):
            shard = sharding.state_shardings(mesh, state, fsdp=fsdp, min_size=256)
            return (
                sharding.put(state, shard),
                sharding.replicate(t, mesh),
                sharding.shard_batch(mesh, i),
            )

        state, losses = _train(finetune, config, optimizer, copy(params), train_NxL, place)
        # Float tolerance: the sharded step sums the loss and gradients over 8 partial batches
        # (another summation order, ~1e-7 relative in float32), so the losses agree to ~1e-6.
        # AdamW divides each gradient by its own running scale, which turns the rounding noise of
        # a zero gradient (the k_proj bias: softmax ignores a per-query shift) into an update of
        # up to ~lr; seen 1.4e-6 over 3 steps. Gradients of a wrong batch (a shard's, unreduced)
        # move the weights by O(lr) = 1e-3 differently, far outside atol = 1% of lr.
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=f"fsdp={fsdp}")
        got, want = sharding.to_host(state.params), sharding.to_host(ref_state.params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5), got, want)
        if fsdp:
            w = state.params["decoder"]["embed_tokens"]["embedding"]
            assert w.sharding.spec == jax.sharding.PartitionSpec(sharding.DATA), w.sharding
            assert w.addressable_shards[0].data.shape[0] == w.shape[0] // 8


@check
def sharded_beam_search_equals_unsharded():
    from collapse_jax.families.lm import decode

    _, config, _, params, train_NxL = _tiny_opt()
    model = decode.opt_model(config)
    prompts_BxL = train_NxL[:16, :8]  # 2 prompts per device

    def search(p, x):
        return decode.beam_search(model, p, x, num_beams=3, max_new_tokens=6, min_new_tokens=6)

    want = sharding.to_host(search(params, prompts_BxL))
    mesh = sharding.mesh_1d(sharding.DATA, 8)
    got_out = search(sharding.replicate(params, mesh), sharding.shard_batch(mesh, prompts_BxL))
    assert got_out.tokens_BxN.sharding.spec[0] == sharding.DATA, got_out.tokens_BxN.sharding
    got = sharding.to_host(got_out)
    # Rows never interact; only the per-device program's rounding may differ (no near-ties
    # among a random model's top-3 continuations at this size, so the tokens match exactly).
    np.testing.assert_array_equal(got.beam_tokens_BxWxN, want.beam_tokens_BxWxN)
    np.testing.assert_allclose(got.beam_scores_BxW, want.beam_scores_BxW, rtol=1e-5)


@check
def finetune_with_num_devices_equals_single_device():
    """``finetune.num_devices`` / ``finetune.fsdp`` through the whole fine-tuning loop."""
    finetune, config, _, params, train_NxL = _tiny_opt()
    from configs import opt_finetune

    ft = ml_collections.ConfigDict(opt_finetune.finetune_fields())
    ft.num_epochs, ft.batch_size, ft.eval_batch_size = 2, 16, 8
    ft.learning_rate, ft.final_learning_rate = 1e-3, 1e-4
    valid_MxL = train_NxL[:8]
    curves = {}
    for nd, fsdp in ((1, False), (0, False), (0, True)):
        ft.num_devices, ft.fsdp = nd, fsdp
        r = finetune.finetune(jax.random.key(3), params, config, train_NxL, valid_MxL, ft)
        curves[(nd, fsdp)] = np.array([h["valid_loss"] for h in r.history])
    for k, v in curves.items():
        # Same steps, same dropout masks (partitionable threefry): only reduction order differs.
        np.testing.assert_allclose(v, curves[(1, False)], rtol=1e-5, atol=1e-5, err_msg=str(k))


@check
def sub_meshes_are_disjoint():
    meshes = sharding.sub_meshes(4)
    ids = [d.id for m in meshes for d in m.devices.flat]
    assert sorted(ids) == sorted(d.id for d in jax.devices()) and len(meshes) == 4
    try:
        sharding.sub_meshes(3)
    except ConfigError:
        pass
    else:
        raise AssertionError("3 sub-meshes of 8 devices were accepted")


def main(out_path):
    compile_cache.enable()  # tests/conftest.py passes its cache folder in $COLLAPSE_JAX_XLA_CACHE
    results = {}
    for name, fn in CHECKS.items():
        t0 = time.perf_counter()
        try:
            fn()
            results[name] = "ok"
        except Exception:
            results[name] = traceback.format_exc()
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    Path(out_path).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
