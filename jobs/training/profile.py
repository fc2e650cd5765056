"""A data profile of the training set, logged with every run: summary statistics, distributions, correlations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def profile(frame: pd.DataFrame, numeric: list[str], max_hist: int = 24) -> tuple[dict[str, str], dict[str, Any]]:
    """(text artifacts by file name, figures by file name) describing ``frame``'s columns."""
    import numpy as np
    from matplotlib.figure import Figure

    num = frame[[c for c in numeric if c in frame]].apply(lambda s: s.astype("float64"))
    summary = num.describe(percentiles=[0.01, 0.25, 0.5, 0.75, 0.99]).T
    summary["missing_share"] = num.isna().mean()
    summary["zero_share"] = (num == 0).mean()
    corr = num.corr(method="spearman").round(4)
    text = {
        "profile/summary.csv": summary.round(6).to_csv(),
        "profile/correlations.csv": corr.to_csv(),
        "profile/overview.json": json.dumps(
            {
                "rows": len(frame),
                "columns": len(frame.columns),
                "by_strategy": frame["strategy"].value_counts().to_dict() if "strategy" in frame else {},
                "conversion_by_strategy": frame.groupby("strategy")["converted"].mean().round(6).to_dict()
                if {"strategy", "converted"} <= set(frame.columns)
                else {},
                "by_split": frame["split"].value_counts().to_dict() if "split" in frame else {},
            },
            indent=2,
        ),
    }
    cols = list(num.columns[:max_hist])
    ncols = 4
    nrows = max(1, int(np.ceil(len(cols) / ncols)))
    hist = Figure(figsize=(4 * ncols, 2.6 * nrows))
    for i, c in enumerate(cols):
        ax = hist.add_subplot(nrows, ncols, i + 1)
        values = num[c].dropna().to_numpy()
        if values.size:
            ax.hist(values, bins=30, color="#4878a8")
        ax.set_title(c, fontsize=8)
        ax.tick_params(labelsize=6)
    hist.tight_layout()
    heat = Figure(figsize=(10, 9))
    ax = heat.add_subplot(1, 1, 1)
    image = ax.imshow(corr.fillna(0).to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr.columns)), corr.columns, rotation=90, fontsize=6)
    ax.set_yticks(range(len(corr.columns)), corr.columns, fontsize=6)
    ax.set_title("Spearman correlations of the training features")
    heat.colorbar(image, ax=ax, shrink=0.7)
    heat.tight_layout()
    return text, {"profile/distributions.png": hist, "profile/correlations.png": heat}


def profile_folder(frame: pd.DataFrame, numeric: list[str], cache: Path) -> Path:
    """The profile of ``frame`` written under ``cache/<content key>/profile/``, rendered once per content.

    The families trained on one night's training set log the same profile: the first renders it (two
    figures, seconds of matplotlib layout), the others reuse the files (:mod:`jobs.training.cache`).
    """
    from jobs.training.cache import cached_folder, content_key

    def write(folder: Path) -> None:
        texts, figures = profile(frame, numeric)
        for name, text in texts.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        for name, figure in figures.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(folder / name)

    key = content_key(frame, [*numeric, "strategy", "converted", "split"])
    return cached_folder(cache, key, write) / "profile"
