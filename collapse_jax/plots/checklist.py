"""The mechanical part of the figure checklist (``docs/figures.md``): ``problems(fig)``.

Checked on the drawn figure (its renderer's extents, in pixels):

clipped       every visible text lies inside the figure (and so does ``fig.get_tightbbox``)
overlap       no two texts overlap (axis labels, tick labels, titles, legend entries)
label length  an axis label is no longer than its axes' side
axis labels   every axes with data names its x and y (an inner panel whose tick labels are hidden
              by a shared axis may leave it to its neighbour)
legend        every labelled mark is in a legend; every unlabelled mark is explained: a tagged
              median, band or theory line by the key entry of its tag (``style.legend``), another
              mark by a labelled mark of the same ``gid`` or a labelled container holding it
regime colour a legend entry naming a regime is drawn in that regime's colour (``style``), and
              every theory line is the darker shade of a series drawn in its axes
log axes      a log y axis starts at most ``style.LOG_DECADES`` below the 1st percentile of its
              lines (not at a lone near-zero point such as a distance at generation 0)

What cannot be checked mechanically (units, wording, that a mark reads as meant) is the written
half of the checklist: look at the figure.
"""

import colorsys
import contextlib
import re

import matplotlib.colors as mcolors
import numpy as np
from matplotlib.collections import Collection
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

from collapse_jax.plots import style

PX = 1.0  # tolerance in pixels


@contextlib.contextmanager
def collecting():
    """Check every figure ``plots.save`` writes inside the block: yields ``{name: problems}``.

    with checklist.collecting() as found:
        plots.report(workdir)
    assert not any(found.values())
    """
    from collapse_jax import plots

    found = {}
    save = plots.save

    def check_then_save(fig, outdir, name):
        found[name] = problems(fig)
        return save(fig, outdir, name)

    plots.save = check_then_save
    try:
        yield found
    finally:
        plots.save = save


def problems(fig) -> list[str]:
    """Every checklist item ``fig`` fails, one line each (empty: it passes)."""
    fig.draw_without_rendering()  # layout and ticks as saved, without rasterizing
    r = fig.canvas.get_renderer()
    out = []
    every, drawn = _tick_labels(fig)
    texts = _texts(fig, every, drawn)
    out += _clipped(fig, r, texts)
    out += _overlaps(r, texts)
    axes = [ax for ax in fig.axes if ax.get_visible() and not _is_colorbar(ax)]
    for i, ax in enumerate(axes):
        name = f"axes {i} ({ax.get_title() or ax.get_ylabel() or 'untitled'!r})"
        out += [f"{name}: {p}" for p in _axes_problems(fig, ax, r, drawn)]
    return out


def _tick_labels(fig) -> tuple[set[int], set[int]]:
    """``(every tick label, the drawn ones)`` by ``id``: matplotlib keeps tick labels past the
    view limits (and switched-off ones) that are never drawn."""
    every, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * max(abs(lo), abs(hi), 1e-300)
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                inside = lo - tol <= tick.get_loc() <= hi + tol
                for label in (tick.label1, tick.label2):
                    every.add(id(label))
                    if inside and label.get_visible() and ax.axison and axis.get_visible():
                        drawn.add(id(label))
    return every, drawn


def _texts(fig, every: set[int], drawn: set[int]) -> list[Text]:
    found = []
    for t in fig.findobj(Text):
        if not (t.get_visible() and t.get_text().strip()):
            continue
        if id(t) in every and id(t) not in drawn:
            continue
        ax = t.axes
        if ax is not None and not ax.get_visible():
            continue
        if ax is not None and not ax.axison and t in (ax.xaxis.label, ax.yaxis.label):
            continue
        found.append(t)
    return found


def _clipped(fig, r, texts) -> list[str]:
    box = fig.bbox
    out = []
    for t in texts:
        e = t.get_window_extent(r)
        if e.x0 < box.x0 - PX or e.y0 < box.y0 - PX or e.x1 > box.x1 + PX or e.y1 > box.y1 + PX:
            out.append(f"clipped: text {t.get_text()!r} extends outside the figure")
    tight = fig.get_tightbbox(r)  # inches
    w, h = fig.get_size_inches()
    eps = PX / fig.dpi
    if tight.x0 < -eps or tight.y0 < -eps or tight.x1 > w + eps or tight.y1 > h + eps:
        out.append(f"clipped: the figure's content {tight.bounds} is larger than {w}x{h} in")
    return out


def _overlaps(r, texts) -> list[str]:
    boxes = [t.get_window_extent(r) for t in texts]
    out = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            a, b = boxes[i], boxes[j]
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > PX and dy > PX:
                out.append(
                    f"overlap: texts {texts[i].get_text()!r} and {texts[j].get_text()!r} overlap"
                )
    return out


def _is_colorbar(ax) -> bool:
    return getattr(ax, "_colorbar", None) is not None


def _has_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.images)


def _axes_problems(fig, ax, r, drawn: set[int]) -> list[str]:
    out = []
    if not ax.axison or not _has_data(ax):
        return out
    bbox = ax.get_window_extent(r)
    for axis, which, side in ((ax.xaxis, "x", bbox.width), (ax.yaxis, "y", bbox.height)):
        label = axis.label
        ticks_shown = any(id(t) in drawn for t in axis.get_ticklabels() if t.get_text().strip())
        if not label.get_text().strip():
            if ticks_shown:
                out.append(f"axis labels: no {which} label")
            continue
        e = label.get_window_extent(r)
        length = e.width if which == "x" else e.height
        if length > side + PX:
            out.append(
                f"label length: {which} label {label.get_text()!r} ({length:.0f} px) is longer "
                f"than its axes ({side:.0f} px)"
            )
    out += _legend_problems(fig, ax)
    out += _colour_problems(ax)
    out += _log_problems(ax)
    return out


def _legend_texts(fig, ax) -> list[tuple[str, object]]:
    """``(text, handle)`` of every legend entry that can explain ``ax``'s marks."""
    legends = [leg for leg in [ax.get_legend(), *fig.legends] if leg is not None]
    pairs = []
    for leg in legends:
        for t, h in zip(leg.get_texts(), leg.legend_handles, strict=False):
            pairs.append((t.get_text(), h))
    return pairs


def _marks(ax) -> list:
    marks = [ln for ln in ax.lines if ln.get_visible()]
    marks += [c for c in ax.collections if c.get_visible()]
    marks += [p for p in ax.patches if p.get_visible()]
    return marks


def _legend_problems(fig, ax) -> list[str]:
    entries = _legend_texts(fig, ax)
    texts = {t for t, _ in entries}
    key_gids = {h.get_gid() for _, h in entries if h is not None and h.get_gid()}
    labelled_gids = {
        m.get_gid()
        for a in fig.axes
        for m in _marks(a)
        if m.get_gid() and not m.get_label().startswith("_") and m.get_label() in texts
    }
    in_labelled_container = set()
    for c in ax.containers:
        if not c.get_label().startswith("_") and c.get_label() in texts:
            for child in c.get_children():
                in_labelled_container.add(id(child))
                if isinstance(child, Collection | Line2D | Patch):
                    continue
                for grand in getattr(child, "get_children", list)():
                    in_labelled_container.add(id(grand))
    out = []
    for m in _marks(ax):
        if isinstance(m, AxesImage) or id(m) in in_labelled_container:
            continue
        label, gid = m.get_label(), m.get_gid()
        if not label.startswith("_"):
            if label not in texts:
                out.append(f"legend: the mark {label!r} is not in a legend")
            continue
        if gid in style.KEY_LABELS:
            if f"key:{gid}" not in key_gids and style.KEY_LABELS[gid] not in texts:
                if not (gid == style.THEORY and any("theory" in t for t in texts)):
                    out.append(f"legend: no key entry for the {gid} marks")
            continue
        if gid and gid in labelled_gids:
            continue
        if isinstance(m, Rectangle) and m.get_width() == 0:  # e.g. empty bars
            continue
        out.append(f"legend: an unlabelled {type(m).__name__} (gid {gid!r}) is not explained")
    return sorted(set(out))


def _hue(color) -> tuple[float, float]:
    h, _, s = colorsys.rgb_to_hls(*mcolors.to_rgb(color))
    return h, s


def _colour(artist):
    if isinstance(artist, Line2D):
        return artist.get_color()
    if isinstance(artist, Collection):
        fc = artist.get_facecolor()
        return fc[0] if len(fc) else artist.get_edgecolor()[0]
    if isinstance(artist, Patch):
        return artist.get_facecolor()
    return None


def _same_hue(a, b) -> bool:
    (ha, sa), (hb, sb) = _hue(a), _hue(b)
    if sa < 0.05 or sb < 0.05:
        return mcolors.same_color(a, b)
    return min(abs(ha - hb), 1 - abs(ha - hb)) < 0.02


def _regime_named(text: str) -> str | None:
    """The regime a legend entry names: its first word, or the value of ``mixing.regime=``."""
    m = re.search(r"mixing\.regime=(\w+)", text) or re.match(r"(\w+)", text)
    return m.group(1) if m and m.group(1) in style.REGIME_COLORS else None


def _colour_problems(ax) -> list[str]:
    out = []
    pairs = []
    for leg in [ax.get_legend(), *ax.figure.legends]:
        if leg is not None:
            pairs += list(zip(leg.get_texts(), leg.legend_handles, strict=False))
    for t, h in pairs:
        word = _regime_named(t.get_text())
        if word is not None and h is not None:
            c = _colour(h)
            if c is not None and not _same_hue(c, style.REGIME_COLORS[word]):
                out.append(
                    f"regime colour: {t.get_text()!r} is drawn in {mcolors.to_hex(c)}, not "
                    f"{style.REGIME_COLORS[word]} (style.REGIME_COLORS)"
                )
    series = [
        ln.get_color()
        for ln in ax.lines
        if ln.get_gid() != style.THEORY
        and (ln.get_gid() == style.MEAN or ln.get_label()[:1] != "_")
    ]
    series += [_colour(c) for c in ax.collections if c.get_gid() != style.THEORY]
    for ln in ax.lines:
        if ln.get_gid() != style.THEORY:
            continue
        c = ln.get_color()
        if not any(
            np.allclose(mcolors.to_rgb(c), style.theory_color(s), atol=0.01)
            for s in series
            if s is not None
        ):
            out.append(
                f"regime colour: theory line {ln.get_label()!r} ({mcolors.to_hex(c)}) is not the "
                "darker shade of a series in its axes (style.theory)"
            )
    return out


def _log_problems(ax) -> list[str]:
    if ax.get_yscale() != "log":
        return []
    v = style.data_y(ax, lines_only=True)
    v = v[v > 0]
    if v.size == 0:
        return []
    lo = ax.get_ylim()[0]
    q = np.quantile(v, 0.01)
    if lo < q / 10**style.LOG_DECADES * (1 - 1e-9):
        return [
            f"log axes: y starts at {lo:.3g}, {np.log10(q / lo):.1f} decades below the 1st "
            f"percentile of the drawn lines ({q:.3g})"
        ]
    return []
