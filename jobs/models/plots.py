"""Diagnostic figures for model evaluation, drawn off-screen with matplotlib's Agg canvas.

Every function builds its own :class:`matplotlib.figure.Figure` (never ``pyplot``, so no global figure
state leaks between calls or threads) and returns it; the caller saves or logs it. Degenerate data
(one class, one treatment group, empty input) never raises: the figure shows what is defined and
the title says what is not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from jobs.models import metrics

log = logging.getLogger(__name__)


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    """A fresh figure bound to an Agg canvas (no pyplot, no backend switch)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _note(ax: Axes, text: str) -> None:
    """Write ``text`` in the middle of an axes that has nothing defined to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)


def _title(ax: Axes, title: str, problem: str | None) -> None:
    if problem:
        log.debug("%s: %s", title, problem)
    ax.set_title(f"{title} ({problem})" if problem else title)


def _class_problem(y: np.ndarray) -> str | None:
    if y.size == 0:
        return "no rows"
    if np.all(y == y[0]):
        return f"one class only (all {int(y[0])})"
    return None


def roc_figure(y: ArrayLike, p: ArrayLike, title: str = "ROC curve") -> Figure:
    """ROC curve with its AUC and the chance diagonal; with one class only the diagonal is drawn."""
    from sklearn.metrics import roc_curve

    y_arr, p_arr = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    problem = _class_problem(y_arr)
    if problem is None:
        fpr, tpr, _ = roc_curve(y_arr, p_arr)
        auc = metrics.classification_metrics(y_arr, p_arr)["auc"]
        ax.plot(fpr, tpr, label=f"model (AUC = {auc:.3f})")
    else:
        problem = f"ROC undefined: {problem}"
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    _title(ax, title, problem)
    return figure


def pr_figure(y: ArrayLike, p: ArrayLike, title: str = "Precision-recall curve") -> Figure:
    """Precision-recall curve with average precision and the base-rate line; undefined without positives."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y_arr, p_arr = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    figure = _figure()
    ax = figure.add_subplot()
    problem = None
    if y_arr.size == 0 or y_arr.sum() == 0:
        problem = "PR undefined: no positives" if y_arr.size else "PR undefined: no rows"
        _note(ax, "no positive labels: recall is undefined")
    else:
        precision, recall, _ = precision_recall_curve(y_arr, p_arr)
        ap = average_precision_score(y_arr, p_arr)
        ax.step(recall, precision, where="post", label=f"model (AP = {ap:.3f})")
        ax.axhline(y_arr.mean(), linestyle="--", color="grey", label=f"base rate {y_arr.mean():.3f}")
        ax.legend(loc="upper right")
        if y_arr.sum() == y_arr.size:
            problem = "one class only (all 1)"
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    _title(ax, title, problem)
    return figure


def calibration_figure(y: ArrayLike, p: ArrayLike, n_bins: int = 10, title: str = "Calibration") -> Figure:
    """Reliability diagram (observed vs mean predicted rate per equal-width bin) above a histogram of p."""
    y_arr, p_arr = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    figure = _figure(6.0, 6.0)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    problem = _class_problem(y_arr)
    if y_arr.size:
        table = metrics.calibration_bins(y_arr, p_arr, n_bins=n_bins)
        filled = table["weight"] > 0
        ece = metrics.expected_calibration_error(y_arr, p_arr, n_bins=n_bins)
        top.plot(table["mean_p"][filled], table["mean_y"][filled], marker="o", label=f"model (ECE = {ece:.3f})")
        bottom.hist(p_arr, bins=table["edges"], color="tab:blue", alpha=0.7)
    else:
        _note(top, "no rows")
    top.set(ylabel="observed rate", xlim=(0, 1), ylim=(0, 1.02))
    top.legend(loc="upper left")
    bottom.set(xlabel="predicted probability", ylabel="rows")
    _title(top, title, problem)
    return figure


def confusion_figure(y: ArrayLike, p: ArrayLike, threshold: float = 0.5, title: str = "Confusion matrix") -> Figure:
    """2x2 confusion matrix at ``p >= threshold`` with counts and row shares annotated."""
    y_arr = np.asarray(y, dtype=float)
    predicted = np.asarray(p, dtype=float) >= threshold
    matrix = np.array(
        [
            [np.sum((y_arr == 0) & ~predicted), np.sum((y_arr == 0) & predicted)],
            [np.sum((y_arr == 1) & ~predicted), np.sum((y_arr == 1) & predicted)],
        ],
        dtype=float,
    )
    figure = _figure(5.0, 4.5)
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(matrix.max(), 1.0))
    figure.colorbar(image, ax=ax)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    for i in range(2):
        for j in range(2):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, f"{int(matrix[i, j])}\n{shares[i, j]:.1%}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], labels=["pred 0", "pred 1"])
    ax.set_yticks([0, 1], labels=["true 0", "true 1"])
    ax.set_xlabel(f"predicted (threshold {threshold:g})")
    _title(ax, title, _class_problem(y_arr))
    return figure


def qini_figure(y: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, title: str = "Qini curve") -> Figure:
    """Model Qini curve, the random line and the perfect curve (sklift definitions), Qini coefficient in the legend."""
    figure = _figure()
    ax = figure.add_subplot()
    problem = None
    try:
        x_model, y_model = metrics.qini_curve(y, uplift, treatment)
        x_best, y_best = metrics.perfect_qini_curve(y, treatment)
        coefficient = metrics.qini_auc_score(y, uplift, treatment)
    except ValueError as exc:
        problem = f"Qini undefined: {exc}"
        _note(ax, str(exc))
    else:
        ax.plot(x_model, y_model, label=f"model (Qini coefficient = {coefficient:.3f})")
        ax.plot([0, x_model[-1]], [0, y_model[-1]], linestyle="--", color="grey", label="random")
        ax.plot(x_best, y_best, linestyle=":", color="black", label="perfect")
        ax.legend(loc="best")
        if np.isnan(coefficient):
            problem = "Qini coefficient undefined: no gain to rank"
    ax.set(xlabel="rows targeted (best predicted uplift first)", ylabel="incremental responders")
    _title(ax, title, problem)
    return figure


def importance_figure(
    names: Sequence[str], values: ArrayLike, title: str = "Feature importance", top: int = 25
) -> Figure:
    """Horizontal bars of the ``top`` largest importances by absolute value, largest on top."""
    labels, scores = [str(name) for name in names], np.asarray(values, dtype=float).ravel()
    if len(labels) != len(scores):
        raise ValueError(f"length mismatch: {len(labels)} names, {len(scores)} values")
    order = np.argsort(-np.abs(np.nan_to_num(scores)), kind="stable")[: max(int(top), 0)]
    figure = _figure(7.0, max(3.0, 0.3 * len(order) + 1.5))
    ax = figure.add_subplot()
    problem = None
    if order.size == 0:
        problem = "no features"
        _note(ax, "nothing to show")
    else:
        ax.barh(np.arange(order.size), scores[order][::-1])
        ax.set_yticks(np.arange(order.size), labels=[labels[i] for i in order][::-1])
        ax.set_xlabel("importance")
        if len(labels) > order.size:
            problem = f"top {order.size} of {len(labels)}"
    _title(ax, title, problem)
    return figure


def learning_curves_figure(history: Mapping[str, Sequence[float]], title: str = "Learning curves") -> Figure:
    """One panel per metric (Keras-style ``history.history``), training and ``val_`` series together."""
    series = {name: np.asarray(values, dtype=float) for name, values in history.items() if len(values) > 0}
    bases = sorted({name.removeprefix("val_") for name in series})
    figure = _figure(6.0, max(3.0, 2.8 * max(len(bases), 1)))
    if not bases:
        ax = figure.add_subplot()
        _note(ax, "no history recorded")
        _title(ax, title, "empty history")
        return figure
    axes = figure.subplots(len(bases), 1, sharex=True, squeeze=False)[:, 0]
    for ax, base in zip(axes, bases, strict=True):
        for name in (base, f"val_{base}"):
            if name in series:
                ax.plot(np.arange(1, len(series[name]) + 1), series[name], marker=".", label=name)
        ax.set_ylabel(base)
        ax.legend(loc="best")
    axes[-1].set_xlabel("epoch")
    _title(axes[0], title, None)
    return figure


def uplift_calibration_figure(
    tables: Mapping[str, Sequence[Mapping[str, float]]], title: str = "Uplift calibration (held out)"
) -> Figure:
    """Per strategy: realised uplift (with 95% bars) against predicted uplift, before and after calibration.

    ``tables`` maps a strategy to the decile rows of :func:`jobs.models.calibration.calibration_table`.
    Points on the diagonal are calibrated; a flat cloud is an effect the data cannot tell from noise.
    """
    names = list(tables)
    figure = _figure(4.0 * max(1, len(names)), 4.0)
    if not names:
        _note(figure.add_subplot(), "no strategy with held-out rows of both arms")
        return figure
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        rows = tables[name]
        if not rows:
            _note(ax, "too few held-out rows")
            _title(ax, name, "no groups")
            continue
        realised = np.array([r["realised"] for r in rows])
        err = 1.96 * np.array([r["realised_se"] for r in rows])
        before = np.array([r["predicted_before"] for r in rows])
        after = np.array([r["predicted_after"] for r in rows])
        lo = float(min(before.min(), after.min(), (realised - err).min()))
        hi = float(max(before.max(), after.max(), (realised + err).max()))
        ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="calibrated")
        ax.errorbar(before, realised, yerr=err, fmt="o", alpha=0.6, label="model")
        ax.errorbar(after, realised, yerr=err, fmt="s", alpha=0.8, label="calibrated, shrunk")
        ax.set_xlabel("predicted uplift (decile mean)")
        ax.set_ylabel("realised uplift (IPW)")
        ax.legend(loc="best", fontsize="small")
        _title(ax, name, None)
    figure.suptitle(title)
    return figure


def contributions_figure(
    values: Mapping[str, ArrayLike],
    names: Sequence[str],
    title: str = "Mean |contribution| to the conversion uplift over no_action (pp)",
    top: int = 12,
) -> Figure:
    """Per strategy, horizontal bars of its ``top`` features by mean absolute uplift contribution.

    ``values`` maps a strategy to one mean |contribution| per feature (``names`` order), e.g. from
    :func:`jobs.models.reasons.mean_abs_contributions`.
    """
    strategies = list(values)
    figure = _figure(4.5 * max(1, len(strategies)), max(3.0, 0.3 * top + 1.5))
    if not strategies:
        _note(figure.add_subplot(), "no strategy other than the control")
        return figure
    axes = figure.subplots(1, len(strategies), squeeze=False)[0]
    for ax, strategy in zip(axes, strategies, strict=True):
        scores = np.asarray(values[strategy], dtype=float).ravel()
        if len(scores) != len(names):
            raise ValueError(f"{strategy}: {len(scores)} values for {len(names)} features")
        order = np.argsort(-np.nan_to_num(scores), kind="stable")[: max(int(top), 0)]
        ax.barh(np.arange(order.size), scores[order][::-1])
        ax.set_yticks(np.arange(order.size), labels=[str(names[i]) for i in order][::-1], fontsize="small")
        ax.set_xlabel("mean |contribution| (pp)")
        _title(ax, strategy, None)
    figure.suptitle(title)
    return figure
