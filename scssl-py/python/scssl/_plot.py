"""The results table of ``Benchmarker.plot_results_table``, drawn with matplotlib alone: one
row per embedding (best Total first), a circle per metric coloured by its value within the
column, a bar per aggregate score, metric groups named above the columns."""
from __future__ import annotations

import numpy as np


def results_table(df, metric_type: str, aggregate: str):
    import matplotlib.pyplot as plt
    from matplotlib import colormaps

    kinds = df.loc[metric_type]
    values = df.drop(index=metric_type).astype(np.float64)
    scores = [c for c in df.columns if kinds[c] == aggregate]
    metrics = [c for c in df.columns if kinds[c] != aggregate]
    sort_col = "Total" if "Total" in values else scores[0]
    values = values.sort_values(by=sort_col, ascending=False)
    n_rows, n_cols = values.shape[0], len(metrics) + len(scores)
    fig, ax = plt.subplots(figsize=(2.2 + 1.15 * n_cols, 1.3 + 0.5 * n_rows))
    ax.set_xlim(-2.2, n_cols)
    ax.set_ylim(n_rows - 0.4, -2.1)
    ax.axis("off")
    circle_cmap, bar_cmap = colormaps["PRGn"], colormaps["YlGnBu"]
    for r, name in enumerate(values.index):
        ax.text(-2.1, r, str(name), ha="left", va="center", fontsize=10, weight="bold")
    for j, col in enumerate(metrics + scores):
        title = col.replace(" ", "\n", 1)
        ax.text(j + 0.5, -0.6, title, ha="center", va="bottom", fontsize=9)
        column = values[col].to_numpy()
        finite = column[np.isfinite(column)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        for r, v in enumerate(column):
            if not np.isfinite(v):
                ax.text(j + 0.5, r, "–", ha="center", va="center", fontsize=9)
                continue
            t = 0.5 if hi == lo else (v - lo) / (hi - lo)
            if col in scores:
                ax.barh(r, 0.9 * max(v, 0.0), left=j + 0.05, height=0.7, color=bar_cmap(0.25 + 0.7 * t))
                ax.text(j + 0.08, r, f"{v:.2f}", ha="left", va="center", fontsize=8,
                        color="white" if t > 0.5 else "black")
            else:
                ax.scatter([j + 0.5], [r], s=600, color=circle_cmap(0.15 + 0.7 * t), zorder=2)
                ax.text(j + 0.5, r, f"{v:.2f}", ha="center", va="center", fontsize=8, zorder=3)
    # the metric groups (Bio conservation, Batch correction, Aggregate score)
    groups = {}
    for j, col in enumerate(metrics + scores):
        groups.setdefault(kinds[col], []).append(j)
    for kind, cols in groups.items():
        ax.plot([min(cols) + 0.05, max(cols) + 0.95], [-1.45, -1.45], color="black", lw=1)
        ax.text((min(cols) + max(cols) + 1) / 2, -1.55, kind, ha="center", va="bottom", fontsize=10)
    for r in range(n_rows - 1):
        ax.plot([-2.2, n_cols], [r + 0.5, r + 0.5], color="grey", lw=0.5, ls=(0, (1, 5)))
    fig.tight_layout()
    return fig
