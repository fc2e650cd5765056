"""The bad-input corpus (tests/data/bad/cases.yaml) through the real ingest + clean and the real import.

Every case either fails with a message naming its file and the rule, or lands: its bad rows in
quarantine with their reason, every valid row of the same files in silver. To stay fast, the
accepted and quarantined cases of a table run as one ingest + one clean over a range of dates
(one date per case, so cases never meet in dedupe or outlier fences), the tables side by side;
each error case is its own run on a date of its own, and fails in the drift checks before Spark
reads anything, except the truncated gzip that only Spark's read finds. The run is the session
fixture ``bad_corpus`` (tests/integration/conftest.py), shared with test_security.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from jobs.contracts import MAX_TEXT_CHARS, ORDER
from jobs.pipeline.clean import REPLACEMENT_CHAR
from tests.support.bad_corpus import CORPUS, IMPORT_TABLE, Case, CorpusRun, key, load

MANIFEST = load()
#: the defect classes the corpus must cover (issue 8)
REQUIRED_KINDS = {
    "wrong_encoding",
    "bom",
    "truncated_gzip",
    "wrong_delimiter",
    "missing_header",
    "extra_columns",
    "missing_columns",
    "type_garbage",
    "ten_mb_field",
    "duplicate_keys",
    "negative_prices",
    "ts_1900_2100",
    "mixed_time_zones",
    "unknown_strategy",
    "propensity_0_or_above_1",
    "empty_file",
    "zero_byte_partition",
}


def test_the_corpus_covers_every_defect_class() -> None:
    kinds = {c.kind for c in MANIFEST.cases}
    assert kinds >= REQUIRED_KINDS, f"missing: {sorted(REQUIRED_KINDS - kinds)}"
    assert len(MANIFEST.cases) >= 30
    assert len({c.id for c in MANIFEST.cases}) == len(MANIFEST.cases)
    names = [n for c in MANIFEST.cases for n in c.names]
    assert len(set(names)) == len(names), "file names are unique, so warnings and lineage point at one case"
    sources = {f["from"] for c in MANIFEST.cases for f in c.files if "from" in f} | set(MANIFEST.base.values())
    assert all((CORPUS / s).is_file() for s in sources)
    assert {c.table for c in MANIFEST.cases} == {*ORDER, IMPORT_TABLE}


@pytest.mark.parametrize("case", MANIFEST.cases, ids=[c.id for c in MANIFEST.cases])
def test_case(case: Case, bad_corpus: CorpusRun) -> None:
    got = bad_corpus.outcomes[case.id]
    expect = case.expect
    if case.outcome == "error":
        assert got.error is not None, f"{case.id}: expected an error, the input was accepted"
        for part in [case.names[0], *expect["message"]]:
            assert part in got.error, f"{case.id}: {part!r} not in the error:\n{got.error}"
        for secret in expect.get("not_in_message", []):
            assert secret not in got.error, f"{case.id}: the error shows {secret!r}"
        return
    assert got.error is None
    if case.table == IMPORT_TABLE:
        assert got.imported_rows == expect["rows"]
        return

    in_case = {f"/ds={case.ds}/{name}" for name in case.names}
    for row in got.silver + got.quarantine:  # lineage: every row names one of the case's files
        assert any(row["_source_file"].endswith(suffix) for suffix in in_case), row["_source_file"]

    assert sorted(key(case.table, r) for r in got.silver) == sorted(map(str, expect.get("silver", [])))
    reasons = Counter(r["reason"] for r in got.quarantine)
    wanted = expect.get("quarantined", {})
    assert reasons == Counter({k: v if isinstance(v, int) else len(v) for k, v in wanted.items()})
    for reason, keys in wanted.items():
        if not isinstance(keys, int):
            assert sorted(r["key"] for r in got.quarantine if r["reason"] == reason) == sorted(keys), reason
    if case.outcome == "land":
        assert not got.quarantine

    silver = {key(case.table, r): r for r in got.silver}
    for row_key, columns in expect.get("values", {}).items():
        for column, value in columns.items():
            actual = silver[row_key][column]
            if isinstance(actual, datetime) and actual.tzinfo is not None:
                actual = actual.astimezone(UTC).replace(tzinfo=None)
            assert (str(actual) if isinstance(value, str) else actual) == value, f"{row_key}.{column}"
    for warning in expect.get("warnings", []):
        assert any(warning in w for w in got.warnings), f"{warning!r} not in {got.warnings}"


def test_no_mangled_or_oversized_text_reaches_silver(bad_corpus: CorpusRun) -> None:
    """Latin-1 bytes and 10 MB blobs stop in quarantine: no silver text holds U+FFFD or is too long."""
    texts = [
        value
        for outcome in bad_corpus.outcomes.values()
        for row in outcome.silver
        for value in row.values()
        if isinstance(value, str)
    ]
    assert texts
    assert not [t[:40] for t in texts if REPLACEMENT_CHAR in t]
    assert max(len(t) for t in texts) <= MAX_TEXT_CHARS
