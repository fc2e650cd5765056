"""The Spark session's conf from settings: the short-lived JVM options, and MSP_SPARK_CONF winning."""

from __future__ import annotations

from pathlib import Path

from jobs.settings import Settings
from jobs.spark import SHORT_LIVED_JVM, default_conf


def test_short_lived_jvm_options_reach_driver_and_executors_only_when_asked(tmp_path: Path) -> None:
    off = default_conf(Settings(home=tmp_path, spark_short_lived_jvm=False))
    assert "spark.driver.extraJavaOptions" not in off and "spark.executor.extraJavaOptions" not in off
    on = default_conf(Settings(home=tmp_path, spark_short_lived_jvm=True))
    assert on["spark.driver.extraJavaOptions"] == SHORT_LIVED_JVM == "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    assert on["spark.executor.extraJavaOptions"] == SHORT_LIVED_JVM


def test_explicit_spark_conf_wins_over_the_short_lived_options(tmp_path: Path) -> None:
    conf = default_conf(
        Settings(home=tmp_path, spark_short_lived_jvm=True, spark_conf={"spark.driver.extraJavaOptions": "-Xss4m"})
    )
    assert conf["spark.driver.extraJavaOptions"] == "-Xss4m"
    assert conf["spark.executor.extraJavaOptions"] == SHORT_LIVED_JVM


def test_the_setting_is_read_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MSP_SPARK_SHORT_LIVED_JVM", "true")
    assert Settings(home=tmp_path).spark_short_lived_jvm is True
    monkeypatch.setenv("MSP_SPARK_SHORT_LIVED_JVM", "false")
    assert Settings(home=tmp_path).spark_short_lived_jvm is False
