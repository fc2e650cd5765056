"""The Spark session factory: master and conf from settings, sane local defaults.

Nothing here runs at import; jobs receive the session as an argument, and the CLI / Airflow
tasks build it with :func:`get_spark` (``getOrCreate``, so tasks in one process share it).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from jobs.settings import Settings
from jobs.threads import thread_env

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: JVM options for Spark applications that live seconds on small data (``MSP_SPARK_SHORT_LIVED_JVM``): the
#: C2 compiler and the parallel GC cost more CPU than they save there (one A/B on 2 cores shared with another
#: run, so indicative only: a 20,000-customer shop's recommendation inputs 72 s -> 48 s; not in make bench)
SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def default_conf(settings: Settings, driver_memory: str | None = None) -> dict[str, str]:
    """Local defaults (and the short-lived JVM options when the settings ask for them); ``MSP_SPARK_CONF`` wins.

    ``spark.driver.memory``: ``driver_memory`` (a job's own setting), else ``MSP_SPARK_DRIVER_MEMORY``, else 4g.
    It takes effect only when this call starts the JVM (a session already running keeps its heap).
    """
    cores = os.cpu_count() or 2
    local = settings.spark_master.startswith("local")
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.shuffle.partitions": str(max(2, cores * 2) if local else 200),
        "spark.sql.files.maxPartitionBytes": str(64 * 1024 * 1024),
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.sql.ansi.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": driver_memory or os.environ.get("MSP_SPARK_DRIVER_MEMORY", "4g"),
        "spark.sql.warehouse.dir": str(settings.path(settings.data_root) / "_spark_warehouse"),
    }
    if local:
        conf["spark.ui.enabled"] = os.environ.get("MSP_SPARK_UI", "false")
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    for key, value in thread_env().items():  # executors (and their Python workers) on a cluster: jobs/threads.py
        conf[f"spark.executorEnv.{key}"] = value
    if settings.spark_short_lived_jvm:
        for role in ("driver", "executor"):
            conf[f"spark.{role}.extraJavaOptions"] = SHORT_LIVED_JVM
    conf.update(settings.spark_conf)
    return conf


def get_spark(settings: Settings, app_name: str = "msp", driver_memory: str | None = None) -> SparkSession:
    """Build (or reuse) the session for ``settings.spark_master``; ``driver_memory`` as in :func:`default_conf`."""
    from pyspark.sql import SparkSession

    if settings.spark_master.startswith("local"):
        # Python UDF workers must run this interpreter (the venv's), not whatever python3 is on PATH;
        # PySpark reads the variable when the context starts (the spark.pyspark.python conf only
        # reaches spark-submit). A cluster sets it per executor image instead.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(settings.spark_master)
    for key, value in default_conf(settings, driver_memory).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    log.info("spark %s on %s", spark.version, settings.spark_master)
    return spark
