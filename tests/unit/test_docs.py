"""Documentation that is generated from code stays equal to it."""

from __future__ import annotations

from jobs.contracts import contract_markdown
from tests.conftest import ROOT


def test_ingestion_doc_embeds_the_current_contract() -> None:
    text = (ROOT / "docs" / "INGESTION.md").read_text()
    embedded = text.split("<!-- contract:begin -->\n", 1)[1].split("<!-- contract:end -->", 1)[0]
    assert embedded.strip() == contract_markdown().strip(), "run: python -m jobs.contracts, paste into the doc"
