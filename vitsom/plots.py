"""Figures of the book: pure functions from arrays / DataFrames to a :class:`matplotlib.figure.Figure`.

Nothing here trains, reads files or touches pyplot's global state (figures are built with
``matplotlib.figure.Figure``), so every function can be tested on synthetic inputs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.ticker import FormatStrFormatter, FuncFormatter, NullFormatter, ScalarFormatter

OURS_COLOUR = "#d62728"
PAPER_OURS_COLOUR = "#ff7f0e"
PAPER_BASE_COLOUR = "#1f77b4"


def _fig(w: float, h: float) -> Figure:
    return Figure(figsize=(w, h), dpi=100, layout="constrained")


# ----------------------------------------------------------------------------- architecture

def architecture_figure() -> Figure:
    """Schematic of ViT-SOM (after the paper's Fig. 1): patches → token embedding → ViT encoder →
    z → SOM layer (SOM loss) and decoder → reconstruction, with the reconstruction loss loop."""
    fig = _fig(10, 3.2)
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.2)
    ax.axis("off")

    def box(x, y, w, h, text, colour):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=colour, ec="black", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(x0, y0, x1, y1, style="-|>", ls="-", text=None, rad=0.0):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle=style, mutation_scale=12, lw=1.2, ls=ls,
                                     connectionstyle=f"arc3,rad={rad}"))
        if text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + (0.35 if rad else 0.12), text, ha="center", fontsize=8)

    # input patches
    for i in range(3):
        for j in range(3):
            ax.add_patch(Rectangle((0.2 + 0.28 * j, 1.9 - 0.28 * i), 0.26, 0.26, fc="#dddddd", ec="black", lw=0.6))
    ax.text(0.6, 1.05, "image x\n(patches)", ha="center", fontsize=8)
    box(1.35, 1.5, 1.0, 0.7, "token\nembedding", "#e8f0fb")
    box(2.75, 1.5, 1.1, 0.7, "ViT encoder\n(+ final LN)", "#cfe0f7")
    box(4.25, 1.5, 0.9, 0.7, "z = patch\ntokens", "#fff2cc")
    # SOM grid
    gx, gy = 5.7, 2.35
    for i in range(4):
        for j in range(4):
            ax.add_patch(Rectangle((gx + 0.2 * j, gy + 0.2 * i), 0.16, 0.16, fc="#f4cccc", ec="black", lw=0.5))
    ax.text(gx + 0.38, gy - 0.2, "SOM layer", ha="center", fontsize=8)
    box(6.65, 1.5, 1.0, 0.7, "decoder", "#cfe0f7")
    for j in range(3):
        for i in range(3):
            ax.add_patch(Rectangle((8.25 + 0.28 * j, 1.9 - 0.28 * i), 0.26, 0.26, fc="#eeeeee", ec="black", lw=0.6))
    ax.text(8.65, 1.05, "reconstruction x̂", ha="center", fontsize=8)
    arrow(1.05, 1.85, 1.35, 1.85)
    arrow(2.4, 1.85, 2.75, 1.85)
    arrow(3.9, 1.85, 4.25, 1.85)
    arrow(5.2, 2.0, 5.7, 2.55, text=None)
    arrow(5.2, 1.85, 6.65, 1.85)
    arrow(7.7, 1.85, 8.2, 1.85)
    ax.text(6.55, 2.9, "L_som = mean h·d  (γ)", fontsize=8, color="#990000")
    ax.plot([8.65, 8.65, 0.6], [0.85, 0.45, 0.45], ls="--", color="black", lw=1.2)
    arrow(0.6, 0.45, 0.6, 0.9, ls="--")
    ax.text(4.6, 0.15, "reconstruction loss L1(x̂, x)  (classification: cross-entropy of a head on the CLS token)",
            ha="center", fontsize=8)
    return fig


# ----------------------------------------------------------------------------- latent progression

def latent_progression_figure(embeddings: Sequence[np.ndarray], labels: np.ndarray, titles: Sequence[str],
                              class_names: Sequence[str] | None = None) -> Figure:
    """Panels I → II → … of 2-D embeddings (n, 2) coloured by label (tab10), as the paper's Fig. 3."""
    k = len(embeddings)
    fig = _fig(3.2 * k + 0.6, 3.4)
    axes = fig.subplots(1, k, squeeze=False)[0]
    labels = np.asarray(labels)
    numerals = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII"]
    sc = None
    for i, (ax, e, t) in enumerate(zip(axes, embeddings, titles)):
        sc = ax.scatter(e[:, 0], e[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=3, alpha=0.7, linewidths=0)
        ax.set_title(f"{numerals[i] if i < len(numerals) else i + 1}: {t}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if sc is not None:
        cb = fig.colorbar(sc, ax=list(axes), ticks=range(10), shrink=0.85)
        if class_names is not None:
            cb.ax.set_yticklabels(list(class_names)[:10], fontsize=7)
    return fig


# ----------------------------------------------------------------------------- prototypes and map

def tile_images(images: np.ndarray, height: int, width: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """(K, C, H, W) images in row-major unit order → one (height·(H+pad)+pad, width·(W+pad)+pad[, C]) mosaic."""
    images = np.asarray(images, dtype=float)
    k, c, h, w = images.shape
    if k != height * width:
        raise ValueError(f"{k} images do not fill a {height}×{width} grid")
    out = np.full((height * (h + pad) + pad, width * (w + pad) + pad, c), fill)
    for u in range(k):
        r, q = divmod(u, width)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = \
            images[u].transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


def prototype_grid_figure(images: np.ndarray, height: int, width: int, title: str = "") -> Figure:
    """Decoded prototypes laid out on the SOM grid (the paper's Fig. 4)."""
    mosaic = np.clip(tile_images(images, height, width, fill=0.0), 0, 1)   # ink dark on white, white gaps
    side = min(9.0, max(4.0, 0.3 * max(height, width)))
    fig = _fig(side, side)
    ax = fig.add_subplot()
    ax.imshow(mosaic, cmap="gray_r" if mosaic.ndim == 2 else None, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def prototype_grids_figure(panels: Sequence[tuple[np.ndarray, int, int, str]]) -> Figure:
    """Several maps' prototype images side by side: ``panels`` of (images (K, C, H, W) in [0, 1],
    map height, map width, title)."""
    if not panels:
        raise ValueError("no maps to draw")
    fig = _fig(4.6 * len(panels), 4.9)
    for i, (images, h, w, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        mosaic = np.clip(tile_images(images, h, w, fill=0.0), 0, 1)
        ax.imshow(mosaic, cmap="gray_r" if mosaic.ndim == 2 else None, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
    return fig


def u_matrix(prototypes: np.ndarray, height: int, width: int, distance: str = "cosine") -> np.ndarray:
    """(height, width) mean distance of each unit's prototype to its 4-neighbours' (square grid)."""
    w = np.asarray(prototypes, dtype=np.float64).reshape(height, width, -1)

    def dist(a, b):
        if distance == "cosine":
            na = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
            return 1.0 - (a * b).sum(-1) / np.maximum(na, 1e-12)
        if distance == "euclidean":
            return np.linalg.norm(a - b, axis=-1)
        if distance == "manhattan":
            return np.abs(a - b).sum(-1)
        raise ValueError(f"unknown distance {distance!r}")

    total = np.zeros((height, width))
    count = np.zeros((height, width))
    if height > 1:
        d = dist(w[1:], w[:-1])
        total[1:] += d
        total[:-1] += d
        count[1:] += 1
        count[:-1] += 1
    if width > 1:
        d = dist(w[:, 1:], w[:, :-1])
        total[:, 1:] += d
        total[:, :-1] += d
        count[:, 1:] += 1
        count[:, :-1] += 1
    return total / np.maximum(count, 1)


def hit_counts(bmu: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.bincount(np.asarray(bmu, dtype=np.int64), minlength=height * width)[: height * width].reshape(height, width)


def map_figure(hits: np.ndarray, umat: np.ndarray, labels_map: np.ndarray | None = None, title: str = "") -> Figure:
    """BMU hit map (log scale; majority label written in each hit unit) and U-matrix side by side."""
    from matplotlib.colors import LogNorm
    h, w = hits.shape
    fig = _fig(11, 5)
    a1, a2 = fig.subplots(1, 2)
    shown = np.where(hits > 0, hits, np.nan)
    im = a1.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(2, np.nanmax(hits))), interpolation="nearest")
    fig.colorbar(im, ax=a1, shrink=0.8, label="samples per unit")
    a1.set_title("BMU hit map (blank: unit never hit)", fontsize=10)
    if labels_map is not None and max(h, w) <= 32:
        for r in range(h):
            for c in range(w):
                if hits[r, c] > 0:
                    a1.text(c, r, str(int(labels_map[r, c])), ha="center", va="center", fontsize=6, color="white")
    im2 = a2.imshow(umat, cmap="magma", interpolation="nearest")
    fig.colorbar(im2, ax=a2, shrink=0.8, label="mean distance to grid neighbours")
    a2.set_title("U-matrix (bright: borders between clusters)", fontsize=10)
    for a in (a1, a2):
        a.set_xticks([])
        a.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def population_sd(values) -> tuple[float, float]:
    """Error bar for seaborn: mean ± population std (np.std, ddof 0), as the tables and the paper;
    seaborn's own ("sd", 1) uses the sample std, which would not match the table beside the figure."""
    v = np.asarray(values, dtype=float)
    return float(v.mean() - v.std()), float(v.mean() + v.std())


def majority_labels(bmu: np.ndarray, labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width) majority label of the samples on each unit (−1 where none)."""
    k = height * width
    m = np.zeros((k, int(labels.max()) + 1), dtype=np.int64)
    np.add.at(m, (np.asarray(bmu), np.asarray(labels)), 1)
    out = np.where(m.sum(1) > 0, m.argmax(1), -1)
    return out.reshape(height, width)


# ----------------------------------------------------------------------------- size vs score

def size_vs_score_figure(left: Sequence[dict], right: Sequence[dict], left_title: str = "MNIST purity",
                         right_title: str = "CIFAR-10 top-1 accuracy", ours_label: str = "this repository") -> Figure:
    """The paper's two-panel plot: score vs model size (M, log x). Each point is a dict with
    ``name``, ``params``, ``score``, ``kind`` ∈ {"paper-ours", "paper-baseline", "repro"}.
    Paper points are labelled "reported"; reproduced points carry ``ours_label``."""
    fig = _fig(11, 4.6)
    axes = fig.subplots(1, 2)
    style = {"paper-ours": dict(marker="*", s=160, color=PAPER_OURS_COLOUR, label="ViT-SOM (paper, reported)"),
             "paper-baseline": dict(marker="o", s=60, color=PAPER_BASE_COLOUR, label="baselines (paper, reported)"),
             "repro": dict(marker="D", s=55, color=OURS_COLOUR, label=ours_label)}
    for ax, pts, title in ((axes[0], left, left_title), (axes[1], right, right_title)):
        seen = set()
        for p in pts:
            st = dict(style[p["kind"]])
            lab = st.pop("label")
            ax.scatter([p["params"]], [p["score"]], label=None if p["kind"] in seen else lab, zorder=3,
                       edgecolors="black", linewidths=0.5, **st)
            if p.get("err"):
                ax.errorbar([p["params"]], [p["score"]], yerr=[p["err"]], color=st["color"], lw=1, zorder=2)
            seen.add(p["kind"])
            ax.annotate(p["name"], (p["params"], p["score"]), textcoords="offset points", xytext=(5, 5), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        if pts:
            xs = [p["params"] for p in pts]
            ax.set_xlim(min(xs) / 1.4, max(xs) * 1.6)
            ticks = [t for t in (0.5, 1, 2, 3, 5, 10, 20, 30, 50) if min(xs) / 1.4 <= t <= max(xs) * 1.6]
            ax.set_xticks(ticks)
        ax.set_xlabel("model size (M parameters, log scale)")
        ax.set_ylabel(title)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if pts:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
        else:
            ax.text(0.5, 0.5, "no points", transform=ax.transAxes, ha="center")
    return fig


# ----------------------------------------------------------------------------- ablations

def metric_vs_factor_figure(df, x: str, metrics: Sequence[tuple[str, str]], hue: str | None = None,
                            logx: bool = False, symlogx: float | None = None, title: str = "",
                            xticks: Sequence[float] | None = None) -> Figure:
    """One panel per metric: mean ± std over seeds (points and error bars) against ``x``.

    ``metrics`` is a list of (column, axis label); rows whose metric is missing are dropped.
    ``xticks`` labels the x axis at these values (e.g. the map sides) instead of powers of 2."""
    import seaborn as sns
    n = len(metrics)
    cols = n if n <= 4 else 3
    rows = int(np.ceil(n / cols))
    fig = _fig(4.0 * cols, 3.2 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (col, lab) in zip(axes, metrics):
        sub = df[[c for c in {x, col, hue} if c]].dropna(subset=[col]) if col in df.columns else df.iloc[:0]
        if sub.empty:
            ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center")
        else:
            sns.lineplot(data=sub, x=x, y=col, hue=hue, marker="o", errorbar=population_sd, err_style="bars", ax=ax,
                         legend=bool(hue) and ax is axes[0])
        if logx:
            ax.set_xscale("log", base=2)
        if symlogx is not None and not sub.empty:
            ax.set_xscale("symlog", linthresh=symlogx)
            hi = float(sub[x].max())
            ax.set_xlim(-0.3 * symlogx, hi * 1.6 if hi > 0 else symlogx)   # no empty negative half
        if xticks is not None:
            ax.set_xticks(list(xticks), [f"{t:g}" for t in xticks])
            ax.minorticks_off()
        ax.set_ylabel(lab)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_axis_off()
    if hue and axes[0].get_legend() is not None:          # one legend for all panels, under them
        handles, labels = axes[0].get_legend_handles_labels()
        axes[0].get_legend().remove()
        fig.legend(handles, labels, title=hue, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8,
                   title_fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def metric_bars_figure(df, x: str, metrics: Sequence[tuple[str, str]], title: str = "") -> Figure:
    """Bars (mean, ± std error bars over seeds) of each metric per value of a categorical ``x``."""
    import seaborn as sns
    n = len(metrics)
    fig = _fig(3.6 * n, 3.2)
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, (col, lab) in zip(axes, metrics):
        sub = df.dropna(subset=[col]) if col in df.columns else df.iloc[:0]
        if sub.empty:
            ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center")
        else:
            sns.barplot(data=sub, x=x, y=col, errorbar=population_sd, ax=ax, color="#6baed6")
        ax.set_ylabel(lab)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def difference_figure(fractions: Sequence[float], means: Sequence[float], stds: Sequence[float],
                      labels: Sequence[str], title: str = "") -> Figure:
    """ViT-SOM-cls minus ViT-cls top-1 (points, ± std over seeds) against the label fraction, per dataset."""
    fig = _fig(5.5, 3.4)
    ax = fig.add_subplot()
    fractions, means, stds, labels = map(np.asarray, (fractions, means, stds, labels))
    for lab in dict.fromkeys(labels.tolist()):
        m = labels == lab
        ax.errorbar(fractions[m], means[m], yerr=np.nan_to_num(stds[m]), marker="o", capsize=3, label=lab)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of training labels")
    ax.set_ylabel("top-1: ViT-SOM-cls − ViT-cls")
    ax.grid(alpha=0.3)
    if len(labels):
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def grouped_curves_figure(groups: dict[str, Sequence[list[dict]]], key: str = "task_loss", ylabel: str = "",
                          title: str = "", logy: bool = False) -> Figure:
    """Per-epoch training curves of many runs in one panel, one colour per group (e.g. per seed), one
    legend entry per group: ``{group label: [record history, ...]}``. If the curves bunch by colour,
    the groups (not whatever else differs between the runs) decide the curve."""
    fig = _fig(6.4, 3.8)
    ax = fig.subplots()
    colours = [f"C{i % 10}" for i in range(len(groups))]
    for colour, (name, histories) in zip(colours, groups.items()):
        for i, h in enumerate(histories):
            ep = [r["epoch"] + 1 for r in h if key in r]
            ax.plot(ep, [r[key] for r in h if key in r], lw=1.0, alpha=0.75, color=colour,
                    label=f"{name} ({len(histories)} run{'s' if len(histories) != 1 else ''})" if i == 0 else None)
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))     # 0.04, not 4 × 10⁻²
        ax.yaxis.set_minor_formatter(FuncFormatter(                 # label 2, 4 and 6 × 10ᵏ only
            lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 4, 6) else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key)
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=10)
    if groups:
        ax.legend(fontsize=8)
    return fig


def loss_curves_figure(panels: Sequence[tuple[str, dict[str, list[dict]], float | None]], key: str = "task_loss",
                       ylabel: str = "", reference_label: str = "") -> Figure:
    """Per-epoch training curves, one panel per ``(title, {line label: record history}, reference)``;
    ``reference`` (or None) is drawn as a dashed horizontal line labelled ``reference_label``."""
    fig = _fig(3.6 * max(1, len(panels)), 3.4)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (title, histories, reference) in zip(axes, panels):
        for name, h in histories.items():
            ep = [r["epoch"] + 1 for r in h if key in r]
            ax.plot(ep, [r[key] for r in h if key in r], lw=1.4, label=name)
        if reference is not None:
            ax.axhline(reference, color="0.3", ls="--", lw=1, label=reference_label or None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel or key)
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=10)
        if histories:
            ax.legend(fontsize=7)
    return fig
