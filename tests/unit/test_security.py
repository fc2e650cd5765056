"""Security checks that need no service: no secret in the repository, names from settings that reach SQL
or paths are validated, and every service binds to loopback by default.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.settings import Settings
from tests.conftest import ROOT

# --- secret scan -------------------------------------------------------------------------------

#: (rule, pattern) of what must never be committed
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b")),
    ("AWS secret key", re.compile(r"(?i)aws_?secret_?access_?key\s*[:=]\s*['\"]?[A-Za-z0-9/+]{40}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Stripe key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{20,}\b")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*")),
    ("password in URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:([^\s/@'\"]+)@[^\s/'\"]+")),
)
#: ``name = "value"`` where the name sounds secret and the value is long and random-looking
ASSIGNMENT = re.compile(
    r"(?i)\b(?P<name>[a-z0-9_.-]*(?:secret|token|passw(?:or)?d|pwd|api_?key|access_?key|private_?key|salt"
    r"|credential|auth)[a-z0-9_.-]*)[\"']?\s*[:=]\s*[\"'](?P<value>[^\"'\s]{16,})[\"']"
)
#: URL passwords that are placeholders, not secrets
PLACEHOLDER_PASSWORDS = {"password", "****", "***", "pass", "secret", "changeme", "xxx", "<password>", "PASSWORD"}
MIN_ENTROPY = 3.5  # bits per character; English words and identifiers stay below, keys and tokens above
LOWERCASE_PATH = re.compile(r"[a-z0-9_.-]*/[a-z0-9_./-]*")  # var/secrets/pii_salt: where a secret lives, not one


@dataclass(frozen=True)
class Allowed:
    """A finding that is a test fixture, not a secret: the file, the exact text, and why it is fine."""

    path: str
    text: str
    why: str


ALLOW_LIST: tuple[Allowed, ...] = (
    Allowed(
        "tests/unit/test_settings.py",
        "postgresql://msp:" + "hunter2@127.0.0.1:5432/shop",  # split, so this file does not hold it whole
        "made-up password of a loopback URL; the test checks that `msp config` masks it",
    ),
    Allowed(
        "tests/integration/test_cli.py",
        "postgresql://msp:" + "topsecret@127.0.0.1/shop",
        "made-up password of a loopback URL; the test checks that the CLI masks it",
    ),
    Allowed(
        "tests/integration/test_http_source.py",
        "s3cret-token-xyz",
        "the bearer token a local fake API (started by the test) expects; it opens nothing real",
    ),
)


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def scan_text(text: str) -> list[tuple[int, str, str]]:
    """(line, rule, matched text) of everything in ``text`` that looks like a secret."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for rule, pattern in SECRET_PATTERNS:
            for match in pattern.finditer(line):
                if rule == "password in URL" and (
                    match.group(1) in PLACEHOLDER_PASSWORDS or match.group(1).startswith(("{", "$", "<", "%"))
                ):
                    continue
                found.append((number, rule, match.group(0)))
        for match in ASSIGNMENT.finditer(line):
            value = match.group("value")
            if (
                shannon_entropy(value) >= MIN_ENTROPY
                and not value.startswith(("{", "$", "<", "%"))
                and not LOWERCASE_PATH.fullmatch(value)
            ):
                found.append((number, f"high-entropy value of {match.group('name')}", value))
    return found


def repository_files() -> list[Path]:
    """Files git tracks, plus new files not ignored (so a secret is caught before its first commit)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({ROOT / name for name in listing.split("\0") if name and (ROOT / name).is_file()})


def test_the_scanner_finds_each_kind_of_secret() -> None:
    """Planted examples (assembled at run time, so this file holds none) are all found."""
    planted = {
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "AWS access key id": "key = AKIA" + "Q3EGRX7TMZ4WVN2K",
        "AWS secret key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Hd3Lk2T",
        "GitHub token": "token: ghp_" + "x7Kq2Lm9Pz4Rt6Vw8Yb1Nc3Df5Gh7Jk0Ls2Qa",
        "Slack token": "xoxb-" + "1234567890-abcdefghij",
        "Google API key": "AIza" + "SyD4t9Xk2Lm8Pq3Rs7Tv1Wx5Yz0Ab6Cd2Ef",
        "Stripe key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "JSON web token": "eyJ" + "hbGciOiJIUzI1NiJ9.eyJ" + "zdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N",
        "bearer token": "Authorization: Bearer " + "8f14e45fceea167a5a36dedd4bea2543aa",
        "password in URL": "postgresql://etl:" + "Xq7-Lm2p9@db.internal:5432/shop",
        "high-entropy value of api_key": 'api_key = "' + 'Zx8Qk2Lm9Pq4Rt6Vw1Yb3N"',
    }
    for rule, text in planted.items():
        assert [r for _, r, _ in scan_text(text)] == [rule], rule
    harmless = [
        'description="duckdb:///path or postgresql://user:password@host:port/db"',
        'monkeypatch.setenv("MSP_PII_SALT", "pepper")',
        'token_file = "var/secrets/http_token_placeholder"',
        "url = f'postgresql://{user}:{password}@{host}/db'",
    ]
    assert [scan_text(t) for t in harmless] == [[] for _ in harmless]


def test_no_secret_in_the_repository() -> None:
    files = repository_files()
    assert len(files) > 100 and ROOT / "jobs" / "settings.py" in files
    findings, allowed_hits = [], set()
    for path in files:
        data = path.read_bytes()
        if b"\0" in data[:8192] or len(data) > 2_000_000:  # binary, or generated data
            continue
        relative = path.relative_to(ROOT).as_posix()
        for line, rule, text in scan_text(data.decode("utf-8", errors="replace")):
            allowed = [a for a in ALLOW_LIST if a.path == relative and text in a.text]
            if allowed:
                allowed_hits.add(allowed[0])
            else:
                findings.append(f"{relative}:{line}: {rule}: {text[:80]}")
    assert findings == []
    assert allowed_hits == set(ALLOW_LIST), "an allow-list entry no longer matches anything: remove it"


# --- names from settings ----------------------------------------------------------------------

INJECTIONS = ["marketing; DROP TABLE x", 'a"b', "x' OR '1'='1", "marketing.x", "a b", "-- comment", ""]


@pytest.mark.parametrize("bad", INJECTIONS)
@pytest.mark.parametrize("variable", ["MSP_WAREHOUSE_SCHEMA", "MSP_MODEL_NAME_PREFIX"])
def test_names_from_settings_reject_injection(
    variable: str, bad: str, msp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, bad)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert f"{variable}={bad!r} is not an identifier" in str(info.value)


@pytest.mark.parametrize("bad", ['["../../etc"]', '["orders; rm -rf /"]', '["Orders"]'])
def test_rest_tables_must_be_contract_tables(bad: str, msp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSP_HTTP_TABLES", bad)
    with pytest.raises(ValidationError, match=r"MSP_HTTP_TABLES: .* is not a source table"):
        Settings()


def test_valid_names_pass(msp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSP_WAREHOUSE_SCHEMA", "marketing_v2")
    monkeypatch.setenv("MSP_MODEL_NAME_PREFIX", "shop_uplift")
    monkeypatch.setenv("MSP_HTTP_TABLES", '["orders", "events"]')
    s = Settings()
    assert (s.warehouse_schema, s.model_name_prefix, s.http_tables) == (
        "marketing_v2",
        "shop_uplift",
        ["orders", "events"],
    )


def test_the_warehouse_rejects_table_and_column_names_before_connecting(tmp_path: Path) -> None:
    """Names the writer puts into SQL are checked first: nothing is created for a bad name."""
    import pandas as pd

    from jobs.warehouse import Warehouse

    warehouse = Warehouse(f"duckdb:///{tmp_path}/w.duckdb", "marketing")
    frame = pd.DataFrame({"run_date": ["2026-09-01"]})
    with pytest.raises(ValueError, match="table 'x; DROP TABLE y' is not an identifier"):
        warehouse.replace("x; DROP TABLE y", {"run_date": "2026-09-01"}, frame)
    with pytest.raises(ValueError, match="column 'run_date\"--' is not an identifier"):
        warehouse.replace("data_quality", {'run_date"--': "2026-09-01"}, frame)
    assert not (tmp_path / "w.duckdb").exists()


# --- loopback ---------------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"


def test_services_bind_to_loopback_by_default(msp_home: Path) -> None:
    from jobs import ui
    from jobs.spark import default_conf

    assert ui.HOST == LOOPBACK  # make ui: Airflow api-server and MLflow UI
    conf = default_conf(Settings())
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == LOOPBACK
    assert conf["spark.ui.enabled"] == "false"  # Spark's UI would listen on all interfaces: off unless asked
    s = Settings()
    assert s.mlflow_tracking_uri.startswith("sqlite:///")  # embedded stores: no server, no port
    assert s.resolved_warehouse_url.startswith("duckdb:///")
    assert s.http_base_url is None


#: inside containers the services listen on the container network (other containers reach them);
#: what the host sees is the published ports, which tests/integration/test_docker_files.py holds to 127.0.0.1
CONTAINER_STACK = ROOT / "docker" / "compose.yaml"


def test_no_source_binds_to_all_interfaces() -> None:
    """No code, config or script in the repository listens on 0.0.0.0 / :: or passes a public --host."""
    wildcard = re.compile(r"0\.0\.0\.0|\[::\]|['\"]::['\"]|--host[ =]+(?!127\.0\.0\.1|localhost|\{|\$|\"\$)\S+")
    hits = []
    for path in repository_files():
        if path.suffix not in {".py", ".cfg", ".toml", ".yaml", ".yml", ".sh", ".ini", ".env"} and path.name not in {
            "Makefile",
            "Dockerfile",
        }:
            continue
        if path == Path(__file__) or path == CONTAINER_STACK:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if wildcard.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert hits == []
