"""The non-finite guard: the first generation whose metrics hold a NaN or an infinity."""

import numpy as np


def first_nonfinite(generations, metrics_GxS: dict[str, np.ndarray]):
    """``(index, message)`` of the first generation with a non-finite metric, else ``None``."""
    bad_G = np.zeros(len(generations), bool)
    for v in metrics_GxS.values():
        v = np.asarray(v)
        if v.dtype.kind == "f":
            bad_G |= ~np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)
    if not bad_G.any():
        return None
    i = int(np.argmax(bad_G))
    names, seeds = [], set()
    for k, v in metrics_GxS.items():
        v = np.asarray(v)
        if v.dtype.kind != "f":
            continue
        bad_S = ~np.isfinite(v[i].reshape(v.shape[1], -1)).all(axis=1)
        if bad_S.any():
            names.append(k)
            seeds.update(np.flatnonzero(bad_S).tolist())
    seeds = sorted(seeds)
    shown = ", ".join(map(str, seeds[:10])) + (", ..." if len(seeds) > 10 else "")
    msg = (
        f"non-finite metric(s) {', '.join(names)} at generation {int(generations[i])} "
        f"for seed index(es) {shown}"
    )
    return i, msg
