"""``fleetprompt search reindex`` and a server configured with a search index (ADR 0027)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from litestar.testing import TestClient

pytest.importorskip("tantivy", reason="the search extra (tantivy) is not installed")

from contract.test_cli import Cli
from fleetprompt_adapters.search.follower import SearchFollower, claim_slot
from fleetprompt_http.app import create_app
from fleetprompt_http.settings import Settings

SEARCH = "/v1/public/listings/search"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(f"sqlite:///{tmp_path / 'fp.db'}")
    cli.ok("demo")  # a migrated database with published listings
    return cli


def _search_ids(client: TestClient, q: str) -> list[str]:  # type: ignore[type-arg]
    response = client.get(SEARCH, params={"q": q})
    assert response.status_code == 200, response.text
    return [item["listingId"] for item in response.json()["items"]]


def test_search_reindex_rebuilds_the_index_from_the_database(cli: Cli, tmp_path: Path) -> None:
    """The command shows a progress bar, says what it rebuilt, and leaves an index that a
    server configured with the directory opens and keeps following."""
    root = tmp_path / "index"
    result = cli.ok("search", "reindex", "--index-dir", str(root))
    assert "indexing" in result.stderr
    assert "published listings" in result.stderr
    follower = SearchFollower(root / "slot-0")
    size, applied = follower.index.size, follower.applied
    follower.close()
    assert size > 0
    assert applied is not None
    settings = Settings(database_url=cli.database_url, search_index=str(root))
    with TestClient(create_app(settings)) as client:
        plain = Settings(database_url=cli.database_url)
        with TestClient(create_app(plain)) as sql_client:
            everything = _search_ids(sql_client, "a")
        assert everything
        assert set(_search_ids(client, "a")) <= set(everything)
        assert len(_search_ids(client, "a")) == len(everything)


def test_the_server_builds_its_search_index_at_start_up(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-RAM index is built while the server starts, not by the first search (which
    would wait for it, and every search behind it): the first search finds it built, and
    current (the log's head it reads with the page is the one the build applied: nothing
    to catch up, ADR 0042)."""
    built_before: list[int | None] = []
    catch_up = SearchFollower.catch_up

    def spy(self: SearchFollower, conn: object) -> int:
        built_before.append(self.applied)
        return catch_up(self, conn)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchFollower, "catch_up", spy)
    app = create_app(Settings(database_url=cli.database_url))
    assert built_before == []
    with TestClient(app) as client:
        assert built_before == [None]  # start-up built it
        assert _search_ids(client, "a")
        assert built_before == [None]  # the search neither built nor caught up


def test_the_start_up_build_takes_no_write_lock(cli: Cli, tmp_path: Path) -> None:
    """Building the index only reads: a server starts (and `search reindex` runs) while
    another connection holds SQLite's write lock, as when two processes start at once."""
    database = tmp_path / "fp.db"
    writer = sqlite3.connect(database, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        settings = Settings(database_url=cli.database_url, db_statement_timeout_ms=1_000)
        with TestClient(create_app(settings)) as client:
            assert _search_ids(client, "a")
        cli.ok("search", "reindex", "--index-dir", str(tmp_path / "index"))
    finally:
        writer.rollback()
        writer.close()


def test_search_reindex_uses_the_configured_directory(cli: Cli, tmp_path: Path) -> None:
    """Without --index-dir the command rebuilds FLEETPROMPT_SEARCH_INDEX."""
    root = tmp_path / "configured"
    cli.ok("search", "reindex", SEARCH_INDEX=str(root))
    assert (root / "slot-0" / "fleetprompt-index.json").exists()


def test_search_reindex_leaves_slots_held_by_a_running_process(cli: Cli, tmp_path: Path) -> None:
    """A slot a live process holds follows the log itself: the command says so and skips it."""
    root = tmp_path / "index"
    _slot, holder = claim_slot(root)
    try:
        result = cli.ok("search", "reindex", "--index-dir", str(root))
    finally:
        holder.close()
    assert "held by a running process" in result.stderr


@pytest.mark.parametrize("configured", [None, "memory"])
def test_search_reindex_needs_a_directory(cli: Cli, configured: str | None) -> None:
    """No directory to rebuild is a usage error (exit 2), with a message, no traceback."""
    variables = {"SEARCH_INDEX": configured} if configured else {}
    result = cli("search", "reindex", **variables)
    assert result.exit_code == 2, result.stderr
    assert "no index directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_search_prune_deletes_the_change_log_past_the_horizon(cli: Cli) -> None:
    """``search prune`` keeps the recent entries by default and deletes them all with
    ``--keep-days 0``; it says how many rows went."""
    kept = cli.ok("search", "prune")
    assert kept.stdout.strip() == "0"
    pruned = cli.ok("search", "prune", "--keep-days", "0")
    assert int(pruned.stdout.strip()) > 0
    assert "change log rows" in pruned.stderr
    assert cli.ok("search", "prune", "--keep-days", "0").stdout.strip() == "0"
