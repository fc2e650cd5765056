"""Champion / challenger: promote the newest version only when it wins on the same held-out data.

**Per family** (``<prefix>_xgboost``, ``<prefix>_keras``, ``<prefix>_fusion``): the version under the
alias ``challenger`` is compared with the one under ``champion``. Both are loaded through MLflow
(exactly what scoring would load) and predict the held-out rows of tonight's training set; each
induces the policy the nightly optimiser would run on them (incremental profit, costs, budget, caps,
eligibility: :func:`jobs.training.evaluate.catalogue_policy`), whose profit per customer is
estimated with the doubly robust estimator, both with one outcome model (that of the two whose
predictions fit the held-out profits best) so that neither grades itself. The challenger takes the alias
``champion`` when its value beats the champion's by ``promotion_margin`` (a share of the champion's
magnitude); the first version of a model becomes champion.

**The served model** (``<prefix>``, what scoring loads by default): the families' champions are
compared with what ``<prefix>@champion`` serves, on the same rows and outcome model; one that beats it
with confidence (the 95% interval of the paired gain above zero) is copied into it as a new version
(tag ``msp.source``). Before anything serves, the first family (XGBoost) is the default. So the
fusion, or Keras, serves only when it wins off-policy.

Either way the decision, both values and the paired bootstrap interval of their difference are
written to the version tags and the training run, so the registry says why. The aliases are the only
source of truth: a person who moves ``champion`` in the MLflow UI (on a family or on the served
model) changes what the next comparison starts from and, on ``<prefix>``, what scoring loads.
"""

from __future__ import annotations

import logging
from typing import Any

from jobs.settings import Settings
from jobs.training.train import CHALLENGER, CHAMPION, KINDS, SERVED, configure_mlflow, model_name, prepare

log = logging.getLogger(__name__)
#: version tag of a served version: the family version it was copied from
SOURCE_TAG = "msp.source"


def _alias(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def predictions_of(model_uri: str, prep: Any) -> tuple[Any, Any, tuple[str, ...]]:
    """(p_convert, exp_revenue, strategies) of a registered model on the held-out rows."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)
    out = model.predict(prep.flat_test)
    strategies = tuple(c.removeprefix("exp_revenue__") for c in out.columns if c.startswith("exp_revenue__"))
    p = out[[f"p_convert__{s}" for s in strategies]].to_numpy()
    rev = out[[f"exp_revenue__{s}" for s in strategies]].to_numpy()
    return p, rev, strategies


def profit_terms(prep: Any, predictions: list[tuple[Any, Any, tuple[str, ...]]], settings: Settings) -> list[Any]:
    """Per-row doubly robust terms of each model's catalogue policy; the outcome model of all is the one whose
    predictions fit the held-out profits best (:func:`jobs.training.evaluate.reference_outcome`)."""
    import numpy as np

    from jobs.training.candidates import budget_per_customer, catalogue_for
    from jobs.training.evaluate import catalogue_frame, catalogue_policy, realised_profit, reference_outcome

    catalogue = catalogue_for(settings)
    per_customer = budget_per_customer(settings, catalogue, prep.ds)
    frames = [catalogue_frame(catalogue, strategies, p, rev) for p, rev, strategies in predictions]
    q_ref = frames[reference_outcome(prep.test, [profit for _, _, profit in frames], catalogue)][2]
    a, r = realised_profit(prep.test, catalogue)
    prop = prep.test["propensity"].to_numpy(dtype="float64")
    rows = np.arange(len(a))
    q_logged = np.where(a >= 0, q_ref[rows, np.maximum(a, 0)], 0.0)
    out = []
    for pc, rc, profit in frames:
        cost = catalogue.expected_cost(np.clip(pc, 0.0, 1.0), rc)
        pi = catalogue_policy(prep.test, profit, cost, catalogue, per_customer)
        out.append(q_ref[rows, pi] + (a == pi) / prop * (r - q_logged))
    return out


def decide(challenger_dr: float, champion_dr: float, margin: float) -> tuple[bool, str]:
    """Promote when the challenger's value exceeds the champion's by ``margin`` of its magnitude."""
    threshold = champion_dr + margin * abs(champion_dr)
    if challenger_dr > threshold:
        return True, (
            f"promoted: held-out profit per customer (DR) {challenger_dr:.4f} beats champion's {champion_dr:.4f} "
            f"by more than the margin {margin:.1%} (threshold {threshold:.4f})"
        )
    return False, (
        f"kept champion: challenger's held-out profit per customer (DR) {challenger_dr:.4f} does not beat "
        f"champion's {champion_dr:.4f} by the margin {margin:.1%} (threshold {threshold:.4f})"
    )


def compare(settings: Settings, prep: Any, challenger_uri: str, champion_uri: str) -> dict[str, float]:
    """Both models' held-out profit per customer (DR) and the bootstrap interval of their difference."""
    import numpy as np

    chal, champ = profit_terms(
        prep, [predictions_of(challenger_uri, prep), predictions_of(champion_uri, prep)], settings
    )
    rng = np.random.default_rng(0)
    diffs = chal - champ
    boot = diffs[rng.integers(0, len(diffs), size=(settings.bootstrap_samples, len(diffs)))].mean(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {
        "challenger_dr": float(chal.mean()),
        "champion_dr": float(champ.mean()),
        "difference_lo": float(lo),
        "difference_hi": float(hi),
    }


def _record(client: Any, name: str, version: Any, record: dict[str, Any], on_run: str = "promotion") -> None:
    """The decision on the version's tags, and on its training run as ``msp.<on_run>`` tags and metrics."""
    client.set_model_version_tag(name, version.version, "msp.promotion", record["decision"])
    client.set_model_version_tag(name, version.version, "msp.promotion_reason", record["reason"])
    if version.run_id:
        client.set_tag(version.run_id, f"msp.{on_run}", record["decision"])
        client.set_tag(version.run_id, f"msp.{on_run}_reason", record["reason"])
        for key in ("challenger_dr", "champion_dr", "difference_lo", "difference_hi"):
            if key in record:
                client.log_metric(version.run_id, f"{on_run}_{key}", record[key])


def evaluate_and_promote(
    settings: Settings, ds: str, kinds: tuple[str, ...] | None = None
) -> dict[str, dict[str, Any]]:
    """Compare challenger and champion of every family (``MSP_MODEL_FAMILIES`` unless ``kinds`` is given), then
    choose what serves among the configured families' champions (see the module docstring)."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    prep = None
    results: dict[str, dict[str, Any]] = {}
    for kind in kinds or settings.model_families:
        name = model_name(settings, kind)
        challenger = _alias(client, name, CHALLENGER)
        if challenger is None:
            results[kind] = {"model_name": name, "decision": "skipped", "reason": f"{name} has no @challenger"}
            log.warning(results[kind]["reason"])
            continue
        champion = _alias(client, name, CHAMPION)
        record: dict[str, Any] = {"model_name": name, "challenger": str(challenger.version)}
        if champion is None:
            promote, reason = True, "promoted: first version of the model (no champion yet)"
        elif champion.version == challenger.version:
            promote, reason = False, f"unchanged: version {challenger.version} is already the champion"
        else:
            prep = prep or prepare(settings, ds)
            record.update(
                compare(settings, prep, f"models:/{name}/{challenger.version}", f"models:/{name}/{champion.version}")
            )
            record["champion"] = str(champion.version)
            promote, reason = decide(record["challenger_dr"], record["champion_dr"], settings.promotion_margin)
        if promote:
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
        record.update({"decision": "promoted" if promote else "kept", "reason": reason})
        record["champion_after"] = str(challenger.version) if promote else (str(champion.version) if champion else None)
        _record(client, name, challenger, record)
        log.info("%s v%s: %s", name, challenger.version, reason)
        results[kind] = record
    results[SERVED] = choose_served(settings, ds, client, prep)
    return results


def choose_served(settings: Settings, ds: str, client: Any, prep: Any = None) -> dict[str, Any]:
    """Copy the best family champion into the served model when it wins with confidence (module docstring).

    The incumbent is the *current* champion of the family that serves (its tag ``msp.model_family``):
    when that family's gate promoted a new version tonight, the served model follows it (it has already
    beaten its predecessor on tonight's rows). Before anything serves, the first family's champion is the
    incumbent. Another family's champion replaces the incumbent only when the 95% interval of its paired
    gain in held-out profit per customer (DR) lies above zero
    (:func:`jobs.training.candidates.significant_winner`).
    """
    from jobs.training.candidates import significant_winner

    served = model_name(settings, SERVED)
    champions: dict[str, str] = {}
    for kind in settings.model_families:  # a family turned off no longer competes to serve
        version = _alias(client, model_name(settings, kind), CHAMPION)
        if version is not None:
            champions[kind] = f"{model_name(settings, kind)}/{version.version}"
    record: dict[str, Any] = {"model_name": served, "candidates": champions}
    if not champions:
        record.update(decision="skipped", reason="no family has a @champion yet")
        log.warning("%s: %s", served, record["reason"])
        return record
    current = _alias(client, served, CHAMPION)
    tags = (current.tags or {}) if current is not None else {}
    current_source, current_family = tags.get(SOURCE_TAG), tags.get("msp.model_family")
    # the incumbent: what serves, or the newer champion of its family, or (nothing serves yet) the first family
    if current is not None and champions.get(current_family, current_source) == current_source:
        source = current_source
        labels, uris = [f"{served}/{current.version}"], [f"models:/{served}/{current.version}"]
    else:
        source = champions[current_family] if current is not None else next(iter(champions.values()))
        labels, uris = [source], [f"models:/{source}"]
    for other in champions.values():
        if other != source:
            labels.append(other)
            uris.append(f"models:/{other}")
    prep = prep or prepare(settings, ds)
    terms = profit_terms(prep, [predictions_of(u, prep) for u in uris], settings)
    best, stats = significant_winner(terms)
    record["values"] = {label: round(float(t.mean()), 6) for label, t in zip(labels, terms, strict=True)}
    record["gains"] = {label: [round(v, 6) for v in st] for label, st in zip(labels, stats, strict=True)}
    winner = labels[best]
    if best == 0 and source == current_source:
        record.update(
            decision="kept",
            reason=f"{served} v{current.version} ({current_source}) keeps serving: "
            "no other family's champion beats it with confidence",
        )
        log.info("%s: %s; held-out profit per customer %s", served, record["reason"], record["values"])
        return record
    gain, lo, hi = stats[best]
    record.update(challenger_dr=float(terms[best].mean()), champion_dr=float(terms[0].mean()))
    record.update(difference_lo=lo, difference_hi=hi)
    if best > 0:
        reason = f"{winner} beats {labels[0]} by {gain:+.4f} per customer [{lo:+.4f}, {hi:+.4f}]"
    elif current is None:
        reason = f"first served version: {winner}"
    else:
        reason = (
            f"follows its family's new champion (was {current_source}); "
            "no other family's champion beats it with confidence"
        )
    copied = client.copy_model_version(f"models:/{winner}", served)
    family = next(k for k, v in champions.items() if v == winner)
    client.set_model_version_tag(served, copied.version, SOURCE_TAG, winner)
    client.set_model_version_tag(served, copied.version, "msp.model_family", family)
    client.set_model_version_tag(served, copied.version, "msp.ds", ds)
    client.set_registered_model_alias(served, CHALLENGER, copied.version)
    client.set_registered_model_alias(served, CHAMPION, copied.version)
    client.update_registered_model(
        served,
        description="The served uplift policy model of the Marketing Strategy Platform: a copy of a family "
        "champion (XGBoost, Keras or their fusion) chosen by held-out profit. Scoring loads @champion.",
    )
    record.update(decision="promoted", reason=f"{winner} -> {served} v{copied.version}: {reason}")
    record["champion_after"] = str(copied.version)
    _record(client, served, copied, record, on_run="served")  # the run keeps its family's promotion tags
    log.info("%s: %s; held-out profit per customer %s", served, record["reason"], record["values"])
    return record


def aliases(settings: Settings, kinds: tuple[str, ...] = (*KINDS, SERVED)) -> dict[str, dict[str, str | None]]:
    """Current champion and challenger version of every model (None when unset)."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    out = {}
    for kind in kinds:
        name = model_name(settings, kind)
        out[name] = {}
        for alias in (CHAMPION, CHALLENGER):
            version = _alias(client, name, alias)
            out[name][alias] = str(version.version) if version else None
    return out
