"""Fixtures shared by integration modules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from jobs.settings import Settings
from tests.support.bad_corpus import CorpusRun, run
from tests.support.webhook import Receiver

if TYPE_CHECKING:
    from tests.support.spark_cluster import StandaloneCluster

CORPUS_SALT = "corpus-pepper"


@pytest.fixture(scope="session")
def bad_corpus(spark, tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    """The bad-input corpus (tests/data/bad/cases.yaml) run once through ingest + clean and the import."""
    return run(spark, Settings(home=tmp_path_factory.mktemp("bad-corpus"), pii_salt=CORPUS_SALT))


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A standalone master and one worker (2 cores, 2 GB) on loopback, started on first use, stopped at the end.

    Connect from a separate driver process (``tests.support.spark_cluster.driver_env``): this process
    may already hold the local session of the ``spark`` fixture, and a SparkContext cannot change masters.
    """
    from tests.support.spark_cluster import standalone_cluster

    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), cores=2, memory="2g") as cluster:
        yield cluster


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback webhook endpoint that keeps what it receives (MSP_ALERT_WEBHOOK_URL = its url)."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
