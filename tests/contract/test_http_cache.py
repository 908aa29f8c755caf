"""The public response cache (ADR 0028) over the real app, on SQLite and PostgreSQL.

P1–P3 answers to anonymous callers are kept as bytes per process: repeats are
served from the cache with a strong ``ETag`` (``304`` to ``If-None-Match``),
every catalogue change is visible at once in the process that made it (and
in the others within the bound that ``test_http_multiprocess.py`` proves),
nothing private is ever stored, credentials bypass the cache, and a cached
answer still counts against the rate limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from http_checks import assert_error
from http_harness import Api, Caller

from fleetprompt_adapters.sql import SqlCatalogVersion
from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_http import handling
from fleetprompt_http.cache import ENTRY_TTL_MS, PublicCache
from fleetprompt_http.handling import services_in

SEARCH = "/v1/public/listings/search"
ApiFactory = Callable[..., AbstractContextManager[Api]]


def _cache(api: Api) -> PublicCache:
    """The app's cache, its catalogue version trusted for a minute: these tests check
    what is cached and when it is dropped, not the poll timing (a machine that starves
    the poller past the 1 s window turns the cache off by design; the real bound is
    proved across processes in ``test_http_multiprocess.py``)."""
    cache = services_in(api.client.app.state).cache
    assert cache is not None, "the cache is on by default"
    version = cache.source
    assert isinstance(version, SqlCatalogVersion)
    version.trust_ms = 60_000
    return cache


def _detail(listing_id: str) -> str:
    return f"/v1/public/listings/{listing_id}"


def _keys_everywhere(value: object) -> set[str]:
    if isinstance(value, dict):
        keys = set(value)
        for item in value.values():
            keys |= _keys_everywhere(item)
        return keys
    if isinstance(value, list):
        return set().union(*(_keys_everywhere(item) for item in value)) if value else set()
    return set()


def test_cache_p1_p2_p3_repeats_are_hits_with_a_strong_etag_and_304(api: Api) -> None:
    """A repeat of an anonymous public read is a cache hit with the same bytes and ETag;
    ``If-None-Match`` (strong, weak, a list, ``*``) answers 304 without a body."""
    listing, _ = api.published(api.publisher())
    cache = _cache(api)
    for path, params in (
        (SEARCH, {"q": "triage", "tags": "support"}),
        (_detail(listing["listingId"]), {}),
        (_detail(listing["listingId"]) + "/releases", {"includeRevoked": "true"}),
    ):
        hits = cache.hits
        first = api.get(path, params=params)
        assert first.status_code == 200, first.text
        etag = first.headers["etag"]
        assert etag.startswith('"')
        assert etag.endswith('"')
        assert len(etag) > 10
        assert first.headers["cache-control"] == "public, no-cache"
        assert first.headers["content-type"].startswith("application/json")
        again = api.get(path, params=params)
        assert cache.hits == hits + 1, path
        assert (again.content, again.headers["etag"]) == (first.content, etag)
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
        for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            revalidated = api.get(path, params=params, headers={"If-None-Match": if_none_match})
            assert revalidated.status_code == 304, if_none_match
            assert revalidated.content == b""
            assert revalidated.headers["etag"] == etag
        stale = api.get(path, params=params, headers={"If-None-Match": '"not-it"'})
        assert (stale.status_code, stale.content) == (200, first.content)
    # The canonical query: parameter order does not matter, their values do.
    hits = cache.hits
    reordered = api.get(SEARCH + "?tags=support&q=triage")
    assert reordered.status_code == 200
    assert cache.hits == hits + 1
    other = api.get(SEARCH + "?tags=support&q=routes")
    assert other.status_code == 200
    assert cache.hits == hits + 1


def test_cache_every_catalogue_change_is_visible_at_once_in_the_writing_process(api: Api) -> None:
    """Publish, edit, release, revoke, status change, suspension, verification and profile
    each move the catalogue version: the next anonymous read shows it (install intents do
    not: see the next test)."""
    cache = _cache(api)
    publisher, admin = api.publisher(), api.admin()
    listing, _ = api.published(publisher, name="Before")
    lid = listing["listingId"]
    path = _detail(lid)

    def detail() -> dict[str, Any]:
        hits = cache.hits
        for _ in range(2):  # the second read would be a hit of a stale entry
            response = api.get(path)
            assert response.status_code == 200, response.text
        assert cache.hits == hits + 1  # the first read was a miss: the change dropped the entry
        body: dict[str, Any] = response.json()["listingDetail"]
        return body

    def ok(response: Any) -> None:
        assert response.status_code in (200, 201), response.text

    assert detail()["listing"]["name"] == "Before"
    ok(api.post(f"/v1/publisher/listings/{lid}", publisher, {"name": "After"}, method="PATCH"))
    assert detail()["listing"]["name"] == "After"
    newer = api.publish_release(publisher, lid, "2.0.0")
    assert detail()["latestRelease"]["version"] == "2.0.0"
    ok(api.post(f"/v1/publisher/releases/{newer['releaseId']}/revoke", publisher, {}))
    assert detail()["latestRelease"]["version"] == "1.0.0"
    ok(
        api.post(
            f"/v1/admin/publishers/{publisher.user_id}/verification", admin, {"status": "verified"}
        )
    )
    assert detail()["listing"]["publisher"]["verified"]["status"] == "verified"
    ok(
        api.client.put(
            "/v1/publisher/profile",
            json={"displayName": "Renamed Co"},
            headers=publisher.headers(key="profile-1"),
        )
    )
    assert detail()["listing"]["publisher"]["displayName"] == "Renamed Co"
    api.get(SEARCH)
    ok(api.set_status(publisher, lid, "unlisted"))
    assert api.get(path).status_code == 404
    assert api.get(path).status_code == 404
    assert lid not in api.get(SEARCH).text
    ok(api.set_status(publisher, lid, "published"))
    assert detail()["listing"]["status"] == "published"
    ok(api.post(f"/v1/admin/listings/{lid}/suspend", admin, {"reason": "checking"}))
    assert api.get(path).status_code == 404
    # Entries also expire on the application clock (the 30-day statistics window slides).
    hits = cache.hits
    api.get(SEARCH)
    api.clock.advance(60_000)
    api.get(SEARCH)
    assert cache.hits == hits


def test_cache_install_intents_leave_the_version_and_the_counts_lag_at_most_the_entry_ttl(
    api: Api,
) -> None:
    """An install intent is not a catalogue change (ADR 0033): the version stays, and a
    cached detail and an ``installs``-sorted search keep their bytes (the install count
    they show lags) until the entry's lifetime, ``ENTRY_TTL_MS`` of the application
    clock, has passed; the next read then shows the new count."""
    cache = _cache(api)
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    lid = listing["listingId"]
    by_installs = {"sort": "installs"}

    def count_in_search() -> int:
        response = api.get(SEARCH, params=by_installs)
        assert response.status_code == 200, response.text
        (item,) = [i for i in response.json()["items"] if i["listingId"] == lid]
        count: int = item["stats"]["installAttempts30d"]
        return count

    detail = api.get(_detail(lid))
    assert detail.json()["listingDetail"]["listing"]["stats"] == {"installAttempts30d": 0}
    assert count_in_search() == 0
    version = cache.version()
    api.intent(buyer, lid, release["releaseId"])
    assert cache.version() == version
    hits = cache.hits
    assert api.get(_detail(lid)).content == detail.content
    assert count_in_search() == 0
    assert cache.hits == hits + 2
    api.clock.advance(ENTRY_TTL_MS - 1_000)
    assert api.get(_detail(lid)).content == detail.content  # still within the bound
    api.clock.advance(1_001)
    fresh = api.get(_detail(lid)).json()["listingDetail"]["listing"]["stats"]
    assert fresh == {"installAttempts30d": 1}
    assert count_in_search() == 1
    assert cache.hits == hits + 3


def test_cache_a_new_draft_leaves_the_version_publishing_moves_it(api: Api) -> None:
    """Creating a listing (always a draft, in no public answer) does not empty the cache;
    publishing it does, and the next anonymous search shows it."""
    cache = _cache(api)
    publisher = api.publisher()
    api.get(SEARCH)
    version = cache.version()
    draft = api.create_listing(publisher, name="Quiet Draft")
    assert cache.version() == version
    assert draft["listingId"] not in api.get(SEARCH).text
    api.publish_release(publisher, draft["listingId"])
    assert api.set_status(publisher, draft["listingId"], "published").status_code == 200
    assert cache.version() != version
    assert draft["listingId"] in api.get(SEARCH).text


def test_cache_no_private_field_in_any_cached_body(api: Api) -> None:
    """After a flow that stores moderation reasons, revoke reasons, intents and tokens,
    no cached body holds an owner-only field or any of those values."""
    publisher, admin, buyer = api.publisher(), api.admin(), api.buyer()
    listing, release = api.published(publisher)
    lid = listing["listingId"]
    newer = api.publish_release(publisher, lid, "2.0.0")
    revoked = api.post(
        f"/v1/publisher/releases/{newer['releaseId']}/revoke", publisher, {"reason": "REVOKE-S3"}
    )
    assert revoked.status_code == 200
    for action, reason in (("suspend", "MODERATION-S1"), ("unsuspend", "MODERATION-S2")):
        moderated = api.post(f"/v1/admin/listings/{lid}/{action}", admin, {"reason": reason})
        assert moderated.status_code == 200, moderated.text
    assert api.set_status(publisher, lid, "published").status_code == 200
    intent = api.intent(buyer, lid, release["releaseId"])
    issued = api.token(buyer, intent["installIntentId"])

    owner = api.get(f"/v1/publisher/listings/{lid}", publisher).json()["listing"]
    owner_releases = api.get(f"/v1/publisher/listings/{lid}/releases", publisher).json()
    public = api.get(_detail(lid)).json()
    public_releases = api.get(_detail(lid) + "/releases", params={"includeRevoked": "true"}).json()
    # Keys the owner's views have and no public answer has, at any depth.
    owner_only = _keys_everywhere([owner, owner_releases]) - _keys_everywhere(
        [public, public_releases]
    )
    assert {
        "moderation",
        "publisherUserId",
        "revokeReason",
    } <= owner_only  # the comparison is meaningful
    cache = _cache(api)
    for path, params in (
        (SEARCH, {}),
        (SEARCH, {"q": "triage"}),
        (SEARCH, {"sort": "name", "tags": "support"}),
        (_detail(lid), {}),
        (_detail(lid) + "/releases", {}),
        (_detail(lid) + "/releases", {"includeRevoked": "true"}),
    ):
        assert api.get(path, params=params).status_code == 200
        assert api.get(path, buyer, params=params).status_code == 200
    bodies = cache.bodies()
    assert len(bodies) == 6
    secrets = [
        "MODERATION-S1",
        "MODERATION-S2",
        "REVOKE-S3",
        issued["installToken"],
        intent["installIntentId"],
        buyer.user_id,
        buyer.token,
        publisher.token,
        publisher.external_id + '"',
    ]
    for body in bodies:
        text = body.decode("utf-8")
        assert not owner_only & _keys_everywhere(json.loads(text)), text[:200]
        for secret in secrets:
            assert secret not in text


def test_cache_an_authenticated_request_never_gets_cached_bytes(api: Api) -> None:
    """Requests with credentials neither read nor fill the cache: a bad token is 401 even
    when the anonymous answer is cached, a good one runs the use case (private cache only)."""
    listing, _ = api.published(api.publisher())
    path = _detail(listing["listingId"])
    cache = _cache(api)
    assert api.get(path).status_code == 200
    stored = len(cache.bodies())
    hits = cache.hits
    bad = api.get(path, headers={"Authorization": "Bearer fpat_not-a-real-token"})
    assert_error(bad, 401, "UNAUTHENTICATED")
    alice = api.buyer()
    mine = api.get(path, alice)
    assert mine.status_code == 200
    assert mine.headers["cache-control"] == "private, no-cache"
    assert "Authorization" in mine.headers["vary"]
    assert (cache.hits, len(cache.bodies())) == (hits, stored)
    # Another caller's request fills nothing either: the first anonymous one still hits.
    bob: Caller = api.buyer()
    assert api.get(SEARCH, bob).status_code == 200
    assert len(cache.bodies()) == stored


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_s_rl_01_cached_answers_count_against_the_rate_limit(
    api_factory: ApiFactory, name: str
) -> None:
    """Hits are counted like computed answers: the limit answers 429 + Retry-After over
    cached bytes too, and a 429 is never stored."""
    limits = RateLimits({Action.SEARCH: RateRule(3, 60_000), Action.DETAIL: RateRule(2, 60_000)})
    with api_factory(name, rate_limits=limits) as api:
        listing, _ = api.published(api.publisher())
        cache = _cache(api)
        for _ in range(3):
            assert api.get(SEARCH).status_code == 200
        assert cache.hits >= 2
        limited = api.get(SEARCH)
        assert_error(limited, 429, "RATE_LIMITED")
        assert limited.headers["retry-after"] == "60"
        for _ in range(2):
            assert api.get(_detail(listing["listingId"])).status_code == 200
        assert_error(api.get(_detail(listing["listingId"])), 429, "RATE_LIMITED")
        assert all(b'"RATE_LIMITED"' not in body for body in cache.bodies())
        api.clock.advance(60_000)
        assert api.get(SEARCH).status_code == 200


@pytest.mark.parametrize("name", ["sqlite"])
def test_cache_off_with_cache_mb_zero(api_factory: ApiFactory, name: str) -> None:
    """``FLEETPROMPT_CACHE_MB=0``: no cache, every answer computed, ETags still sent."""
    with api_factory(name, cache_mb=0) as api:
        assert services_in(api.client.app.state).cache is None
        first = api.get(SEARCH)
        assert first.status_code == 200
        assert first.headers["etag"]
        assert api.get(SEARCH, headers={"If-None-Match": first.headers["etag"]}).status_code == 304


#: Headers the server adds per response (not the app's answer).
_PER_RESPONSE = {"x-request-id", "date", "server"}


def _app_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in _PER_RESPONSE}


def test_cache_a_hit_answered_at_the_entry_point_carries_the_routes_headers(api: Api) -> None:
    """ADR 0038: a hit is answered before Litestar's routing, with exactly the headers the
    route gave the answer that filled the entry (ETag, Cache-Control, Vary, content type
    and length, the security headers), its own request id; HEAD and 304 alike."""
    listing, _ = api.published(api.publisher())
    cache = _cache(api)
    for path in (SEARCH + "?tags=support", _detail(listing["listingId"])):
        miss = api.get(path)
        hits = cache.hits
        hit = api.get(path)
        assert cache.hits == hits + 1, path
        assert hit.content == miss.content
        assert _app_headers(hit) == _app_headers(miss), path
        assert hit.headers["x-request-id"].startswith("req_")
        assert hit.headers["x-request-id"] != miss.headers["x-request-id"]
        head = api.client.head(path)
        assert (head.status_code, head.content) == (200, b"")
        assert _app_headers(head) == _app_headers(miss)
        etag = miss.headers["etag"]
        computed = api.get(path, headers={"If-None-Match": etag, "Authorization": "Bearer x"})
        assert computed.status_code == 401  # credentials never use the cache
        revalidated = api.get(path, headers={"If-None-Match": etag})
        assert (revalidated.status_code, revalidated.content) == (304, b"")
        assert revalidated.headers["etag"] == etag
        assert "content-type" not in revalidated.headers
        assert revalidated.headers["cache-control"] == "public, no-cache"
        assert revalidated.headers["x-content-type-options"] == "nosniff"


def test_cache_a_hit_writes_the_same_access_line_as_a_miss(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """The access line of a hit names its route template, status and no caller, like the
    line of the miss that filled the entry."""
    listing, _ = api.published(api.publisher())
    _cache(api)
    path = _detail(listing["listingId"])
    caplog.set_level(logging.INFO, logger="fleetprompt.access")
    responses = [api.get(path), api.get(path)]
    lines = {
        record.fleetprompt["requestId"]: record.fleetprompt  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "fleetprompt.access"
    }
    for response in responses:
        line = lines[response.headers["x-request-id"]]
        assert line["route"] == "/v1/public/listings/{listing_id}"
        assert (line["method"], line["status"], line["caller"]) == ("GET", 200, None)
        assert isinstance(line["latencyMs"], float)


@pytest.mark.parametrize("name", ["sqlite"])
def test_cache_concurrent_misses_of_one_key_compute_it_once_and_each_counts_its_limit(
    api_factory: ApiFactory, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0038: anonymous misses of one key that arrive while its answer is being
    computed wait for that answer (the same bytes) instead of running the use case again,
    and each of them still counts against the rate limit."""
    limits = RateLimits({Action.SEARCH: RateRule(5, 60_000)})
    computed: list[str] = []
    original = handling.call_use_case

    async def slow_use_case(request: Any, use_case: Any, **options: Any) -> Any:
        computed.append(request.url.path)
        await asyncio.sleep(0.3)  # the others arrive while this one computes
        return await original(request, use_case, **options)

    monkeypatch.setattr(handling, "call_use_case", slow_use_case)
    with api_factory(name, rate_limits=limits) as api:
        _cache(api)
        app = api.client.app

        async def together() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await asyncio.gather(
                    *(client.get(SEARCH, params={"sort": "name"}) for _ in range(8))
                )

        responses = asyncio.run(together())
    assert len(computed) == 1
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 5
    assert len({r.content for r in ok}) == 1
    for refused in (r for r in responses if r.status_code != 200):
        assert_error(refused, 429, "RATE_LIMITED")
