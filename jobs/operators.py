"""Stack mode's Spark operator: a DAG's Spark step through ``spark-submit`` (SparkSubmitOperator).

:class:`MspSparkSubmitOperator` submits :mod:`jobs.submit` with the step's arguments to the master of
the Airflow connection ``MSP_SPARK_CONN_ID`` (client mode: the driver runs on the Airflow worker,
the executors on the cluster) and turns what the step reports into Airflow's semantics: its result
becomes the task's XCom, as in embedded mode, and a data error fails the task without retries.

:func:`jobs.dag_defaults.spark_step` is what the DAG files call: this operator when ``MSP_SPARK_SUBMIT``
is on, else the embedded ``@task`` (this module, and the provider, are imported only then).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from jobs.settings import Settings

#: the application every submitted step runs (a plain file: spark-submit runs Python applications by path)
APPLICATION = str(Path(__file__).resolve().parent / "submit.py")


def submit_conf(settings: Settings) -> dict[str, str]:
    """The Spark conf of a submitted step: the same as the in-process session's (``jobs.spark.default_conf``)."""
    from jobs.spark import default_conf

    conf = default_conf(settings)
    conf["spark.pyspark.python"] = sys.executable  # executors and driver run this venv's interpreter
    conf["spark.pyspark.driver.python"] = sys.executable
    return conf


class MspSparkSubmitOperator(SparkSubmitOperator):
    """Run one step of :data:`jobs.submit.STEPS` with spark-submit; returns the step's result.

    ``ds``, ``since`` and ``table`` are templated (the run date usually comes from an upstream XCom).
    The connection must name the master (``{"conn_type": "spark", "host": "spark://host:7077"}``);
    a missing connection fails at once instead of spark-submit's silent fallback to YARN.
    """

    template_fields = (*SparkSubmitOperator.template_fields, "ds", "since", "table", "rebuild")
    ui_color = "#fdf1d6"

    def __init__(
        self,
        *,
        step: str,
        ds: str,
        since: str | None = None,
        table: str | None = None,
        rebuild: bool | str = False,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        from jobs.settings import get_settings

        settings = settings or get_settings()
        kwargs.setdefault("conn_id", settings.spark_conn_id)
        kwargs.setdefault("name", f"msp-{step.replace('_', '-')}" + (f"-{table}" if table else ""))
        kwargs.setdefault("conf", submit_conf(settings))
        kwargs.setdefault("application", APPLICATION)
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        kwargs.setdefault("env_vars", {"PATH": path})  # spark-submit from this venv
        super().__init__(**kwargs)
        self.step = step
        self.ds = ds
        self.since = since
        self.table = table
        self.rebuild = rebuild

    def execute(self, context: Any) -> Any:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(self._conn_id)
        except AirflowNotFoundException:
            raise AirflowFailException(
                f"Airflow connection {self._conn_id!r} (the Spark master for spark-submit) is not defined: "
                f"set AIRFLOW_CONN_{self._conn_id.upper()} or create it in the UI (stack mode sets it)"
            ) from None
        self.log.info("spark-submit %s to %s", self.step, conn.host)
        folder = Path(tempfile.mkdtemp(prefix="msp-submit-"))
        result_file = folder / "result.json"
        self.application_args = self.step_args(result_file)
        try:
            try:
                super().execute(context)
            except Exception as exc:
                report = _read(result_file)
                if report and report.get("data_error"):
                    raise AirflowFailException(f"{self.step}: {report['error']}: {report['message']}") from exc
                if report:
                    raise RuntimeError(f"{self.step} failed: {report['error']}: {report['message']}") from exc
                raise
            report = _read(result_file)
            if not report or not report.get("ok"):
                raise RuntimeError(f"spark-submit exited 0 but {self.step} reported no result ({result_file})")
            from jobs.pipeline.tasks import stamp_outlets

            stamp_outlets(context, str(self.ds), **({"since": str(self.since)} if self.since else {}))
            return report["result"]
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def step_args(self, result_file: Path) -> list[str]:
        """The command line of :mod:`jobs.submit` for this step."""
        args = [self.step, "--ds", str(self.ds)]
        if self.since:
            args += ["--since", str(self.since)]
        if self.table:
            args += ["--table", str(self.table)]
        if str(self.rebuild).strip().lower() in ("true", "1", "yes"):  # a bool, or a rendered template
            args.append("--rebuild")
        return [*args, "--result-file", str(result_file)]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
