"""Seeded read-side traffic shared by the read API and CLI tests.

Browsers with known clock errors (800 ms ahead, a 3 h jump, 2 days behind, 120 ms ahead with
round trips, in sync with causality only) on 2026-01-01, and one session that runs across
midnight into 2026-01-02, all from ``skewgate_tools.demo``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate_tools.demo import SCENARIOS, Scenario, scenario_events
from skewgate_tools.local.dynamodb import ensure_table

D1, D2, EMPTY_DAY = "2026-01-01", "2026-01-02", "2025-12-31"
D1_START = 1_767_258_000_000  # 2026-01-01T09:00:00Z
MIDNIGHT = 1_767_312_000_000  # 2026-01-02T00:00:00Z
ACROSS = Scenario("demo-across-midnight", lambda i: 800.0)
PER_SESSION = 8


class PagingClient:
    """A boto3 client whose every Query returns at most ``page`` items: forces pagination."""

    def __init__(self, client: Any, page: int) -> None:
        self._client = client
        self.page = page
        self.queries = 0

    def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        kwargs["Limit"] = min(kwargs.get("Limit", self.page), self.page)
        return self._client.query(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def seed(ingest: IngestApp) -> None:
    for scenario in SCENARIOS:
        for event in scenario_events(scenario, start_ms=D1_START, count=PER_SESSION):
            assert ingest.handle(event)["statusCode"] == 200
    # 3 batches before midnight, 3 after.
    for event in scenario_events(ACROSS, start_ms=MIDNIGHT - 90_000, count=6):
        assert ingest.handle(event)["statusCode"] == 200


def seeded_table_of(ddb_client: Any, template_path: Any) -> Iterator[str]:
    """A fresh table with the scenarios (for a module-scoped fixture); deleted afterwards."""
    name = f"skewgate-read-{uuid.uuid4().hex[:12]}"
    ensure_table(ddb_client, name, template_path)
    seed(IngestApp(IngestSettings.from_env({"TABLE_NAME": name}), Store(ddb_client, name)))
    yield name
    ddb_client.delete_table(TableName=name)
