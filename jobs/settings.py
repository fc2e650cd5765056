"""One typed settings object, built from ``MSP_*`` environment variables with embedded defaults.

Relative paths resolve against ``MSP_HOME`` (default: the current working directory), so the
embedded mode keeps everything it writes under ``var/`` of the checkout. Nothing is read or
created at import time; call :func:`get_settings`.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
IDENTIFIER_RULE = "letters, digits and underscores, not starting with a digit, at most 63 characters"


def require_identifier(value: str, label: str) -> str:
    """``value`` if it is a plain SQL-style identifier, else a ValueError naming ``label`` and the rule."""
    if not IDENTIFIER.match(value):
        raise ValueError(f"{label}{value!r} is not an identifier ({IDENTIFIER_RULE})")
    return value


MASK = "****"


class Settings(BaseSettings):
    """Effective configuration of the platform (see ``msp config``)."""

    model_config = SettingsConfigDict(env_prefix="MSP_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=Path.cwd, description="Root that relative paths resolve against.")
    data_root: Path = Field(Path("var/lake"), description="Lake root: landing/, bronze/, silver/, gold/.")
    truth_dir: Path = Field(Path("var/truth"), description="Simulator ground truth, kept apart from the lake.")
    airflow_home: Path = Field(Path("var/airflow"), description="AIRFLOW_HOME in embedded mode (SQLite).")
    spark_master: str = Field("local[*]", description="Spark master URL.")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark conf (JSON object).")
    spark_short_lived_jvm: bool = Field(
        False,
        description="Tune the Spark JVMs (driver and executors) for jobs that live seconds on small data: C1 JIT "
        "only and the serial GC (jobs.spark.SHORT_LIVED_JVM). The demo and the test suite turn it on; leave it "
        "off for large shops, where the C2 compiler and the parallel GC pay for themselves.",
    )
    spark_submit: bool = Field(
        False,
        description="DAGs run their Spark steps through spark-submit (SparkSubmitOperator) on the master of "
        "the connection spark_conn_id instead of in the task's process; stack mode turns it on.",
    )
    schedule_mode: Literal["cron", "assets"] = Field(
        "cron",
        description="cron: each DAG runs at its nightly time or on its upstream assets, whichever comes first; "
        "assets: no times, marketing_ingest runs when triggered and the rest follow its asset events.",
    )
    spark_conn_id: str = Field(
        "msp_spark",
        pattern=r"^[A-Za-z0-9_]+$",
        description="Airflow connection of the Spark master for spark-submit (AIRFLOW_CONN_<ID> or the UI).",
    )
    mlflow_tracking_uri: str = Field("sqlite:///var/mlflow/mlflow.db", description="MLflow backend store.")
    mlflow_artifact_root: Path = Field(Path("var/mlflow/artifacts"), description="MLflow artifact root.")
    warehouse_url: SecretStr = Field(
        SecretStr("duckdb:///var/warehouse.duckdb"),
        description="duckdb:///path or postgresql://user:password@host:port/db",
    )
    warehouse_schema: str = Field("marketing", description="Warehouse schema for all tables and views.")
    pii_salt: SecretStr | None = Field(None, description="Salt for hashing PII; unset = per-install salt.")
    alert_webhook_url: SecretStr | None = Field(None, description="Optional webhook for failure alerts.")
    log_level: str = Field("INFO", description="Logging level of jobs and the CLI.")
    gx_dir: Path = Field(Path("var/gx"), description="Great Expectations file context (results, Data Docs).")
    # REST source (jobs/sources/http.py): the shop's API that landing data can be pulled from
    http_base_url: str | None = Field(None, description="Base URL of the shop's REST API.")
    http_token: SecretStr | None = Field(None, description="Bearer token for the REST API (or an Airflow conn).")
    http_tables: list[str] = Field(
        default_factory=list, description='Tables marketing_ingest pulls from the API first, e.g. ["orders"].'
    )
    http_conn_id: str = Field("msp_shop_api", description="Airflow connection with the API's auth, if defined.")
    http_page_size: int = Field(1000, ge=1, le=100_000, description="Records asked for per page.")
    http_rate_limit_per_s: float = Field(10.0, gt=0, description="At most this many requests per second.")
    http_max_retries: int = Field(5, ge=0, le=20, description="Retries of a failed request (with back-off).")
    http_timeout_s: float = Field(30.0, gt=0, description="Timeout of one request.")
    # Training (issue 4)
    mlflow_experiment: str = Field("marketing-uplift", description="MLflow experiment of the nightly training runs.")
    model_name_prefix: str = Field("msp_uplift", description="Registered models are <prefix>_xgboost, <prefix>_keras.")
    model_families: list[Literal["xgboost", "keras", "fusion"]] = Field(
        default_factory=lambda: ["xgboost", "keras", "fusion"],
        description='Model families marketing_train fits and the champion gate compares (JSON list, e.g. ["xgboost"]: '
        "no TensorFlow at training time); fusion blends the other two, so it needs both.",
    )
    holdout_share: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Share of campaign rows held out for calibration and evaluation (stable hash split).",
    )
    promotion_margin: float = Field(
        0.01, ge=0, description="Challenger becomes champion when its DR policy value beats it by this share."
    )
    tuning_budget_s: float = Field(60.0, ge=0, description="Time budget of the nightly hyperparameter search (0: off).")
    tuning_trials: int = Field(12, ge=1, le=1000, description="At most this many tuning trials per night.")
    tuning_folds: int = Field(3, ge=2, le=10, description="Cross-validation folds of the hyperparameter search.")
    bootstrap_samples: int = Field(200, ge=10, le=10_000, description="Bootstrap resamples of policy-value intervals.")
    xgboost_engine: Literal["local", "spark"] = Field(
        "local",
        description="Where the final XGBoost boosters train: local (xgboost.train in the task's process) or spark "
        "(xgboost.spark on the executors of spark_master). Tuning trials stay local either way.",
    )
    xgboost_spark_workers: int = Field(
        2, ge=1, le=1024, description="Spark tasks (XGBoost workers) per booster with the spark engine."
    )
    # Monitoring (issue 6)
    drift_psi_warn: float = Field(0.1, ge=0, description="PSI from which a feature or score shift is a warning.")
    drift_psi_alert: float = Field(0.25, ge=0, description="PSI from which a shift raises a drift alert.")
    attribution_days: int = Field(
        7, ge=1, le=60, description="Days after a campaign's send date in which a conversion counts for it."
    )
    demo_nights: int = Field(
        1, ge=1, le=14, description="Nights of the closed loop `make demo` runs after the first scoring (each ~2 min)."
    )
    evaluation_lookback_days: int = Field(
        28, ge=0, le=365, description="marketing_evaluate re-evaluates runs whose window closed this many days back."
    )
    # Scoring (issue 5)
    scoring_model: Literal["policy", "xgboost", "keras", "fusion"] = Field(
        "policy",
        description="Whose @champion scores: policy (the served <prefix>, the best family's champion), or a family.",
    )
    strategy_catalogue: Path | None = Field(None, description="Strategy catalogue YAML (default: the shipped one).")
    scoring_driver_memory: str = Field(
        "2g",
        pattern=r"^[0-9]+[kmgt]?$",
        description="spark.driver.memory of the scoring and publish jobs (their own sessions). The Arrow collect of "
        "the predictions needs it: with 1g a 1M-customer score loses its task results or runs out of heap.",
    )
    # Fairness audit of every scoring run (issue 22; jobs/scoring/fairness.py)
    fairness_attributes: list[str] = Field(
        default_factory=lambda: ["region", "gender", "age"],
        description='Feature columns whose groups the audit compares (JSON list, e.g. ["region", "tenure_days"]; '
        "[] turns it off); a numeric one needs band edges in fairness_bands.",
    )
    fairness_bands: dict[str, list[float]] = Field(
        default_factory=lambda: {"age": [25, 35, 45, 55, 65], "tenure_days": [90, 365, 730]},
        description='Band edges of numeric attributes (JSON object, e.g. {"age": [25, 35]}: bands <25, [25,35), >=35; '
        "a null value is the group unknown).",
    )
    fairness_min_group_size: int = Field(
        500, ge=1, description="Groups with fewer customers are reported but left out of the ratios."
    )
    fairness_alert_ratio: float = Field(
        1.25, ge=1, description="Alert when a measure's largest group value is more than this times its smallest."
    )
    recommend_method: Literal["hybrid", "cooccurrence", "popularity"] = Field(
        "hybrid",
        description="Products of email_recommendations: hybrid (item co-occurrence blended with content similarity "
        "by history length), cooccurrence (collaborative only), popularity (docs/SCORING.md).",
    )
    recommend_history_half: float = Field(
        5.0,
        ge=0,
        description="Hybrid blend: co-occurrence weighs n / (n + this) for a customer with n distinct products in "
        "the history, content the rest (0: co-occurrence only).",
    )
    recommend_price_band_weight: float = Field(
        0.0,
        ge=0,
        description="Content similarity: weight of the same price band (tercile within the category) beside the "
        "category's; 0 (default): category only (the simulator's purchases ignore price, docs/SCORING.md).",
    )
    # Stack mode (issue 7; `make stack-up`): the services on one machine, all bound to stack_host
    stack_dir: Path = Field(Path("var/stack"), description="Stack mode state: logs, pid files, Airflow home, secrets.")
    stack_host: str = Field("127.0.0.1", description="Address every stack service binds to (loopback by default).")
    stack_postgres_url: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="Admin URL of the PostgreSQL server that holds the stack's databases (created if missing).",
    )
    stack_database_prefix: str = Field(
        "msp", description="Stack databases: <prefix>_airflow, _mlflow, _mlflow_auth and _warehouse."
    )
    stack_airflow_port: int = Field(8080, ge=1, le=65535, description="Airflow api-server (UI and REST API).")
    stack_mlflow_port: int = Field(5000, ge=1, le=65535, description="MLflow tracking server (UI and REST API).")
    stack_spark_port: int = Field(7077, ge=1, le=65535, description="Spark standalone master (spark://).")
    stack_spark_ui_port: int = Field(8081, ge=1, le=65535, description="Spark master web UI.")
    stack_spark_worker_ui_port: int = Field(8082, ge=1, le=65535, description="Spark worker web UI.")
    stack_spark_worker_cores: int = Field(2, ge=1, description="Cores the Spark worker offers.")
    stack_spark_worker_memory: str = Field("4g", pattern=r"^[0-9]+[mg]$", description="Memory the Spark worker offers.")
    stack_admin_user: str = Field("admin", description="Login of the Airflow and MLflow UIs in stack mode.")
    stack_admin_password: SecretStr | None = Field(
        None, description="Its password; unset = generated once into <stack_dir>/credentials.json (mode 600)."
    )

    @field_validator("stack_database_prefix", "stack_admin_user")
    @classmethod
    def _stack_names_are_identifiers(cls, value: str, info) -> str:
        return require_identifier(value, f"MSP_{info.field_name.upper()}=")

    @field_validator("warehouse_schema")
    @classmethod
    def _schema_is_identifier(cls, value: str) -> str:
        return require_identifier(value, "MSP_WAREHOUSE_SCHEMA=")

    @field_validator("model_name_prefix")
    @classmethod
    def _prefix_is_identifier(cls, value: str) -> str:
        # <prefix>_<family> names the registered models and is written to the warehouse's model_name
        return require_identifier(value, "MSP_MODEL_NAME_PREFIX=")

    @field_validator("model_families")
    @classmethod
    def _families_fit_together(cls, value: list[str]) -> list[str]:
        families = list(dict.fromkeys(value))
        if not families:
            raise ValueError("MSP_MODEL_FAMILIES: name at least one model family (xgboost, keras, fusion)")
        if "fusion" in families and not {"xgboost", "keras"} <= set(families):
            raise ValueError("MSP_MODEL_FAMILIES: fusion blends xgboost and keras, so it needs both")
        return families

    @model_validator(mode="after")
    def _scoring_model_is_trained(self) -> Settings:
        if self.scoring_model != "policy" and self.scoring_model not in self.model_families:
            raise ValueError(
                f"MSP_SCORING_MODEL={self.scoring_model!r} is not among MSP_MODEL_FAMILIES={self.model_families}"
            )
        return self

    @field_validator("http_tables")
    @classmethod
    def _known_tables(cls, value: list[str]) -> list[str]:
        # each name becomes a landing folder (landing/<table>/...): only the contract's tables
        from jobs.contracts import ORDER

        for table in value:
            if table not in ORDER:
                raise ValueError(f"MSP_HTTP_TABLES: {table!r} is not a source table (one of {', '.join(ORDER)})")
        return value

    @field_validator("fairness_attributes")
    @classmethod
    def _attributes_are_identifiers(cls, value: list[str]) -> list[str]:
        # each names a feature column and is part of the model_metrics metric name
        return [require_identifier(a, "MSP_FAIRNESS_ATTRIBUTES: ") for a in dict.fromkeys(value)]

    @field_validator("fairness_bands")
    @classmethod
    def _bands_increase(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, edges in value.items():
            require_identifier(name, "MSP_FAIRNESS_BANDS: ")
            if not edges or not all(map(math.isfinite, edges)) or any(a >= b for a, b in pairwise(edges)):
                raise ValueError(f"MSP_FAIRNESS_BANDS: {name}: edges must be finite, strictly increasing (got {edges})")
        return value

    @field_validator("xgboost_engine", mode="before")
    @classmethod
    def _engine_lower_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"MSP_LOG_LEVEL={value!r} is not a logging level")
        return level

    def path(self, value: Path) -> Path:
        """Resolve a configured path against ``home``."""
        return value if value.is_absolute() else (self.home / value).resolve()

    @property
    def lake(self) -> Path:
        return self.path(self.data_root)

    @property
    def landing(self) -> Path:
        return self.lake / "landing"

    @property
    def truth(self) -> Path:
        return self.path(self.truth_dir)

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        """The tracking URI with a relative ``sqlite:///`` path made absolute against ``home``."""
        return _resolve_file_url(self.mlflow_tracking_uri, "sqlite", self.home)

    @property
    def resolved_warehouse_url(self) -> str:
        """The warehouse URL with a relative ``duckdb:///`` path made absolute against ``home``."""
        return _resolve_file_url(self.warehouse_url.get_secret_value(), "duckdb", self.home)

    def masked(self) -> dict[str, Any]:
        """Settings as plain values with secrets and URL passwords masked, for printing."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "warehouse_url":
                value = mask_url(self.resolved_warehouse_url)
            elif name == "stack_postgres_url":
                value = mask_url(value.get_secret_value())
            elif isinstance(value, SecretStr):
                value = MASK  # a webhook's path is often its token: show nothing of it
            elif isinstance(value, Path):
                value = str(self.path(value))
            elif name == "mlflow_tracking_uri":
                value = mask_url(self.resolved_mlflow_tracking_uri)
            elif name.endswith("_url") and isinstance(value, str):
                value = mask_url(value)
            out[name] = value
        return out


def mask_url(url: str) -> str:
    """Hide the password (and token-like query strings) of a URL, keep the rest readable."""
    parts = urlsplit(url)
    if "@" not in parts.netloc and not parts.query:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", parts.fragment))


def _resolve_file_url(url: str, scheme: str, home: Path) -> str:
    """``scheme:///relative/path`` made absolute against ``home``; other URLs unchanged."""
    prefix = f"{scheme}:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((home / url[len(prefix) :]).resolve())
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
