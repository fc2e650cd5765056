"""The ``msp`` command line, run through its real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from jobs.cli import app


def test_config_prints_effective_settings_as_json(msp_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("MSP_WAREHOUSE_URL", "postgresql://msp:topsecret@127.0.0.1/shop")
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["data_root"] == str(msp_home / "var/lake")
    assert shown["warehouse_url"] == "postgresql://msp:****@127.0.0.1/shop"
    assert "topsecret" not in result.stdout


def test_invalid_settings_exit_2_with_the_variable_named(msp_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("MSP_WAREHOUSE_SCHEMA", "bad;name")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 2
    assert "MSP_WAREHOUSE_SCHEMA" in result.output


def test_simulate_then_respond_through_the_console_script(msp_home: Path) -> None:
    exe = Path(sys.executable).with_name("msp")
    env = {"MSP_HOME": str(msp_home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [
            str(exe),
            "simulate",
            "--customers",
            "300",
            "--products",
            "30",
            "--days",
            "10",
            "--dirt",
            "malformed=0.05",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "landing zone" in out.stdout and "events" in out.stdout
    assert (msp_home / "var/lake/landing/events/ds=2026-09-10/part-00000.csv").exists()
    assert (msp_home / "var/truth/manifest.json").exists()
    dirt = pd.read_parquet(msp_home / "var/truth/dirt.parquet")
    assert (dirt["kind"] == "malformed").sum() > 0

    assignments = msp_home / "assign.csv"
    pd.DataFrame(
        {
            "customer_id": ["C0000001", "C0000002"],
            "strategy": ["coupon_10", "no_action"],
            "propensity": [0.5, 0.5],
        }
    ).to_csv(assignments, index=False)
    out = subprocess.run(
        [str(exe), "simulate", "respond", "--assignments", str(assignments), "--date", "2026-09-11"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "answered 2 assignments of 2026-09-11" in out.stdout
    assert (msp_home / "var/lake/landing/campaign_log/ds=2026-09-11/respond-2026-09-11.parquet").exists()

    bad = subprocess.run(
        [
            str(exe),
            "simulate",
            "respond",
            "--assignments",
            str(msp_home / "missing.csv"),
            "--date",
            "2026-09-11",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "missing.csv: file not found" in bad.stderr


def test_simulate_rejects_bad_options(msp_home: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--dirt", "gremlins=0.1"])
    assert result.exit_code == 2 and "unknown dirt kind" in result.output
    result = CliRunner().invoke(app, ["simulate", "--dirt", "malformed"])
    assert result.exit_code == 2 and "KIND=RATE" in result.output


def test_pipeline_steps_run_from_the_command_line(msp_home: Path) -> None:
    exe = str(Path(sys.executable).with_name("msp"))
    env = {"MSP_HOME": str(msp_home), "PATH": "/usr/bin:/bin", "MSP_PII_SALT": "pepper"}
    run = lambda *a: subprocess.run([exe, *a], capture_output=True, text=True, env=env, check=False)  # noqa: E731
    assert run("simulate", "--customers", "200", "--products", "20", "--days", "3").returncode == 0
    out = run("ingest", "customers", "--ds", "2026-09-03", "--since", "2026-09-01")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"] == 3
    out = run("clean", "customers", "--ds", "2026-09-03", "--since", "2026-09-01")
    assert out.returncode == 0, out.stderr
    manifest = json.loads((msp_home / "var/truth/manifest.json").read_text())
    assert json.loads(out.stdout)["silver"] == manifest["clean_rows"]["customers"]
    bad = run("clean", "nope", "--ds", "2026-09-03")
    assert bad.returncode == 2 and "unknown table 'nope'" in bad.stderr
    bad = run("ingest", "events", "--ds", "2026-09-03", "--since", "2026-09-09")
    assert bad.returncode == 2 and "is after ds" in bad.stderr
