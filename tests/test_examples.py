"""The runnable examples run, and what they compute agrees with the run's records."""

import numpy as np

from examples import analyse_run


def test_analyse_run(tmp_path):
    out = analyse_run.main(tmp_path)
    # The KL from the restored models equals the KL from the recorded mean and variance.
    want = analyse_run.kl_to_standard_normal(
        out["recorded_mean_S"].astype(np.float32).astype(np.float64),
        out["recorded_variance_S"].astype(np.float32).astype(np.float64),
    )
    np.testing.assert_allclose(out["kl_S"], want, rtol=1e-12)
    assert out["generation"] > 0 and np.all(out["kl_S"] >= 0)
    assert 0.0 < out["gmm_inside"] < 1.0
    assert out["figure"].is_file()
    assert out["figure"] == tmp_path / "gaussian" / "figures" / "compare_variance.png"
