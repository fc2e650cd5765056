from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.settings import MASK, Settings, get_settings, mask_url
from tests.conftest import ROOT


def test_embedded_defaults_resolve_under_home(msp_home: Path) -> None:
    s = get_settings()
    assert s.home == msp_home
    assert s.lake == msp_home / "var/lake"
    assert s.landing == msp_home / "var/lake/landing"
    assert s.truth == msp_home / "var/truth"
    assert s.path(s.airflow_home) == msp_home / "var/airflow"
    assert s.spark_master == "local[*]"
    assert s.resolved_mlflow_tracking_uri == f"sqlite:///{msp_home}/var/mlflow/mlflow.db"
    assert s.path(s.mlflow_artifact_root) == msp_home / "var/mlflow/artifacts"
    assert s.resolved_warehouse_url == f"duckdb:///{msp_home}/var/warehouse.duckdb"
    assert s.warehouse_schema == "marketing"


def test_environment_overrides_defaults(msp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSP_SPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("MSP_SPARK_CONF", '{"spark.executor.memory": "2g"}')
    monkeypatch.setenv("MSP_DATA_ROOT", "/data/lake")
    monkeypatch.setenv("MSP_LOG_LEVEL", "debug")
    s = Settings()
    assert s.spark_master == "spark://127.0.0.1:7077"
    assert s.spark_conf == {"spark.executor.memory": "2g"}
    assert s.lake == Path("/data/lake")
    assert s.log_level == "DEBUG"


def test_masked_hides_secrets_and_url_passwords(msp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSP_WAREHOUSE_URL", "postgresql://msp:hunter2@127.0.0.1:5432/shop")
    monkeypatch.setenv("MSP_PII_SALT", "pepper")
    monkeypatch.setenv("MSP_ALERT_WEBHOOK_URL", "https://hooks.example/T0?token=abc")
    shown = Settings().masked()
    text = repr(shown)
    assert "hunter2" not in text and "pepper" not in text and "abc" not in text
    assert shown["warehouse_url"] == f"postgresql://msp:{MASK}@127.0.0.1:5432/shop"
    assert shown["pii_salt"] == MASK
    assert shown["alert_webhook_url"] == MASK


@pytest.mark.parametrize("url", ["sqlite:////abs/path.db", "duckdb:///rel/w.duckdb", "http://host:5000"])
def test_mask_url_keeps_urls_without_secrets(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize("bad", ["x; drop table y", "1abc", "a-b", "", "a" * 64])
def test_schema_name_must_be_a_plain_identifier(bad: str, msp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSP_WAREHOUSE_SCHEMA", bad)
    with pytest.raises(ValidationError, match="MSP_WAREHOUSE_SCHEMA"):
        Settings()


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    """Importing the package, the CLI and the simulator creates no file and starts nothing."""
    code = "import jobs, jobs.settings, jobs.cli, jobs.demo, jobs.simulator.engine, jobs.simulator.respond"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )
    assert [p.name for p in tmp_path.iterdir() if p.name not in {".cache", ".config"}] == []


def test_xgboost_engine_is_selected_by_environment(msp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (get_settings().xgboost_engine, get_settings().xgboost_spark_workers) == ("local", 2)
    monkeypatch.setenv("MSP_XGBOOST_ENGINE", " Spark ")
    monkeypatch.setenv("MSP_XGBOOST_SPARK_WORKERS", "4")
    s = Settings()
    assert (s.xgboost_engine, s.xgboost_spark_workers) == ("spark", 4)
    assert s.masked()["xgboost_engine"] == "spark"
    monkeypatch.setenv("MSP_XGBOOST_ENGINE", "dask")
    with pytest.raises(ValidationError, match="xgboost_engine"):
        Settings()
    monkeypatch.setenv("MSP_XGBOOST_ENGINE", "spark")
    monkeypatch.setenv("MSP_XGBOOST_SPARK_WORKERS", "0")
    with pytest.raises(ValidationError, match="xgboost_spark_workers"):
        Settings()


@pytest.mark.parametrize("value", ["true", "True", "1", "yes", "on", "false", "0", "no", "off", "", "FALSE"])
def test_dag_parse_reads_spark_submit_as_the_settings_do(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAG files read ``MSP_SPARK_SUBMIT`` without the settings module: both must agree."""
    from jobs.dag_defaults import spark_submit_mode

    monkeypatch.setenv("MSP_SPARK_SUBMIT", value)
    expected = Settings().spark_submit if value else False
    assert spark_submit_mode() is expected


@pytest.mark.parametrize("value", ["cron", "assets"])
def test_dag_parse_reads_the_schedule_mode_as_the_settings_do(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import Asset
    from airflow.timetables.trigger import CronTriggerTimetable

    from jobs.dag_defaults import cron_schedules, schedule

    monkeypatch.setenv("MSP_SCHEDULE_MODE", value)
    assert cron_schedules() is (Settings().schedule_mode == "cron")
    asset = Asset(name="a", uri="msp://a")
    if value == "cron":
        assert isinstance(schedule("0 2 * * *"), CronTriggerTimetable)
        timed = schedule("0 2 * * *", asset)  # time or asset
        assert [a.name for _, a in timed.asset_condition.iter_assets()] == ["a"]
        assert timed.timetable.summary == "0 2 * * *"
    else:
        assert schedule("0 2 * * *") is None and schedule("0 2 * * *", asset) is asset
    monkeypatch.setenv("MSP_SCHEDULE_MODE", "hourly")
    with pytest.raises(ValidationError, match="schedule_mode"):
        Settings()


def test_model_families_come_from_the_environment_and_must_fit_together(
    msp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().model_families == ["xgboost", "keras", "fusion"]
    monkeypatch.setenv("MSP_MODEL_FAMILIES", '["xgboost"]')
    assert Settings().model_families == ["xgboost"]
    for bad, says in (
        ("[]", "at least one model family"),
        ('["xgboost", "fusion"]', "fusion blends xgboost and keras"),
        ('["lightgbm"]', "model_families"),
    ):
        monkeypatch.setenv("MSP_MODEL_FAMILIES", bad)
        with pytest.raises(ValidationError, match=says):
            Settings()
    monkeypatch.setenv("MSP_MODEL_FAMILIES", '["keras"]')
    monkeypatch.setenv("MSP_SCORING_MODEL", "xgboost")
    with pytest.raises(ValidationError, match="MSP_SCORING_MODEL='xgboost' is not among MSP_MODEL_FAMILIES"):
        Settings()
