"""One seeded table for the CLI, plot and dashboard tests (seeding costs seconds on 2 cores),
and one dashboard server on it.

The scenarios of ``tests/scenarios.py`` (2026-01-01 and 2026-01-02) and the hard cases of
``views_data`` on a day of their own (2026-01-05), so neither changes the other's counts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scenarios import seeded_table_of
from views_data import seed_stress

from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate_tools.dashboard import make_server


@pytest.fixture(scope="session")
def seeded_table(ddb_client: Any, template_path: Path) -> Iterator[str]:
    for name in seeded_table_of(ddb_client, template_path):
        settings = IngestSettings.from_env({"TABLE_NAME": name})
        seed_stress(IngestApp(settings, Store(ddb_client, name)))
        yield name


@pytest.fixture(scope="session")
def dashboard(ddb_client: Any, seeded_table: str) -> Iterator[str]:
    """The dashboard on the seeded table, on a free loopback port: its base URL."""
    server = make_server(Store(ddb_client, seeded_table), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
