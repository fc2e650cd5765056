"""Champion / challenger: promote the newest version only when it wins on the same held-out data.

For each registered model, the version under the alias ``challenger`` is compared with the one
under ``champion``. Both are loaded through MLflow (exactly what scoring would load) and predict
the held-out rows of tonight's training set; each induces a policy (the strategy with the highest
expected net revenue) whose value is estimated with the doubly robust estimator. The challenger
takes the alias ``champion`` when its value beats the champion's by ``promotion_margin`` (a share of
the champion's value); the first version of a model becomes champion. Either way the decision,
both values and the paired bootstrap interval of their difference are written to the challenger's
version tags and its training run, so the registry says why.

The aliases are the only source of truth: a person who moves ``champion`` in the MLflow UI
changes what the next scoring run loads and what the next challenger must beat.
"""

from __future__ import annotations

import logging
from typing import Any

from jobs.settings import Settings
from jobs.training.train import CHALLENGER, CHAMPION, KINDS, configure_mlflow, model_name, prepare

log = logging.getLogger(__name__)


def _alias(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _dr_terms(test: Any, q_hat: Any, strategies: tuple[str, ...]) -> Any:
    """Per-row doubly robust terms of the policy argmax(q_hat) (their mean is the DR value)."""
    import numpy as np

    from jobs.training.evaluate import logged_index

    a = logged_index(test, strategies)
    r = test["revenue"].to_numpy(dtype="float64")
    p = test["propensity"].to_numpy(dtype="float64")
    pi = np.argmax(q_hat, axis=1)
    rows = np.arange(len(test))
    return q_hat[rows, pi] + (a == pi) / p * (r - q_hat[rows, a])


def policy_terms_of(model_uri: str, prep: Any) -> Any:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)
    out = model.predict(prep.flat_test)
    strategies = tuple(c.removeprefix("exp_revenue__") for c in out.columns if c.startswith("exp_revenue__"))
    q_hat = out[[f"exp_revenue__{s}" for s in strategies]].to_numpy()
    return _dr_terms(prep.test, q_hat, strategies)


def decide(challenger_dr: float, champion_dr: float, margin: float) -> tuple[bool, str]:
    """Promote when the challenger's value exceeds the champion's by ``margin`` of its magnitude."""
    threshold = champion_dr + margin * abs(champion_dr)
    if challenger_dr > threshold:
        return True, (
            f"promoted: DR policy value {challenger_dr:.4f} beats champion's {champion_dr:.4f} "
            f"by more than the margin {margin:.1%} (threshold {threshold:.4f})"
        )
    return False, (
        f"kept champion: challenger's DR policy value {challenger_dr:.4f} does not beat champion's "
        f"{champion_dr:.4f} by the margin {margin:.1%} (threshold {threshold:.4f})"
    )


def evaluate_and_promote(settings: Settings, ds: str, kinds: tuple[str, ...] = KINDS) -> dict[str, dict[str, Any]]:
    """Compare challenger and champion of every model family; move ``champion`` when the challenger wins."""
    import mlflow
    import numpy as np

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    prep = None
    results: dict[str, dict[str, Any]] = {}
    for kind in kinds:
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
            chal = policy_terms_of(f"models:/{name}/{challenger.version}", prep)
            champ = policy_terms_of(f"models:/{name}/{champion.version}", prep)
            promote, reason = decide(float(chal.mean()), float(champ.mean()), settings.promotion_margin)
            rng = np.random.default_rng(0)
            diffs = chal - champ
            boot = diffs[rng.integers(0, len(diffs), size=(settings.bootstrap_samples, len(diffs)))].mean(axis=1)
            lo, hi = np.quantile(boot, [0.025, 0.975])
            record.update(
                {
                    "champion": str(champion.version),
                    "challenger_dr": float(chal.mean()),
                    "champion_dr": float(champ.mean()),
                    "difference_lo": float(lo),
                    "difference_hi": float(hi),
                }
            )
        if promote:
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
        record.update({"decision": "promoted" if promote else "kept", "reason": reason})
        record["champion_after"] = str(challenger.version) if promote else (str(champion.version) if champion else None)
        client.set_model_version_tag(name, challenger.version, "msp.promotion", record["decision"])
        client.set_model_version_tag(name, challenger.version, "msp.promotion_reason", reason)
        if challenger.run_id:
            client.set_tag(challenger.run_id, "msp.promotion", record["decision"])
            client.set_tag(challenger.run_id, "msp.promotion_reason", reason)
            for key in ("challenger_dr", "champion_dr", "difference_lo", "difference_hi"):
                if key in record:
                    client.log_metric(challenger.run_id, f"promotion_{key}", record[key])
        log.info("%s v%s: %s", name, challenger.version, reason)
        results[kind] = record
    return results


def aliases(settings: Settings, kinds: tuple[str, ...] = KINDS) -> dict[str, dict[str, str | None]]:
    """Current champion and challenger version of every model family (None when unset)."""
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
