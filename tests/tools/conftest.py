"""One seeded table for the CLI, plot and dashboard tests (seeding costs seconds on 2 cores).

The scenarios of ``tests/scenarios.py`` (2026-01-01 and 2026-01-02) and the hard cases of
``views_data`` on a day of their own (2026-01-05), so neither changes the other's counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scenarios import seeded_table_of
from views_data import seed_stress

from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store


@pytest.fixture(scope="session")
def seeded_table(ddb_client: Any, template_path: Path) -> Iterator[str]:
    for name in seeded_table_of(ddb_client, template_path):
        settings = IngestSettings.from_env({"TABLE_NAME": name})
        seed_stress(IngestApp(settings, Store(ddb_client, name)))
        yield name
