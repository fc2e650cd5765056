"""Fixtures shared by integration modules."""

from __future__ import annotations

import pytest

from jobs.settings import Settings
from tests.support.bad_corpus import CorpusRun, run

CORPUS_SALT = "corpus-pepper"


@pytest.fixture(scope="session")
def bad_corpus(spark, tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    """The bad-input corpus (tests/data/bad/cases.yaml) run once through ingest + clean and the import."""
    return run(spark, Settings(home=tmp_path_factory.mktemp("bad-corpus"), pii_salt=CORPUS_SALT))
