"""marketing_train end to end through Airflow on a simulated shop: MLflow runs, registry aliases,
promotion rules, and the learned models checked against the simulator's truth."""

from __future__ import annotations

import mlflow
import pandas as pd

from jobs.training.evaluate import truth_report
from jobs.training.registry import aliases, evaluate_and_promote
from jobs.training.train import model_name, prepare
from tests.e2e.conftest import END
from tests.support.worse_model import register_inverted


def test_every_family_and_the_served_model_registered_with_aliases_and_full_run_records(trained: dict) -> None:
    settings = trained["settings"]
    assert aliases(settings) == {
        "msp_uplift_xgboost": {"champion": "1", "challenger": "1"},
        "msp_uplift_keras": {"champion": "1", "challenger": "1"},
        "msp_uplift_fusion": {"champion": "1", "challenger": "1"},
        "msp_uplift": {"champion": "1", "challenger": "1"},
    }
    client = mlflow.MlflowClient()
    served = client.get_model_version_by_alias("msp_uplift", "champion")
    source = served.tags["msp.source"]  # the family champion it copies; first night: the default, XGBoost
    assert source.startswith("msp_uplift_") and served.tags["msp.model_family"] in ("xgboost", "keras", "fusion")
    assert served.tags["msp.promotion"] == "promoted" and "first served version" in served.tags["msp.promotion_reason"]
    for kind in ("xgboost", "keras", "fusion"):
        version = client.get_model_version_by_alias(model_name(settings, kind), "champion")
        assert version.tags["msp.promotion"] == "promoted"
        assert "first version" in version.tags["msp.promotion_reason"]
        run = client.get_run(version.run_id)
        for metric in (
            "conv_auc",
            "conv_log_loss",
            "conv_accuracy",
            "conv_precision",
            "conv_recall",
            "conv_f1",
            "conv_npv",
            "conv_lr_plus",
            "conv_lr_minus",
            "conv_ece",
            "qini_mean",
            "auuc__coupon_20",
            "uplift_at_10__coupon_20",
            "uplift_at_30__coupon_20",
            "policy_ips",
            "policy_snips",
            "policy_dr",
            "policy_dr_lo",
            "policy_dr_hi",
            "policy_profit_dr",
            "policy_profit_dr_lo",
            "policy_profit_dr_hi",
            "policy_profit_gain_dr",
            "calib_effect_used__coupon_20",
            "calib_slope_used__coupon_20",
            "uplift_error_var",
        ):
            assert metric in run.data.metrics, (kind, metric)
        assert 0.5 < run.data.metrics["conv_auc"] < 1.0
        assert run.data.metrics["policy_dr_lo"] <= run.data.metrics["policy_dr"] <= run.data.metrics["policy_dr_hi"]
        profit = [run.data.metrics[f"policy_profit_dr{k}"] for k in ("_lo", "", "_hi")]
        assert profit == sorted(profit)
        assert run.data.params["revenue_mode"] in ("direct", "hurdle") and version.tags["msp.model_family"] == kind
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png", "plots/confusion.png"} <= artifacts
        assert "plots/uplift_calibration.png" in artifacts
        assert "plots/qini_coupon_20.png" in artifacts and "plots/feature_importance.png" in artifacts
        profile = {a.path for a in client.list_artifacts(run.info.run_id, "profile")}
        assert {"profile/summary.csv", "profile/correlations.csv", "profile/distributions.png"} <= profile
        assert {i.dataset.name for i in run.inputs.dataset_inputs} == {
            f"training_set-{END}-training",
            f"training_set-{END}-evaluation",
        }
        info = mlflow.models.get_model_info(f"models:/{model_name(settings, kind)}@champion")
        assert info.signature is not None and info.saved_input_example_info is not None
    keras_run = client.get_run(client.get_model_version_by_alias(model_name(settings, "keras"), "champion").run_id)
    assert "plots/learning_curves.png" in {a.path for a in client.list_artifacts(keras_run.info.run_id, "plots")}
    xgb_run_id = client.get_model_version_by_alias(model_name(settings, "xgboost"), "champion").run_id
    trials = client.search_runs(
        [client.get_run(xgb_run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{xgb_run_id}'"
    )
    assert len(trials) >= 1 and all("cv_ipw_logloss" in t.data.metrics for t in trials)


def test_learned_policies_against_the_simulators_truth(trained: dict) -> None:
    """On the held-out rows, the catalogue policy each registered model induces, valued by the truth.

    Measured on this shop: every family and the served model beat the best single strategy given to
    everyone within the budget, and make about 0.7 of the oracle (the same knapsack on the truth).
    """
    from jobs.training.candidates import budget_per_customer, catalogue_for
    from jobs.training.evaluate import truth_policy_report

    settings = trained["settings"]
    prep = prepare(settings, END)
    truth = pd.read_parquet(settings.truth / "campaign_truth")
    truth = truth[truth["customer_id"].isin(set(prep.test["customer_id"]))]
    catalogue = catalogue_for(settings)
    per_customer = budget_per_customer(settings, catalogue, END)
    for name in ("msp_uplift_xgboost", "msp_uplift_keras", "msp_uplift_fusion", "msp_uplift"):
        out = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(prep.flat_test)
        strategies = tuple(c.removeprefix("p_convert__") for c in out.columns if c.startswith("p_convert__"))
        conv = out[[f"p_convert__{s}" for s in strategies]].to_numpy()
        rev = out[[f"exp_revenue__{s}" for s in strategies]].to_numpy()
        report = truth_policy_report(prep.test, truth, conv, rev, strategies, catalogue, per_customer)
        spearman = truth_report(prep.test, truth, conv, rev, strategies)
        print(
            name,
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in report.items()},
            {k: round(float(v), 3) for k, v in spearman.items() if k.startswith("spearman")},
        )
        assert report["true_policy_profit"] > report["true_best_single_profit"], (name, report)
        assert report["true_policy_to_oracle"] >= 0.6, (name, report)


def test_a_worse_challenger_is_not_promoted_and_the_run_says_why(trained: dict) -> None:
    settings = trained["settings"]
    client = mlflow.MlflowClient()
    name = model_name(settings, "xgboost")
    worse = register_inverted(name, "1")
    client.set_registered_model_alias(name, "challenger", worse)
    result = evaluate_and_promote(settings, END, kinds=("xgboost",))["xgboost"]
    assert result["decision"] == "kept" and result["champion_after"] == "1"
    assert result["challenger_dr"] < result["champion_dr"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    tags = client.get_model_version(name, worse).tags
    assert tags["msp.promotion"] == "kept" and "does not beat champion" in tags["msp.promotion_reason"]


def test_an_alias_moved_by_a_person_is_what_the_next_comparison_and_scoring_use(trained: dict) -> None:
    settings = trained["settings"]
    client = mlflow.MlflowClient()
    name = model_name(settings, "xgboost")
    worse = register_inverted(name, "1")
    client.set_registered_model_alias(name, "champion", worse)  # as a person would in the MLflow UI
    assert (
        mlflow.pyfunc.load_model(f"models:/{name}@champion").metadata.run_id
        == client.get_model_version(name, worse).run_id
    )
    client.set_registered_model_alias(name, "challenger", "1")
    result = evaluate_and_promote(settings, END, kinds=("xgboost",))["xgboost"]
    assert result["champion"] == worse and result["decision"] == "promoted"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


def test_the_served_model_follows_its_familys_new_champion(trained: dict) -> None:
    """When the serving family's gate promotes a new version, the served model copies it; then it keeps it."""
    from jobs.training.registry import choose_served
    from jobs.training.train import SERVED

    settings = trained["settings"]
    client = mlflow.MlflowClient()
    served = model_name(settings, SERVED)
    before = client.get_model_version_by_alias(served, "champion")
    family_name, family_version = before.tags["msp.source"].split("/")
    newer = client.copy_model_version(f"models:/{family_name}/{family_version}", family_name)  # what a gate promotes
    client.set_registered_model_alias(family_name, "champion", newer.version)
    try:
        result = choose_served(settings, END, client)
        assert result["decision"] == "promoted" and "follows its family's new champion" in result["reason"]
        after = client.get_model_version_by_alias(served, "champion")
        assert int(after.version) == int(before.version) + 1
        assert after.tags["msp.source"] == f"{family_name}/{newer.version}"
        again = choose_served(settings, END, client)
        assert again["decision"] == "kept"
        assert str(client.get_model_version_by_alias(served, "champion").version) == str(after.version)
    finally:  # the other tests of the package start from the first night's registry
        client.set_registered_model_alias(family_name, "champion", family_version)
        client.set_registered_model_alias(served, "champion", before.version)
