"""One seed's generations of every small family, with and without jit: the carry keeps its tree,
shapes and dtypes from generation to generation (the span's loop needs it), generation 0 and
generation g measure the same metrics, and every value is finite."""

import chex
import jax
import jax.numpy as jnp
from absl.testing import parameterized

from collapse_jax import chain, experiments, mixing, rng

FAMILIES = ("gaussian", "discrete", "gmm", "linear_regression", "kde")


class OneSeedGenerationTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*FAMILIES)
    def test_generations_keep_the_carry_and_the_metrics(self, name):
        cfg = experiments.get(name).config_module().get_config("smoke")
        fam = experiments.family(name)
        plan = mixing.plan_for(cfg, fam)
        truth = fam.reference(cfg)
        key = rng.seed_keys(cfg.seed, 1)[0]

        @self.variant
        def first(key):
            return chain.first_generation(fam, plan, cfg, key, truth)

        @self.variant
        def step(key, carry, g):
            return chain.next_generation(fam, plan, cfg, key, truth, carry, g)

        with jax.default_matmul_precision(cfg.matmul_precision):
            carry0, m0 = first(key)
            carry1, m1 = step(key, carry0, jnp.int32(1))
            carry2, m2 = step(key, carry1, jnp.int32(2))
        chex.assert_trees_all_equal_shapes_and_dtypes(carry0, carry1, carry2)
        chex.assert_trees_all_equal_shapes_and_dtypes(m0, m1, m2)
        chex.assert_tree_all_finite((m0, m1, m2))
        # data0 and model0 ride along unchanged.
        chex.assert_trees_all_equal((carry0.data0, carry0.model0), (carry2.data0, carry2.model0))
