"""The campaign import on tiny inline files: exact rows, every rule's message, reruns, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
import yaml
from typer.testing import CliRunner

from jobs.imports.campaign_log import (
    CampaignImportError,
    default_output_root,
    import_campaign_log,
    load_mapping,
    resolve_mapping,
    shipped_mapping,
    shipped_mapping_names,
)
from jobs.imports.cli import import_app
from jobs.simulator.tables import CAMPAIGN_LOG_SCHEMA

MIDNIGHT = datetime(2024, 5, 6, tzinfo=UTC)

BASE: dict[str, Any] = {
    "dataset": "demo_ab",
    "campaign_id": "AB-1",
    "campaign_date": "2024-05-06",
    "customer_id": {"generate": {"prefix": "T", "width": 3}},
    "strategy": {"column": "arm", "values": {"control": "no_action", "mail": "email_recommendations"}},
    "propensity": {"constant": 0.5},
    "is_holdout": {"holdout_strategy": "no_action"},
    "outcomes": {"visited": "visit", "converted": "buy", "revenue": "spend"},
    "features": ["age", "city"],
}

CSV = """arm,visit,buy,spend,age,city
control,0,0,0,31,Bonn
mail,1,1,12.5,45,Köln
mail,1,0,0,,Essen
control,0,0,0,52,
"""


def mapping_file(tmp_path: Path, name: str = "m.yaml", **changes: Any) -> Path:
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def row(cid: str, strategy: str, p: float, holdout: bool, v: Any, c: Any, r: Any, campaign="AB-1") -> dict:
    return {
        "campaign_id": campaign,
        "customer_id": cid,
        "ts": MIDNIGHT,
        "strategy": strategy,
        "propensity": p,
        "is_holdout": holdout,
        "visited": v,
        "converted": c,
        "revenue": r,
        "updated_at": MIDNIGHT,
    }


# --- happy paths ----------------------------------------------------------------------------


def test_csv_maps_arms_constant_propensity_generated_ids_and_derived_holdout(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", CSV)
    result = import_campaign_log(src, mapping_file(tmp_path), tmp_path / "out")

    assert result.campaign_log == tmp_path / "out/campaign_log/ds=2024-05-06/demo_ab.parquet"
    assert result.customer_attributes == tmp_path / "out/customer_attributes/ds=2024-05-06/demo_ab.parquet"
    assert (result.rows, result.per_strategy, result.holdouts) == (
        4,
        {"no_action": 2, "email_recommendations": 2},
        2,
    )
    assert result.ds == "2024-05-06" and result.campaign_id == "AB-1"
    assert pq.read_schema(result.campaign_log) == CAMPAIGN_LOG_SCHEMA
    assert rows(result.campaign_log) == [
        row("T001", "no_action", 0.5, True, False, False, 0.0),
        row("T002", "email_recommendations", 0.5, False, True, True, 12.5),
        row("T003", "email_recommendations", 0.5, False, True, False, 0.0),
        row("T004", "no_action", 0.5, True, False, False, 0.0),
    ]
    attributes = pq.read_table(result.customer_attributes)
    assert attributes.schema == pa.schema([("customer_id", pa.string()), ("age", pa.int64()), ("city", pa.string())])
    assert attributes.to_pylist() == [
        {"customer_id": "T001", "age": 31, "city": "Bonn"},
        {"customer_id": "T002", "age": 45, "city": "Köln"},
        {"customer_id": "T003", "age": None, "city": "Essen"},
        {"customer_id": "T004", "age": 52, "city": ""},
    ]


def test_jsonl_with_id_propensity_and_holdout_columns_and_partial_outcomes(tmp_path: Path) -> None:
    records = [
        {"user": "007", "arm": "mail", "p": 0.8, "hold": 0, "clicked": True, "amount": 3.25, "tier": "gold"},
        {"user": "42", "arm": "control", "p": 0.2, "hold": 1, "clicked": False, "amount": None, "tier": None},
        {"user": "x9", "arm": "mail", "p": 1, "hold": 0, "clicked": None, "amount": 0, "tier": "blue"},
    ]
    src = write(tmp_path, "log.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    mapping = mapping_file(
        tmp_path,
        customer_id={"column": "user"},
        propensity={"column": "p"},
        is_holdout={"column": "hold"},
        outcomes={"visited": "clicked", "revenue": "amount"},
        features=["tier"],
    )
    result = import_campaign_log(src, mapping, tmp_path / "out")

    assert rows(result.campaign_log) == [
        row("007", "email_recommendations", 0.8, False, True, None, 3.25),
        row("42", "no_action", 0.2, True, False, None, None),
        row("x9", "email_recommendations", 1.0, False, None, None, 0.0),
    ]
    assert result.holdouts == 1
    assert rows(result.customer_attributes) == [
        {"customer_id": "007", "tier": "gold"},
        {"customer_id": "42", "tier": None},
        {"customer_id": "x9", "tier": "blue"},
    ]


def test_csv_keeps_leading_zeros_of_ids_and_numeric_arm_codes_match_the_map(tmp_path: Path) -> None:
    src = write(tmp_path, "codes.csv", "id,group,w\n0012,1,0.25\n0013,0,0.75\n")
    mapping = tmp_path / "codes.yaml"
    mapping.write_text(
        "dataset: codes\ncampaign_id: C\ncampaign_date: 2024-05-06\n"
        "customer_id: {column: id}\n"
        "strategy: {column: group, values: {0: no_action, 1: coupon_10}}\n"
        "propensity: {column: w}\n",
        encoding="utf-8",
    )
    result = import_campaign_log(src, mapping, tmp_path / "out")
    got = rows(result.campaign_log)
    assert [(r["customer_id"], r["strategy"], r["propensity"], r["is_holdout"]) for r in got] == [
        ("0012", "coupon_10", 0.25, False),
        ("0013", "no_action", 0.75, False),
    ]
    assert [(r["visited"], r["converted"], r["revenue"]) for r in got] == [(None, None, None)] * 2
    assert rows(result.customer_attributes) == [{"customer_id": "0012"}, {"customer_id": "0013"}]


def test_the_same_export_as_csv_jsonl_and_parquet_imports_identically(tmp_path: Path) -> None:
    table = pa.table(
        {
            "arm": ["control", "mail"],
            "visit": [0, 1],
            "buy": [0, 1],
            "spend": [0.0, 9.5],
            "age": [30, 40],
            "city": ["A", "B"],
        }
    )
    csv_src = write(tmp_path, "x.csv", "arm,visit,buy,spend,age,city\ncontrol,0,0,0.0,30,A\nmail,1,1,9.5,40,B\n")
    jsonl_src = write(tmp_path, "x.jsonl", "".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    parquet_src = tmp_path / "x.parquet"
    pq.write_table(table, parquet_src)
    mapping = mapping_file(tmp_path)
    outputs = []
    for i, src in enumerate([csv_src, jsonl_src, parquet_src]):
        result = import_campaign_log(src, mapping, tmp_path / f"out{i}")
        outputs.append((rows(result.campaign_log), rows(result.customer_attributes)))
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0][0][1] == row("T002", "email_recommendations", 0.5, False, True, True, 9.5)


def test_rerun_replaces_the_files_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    mapping = mapping_file(tmp_path)
    out = tmp_path / "out"
    import_campaign_log(write(tmp_path, "ab.csv", CSV), mapping, out)
    import_campaign_log(write(tmp_path, "ab.csv", CSV), mapping, out)
    second = import_campaign_log(
        write(tmp_path, "ab.csv", "arm,visit,buy,spend,age,city\nmail,0,0,0,20,X\n"), mapping, out
    )
    assert len(rows(second.campaign_log)) == 1
    assert len(rows(second.customer_attributes)) == 1
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "campaign_log/ds=2024-05-06/demo_ab.parquet",
        "customer_attributes/ds=2024-05-06/demo_ab.parquet",
        "dataset.json",
    ]
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["rows"] == 1 and manifest["mapping"]["dataset"] == "demo_ab"


# --- the mapping ----------------------------------------------------------------------------


def test_shipped_hillstrom_mapping_is_package_data_and_valid() -> None:
    path = shipped_mapping("hillstrom")
    assert path.name == "hillstrom.yaml" and path.is_file()
    assert "hillstrom" in shipped_mapping_names()
    assert resolve_mapping("hillstrom") == path
    m = load_mapping(path)
    assert (m.dataset, m.campaign_id, m.ds) == ("hillstrom", "HILLSTROM-2008-03", "2008-03-01")
    assert m.propensity.constant == 1 / 3
    assert m.strategy.values == {
        "No E-Mail": "no_action",
        "Mens E-Mail": "email_mens",
        "Womens E-Mail": "email_womens",
    }
    assert m.customer_id.generate is not None and (
        m.customer_id.generate.prefix,
        m.customer_id.generate.width,
    ) == (
        "H",
        7,
    )
    assert m.features == [
        "recency",
        "history_segment",
        "history",
        "mens",
        "womens",
        "zip_code",
        "newbie",
        "channel",
    ]
    assert "not in the data" in path.read_text(encoding="utf-8")
    with pytest.raises(CampaignImportError, match="neither a mapping file nor a shipped mapping"):
        shipped_mapping("criteo")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"propensity": {"column": "p", "constant": 0.5}}, "propensity: give exactly one of column, constant or"),
        ({"propensity": {}}, "propensity: give exactly one of column, constant or by_strategy"),
        (
            {"propensity": {"by_strategy": {"no_action": 0.5, "coupon": 0.5}}},
            "propensity.by_strategy.coupon: not one of the strategies (no_action, email_recommendations)",
        ),
        (
            {"propensity": {"by_strategy": {"no_action": 0.5}}},
            "propensity.by_strategy: no propensity for email_recommendations",
        ),
        (
            {"propensity": {"by_strategy": {"no_action": 0, "email_recommendations": 1}}},
            "propensity.by_strategy: no_action: 0.0 is outside (0, 1]",
        ),
        ({"on_bad_rows": "skip"}, "on_bad_rows: 'skip' is not one of fail, quarantine"),
        ({"source": {"package_dataset": "causaldata"}}, "source.package_dataset: String should match pattern"),
        ({"propensity": {"constant": 0}}, "propensity.constant: constant 0.0 is outside (0, 1]"),
        ({"propensity": {"constant": 1.5}}, "propensity.constant: constant 1.5 is outside (0, 1]"),
        ({"propensity": {"constant": -0.1}}, "propensity.constant: constant -0.1 is outside (0, 1]"),
        ({"propensity": {"constant": True}}, "propensity.constant: give the constant as a number in (0, 1]"),
        ({"customer_id": {}}, "customer_id: give either column or generate"),
        ({"customer_id": {"column": "id", "generate": {}}}, "customer_id: give either column or generate"),
        ({"is_holdout": {"column": "h", "holdout_strategy": "no_action"}}, "is_holdout: give either column"),
        (
            {"is_holdout": {"holdout_strategy": "control"}},
            "is_holdout.holdout_strategy: 'control' is not one",
        ),
        ({"strategy": None}, "strategy: missing"),
        ({"strategy": {"column": "arm", "values": {}}}, "strategy.values: Dictionary should have at least 1"),
        ({"strategy": {"column": "arm", "values": {"a": "Mens"}}}, "strategy.values: strategy name 'Mens'"),
        ({"strategy": {"column": "arm", "values": {True: "a"}}}, "read the raw value True as bool: quote it"),
        ({"outcomes": {"clicks": "c"}}, "outcomes.clicks: unknown key"),
        ({"dataset": "my-data"}, "dataset: 'my-data' is not an identifier"),
        ({"campaign_date": "01/03/2008"}, "campaign_date: give the date as YYYY-MM-DD, not '01/03/2008'"),
        ({"campaign_date": "2008-02-30"}, "campaign_date: '2008-02-30' is not a valid date"),
        ({"features": ["age", "age"]}, "features: 'age' is listed twice"),
        ({"features": ["customer_id"]}, "features: 'customer_id' is always written"),
        ({"campaign_id": ""}, "campaign_id: '' must be non-empty"),
        ({"campaign_id": " AB"}, "campaign_id: ' AB' must be non-empty, without leading or trailing spaces"),
    ],
)
def test_mapping_errors_name_the_file_and_the_key(tmp_path: Path, changes: dict, expected: str) -> None:
    path = mapping_file(tmp_path, "hillstrom.yaml", **changes)
    with pytest.raises(CampaignImportError) as err:
        load_mapping(path)
    assert f"{path}: " in str(err.value)
    assert expected in str(err.value)


def test_mapping_accepts_a_constant_of_one_and_rejects_broken_yaml(tmp_path: Path) -> None:
    assert load_mapping(mapping_file(tmp_path, propensity={"constant": 1})).propensity.constant == 1.0
    broken = write(tmp_path, "broken.yaml", "dataset: [unclosed\n")
    with pytest.raises(CampaignImportError, match=r"broken.yaml: not valid YAML"):
        load_mapping(broken)
    listing = write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(CampaignImportError, match=r"list.yaml: expected a mapping of keys"):
        load_mapping(listing)
    with pytest.raises(CampaignImportError, match=r"absent.yaml: no such mapping file"):
        load_mapping(tmp_path / "absent.yaml")


# --- data errors ----------------------------------------------------------------------------


def test_missing_columns_are_named_with_the_keys_that_need_them(tmp_path: Path) -> None:
    src = write(tmp_path, "short.csv", "arm,visit,age\ncontrol,0,3\n")
    with pytest.raises(CampaignImportError) as err:
        import_campaign_log(src, mapping_file(tmp_path), tmp_path / "out")
    assert str(err.value) == (
        f"{src}: missing column(s) 'buy' (outcomes.converted); 'spend' (outcomes.revenue); "
        "'city' (features); the file has: arm, visit, age"
    )
    assert not (tmp_path / "out").exists()


def test_csv_row_errors_name_the_physical_line_and_the_rule_first_five_and_the_count(tmp_path: Path) -> None:
    src = write(
        tmp_path,
        "bad.csv",
        "arm,p,visit,buy,spend,note\n"  # line 1
        "control,0.5,0,0,0,\n"  # line 2: fine
        'Mail,0.5,0,0,1,"two\n'  # line 3: unknown arm; the quoted note spans lines 3-4
        'lines"\n'
        "\n"  # line 5: blank, skipped
        "mail,1.5,0,0,0,\n"  # line 6: propensity out of range
        "mail,,2,0,0,\n"  # line 7: propensity missing and visited not 0/1
        "control,abc,0,0,-3,\n"  # line 8: propensity not a number, negative revenue
        "control,0,0,yes,0,\n"  # line 9: propensity 0, converted not 0/1
        "mail,0.5,0,0,0,\n"  # line 10: fine
        ",0.5,0,0,0,\n",  # line 11: empty arm (the sixth offending row: counted, not shown)
    )
    mapping = mapping_file(tmp_path, propensity={"column": "p"}, features=[])
    with pytest.raises(CampaignImportError) as err:
        import_campaign_log(src, mapping, tmp_path / "out")
    lines = str(err.value).splitlines()
    assert lines[0] == f"{src}: 6 rows break the mapping (the first 5 shown):"
    assert lines[1] == (
        f"  line 3: strategy (arm): 'Mail' is not in strategy.values of {mapping} (known: 'control', 'mail')"
    )
    assert lines[2] == "  line 6: propensity (p): '1.5' is outside (0, 1]"
    assert lines[3] == "  line 7: propensity (p): missing; outcomes.visited (visit): 2 is not 0 or 1"
    assert lines[4] == (
        "  line 8: propensity (p): 'abc' is not a number; outcomes.revenue (spend): -3 is not a non-negative number"
    )
    assert lines[5] == "  line 9: propensity (p): '0' is outside (0, 1]; outcomes.converted (buy): 'yes' is not 0 or 1"
    assert len(lines) == 6
    assert not (tmp_path / "out").exists()


def test_jsonl_and_parquet_row_errors_name_the_line_and_the_row(tmp_path: Path) -> None:
    good = {"arm": "mail", "visit": 1, "buy": 0, "spend": 1.0, "age": 1, "city": "c"}
    src = write(
        tmp_path,
        "bad.jsonl",
        json.dumps(good) + "\n\n" + json.dumps({**good, "arm": "sms"}) + "\n" + json.dumps({**good, "visit": 3}) + "\n",
    )
    with pytest.raises(CampaignImportError) as err:
        import_campaign_log(src, mapping_file(tmp_path), tmp_path / "out")
    assert str(err.value).splitlines() == [
        f"{src}: 2 rows break the mapping:",
        f"  line 3: strategy (arm): 'sms' is not in strategy.values of {tmp_path / 'm.yaml'} "
        "(known: 'control', 'mail')",
        "  line 4: outcomes.visited (visit): 3 is not 0 or 1",
    ]

    parquet = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([good, good, {**good, "arm": None}]), parquet)
    with pytest.raises(CampaignImportError) as err:
        import_campaign_log(parquet, mapping_file(tmp_path), tmp_path / "out")
    assert str(err.value).splitlines() == [
        f"{parquet}: 1 row breaks the mapping:",
        "  row 3: strategy (arm): missing",
    ]


def test_customer_id_column_must_be_filled_and_unique(tmp_path: Path) -> None:
    src = write(tmp_path, "ids.csv", "id,arm\nA,mail\n,control\nB,mail\nA,control\n")
    mapping = mapping_file(tmp_path, customer_id={"column": "id"}, outcomes={}, features=[], is_holdout=None)
    with pytest.raises(CampaignImportError) as err:
        import_campaign_log(src, mapping, tmp_path / "out")
    assert str(err.value).splitlines() == [
        f"{src}: 2 rows break the mapping:",
        "  line 3: customer_id (id): missing",
        "  line 5: customer_id (id): 'A' repeats line 2",
    ]


def test_holdout_column_must_be_0_or_1(tmp_path: Path) -> None:
    src = write(tmp_path, "h.csv", "arm,h\nmail,0\ncontrol,true\nmail,\n")
    mapping = mapping_file(tmp_path, is_holdout={"column": "h"}, outcomes={}, features=[])
    with pytest.raises(CampaignImportError) as err:
        import_campaign_log(src, mapping, tmp_path / "out")
    assert str(err.value).splitlines()[1:] == ["  line 4: is_holdout (h): missing, must be 0 or 1"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.xlsx", "x", "a.xlsx: unsupported file type '.xlsx'"),
        ("empty.csv", "arm,visit,buy,spend,age,city\n", "empty.csv: no data rows"),
        ("torn.csv", "arm,visit,buy,spend,age,city\nmail,1\n", "torn.csv: cannot read it as csv"),
        ("torn.jsonl", '{"arm": "mail", "vis\n', "torn.jsonl: cannot read it as jsonl"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name: str, text: str, expected: str) -> None:
    with pytest.raises(CampaignImportError, match=expected.replace(".", r"\.")):
        import_campaign_log(write(tmp_path, name, text), mapping_file(tmp_path), tmp_path / "out")
    with pytest.raises(CampaignImportError, match=r"absent\.csv: no such file"):
        import_campaign_log(tmp_path / "absent.csv", mapping_file(tmp_path), tmp_path / "out")


def test_generated_ids_must_fit_their_width(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", CSV)
    mapping = mapping_file(tmp_path, customer_id={"generate": {"prefix": "T", "width": 1}})
    import_campaign_log(src, mapping, tmp_path / "out")  # 4 rows fit in one digit
    src = write(tmp_path, "ab.csv", CSV + "".join("mail,0,0,0,1,X\n" for _ in range(6)))
    with pytest.raises(CampaignImportError, match=r"customer_id\.generate: width 1 cannot number 10 rows"):
        import_campaign_log(src, mapping, tmp_path / "out")


# --- the CLI --------------------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(import_app, name="import")
    return app


def test_cli_imports_and_prints_rows_per_strategy_and_paths(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", CSV)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli(),
        ["import", "campaign-log", str(src), "--mapping", str(mapping_file(tmp_path)), "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "imported 4 rows" in result.stdout
    assert "no_action" in result.stdout and "email_recommendations" in result.stdout
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[2:4]}
    assert lines == {"no_action": "2", "email_recommendations": "2"}
    assert str(out / "campaign_log/ds=2024-05-06/demo_ab.parquet") in result.stdout
    assert str(out / "customer_attributes/ds=2024-05-06/demo_ab.parquet") in result.stdout


def test_cli_default_output_is_the_datasets_own_landing_zone(msp_home: Path, tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", CSV)
    result = CliRunner().invoke(cli(), ["import", "campaign-log", str(src), "-m", str(mapping_file(tmp_path))])
    assert result.exit_code == 0, result.output
    root = msp_home / "var/lake/datasets/demo_ab/landing"
    assert default_output_root("demo_ab") == root
    assert (root / "campaign_log/ds=2024-05-06/demo_ab.parquet").is_file()
    assert (root / "customer_attributes/ds=2024-05-06/demo_ab.parquet").is_file()
    assert not (msp_home / "var/lake/landing").exists()


def test_cli_errors_exit_2_with_the_message_on_stderr(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", CSV.replace("mail,1,1", "sms,1,1"))
    bad_mapping = mapping_file(tmp_path, "bad.yaml", propensity={})
    runner = CliRunner()
    result = runner.invoke(cli(), ["import", "campaign-log", str(src), "-m", str(bad_mapping), "-o", str(tmp_path)])
    assert result.exit_code == 2
    expected = f"error: {bad_mapping}: propensity: give exactly one of column, constant or by_strategy\n"
    assert result.stderr == expected
    result = runner.invoke(
        cli(), ["import", "campaign-log", str(src), "-m", str(mapping_file(tmp_path)), "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    # stderr also carries the CLI's log lines; the error is its own line
    assert f"\nerror: {src}: 1 row breaks the mapping:\n  line 3: strategy (arm): 'sms'" in "\n" + result.stderr
    result = runner.invoke(cli(), ["import", "campaign-log", str(src), "-m", "no_such_mapping"])
    assert result.exit_code == 2
    assert "error: 'no_such_mapping' is neither a mapping file nor a shipped mapping (shipped: " in result.stderr


# --- unbalanced designs, quarantine, a package's data set ------------------------------------


def test_by_strategy_propensity_gives_each_arm_its_own_share(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", CSV)
    mapping = mapping_file(tmp_path, propensity={"by_strategy": {"no_action": 0.2, "email_recommendations": 0.8}})
    result = import_campaign_log(src, mapping, tmp_path / "out")
    assert [(r["strategy"], r["propensity"]) for r in rows(result.campaign_log)] == [
        ("no_action", 0.2),
        ("email_recommendations", 0.8),
        ("email_recommendations", 0.8),
        ("no_action", 0.2),
    ]


BROKEN_CSV = """arm,visit,buy,spend,age,city
control,0,0,0,31,Bonn
sms,1,1,12.5,45,Köln
mail,1,0,0,,Essen
mail,2,0,-3,60,Ulm
control,0,0,0,52,
"""


def test_quarantine_sets_broken_rows_aside_with_line_and_reasons_and_keeps_every_valid_row(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", BROKEN_CSV)
    out = tmp_path / "out"
    result = import_campaign_log(src, mapping_file(tmp_path, on_bad_rows="quarantine"), out)
    assert (result.rows, result.quarantined) == (3, 2)
    assert result.per_strategy == {"no_action": 2, "email_recommendations": 1}
    assert result.holdouts == 2
    # generated ids keep the numbering of the file's rows: the quarantined rows 2 and 4 leave gaps
    assert [(r["customer_id"], r["strategy"]) for r in rows(result.campaign_log)] == [
        ("T001", "no_action"),
        ("T003", "email_recommendations"),
        ("T005", "no_action"),
    ]
    assert [r["customer_id"] for r in rows(result.customer_attributes)] == ["T001", "T003", "T005"]
    assert result.quarantine == out / "quarantine/ds=2024-05-06/demo_ab.parquet"
    set_aside = rows(result.quarantine)
    assert [(r["source_line"], r["arm"], r["spend"], r["city"]) for r in set_aside] == [
        (3, "sms", "12.5", "Köln"),
        (5, "mail", "-3", "Ulm"),
    ]
    assert set_aside[0]["reason"].startswith("strategy (arm): 'sms' is not in strategy.values of ")
    assert set_aside[1]["reason"] == (
        "outcomes.visited (visit): 2 is not 0 or 1; outcomes.revenue (spend): -3.0 is not a non-negative number"
    )
    manifest = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert (manifest["rows"], manifest["quarantined"]) == (3, 2)

    # a rerun of a corrected export replaces the import and leaves nothing of the old quarantine
    fixed = write(tmp_path, "ab.csv", CSV)
    again = import_campaign_log(fixed, mapping_file(tmp_path, on_bad_rows="quarantine"), out)
    assert (again.rows, again.quarantined, again.quarantine) == (4, 0, None)
    assert not (out / "quarantine/ds=2024-05-06/demo_ab.parquet").exists()


def test_quarantine_is_asked_for_and_an_all_broken_file_is_still_an_error(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", BROKEN_CSV)
    with pytest.raises(CampaignImportError, match=r"2 rows break the mapping"):
        import_campaign_log(src, mapping_file(tmp_path), tmp_path / "out")  # the default: fail
    assert not (tmp_path / "out").exists()
    result = import_campaign_log(src, mapping_file(tmp_path), tmp_path / "out", on_bad_rows="quarantine")
    assert result.quarantined == 2
    everything_broken = write(tmp_path, "bad.csv", "arm,visit,buy,spend,age,city\nsms,0,0,0,1,X\n")
    with pytest.raises(CampaignImportError, match=r"1 row breaks the mapping:\n  line 2: strategy \(arm\): 'sms'"):
        import_campaign_log(everything_broken, mapping_file(tmp_path), tmp_path / "out", on_bad_rows="quarantine")
    with pytest.raises(CampaignImportError, match="the mapping names no source"):
        import_campaign_log(None, mapping_file(tmp_path), tmp_path / "out")


def test_cli_quarantine_option_prints_what_was_set_aside(tmp_path: Path) -> None:
    src = write(tmp_path, "ab.csv", BROKEN_CSV)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli(),
        [
            "import",
            "campaign-log",
            str(src),
            "-m",
            str(mapping_file(tmp_path)),
            "-o",
            str(out),
            "--bad-rows",
            "quarantine",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "imported 3 rows" in result.stdout
    assert f"quarantined rows:    2 in {out / 'quarantine/ds=2024-05-06/demo_ab.parquet'}" in result.stdout


def test_thornton_hiv_ships_inside_a_package_and_imports_without_a_file(tmp_path: Path) -> None:
    pytest.importorskip("causaldata", reason="the causaldata package (a pinned dependency) is not installed")
    mapping = load_mapping(shipped_mapping("thornton_hiv"))
    assert mapping.source is not None and mapping.source.package_dataset == "causaldata.thornton_hiv"
    result = import_campaign_log(None, mapping, tmp_path / "out")
    # Thornton (2008): 4,820 people, 2,901 of them in the incentive lottery (2,222 offered one, 679 not)
    assert (result.rows, result.quarantined) == (2_901, 1_919)
    assert result.per_strategy == {"no_action": 679, "cash_incentive": 2_222}
    assert {r["reason"] for r in rows(result.quarantine)} == {"strategy (any): missing"}
    log_rows = pq.read_table(result.campaign_log).to_pandas()
    assert log_rows.groupby("strategy")["propensity"].first().to_dict() == {
        "cash_incentive": 0.7659,
        "no_action": 0.2341,
    }
    # collecting the result: 33.9 % without an incentive, 78.9 % with one (the paper's headline effect)
    rate = log_rows.groupby("strategy")["converted"].mean()
    assert round(rate["no_action"], 3) == 0.339 and round(rate["cash_incentive"], 3) == 0.789
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text(encoding="utf-8"))
    assert manifest["source_file"] == "causaldata.thornton_hiv"
