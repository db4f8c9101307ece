"""The persistent XLA compilation cache the launchers enable."""

import jax
import pytest

from collapse_jax import compile_cache


@pytest.fixture
def jax_cache_config():
    """Restore the tests' own cache settings (conftest.py) after each test."""
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {k: getattr(jax.config, k) for k in keys}
    yield
    for k, v in saved.items():
        jax.config.update(k, v)


def test_env_folder_is_created_and_used(tmp_path, monkeypatch, jax_cache_config):
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "xla"))
    assert compile_cache.enable() == tmp_path / "xla"
    assert (tmp_path / "xla").is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")


def test_empty_env_disables(monkeypatch, jax_cache_config):
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv(compile_cache.ENV, "")
    assert compile_cache.enable() is None
    assert jax.config.jax_compilation_cache_dir == before


def test_default_is_under_the_user_cache(tmp_path, monkeypatch, jax_cache_config):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_dir() == tmp_path / "collapse_jax" / "xla"
    # A folder already chosen through JAX's own config wins over the default.
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    assert compile_cache.enable() == tmp_path / "mine"
    jax.config.update("jax_compilation_cache_dir", None)
    assert compile_cache.enable() == tmp_path / "collapse_jax" / "xla"


def test_unwritable_folder_only_warns(tmp_path, monkeypatch, jax_cache_config):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "file" / "xla"))
    assert compile_cache.enable() is None


def test_a_resumed_run_finds_the_programs_of_the_run_it_resumes(
    tmp_path, request, jax_cache_config
):
    """A restored carry is committed to its device; the fresh run's must be too, else the resumed
    run's chunk is another program and recompiles (minutes for the larger families)."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    from collapse_jax import chain
    from configs import gaussian

    # An empty cache of its own (no program from earlier runs) that keeps every program.
    compile_cache.enable(tmp_path / "xla")
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    cc.reset_cache()
    request.addfinalizer(cc.reset_cache)  # the next compile opens the tests' folder again

    def cfg_for(num_generations):
        cfg = gaussian.get_config("smoke")
        cfg.num_generations = num_generations
        cfg.checkpoint.every_generations = 1
        cfg.checkpoint.keep_generations = []
        return cfg

    chain.run(cfg_for(4), tmp_path / "whole")  # its programs are now in the cache
    chain.run(cfg_for(2), tmp_path / "part")
    events = []

    def listen(event, **kwargs):
        events.append(event)

    jax.monitoring.register_event_listener(listen)
    try:
        chain.run(cfg_for(4), tmp_path / "part")
    finally:
        jax.monitoring.unregister_event_listener(listen)
    assert "/jax/compilation_cache/cache_hits" in events
    assert "/jax/compilation_cache/cache_misses" not in events
