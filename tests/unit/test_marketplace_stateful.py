"""Stateful test: random sequences of use cases on one marketplace keep the contract's invariants.

Publishers, buyers, an admin and the three target systems share one in-memory
marketplace and a manual clock. A small model (plain dicts) remembers what the
contract lets each of them expect; :class:`MarketplaceMachine` lists the
invariants checked after every step.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, NamedTuple

import attrs
import cattrs
import semver as semver_oracle
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

import strategies as fps
from fleetprompt_core import (
    AssetKind,
    Call,
    Conflict,
    DomainError,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
    ListingStatus,
    NotFound,
    Outcome,
    ReleaseStatus,
    Unauthorized,
    ValidationFailed,
)
from fleetprompt_core.policies.tokens import (
    INSTALL_TOKEN_PREFIX,
    generate_token,
    has_valid_checksum,
    hash_token,
)
from fleetprompt_core.services.views import IssuedToken
from support import Market, listing_payload, release_payload

# The contract's numbers (§4, §6), restated so that a wrong constant in src/ cannot agree
# with its own test.
MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
INTENT_TTL_MS: Final = 24 * HOUR
TOKEN_TTL_DEFAULT_MS: Final = 15 * MINUTE
IDEMPOTENCY_RETENTION_MS: Final = 24 * HOUR
REDEEM_TOKEN_MAX: Final = 200
PAGE: Final = {"limit": 200}

UNKNOWN_LISTING: Final = "lst_01KUNKNOWN0000000000000000"
UNKNOWN_RELEASE: Final = "rel_01KUNKNOWN0000000000000000"
UNKNOWN_INTENT: Final = "ii_01KUNKNOWN0000000000000000"
#: A well-formed install token (its checksum is right) that is never issued.
NEVER_ISSUED: Final = generate_token(INSTALL_TOKEN_PREFIX, entropy=bytes(32))

#: What a publisher may do to the status of an own listing (§4).
PUBLISHER_MOVES: Final = frozenset(
    {
        (ListingStatus.DRAFT, ListingStatus.PUBLISHED),
        (ListingStatus.PUBLISHED, ListingStatus.UNLISTED),
        (ListingStatus.PUBLISHED, ListingStatus.DRAFT),
        (ListingStatus.UNLISTED, ListingStatus.PUBLISHED),
        (ListingStatus.UNLISTED, ListingStatus.DRAFT),
    }
)
OPEN_INTENT: Final = frozenset({InstallIntentStatus.CREATED, InstallIntentStatus.TOKEN_ISSUED})
#: Listing statuses whose intents cannot be installed (ADR 0025).
UNINSTALLABLE: Final = frozenset({ListingStatus.SUSPENDED, ListingStatus.DRAFT})
#: Target systems per asset kind (ADR 0024), restated independently of the core.
ACCEPTED_TARGETS: Final = {
    AssetKind.WHS_AGENT: {"whs", "agentelic"},
    AssetKind.AGENTROMATIC_WORKFLOW: {"agentromatic", "agentelic"},
    AssetKind.SPEC_ASSET: {"agentelic"},
}


class _Precedence:
    """A python-semver version ordered by SemVer precedence (build metadata ignored)."""

    def __init__(self, version: semver_oracle.Version) -> None:
        self.version = version

    def __lt__(self, other: _Precedence) -> bool:
        return self.version.compare(other.version) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Precedence) and self.version.compare(other.version) == 0

    __hash__ = None  # type: ignore[assignment]


#: A listing's publisher-editable content (§3).
CONTENT: Final = ("name", "summary", "description", "tags", "categories", "images", "links")

#: Keys that must never appear anywhere in a public shape (unstructured with cattrs).
PRIVATE_KEYS: Final = frozenset(
    {
        "moderation",
        "flagged",
        "description",
        "buyer_user_id",
        "install_intent_id",
        "install_token",
        "token_id",
        "token_hash",
        "target_context",
        "redeemed_at_ms",
        "redeemed_by_system",
        "external_id",
        "email",
        "roles",
        "request_hash",
        "response_json",
        "claim_id",
    }
)

converter = cattrs.Converter()
Errors = set[type[DomainError]]


class _Fresh:
    """Marker for "a key never used before" (the machine numbers them)."""

    def __repr__(self) -> str:
        return "FRESH"


FRESH: Final = _Fresh()
KEYS_TO_SEND = st.one_of(st.just(FRESH), Bundle("keys"))


#: Mostly with a reason (it is private, and must stay so after the suspension is lifted).
UNSUSPEND_BODIES = st.integers(0, 3).flatmap(
    lambda n: st.fixed_dictionaries({"reason": fps.reasons()}) if n else st.sampled_from([None, {}])
)


class Body(NamedTuple):
    """A request body, and whether the model may demand the exact outcome for it.

    ``strict`` bodies are well-formed, so the model predicts success or the
    exact error class; the others come from :func:`strategies.arbitrary_payloads`
    and may fail validation, but must never succeed where the state forbids it.
    """

    strict: bool
    payload: object


def bodies(
    valid: st.SearchStrategy[Any], arbitrary: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[Body]:
    """Mostly ``valid`` bodies, one in four arbitrary."""
    strict = valid.map(lambda payload: Body(True, payload))
    loose = (fps.arbitrary_payloads() if arbitrary is None else arbitrary).map(
        lambda payload: Body(False, payload)
    )
    return st.integers(0, 3).flatmap(lambda n: strict if n else loose)


def canonical(target: dict[str, str], payload: object) -> str | None:
    """What identifies a request for idempotency: path ids and body, canonically (§6);
    ``None`` for a body that is no JSON value (``NaN``)."""
    try:
        return json.dumps(
            {"target": target, "body": payload},
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )
    except ValueError:
        return None


def describe(error: DomainError | None) -> str:
    if error is None:
        return "success"
    fields = [(f.field_name, f.message) for f in error.fields]
    return f"{type(error).__name__}({error.message!r}, fields={fields})"


def walk(value: object) -> Iterator[tuple[str | None, object]]:
    """Every ``(key, value)`` pair of an unstructured shape; ``key`` is None for list items."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield None, item
            yield from walk(item)


# ------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Actor:
    name: str
    call: Call
    user_id: str


@dataclass
class ListingModel:
    owner: Actor
    kind: AssetKind
    status: ListingStatus = ListingStatus.DRAFT


@dataclass
class ReleaseModel:
    listing_id: str
    version: str
    published_at_ms: int
    revoked: bool = False


@dataclass
class IntentModel:
    buyer: Actor
    listing_id: str
    release_id: str
    target: InstallTargetSystem
    expires_at_ms: int
    status: InstallIntentStatus = InstallIntentStatus.CREATED

    def observed(self, now_ms: int) -> InstallIntentStatus:
        if self.status in OPEN_INTENT and now_ms >= self.expires_at_ms:
            return InstallIntentStatus.EXPIRED
        return self.status


@dataclass
class TokenModel:
    token_id: str
    intent_id: str
    target: InstallTargetSystem
    expires_at_ms: int
    revoked: bool = False
    redemptions: int = 0


@dataclass(frozen=True)
class KeyedResult:
    """The first successful use of an idempotency key, and how to send that request again."""

    name: str
    actor: Actor
    endpoint: str
    key: str
    target: dict[str, str]
    payload: object
    canonical: str | None
    value: Any
    at_ms: int
    send: Callable[[object, str | None], Any]


@dataclass(frozen=True)
class Attempt:
    """What one use case call did: its value, or the domain error it raised."""

    value: Any = None
    error: DomainError | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Check:
    """One call-level expectation (a replay, a cross-tenant call) and whether it held."""

    what: str
    passed: bool
    detail: str


class MarketplaceMachine(RuleBasedStateMachine):
    """Publishers, buyers, an admin and the target systems on one in-memory marketplace.

    Rules drive every write use case with valid, duplicate, wrong and arbitrary
    inputs, reused idempotency keys, unknown and foreign ids, and a clock that
    jumps past token and intent expiry. Each outcome is compared with the
    model: a well-formed request gets exactly the outcome the contract gives
    it, any request raises nothing but a ``DomainError``, a failure changes no
    stored row, and no error and no later answer carries a raw token.

    Invariants checked after every step:

    * **cross-tenant attempts answer NOT_FOUND**: publisher B reading or writing
      A's listing or release, buyer B reading or writing A's intent;
    * **idempotent replays return the first result**: same key and body ⇒ the
      stored value, equal to the first (a token answer without its raw token),
      marked replayed; same key, other body ⇒ ``CONFLICT``;
    * **mutations are audited exactly once**: the audit log is append-only and
      its event types are exactly those of the successful mutations (none for
      failures, replays, no-op patches or retention runs that changed nothing);
    * **no raw token in stored state**: no issued raw token occurs in the
      ``repr`` of any table (idempotency records and audit events included);
    * **public output holds no private fields**: search and detail shapes carry
      no moderation, buyer, intent, token or auth data and no admin reason;
      search lists exactly the published listings, any other listing's detail
      is ``NOT_FOUND``, and a detail shows the stored rendered description and
      no revoked release;
    * **releases are append-only**: a release never changes or disappears,
      revoked stays revoked, a version is unique per listing;
    * **the store agrees with the model**: listing, release and intent states;
    * **tenants are isolated**: each listing and release belongs to its creator;
      a publisher lists exactly their listings, a buyer exactly their intents;
    * **tokens are single use**: each raw token redeemed at most once, and
      stored token states agree (only redeemed tokens carry ``redeemed_at_ms``).
    """

    listings = Bundle("listings")
    releases = Bundle("releases")
    intents = Bundle("intents")
    tokens = Bundle("tokens")
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.market = Market.create()
        self.fp = self.market.fp
        self.store = self.market.store
        self.clock = self.market.clock
        self.publishers: list[Actor] = []
        self.buyers: list[Actor] = []
        self.listing_model: dict[str, ListingModel] = {}
        self.release_model: dict[str, ReleaseModel] = {}
        self.intent_model: dict[str, IntentModel] = {}
        self.token_model: dict[str, TokenModel] = {}  # raw token → what it was issued for
        self.keyed: dict[tuple[str, str, str], KeyedResult] = {}
        self.moderation_markers: list[str] = []
        self.expected_audit: list[str] = []
        self.audit_seen: list[Any] = []
        self.release_seen: dict[str, tuple[Any, ...]] = {}
        self.revoked_seen: dict[str, tuple[Any, ...]] = {}
        self.replay_checks: list[Check] = []
        self.cross_tenant_checks: list[Check] = []
        self.fresh_keys = 0
        self.admin = self._provision("admin", self.market.admin)
        for name in ("pub-0", "pub-1"):
            self.publishers.append(self._provision(name, self.market.publisher))
        for name in ("buyer-0", "buyer-1"):
            self.buyers.append(self._provision(name, self.market.user))
        # A warm start, so that every example can reach redemption at once: a published
        # listing with a release, and a buyer's intent with a token.
        self.first_shop = self._open_shop(self.publishers[0], listing_payload(), release_payload())
        intent = {"listingId": self.first_shop[0], "targetSystem": "whs"}
        first_purchase = self._buy(self.buyers[0], intent, None)
        assert first_purchase is not None
        self.first_purchase = first_purchase

    # -- set-up -----------------------------------------------------------------------

    def _provision(self, name: str, make: Callable[[str], Call]) -> Actor:
        """A user created before any rule runs; the events that made it are expected."""
        seen = len(self.store.audit)
        call = make(name)
        self.expected_audit.extend(event.type for event in self.store.audit[seen:])
        return Actor(name, call, self.store.users_by_external_id[name])

    @initialize(target=listings, third_publisher=st.booleans(), third_buyer=st.booleans())
    def first_listing(self, third_publisher: bool, third_buyer: bool) -> str:
        """Two or three publishers and buyers (no rule provisions a user); the first listing."""
        if third_publisher:
            self.publishers.append(self._provision("pub-2", self.market.publisher))
        if third_buyer:
            self.buyers.append(self._provision("buyer-2", self.market.user))
        return self.first_shop[0]

    @initialize(target=releases)
    def first_release(self) -> str:
        return self.first_shop[1]

    @initialize(target=intents)
    def first_intent(self) -> str:
        return self.first_purchase[0]

    @initialize(target=tokens)
    def first_token(self) -> str:
        return self.first_purchase[1]

    @initialize(target=keys, key=fps.idempotency_keys())
    def first_key(self, key: str) -> str:
        return key

    @rule(target=keys, key=fps.idempotency_keys())
    def remember_key(self, key: str) -> str:
        return key

    # -- helpers ----------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def _publisher(self, index: int) -> Actor:
        return self.publishers[index % len(self.publishers)]

    def _buyer(self, index: int) -> Actor:
        return self.buyers[index % len(self.buyers)]

    def _key(self, key: object) -> str:
        if key is FRESH:
            self.fresh_keys += 1
            return f"fresh-{self.fresh_keys}"
        assert isinstance(key, str)
        return key

    def _audited(self, event_type: str) -> None:
        self.expected_audit.append(event_type)

    def _tables(self, *, with_expired_keys: bool = False) -> dict[str, Any]:
        """A copy of every table of the store (entities are frozen: shallow copies do)."""
        tables: dict[str, Any] = {}
        for name, table in vars(self.store).items():
            if isinstance(table, dict):
                tables[name] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
            elif isinstance(table, list):
                tables[name] = tuple(table)
        if not with_expired_keys:
            # Taking over an expired key and then failing drops the expired record.
            now = self.now
            tables["idempotency"] = {
                k: r for k, r in tables["idempotency"].items() if r.expires_at_ms > now
            }
        return tables

    def _attempt(self, name: str, send: Callable[[], Any]) -> Attempt:
        """Call a use case: only a ``DomainError`` may escape, and a failure changes nothing."""
        before = self._tables()
        try:
            result = send()
        except DomainError as error:
            failure = error
        except Exception as exc:
            raise AssertionError(
                f"{name} raised {type(exc).__name__}, which is not a DomainError"
            ) from exc
        else:
            value, replayed = (
                (result.value, result.replayed) if isinstance(result, Outcome) else (result, False)
            )
            shown = repr(converter.unstructure(value))
            assert not any(raw in shown for raw in self.token_model), (
                f"{name} answered a raw token issued earlier"
            )
            return Attempt(value, replayed=replayed)
        text = f"{failure.message} {failure.hint} {failure.fields!r}"
        assert not any(raw in text for raw in self.token_model), (
            f"{name}: an error carries a raw token: {describe(failure)}"
        )
        after = self._tables()
        changed = [table for table in before if before[table] != after[table]]
        assert not changed, f"{name} failed with {describe(failure)} but changed {changed}"
        return Attempt(error=failure)

    def _expect(self, name: str, attempt: Attempt, errors: Errors, *, strict: bool = True) -> None:
        """Compare an outcome with the model's prediction (``errors`` empty ⇒ success).

        A non-strict (arbitrary) body may fail anyhow, but never succeeds where
        the model says the state forbids it.
        """
        if errors:
            assert not attempt.ok, f"{name} succeeded; the model expected one of {errors}"
            if strict:
                assert isinstance(attempt.error, tuple(errors)), (
                    f"{name}: expected one of {sorted(e.__name__ for e in errors)}, "
                    f"got {describe(attempt.error)}"
                )
        elif strict:
            assert attempt.ok, f"{name}: expected success, got {describe(attempt.error)}"

    def _keyed(
        self,
        name: str,
        actor: Actor,
        endpoint: str,
        target: dict[str, str],
        payload: object,
        key: str | None,
        send: Callable[[object, str | None], Any],
    ) -> Attempt | None:
        """Send one idempotent write; ``None`` when a live key made it a replay or a conflict.

        A first use is returned for the rule to judge; the reuse of a key within
        its 24 h is judged here and recorded for the replay invariant.
        """
        scope = (actor.user_id, endpoint, key) if key is not None else None
        live = self.keyed.get(scope) if scope else None
        if live is not None and self.now >= live.at_ms + IDEMPOTENCY_RETENTION_MS:
            live = None  # retention passed: the key is free again
        attempt = self._attempt(name, lambda: send(payload, key))
        request = canonical(target, payload)
        if live is None:
            if attempt.ok:
                assert not attempt.replayed, f"{name}: a first use of a key answered as a replay"
                if scope is not None and key is not None:
                    self.keyed[scope] = KeyedResult(
                        name,
                        actor,
                        endpoint,
                        key,
                        target,
                        payload,
                        request,
                        attempt.value,
                        self.now,
                        send,
                    )
            return attempt
        what = f"{name} by {actor.name} with key {key!r} first used by {live.name}"
        if request is None:
            passed = isinstance(attempt.error, ValidationFailed)
            self.replay_checks.append(
                Check(f"{what}, no JSON body", passed, describe(attempt.error))
            )
        elif request == live.canonical:
            first = live.value
            if isinstance(first, IssuedToken):
                first = attrs.evolve(first, install_token=None)
            passed = attempt.ok and attempt.replayed and attempt.value == first
            detail = (
                f"first {first!r}; replay {attempt.value!r} "
                f"(replayed={attempt.replayed}, {describe(attempt.error)})"
            )
            self.replay_checks.append(Check(f"{what}, same request", passed, detail))
        else:
            passed = isinstance(attempt.error, Conflict)
            detail = f"got {describe(attempt.error)}, value {attempt.value!r}"
            self.replay_checks.append(Check(f"{what}, other request", passed, detail))
        return None

    def _live_releases(self, listing_id: str) -> list[tuple[int, str]]:
        return [
            (release.published_at_ms, release_id)
            for release_id, release in self.release_model.items()
            if release.listing_id == listing_id and not release.revoked
        ]

    def _latest_release(self, listing_id: str) -> str | None:
        """Stable semver by precedence, else non-semver by publish time, else pre-releases
        (X-CAT-03), with python-semver as the independent judge of precedence."""
        live = self._live_releases(listing_id)

        def rank(item: tuple[int, str]) -> tuple[Any, ...]:
            published_at, release_id = item
            version = self.release_model[release_id].version
            if not semver_oracle.Version.is_valid(version):
                return (1, 0, published_at, release_id)
            parsed = semver_oracle.Version.parse(version)
            tier = 0 if parsed.prerelease else 2
            return (tier, _Precedence(parsed), published_at, release_id)

        return max(live, key=rank)[1] if live else None

    def _revoke_tokens_of_listing(self, listing_id: str) -> None:
        """Suspension and withdrawal to draft revoke every token of the listing (ADR 0025)."""
        for intent_id, intent in self.intent_model.items():
            if intent.listing_id == listing_id:
                self._revoke_tokens_of(intent_id)

    def _versions(self, listing_id: str) -> list[str]:
        return [r.version for r in self.release_model.values() if r.listing_id == listing_id]

    def _listings_in(self, status: ListingStatus) -> list[str]:
        return [i for i, m in self.listing_model.items() if m.status is status]

    def _revoke_tokens_of(self, intent_id: str) -> None:
        for token in self.token_model.values():
            if token.intent_id == intent_id and not token.redemptions:
                token.revoked = True

    def _marked_reason(self, text: str) -> str:
        """An admin reason with a unique marker, to look for in public output."""
        marker = f"MODREASON-{len(self.moderation_markers)}-X"
        self.moderation_markers.append(marker)
        return f"{marker} {text}"

    # -- time ---------------------------------------------------------------------------

    @rule(
        ms=st.one_of(
            st.integers(0, 5 * MINUTE),
            st.sampled_from([TOKEN_TTL_DEFAULT_MS, HOUR, INTENT_TTL_MS, INTENT_TTL_MS + 1]),
        ),
        retention=st.booleans(),
    )
    def time_passes(self, ms: int, retention: bool) -> None:
        """The clock moves (a little, or past a token's or an intent's life); then, perhaps,
        the retention job runs."""
        self.clock.advance(ms)
        if retention:
            self._run_retention()

    def _run_retention(self) -> None:
        """Retention only persists what time already decided, and audits only real work."""
        now = self.now
        before = self._tables(with_expired_keys=True)
        attempt = self._attempt("retention", self.fp.retention.run)
        self._expect("retention", attempt, set())
        after = self._tables(with_expired_keys=True)
        changed = {
            name for name in before if before[name] != after[name] and not name.startswith("audit")
        }
        assert changed <= {"intents", "tokens", "idempotency"}, changed
        expired = [i for i, old in before["intents"].items() if after["intents"][i] != old]
        for intent_id in expired:
            old, new = before["intents"][intent_id], after["intents"][intent_id]
            assert old.status in OPEN_INTENT
            assert now >= old.expires_at_ms
            assert new.status is InstallIntentStatus.EXPIRED
        for token_id, old in before["tokens"].items():
            if after["tokens"][token_id] != old:
                assert old.status is InstallTokenStatus.ISSUED
                assert after["tokens"][token_id].status in (
                    InstallTokenStatus.EXPIRED,
                    InstallTokenStatus.REVOKED,
                )
        kept, dropped = after["idempotency"], set(before["idempotency"]) - set(after["idempotency"])
        assert set(kept) <= set(before["idempotency"])
        assert all(before["idempotency"][k].expires_at_ms <= now for k in dropped)
        assert all(record.expires_at_ms > now for record in kept.values())
        report = attempt.value
        assert report.intents_expired == len(expired)
        assert report.idempotency_records_dropped == len(dropped)
        if changed:
            self._audited("retention.purged")

    # -- publisher: listings -------------------------------------------------------------

    def _create_listing(self, actor: Actor, body: Body, key: object) -> str | None:
        attempt = self._keyed(
            "create_listing",
            actor,
            "POST /v1/publisher/listings",
            {},
            body.payload,
            self._key(key),
            lambda p, k: self.fp.publishing.create_listing(actor.call, p, idempotency_key=k),
        )
        if attempt is None:
            return None
        self._expect("create_listing", attempt, set(), strict=body.strict)
        if not attempt.ok:
            return None
        listing = attempt.value.listing
        assert listing.publisher_user_id == actor.user_id
        assert listing.status is ListingStatus.DRAFT
        if body.strict:
            assert isinstance(body.payload, dict)
            assert listing.asset_kind.value == body.payload["assetKind"]
        self.listing_model[listing.listing_id] = ListingModel(actor, listing.asset_kind)
        self._audited("listing.created")
        return str(listing.listing_id)

    @rule(
        target=listings,
        pub=st.integers(0, 2),
        body=bodies(fps.listing_payloads()),
        key=KEYS_TO_SEND,
    )
    def create_listing(self, pub: int, body: Body, key: object) -> object:
        listing = self._create_listing(self._publisher(pub), body, key)
        return multiple() if listing is None else listing

    def _open_shop(
        self, actor: Actor, listing: dict[str, Any], release: dict[str, Any]
    ) -> tuple[str, str]:
        """A new listing, its first release, then published: the listing and release ids."""
        listing_id = self._create_listing(actor, Body(True, listing), FRESH)
        assert listing_id is not None
        release_id = self._publish_release(
            listing_id, actor, Body(True, release), FRESH, wrong_refs=False
        )
        assert release_id is not None
        self._change_status(listing_id, actor, Body(True, {"status": "published"}), FRESH)
        return listing_id, release_id

    @rule(target=listings, pub=st.integers(0, 2), kind=fps.asset_kinds(), data=st.data())
    def open_shop(self, pub: int, kind: AssetKind, data: st.DataObject) -> str:
        """Shortcut to the install flow: a new listing, its first release, then published."""
        listing = data.draw(fps.listing_payloads(kind), label="listing")
        release = data.draw(fps.release_payloads(kind), label="release")
        return self._open_shop(self._publisher(pub), listing, release)[0]

    @rule(
        listing=listings,
        body=bodies(fps.listing_patches()),
        key=st.one_of(st.none(), KEYS_TO_SEND),
    )
    def patch_listing(self, listing: str, body: Body, key: object) -> None:
        actor = self.listing_model[listing].owner
        before = self.store.listings[listing]
        attempt = self._keyed(
            "patch_listing",
            actor,
            "PATCH /v1/publisher/listings/{id}",
            {"id": listing},
            body.payload,
            None if key is None else self._key(key),
            lambda p, k: self.fp.publishing.update_listing(
                actor.call, listing, p, idempotency_key=k
            ),
        )
        if attempt is None:
            return
        self._expect("patch_listing", attempt, set(), strict=body.strict)
        if not attempt.ok:
            return
        after = self.store.listings[listing]
        assert attempt.value.listing == after
        for name in ("listing_id", "publisher_user_id", "asset_kind", "status", "moderation"):
            assert getattr(after, name) == getattr(before, name), f"a patch changed {name}"
        if any(getattr(after, name) != getattr(before, name) for name in CONTENT):
            assert after.updated_at_ms == self.now
            self._audited("listing.updated")
        else:
            assert after == before, "a patch that changed no content touched the listing"

    def _status_errors(self, listing_id: str, target: ListingStatus) -> Errors:
        model = self.listing_model.get(listing_id)
        if target is ListingStatus.SUSPENDED:
            return {ValidationFailed}
        if model is None:
            return {NotFound}
        if model.status is ListingStatus.SUSPENDED or (model.status, target) not in PUBLISHER_MOVES:
            return {Conflict}
        if target is ListingStatus.PUBLISHED and not self._live_releases(listing_id):
            return {Conflict}
        return set()

    def _change_status(self, listing: str, actor: Actor, body: Body, key: object) -> None:
        attempt = self._keyed(
            "change_status",
            actor,
            "POST /v1/publisher/listings/{id}/status",
            {"id": listing},
            body.payload,
            self._key(key),
            lambda p, k: self.fp.publishing.change_status(
                actor.call, listing, p, idempotency_key=k
            ),
        )
        if attempt is None:
            return
        if body.strict:
            assert isinstance(body.payload, dict)
            wanted = ListingStatus(body.payload["status"])
            self._expect("change_status", attempt, self._status_errors(listing, wanted))
        if not attempt.ok:
            return
        moved = attempt.value.listing.status
        self._expect("change_status", attempt, self._status_errors(listing, moved))
        if moved is ListingStatus.DRAFT and self.listing_model[listing].status is not moved:
            self._revoke_tokens_of_listing(listing)
        self.listing_model[listing].status = moved
        self._audited("listing.status_changed")

    @rule(
        listing=listings,
        body=bodies(
            st.fixed_dictionaries({"status": st.sampled_from([s.value for s in ListingStatus])})
        ),
        key=KEYS_TO_SEND,
    )
    def change_status(self, listing: str, body: Body, key: object) -> None:
        """Any status, ``suspended`` (which is not the publisher's to set) included."""
        self._change_status(listing, self.listing_model[listing].owner, body, key)

    # -- publisher: releases -------------------------------------------------------------

    def _publish_errors(self, listing_id: str, version: str, *, wrong_refs: bool) -> Errors:
        model = self.listing_model.get(listing_id)
        if model is None:
            return {NotFound}
        errors: Errors = {ValidationFailed} if wrong_refs else set()
        if model.status is ListingStatus.SUSPENDED or version in self._versions(listing_id):
            errors.add(Conflict)
        return errors

    def _publish_release(
        self, listing: str, actor: Actor, body: Body, key: object, *, wrong_refs: bool
    ) -> str | None:
        attempt = self._keyed(
            "publish_release",
            actor,
            "POST /v1/publisher/listings/{id}/releases",
            {"id": listing},
            body.payload,
            self._key(key),
            lambda p, k: self.fp.publishing.publish_release(
                actor.call, listing, p, idempotency_key=k
            ),
        )
        if attempt is None:
            return None
        if body.strict:
            assert isinstance(body.payload, dict)
            version = body.payload["version"]
            errors = self._publish_errors(listing, version, wrong_refs=wrong_refs)
            self._expect("publish_release", attempt, errors)
        if not attempt.ok:
            return None
        release = attempt.value
        errors = self._publish_errors(listing, release.version, wrong_refs=False)
        self._expect("publish_release", attempt, errors)
        assert release.listing_id == listing
        assert release.publisher_user_id == self.listing_model[listing].owner.user_id
        assert release.status is ReleaseStatus.PUBLISHED
        assert release.published_at_ms == self.now
        assert release.revoked_at_ms is None
        self.release_model[release.release_id] = ReleaseModel(
            listing, release.version, release.published_at_ms
        )
        self._audited("release.published")
        return str(release.release_id)

    @rule(target=releases, listing=listings, data=st.data(), key=KEYS_TO_SEND)
    def publish_release(self, listing: str, data: st.DataObject, key: object) -> object:
        """Publish a release: mostly valid, sometimes a used version or refs of another kind."""
        model = self.listing_model[listing]
        used = self._versions(listing)
        versions = fps.release_versions()
        if used:
            versions = st.one_of(st.sampled_from(used), versions)
        version = data.draw(versions, label="version")
        variant = data.draw(st.sampled_from(["valid", "valid", "wrong_refs", "arbitrary"]))
        if variant == "arbitrary":
            body = Body(False, data.draw(fps.arbitrary_payloads(), label="payload"))
        else:
            refs_kind = model.kind
            if variant == "wrong_refs":
                others = [other for other in AssetKind if other is not model.kind]
                refs_kind = data.draw(st.sampled_from(others), label="refs of")
            payload = data.draw(fps.release_payloads(refs_kind, version=version), label="payload")
            body = Body(True, payload)
        release = self._publish_release(
            listing, model.owner, body, key, wrong_refs=variant == "wrong_refs"
        )
        return multiple() if release is None else release

    @rule(
        release=releases,
        listing=listings,
        latest_of_listing=st.booleans(),
        pub=st.integers(0, 2),
        body=bodies(
            st.one_of(
                st.none(),
                st.just({}),
                st.fixed_dictionaries({"reason": st.one_of(st.none(), fps.reasons())}),
            )
        ),
        key=KEYS_TO_SEND,
    )
    def revoke_release(
        self,
        release: str,
        listing: str,
        latest_of_listing: bool,
        pub: int,
        body: Body,
        key: object,
    ) -> None:
        """Revoke a release: one from the bundle, or the latest of a listing (a shop's, say)."""
        if latest_of_listing:
            release = self._latest_release(listing) or release
        model = self.release_model.get(release)
        owner = self.listing_model[model.listing_id].owner if model else self._publisher(pub)
        attempt = self._keyed(
            "revoke_release",
            owner,
            "POST /v1/publisher/releases/{releaseId}/revoke",
            {"releaseId": release},
            body.payload,
            self._key(key),
            lambda p, k: self.fp.publishing.revoke_release(
                owner.call, release, p, idempotency_key=k
            ),
        )
        if attempt is None:
            return
        errors: Errors = set()
        if model is None:
            errors = {NotFound}
        elif model.revoked:
            errors = {Conflict}
        self._expect("revoke_release", attempt, errors, strict=body.strict)
        if not attempt.ok:
            return
        assert model is not None
        assert attempt.value.status is ReleaseStatus.REVOKED
        assert attempt.value.revoked_at_ms == self.now
        model.revoked = True
        self._audited("release.revoked")

    # -- buyer: intents and tokens -------------------------------------------------------

    def _intent_errors(self, listing_id: object, release_id: object, target: object) -> Errors:
        listing = self.listing_model.get(listing_id) if isinstance(listing_id, str) else None
        if listing is None or listing.status is not ListingStatus.PUBLISHED:
            return {NotFound}
        if target not in ACCEPTED_TARGETS[listing.kind]:
            return {ValidationFailed}
        if release_id is None:
            return set() if self._latest_release(str(listing_id)) else {Conflict}
        release = self.release_model.get(release_id) if isinstance(release_id, str) else None
        if release is None or release.listing_id != listing_id:
            return {NotFound}
        return {Conflict} if release.revoked else set()

    def _create_intent(
        self, actor: Actor, body: Body, key: object, listing: str, release: str | None
    ) -> str | None:
        """Send an intent body meant for ``listing`` (and ``release``, if named)."""
        payload = body.payload
        attempt = self._keyed(
            "create_intent",
            actor,
            "POST /v1/install/intents",
            {},
            payload,
            self._key(key),
            lambda p, k: self.fp.installs.create_intent(actor.call, p, idempotency_key=k),
        )
        if attempt is None:
            return None
        if body.strict:
            assert isinstance(payload, dict)
            target = payload["targetSystem"]
            errors = self._intent_errors(listing, release, target)
            self._expect("create_intent", attempt, errors)
        if not attempt.ok:
            return None
        intent = attempt.value
        asked = payload.get("releaseId") if isinstance(payload, dict) else None
        errors = self._intent_errors(intent.listing_id, asked, intent.target_system.value)
        self._expect("create_intent", attempt, errors)
        assert intent.release_id == (asked or self._latest_release(intent.listing_id))
        assert intent.buyer_user_id == actor.user_id
        assert intent.status is InstallIntentStatus.CREATED
        assert intent.created_at_ms == self.now
        assert intent.expires_at_ms == self.now + INTENT_TTL_MS
        if body.strict:
            assert isinstance(payload, dict)
            assert intent.target_system.value == payload["targetSystem"]
        self.intent_model[intent.install_intent_id] = IntentModel(
            actor, intent.listing_id, intent.release_id, intent.target_system, intent.expires_at_ms
        )
        self._audited("install_intent.created")
        return str(intent.install_intent_id)

    @rule(
        target=intents,
        listing=listings,
        buyer=st.integers(0, 2),
        release=st.one_of(st.none(), releases),
        data=st.data(),
        key=KEYS_TO_SEND,
    )
    def create_intent(
        self, listing: str, buyer: int, release: str | None, data: st.DataObject, key: object
    ) -> object:
        """An intent for any listing (draft, suspended...) and any release (another's...)."""
        body = data.draw(bodies(fps.intent_payloads(listing, release)), label="body")
        intent = self._create_intent(self._buyer(buyer), body, key, listing, release)
        return multiple() if intent is None else intent

    def _buy(
        self, actor: Actor, intent: dict[str, Any], token_request: object
    ) -> tuple[str, str] | None:
        """An intent and its first token: the intent id and the raw token."""
        listing = intent["listingId"]
        intent_id = self._create_intent(actor, Body(True, intent), FRESH, listing, None)
        if intent_id is None:
            return None  # the listing has no installable release left
        raw = self._issue_token(intent_id, actor, Body(True, token_request), FRESH)
        assert raw is not None
        return intent_id, raw

    @precondition(lambda self: bool(self._listings_in(ListingStatus.PUBLISHED)))
    @rule(target=tokens, buyer=st.integers(0, 2), reissue=st.booleans(), data=st.data())
    def buy(self, buyer: int, reissue: bool, data: st.DataObject) -> object:
        """Shortcut to redemption: an intent for the newest published listing, and a token
        (with ``reissue``, a second one, which revokes the first): both raw tokens."""
        actor = self._buyer(buyer)
        listing = self._listings_in(ListingStatus.PUBLISHED)[-1]
        intent = data.draw(fps.intent_payloads(listing), label="intent")
        accepted = sorted(ACCEPTED_TARGETS[self.listing_model[listing].kind])
        intent["targetSystem"] = data.draw(st.sampled_from(accepted), label="target")
        request = data.draw(fps.token_requests(), label="token request")
        purchase = self._buy(actor, intent, request)
        if purchase is None:
            return multiple()
        if not reissue:
            return purchase[1]
        again = self._issue_token(purchase[0], actor, Body(True, request), FRESH)
        assert again is not None
        return multiple(purchase[1], again)

    def _open_intent_errors(self, intent_id: str) -> Errors:
        intent = self.intent_model.get(intent_id)
        if intent is None:
            return {NotFound}
        return set() if intent.observed(self.now) in OPEN_INTENT else {Conflict}

    def _token_errors(self, intent_id: str) -> Errors:
        errors = self._open_intent_errors(intent_id)
        if errors:
            return errors
        intent = self.intent_model[intent_id]
        if (
            self.release_model[intent.release_id].revoked
            or self.listing_model[intent.listing_id].status in UNINSTALLABLE
        ):
            return {Conflict}
        return set()

    def _issue_token(self, intent: str, actor: Actor, body: Body, key: object) -> str | None:
        model = self.intent_model[intent]
        attempt = self._keyed(
            "issue_token",
            actor,
            "POST /v1/install/intents/{id}/token",
            {"id": intent},
            body.payload,
            self._key(key),
            lambda p, k: self.fp.installs.issue_token(actor.call, intent, p, idempotency_key=k),
        )
        if attempt is None:
            return None
        self._expect("issue_token", attempt, self._token_errors(intent), strict=body.strict)
        if not attempt.ok:
            return None
        issued = attempt.value
        raw = issued.install_token
        assert isinstance(raw, str)
        assert raw.startswith(INSTALL_TOKEN_PREFIX)
        assert has_valid_checksum(raw)
        assert raw not in self.token_model, "a raw token was issued twice"
        payload = body.payload
        ttl = payload.get("ttlMs") if isinstance(payload, dict) else None
        ttl = TOKEN_TTL_DEFAULT_MS if ttl is None else ttl
        assert issued.expires_at_ms == min(self.now + ttl, model.expires_at_ms)
        assert issued.target_system is model.target
        assert issued.install_intent_id == intent
        self._revoke_tokens_of(intent)
        model.status = InstallIntentStatus.TOKEN_ISSUED
        self.token_model[raw] = TokenModel(
            issued.token_id, intent, model.target, issued.expires_at_ms
        )
        self._audited("install_token.issued")
        return str(raw)

    @rule(
        target=tokens,
        intent=intents,
        body=bodies(
            fps.token_requests(),
            st.one_of(
                fps.arbitrary_payloads(),
                st.fixed_dictionaries({"ttlMs": fps.invalid_token_ttls()}),
            ),
        ),
        key=KEYS_TO_SEND,
    )
    def issue_token(self, intent: str, body: Body, key: object) -> object:
        """A new token for an own intent (which revokes the intent's earlier tokens)."""
        raw = self._issue_token(intent, self.intent_model[intent].buyer, body, key)
        return multiple() if raw is None else raw

    @rule(intent=intents, body=bodies(st.one_of(st.none(), st.just({}))), key=KEYS_TO_SEND)
    def cancel_intent(self, intent: str, body: Body, key: object) -> None:
        model = self.intent_model[intent]
        attempt = self._keyed(
            "cancel_intent",
            model.buyer,
            "POST /v1/install/intents/{id}/cancel",
            {"id": intent},
            body.payload,
            self._key(key),
            lambda p, k: self.fp.installs.cancel_intent(
                model.buyer.call, intent, p, idempotency_key=k
            ),
        )
        if attempt is None:
            return
        self._expect("cancel_intent", attempt, self._open_intent_errors(intent), strict=body.strict)
        if not attempt.ok:
            return
        assert attempt.value.status is InstallIntentStatus.CANCELED
        model.status = InstallIntentStatus.CANCELED
        self._revoke_tokens_of(intent)
        self._audited("install_intent.canceled")

    # -- target systems: redemption ------------------------------------------------------

    def _redeem_errors(self, raw: str, target: InstallTargetSystem) -> Errors:
        token = self.token_model.get(raw)
        if (
            token is None
            or token.revoked
            or token.redemptions
            or self.now >= token.expires_at_ms
            or target is not token.target
        ):
            return {NotFound}
        intent = self.intent_model[token.intent_id]
        if (
            intent.observed(self.now) not in OPEN_INTENT
            or self.release_model[intent.release_id].revoked
            or self.listing_model[intent.listing_id].status in UNINSTALLABLE
        ):
            return {NotFound}
        return set()

    def _redeem(self, raw: str, target: InstallTargetSystem) -> None:
        """``target``'s server redeems ``raw``, claiming to be ``target``."""
        body = {"installToken": raw, "targetSystem": target.value}
        attempt = self._attempt(
            "redeem", lambda: self.fp.redemption.redeem(target.value, body, request_id="r")
        )
        self._expect("redeem", attempt, self._redeem_errors(raw, target))
        if not attempt.ok:
            return
        token = self.token_model[raw]
        intent = self.intent_model[token.intent_id]
        redemption = attempt.value
        assert redemption.install_intent.install_intent_id == token.intent_id
        assert redemption.install_intent.status is InstallIntentStatus.REDEEMED
        assert redemption.listing.listing_id == intent.listing_id
        assert redemption.release.release_id == intent.release_id
        assert redemption.release.refs == self.store.releases[intent.release_id].refs
        token.redemptions += 1
        intent.status = InstallIntentStatus.REDEEMED
        self._audited("install_token.redeemed")

    @rule(token=tokens, right_target=st.booleans(), other=fps.target_systems())
    def redeem(self, token: str, right_target: bool, other: InstallTargetSystem) -> None:
        """A target system redeems a token: its own, or one meant for another system."""
        model = self.token_model[token]
        self._redeem(token, model.target if right_target else other)

    @precondition(lambda self: bool(self.token_model))
    @rule()
    def redeem_newest_token(self) -> None:
        """The newest token not yet redeemed (else the newest) is redeemed by its system."""
        unused = [raw for raw, token in self.token_model.items() if not token.redemptions]
        raw = (unused or list(self.token_model))[-1]
        self._redeem(raw, self.token_model[raw].target)

    def _dead_tokens(self) -> list[str]:
        now = self.now
        return [
            raw
            for raw, token in self.token_model.items()
            if token.revoked or token.redemptions or now >= token.expires_at_ms
        ]

    @precondition(lambda self: bool(self._dead_tokens()))
    @rule(data=st.data())
    def redeem_dead_token(self, data: st.DataObject) -> None:
        """A token already redeemed, expired, or revoked (by a newer token or a cancellation)
        is redeemed by its own system: NOT_FOUND."""
        raw = data.draw(st.sampled_from(self._dead_tokens()), label="dead token")
        self._redeem(raw, self.token_model[raw].target)

    # -- admin ---------------------------------------------------------------------------

    @rule(
        listing=listings,
        body=bodies(st.fixed_dictionaries({"reason": fps.reasons()})),
        key=KEYS_TO_SEND,
    )
    def suspend(self, listing: str, body: Body, key: object) -> None:
        model = self.listing_model[listing]
        payload = body.payload
        if body.strict:
            assert isinstance(payload, dict)
            payload = {"reason": self._marked_reason(payload["reason"])}
        admin = self.admin
        attempt = self._keyed(
            "suspend",
            admin,
            "POST /v1/admin/listings/{id}/suspend",
            {"id": listing},
            payload,
            self._key(key),
            lambda p, k: self.fp.admin.suspend_listing(admin.call, listing, p, idempotency_key=k),
        )
        if attempt is None:
            return
        errors: Errors = {Conflict} if model.status is ListingStatus.SUSPENDED else set()
        self._expect("suspend", attempt, errors, strict=body.strict)
        if not attempt.ok:
            return
        assert attempt.value.listing.status is ListingStatus.SUSPENDED
        assert attempt.value.listing.moderation.flagged
        model.status = ListingStatus.SUSPENDED
        self._revoke_tokens_of_listing(listing)
        self._audited("listing.suspended")

    @rule(
        listing=listings,
        suspended_one=st.booleans(),
        body=bodies(UNSUSPEND_BODIES),
        key=KEYS_TO_SEND,
        republish=st.booleans(),
    )
    def unsuspend(
        self, listing: str, suspended_one: bool, body: Body, key: object, republish: bool
    ) -> None:
        """Lift a suspension (with ``suspended_one``, of the newest suspended listing); with
        ``republish`` the owner then asks to publish it again, admin reason and all."""
        suspended = self._listings_in(ListingStatus.SUSPENDED)
        if suspended_one and suspended:
            listing = suspended[-1]
        model = self.listing_model[listing]
        payload = body.payload
        if body.strict and isinstance(payload, dict) and "reason" in payload:
            payload = {"reason": self._marked_reason(payload["reason"])}
        admin = self.admin
        attempt = self._keyed(
            "unsuspend",
            admin,
            "POST /v1/admin/listings/{id}/unsuspend",
            {"id": listing},
            payload,
            self._key(key),
            lambda p, k: self.fp.admin.unsuspend_listing(admin.call, listing, p, idempotency_key=k),
        )
        if attempt is None:
            return
        errors: Errors = set() if model.status is ListingStatus.SUSPENDED else {Conflict}
        self._expect("unsuspend", attempt, errors, strict=body.strict)
        if not attempt.ok:
            return
        assert attempt.value.listing.status is ListingStatus.UNLISTED
        model.status = ListingStatus.UNLISTED
        self._audited("listing.unsuspended")
        if republish:
            self._change_status(listing, model.owner, Body(True, {"status": "published"}), FRESH)

    # -- the wrong people and the wrong requests ---------------------------------------

    @rule(
        listing=listings,
        other=st.integers(0, 2),
        action=st.sampled_from(
            [
                "get",
                "patch",
                "status",
                "publish",
                "releases",
                "revoke",
                "get_intent",
                "token",
                "cancel",
            ]
        ),
        data=st.data(),
    )
    def cross_tenant(self, listing: str, other: int, action: str, data: st.DataObject) -> None:
        """Publisher B on A's listing or release, buyer B on A's intent: NOT_FOUND, exactly
        as for something that does not exist."""
        key = self._key(FRESH)
        publishing, installs = self.fp.publishing, self.fp.installs
        send: Callable[[], Any]
        if action in ("get_intent", "token", "cancel") and self.intent_model:
            intent = data.draw(st.sampled_from(list(self.intent_model)), label="intent")
            owner = self.intent_model[intent].buyer
            others = [b for b in self.buyers if b != owner]
            intruder = others[other % len(others)]
            call, what = intruder.call, f"{intruder.name} {action} on {owner.name}'s {intent}"
            if action == "token":
                send = partial(installs.issue_token, call, intent, None, idempotency_key=key)
            elif action == "cancel":
                send = partial(installs.cancel_intent, call, intent, None, idempotency_key=key)
            else:
                send = partial(installs.get_intent, call, intent)
        else:
            model = self.listing_model[listing]
            owner = model.owner
            others = [p for p in self.publishers if p != owner]
            intruder = others[other % len(others)]
            call, what = intruder.call, f"{intruder.name} {action} on {owner.name}'s {listing}"
            own_releases = [r for r, m in self.release_model.items() if m.listing_id == listing]
            if action == "patch":
                patch = data.draw(fps.listing_patches(), label="patch")
                send = partial(publishing.update_listing, call, listing, patch, idempotency_key=key)
            elif action == "status":
                status = {"status": data.draw(st.sampled_from(["draft", "published", "unlisted"]))}
                send = partial(publishing.change_status, call, listing, status, idempotency_key=key)
            elif action == "publish":
                body = data.draw(fps.release_payloads(model.kind), label="release")
                send = partial(publishing.publish_release, call, listing, body, idempotency_key=key)
            elif action == "releases":
                send = partial(publishing.list_releases, call, listing)
            elif action == "revoke" and own_releases:
                release = data.draw(st.sampled_from(own_releases), label="release")
                send = partial(publishing.revoke_release, call, release, {}, idempotency_key=key)
            else:
                send = partial(publishing.get_listing, call, listing)
        attempt = self._attempt(what, send)
        passed = isinstance(attempt.error, NotFound)
        self.cross_tenant_checks.append(Check(what, passed, describe(attempt.error)))

    @rule(
        case=st.sampled_from(
            ["missing_role", "bad_key", "unknown_id", "garbage_redeem", "token_in_request"]
        ),
        data=st.data(),
    )
    def misuse(self, case: str, data: st.DataObject) -> None:
        """Requests no state can make succeed: a missing role (UNAUTHORIZED), a missing or
        malformed Idempotency-Key (VALIDATION_FAILED on that header), an id that names
        nothing (NOT_FOUND), a garbage redemption (NOT_FOUND or VALIDATION_FAILED), a raw
        token where it does not belong (refused, and never echoed in the error)."""
        fp, admin, key = self.fp, self.admin.call, self._key(FRESH)
        publisher = data.draw(st.sampled_from(self.publishers), label="publisher").call
        buyer = data.draw(st.sampled_from(self.buyers), label="buyer").call
        sends: dict[str, Callable[[], Any]]
        if case == "missing_role":
            sends = {
                "buyer creates a listing": lambda: fp.publishing.create_listing(
                    buyer, listing_payload(), idempotency_key=key
                ),
                "buyer lists listings": lambda: fp.publishing.list_listings(buyer),
                "buyer suspends": lambda: fp.admin.suspend_listing(
                    buyer, UNKNOWN_LISTING, {"reason": "r"}, idempotency_key=key
                ),
                "publisher suspends": lambda: fp.admin.suspend_listing(
                    publisher, UNKNOWN_LISTING, {"reason": "r"}, idempotency_key=key
                ),
            }
            expected: Errors = {Unauthorized}
        elif case == "bad_key":
            bad = data.draw(st.one_of(st.none(), fps.invalid_idempotency_keys()), label="key")
            owned = data.draw(st.sampled_from(list(self.listing_model)), label="listing")
            owner = self.listing_model[owned].owner.call
            sends = {
                "create": lambda: fp.publishing.create_listing(
                    publisher, listing_payload(), idempotency_key=bad
                ),
                "status": lambda: fp.publishing.change_status(
                    owner, owned, {"status": "unlisted"}, idempotency_key=bad
                ),
                "publish": lambda: fp.publishing.publish_release(
                    owner, owned, release_payload("9.9.9"), idempotency_key=bad
                ),
                "intent": lambda: fp.installs.create_intent(
                    buyer, {"listingId": owned, "targetSystem": "whs"}, idempotency_key=bad
                ),
                "token": lambda: fp.installs.issue_token(
                    buyer, UNKNOWN_INTENT, idempotency_key=bad
                ),
                "cancel": lambda: fp.installs.cancel_intent(
                    buyer, UNKNOWN_INTENT, idempotency_key=bad
                ),
                "suspend": lambda: fp.admin.suspend_listing(
                    admin, owned, {"reason": "r"}, idempotency_key=bad
                ),
            }
            if bad is not None:  # PATCH accepts a missing key, never a malformed one
                sends["patch"] = lambda: fp.publishing.update_listing(
                    owner, owned, {"summary": "s"}, idempotency_key=bad
                )
            expected = {ValidationFailed}
        elif case == "unknown_id":
            sends = {
                "listing": lambda: fp.publishing.get_listing(publisher, UNKNOWN_LISTING),
                "patch": lambda: fp.publishing.update_listing(
                    publisher, UNKNOWN_LISTING, {"summary": "s"}, idempotency_key=key
                ),
                "status": lambda: fp.publishing.change_status(
                    publisher, UNKNOWN_LISTING, {"status": "published"}, idempotency_key=key
                ),
                "publish": lambda: fp.publishing.publish_release(
                    publisher, UNKNOWN_LISTING, release_payload(), idempotency_key=key
                ),
                "releases": lambda: fp.publishing.list_releases(publisher, UNKNOWN_LISTING),
                "revoke": lambda: fp.publishing.revoke_release(
                    publisher, UNKNOWN_RELEASE, {}, idempotency_key=key
                ),
                "intent": lambda: fp.installs.create_intent(
                    buyer,
                    {"listingId": UNKNOWN_LISTING, "targetSystem": "whs"},
                    idempotency_key=key,
                ),
                "get intent": lambda: fp.installs.get_intent(buyer, UNKNOWN_INTENT),
                "token": lambda: fp.installs.issue_token(
                    buyer, UNKNOWN_INTENT, idempotency_key=key
                ),
                "cancel": lambda: fp.installs.cancel_intent(
                    buyer, UNKNOWN_INTENT, idempotency_key=key
                ),
                "suspend": lambda: fp.admin.suspend_listing(
                    admin, UNKNOWN_LISTING, {"reason": "r"}, idempotency_key=key
                ),
                "unsuspend": lambda: fp.admin.unsuspend_listing(
                    admin, UNKNOWN_LISTING, idempotency_key=key
                ),
                "detail": lambda: fp.catalog.listing(UNKNOWN_LISTING),
                "redeem": lambda: fp.redemption.redeem(
                    "whs", {"installToken": NEVER_ISSUED, "targetSystem": "whs"}
                ),
            }
            expected = {NotFound}
        elif case == "token_in_request":
            raw = data.draw(st.sampled_from(list(self.token_model)), label="raw token")
            owned = data.draw(st.sampled_from(list(self.listing_model)), label="listing")
            owner = self.listing_model[owned].owner.call
            sends = {
                "as a field name": lambda: fp.publishing.create_listing(
                    publisher, {**listing_payload(), raw: 1}, idempotency_key=key
                ),
                "as a status": lambda: fp.publishing.change_status(
                    owner, owned, {"status": raw}, idempotency_key=key
                ),
                "as a link": lambda: fp.publishing.update_listing(
                    owner, owned, {"links": {"docsUrl": raw}}, idempotency_key=key
                ),
                "as a TTL": lambda: fp.installs.issue_token(
                    buyer, UNKNOWN_INTENT, {"ttlMs": raw}, idempotency_key=key
                ),
                "as a listing id": lambda: fp.installs.create_intent(
                    buyer, {"listingId": raw, "targetSystem": "whs"}, idempotency_key=key
                ),
                "as a target system": lambda: fp.redemption.redeem(
                    "whs", {"installToken": raw, "targetSystem": raw}
                ),
            }
            expected = {NotFound, ValidationFailed}
        else:
            source = data.draw(fps.target_systems(), label="source").value
            payload = data.draw(
                st.one_of(
                    fps.arbitrary_payloads(),
                    st.fixed_dictionaries(
                        {
                            "installToken": st.text(max_size=REDEEM_TOKEN_MAX + 50),
                            "targetSystem": st.just(source),
                        }
                    ),
                ),
                label="body",
            )
            sends = {"redeem": lambda: fp.redemption.redeem(source, payload)}
            expected = {NotFound, ValidationFailed}
        action = data.draw(st.sampled_from(sorted(sends)), label="action")
        attempt = self._attempt(f"{case}: {action}", sends[action])
        self._expect(f"{case}: {action}", attempt, expected)
        if case == "bad_key":
            assert attempt.error is not None
            assert [f.field_name for f in attempt.error.fields] == ["Idempotency-Key"]

    # -- replays ---------------------------------------------------------------------------

    def _live_keys(self) -> list[tuple[str, str, str]]:
        return [
            scope
            for scope, first in self.keyed.items()
            if self.now < first.at_ms + IDEMPOTENCY_RETENTION_MS
        ]

    @precondition(lambda self: bool(self._live_keys()))
    @rule(data=st.data(), same=st.booleans())
    def replay(self, data: st.DataObject, same: bool) -> None:
        """Send an earlier request again with its key: the same body, or another body."""
        scope = data.draw(st.sampled_from(self._live_keys()), label="key scope")
        first = self.keyed[scope]
        payload = first.payload
        if not same:
            payload = data.draw(
                fps.arbitrary_payloads().filter(
                    lambda other: canonical(first.target, other) != first.canonical
                ),
                label="other payload",
            )
        outcome = self._keyed(
            f"replay of {first.name}",
            first.actor,
            first.endpoint,
            first.target,
            payload,
            first.key,
            first.send,
        )
        assert outcome is None, "a live key was not treated as a replay"

    # -- invariants (hypothesis checks them in alphabetical order) ---------------------

    @invariant()
    def cross_tenant_attempts_answer_not_found(self) -> None:
        failed = [check for check in self.cross_tenant_checks if not check.passed]
        assert not failed, f"{failed[0].what} answered {failed[0].detail}, not NOT_FOUND"

    @invariant()
    def idempotent_replays_return_the_first_result(self) -> None:
        failed = [check for check in self.replay_checks if not check.passed]
        assert not failed, f"{failed[0].what}: {failed[0].detail}"

    @invariant()
    def mutations_are_audited_exactly_once(self) -> None:
        events = list(self.store.audit)
        seen = len(self.audit_seen)
        assert events[:seen] == self.audit_seen, "an audit event changed or disappeared"
        types = [event.type for event in events]
        assert types == self.expected_audit, (
            f"audit events {types[seen:]} after {len(self.audit_seen)} events, "
            f"expected {self.expected_audit[seen:]}"
        )
        self.audit_seen = events

    @invariant()
    def no_raw_token_in_stored_state(self) -> None:
        stored = "\n".join(
            repr(table) for table in vars(self.store).values() if isinstance(table, dict | list)
        )
        for raw in self.token_model:
            assert raw not in stored, "a raw install token is stored"

    def _assert_public(self, shape: object, where: str) -> None:
        private = [
            *self.token_model,
            *self.moderation_markers,
            *(buyer.user_id for buyer in self.buyers),
            *self.intent_model,
            *(token.token_id for token in self.token_model.values()),
        ]
        for key, value in walk(shape):
            assert key not in PRIVATE_KEYS, f"{where} carries the private field {key!r}"
            if isinstance(value, str):
                leaked = [secret for secret in private if secret in value]
                assert not leaked, f"{where} carries private data {leaked[0]!r}"

    @invariant()
    def public_output_holds_no_private_fields(self) -> None:
        published = set(self._listings_in(ListingStatus.PUBLISHED))
        page = self.fp.catalog.search(PAGE)
        assert page.next_cursor is None
        listed = {item.listing_id for item in page.items}
        assert listed == published, f"search lists {listed}, published are {published}"
        assert all(item.status is ListingStatus.PUBLISHED for item in page.items)
        self._assert_public(converter.unstructure(list(page.items)), "search")
        for listing_id in self.store.listings:
            if listing_id not in published:
                attempt = self._attempt("detail", lambda i=listing_id: self.fp.catalog.listing(i))
                self._expect(f"detail of the hidden {listing_id}", attempt, {NotFound})
                continue
            detail = converter.unstructure(self.fp.catalog.listing(listing_id))
            description = detail.pop("description")
            stored = self.store.listings[listing_id].description
            assert description == converter.unstructure(stored)
            self._assert_public(detail, f"detail of {listing_id}")
            shown = [release["release_id"] for release in detail["releases"]["items"]]
            if detail["latest_release"] is not None:
                shown.append(detail["latest_release"]["release_id"])
            for release_id in shown:
                release = self.store.releases[release_id]
                assert release.listing_id == listing_id
                assert release.status is ReleaseStatus.PUBLISHED, "detail shows a revoked release"

    @invariant()
    def releases_are_append_only(self) -> None:
        releases = self.store.releases
        assert set(releases) == set(self.release_model), "releases differ from those published"
        for release_id, release in releases.items():
            fixed = (
                release.listing_id,
                release.publisher_user_id,
                release.version,
                release.refs,
                release.compat,
                release.artifacts,
                release.notes,
                release.published_at_ms,
            )
            assert self.release_seen.setdefault(release_id, fixed) == fixed, (
                f"release {release_id} changed"
            )
            if release.status is ReleaseStatus.REVOKED:
                revocation = (release.revoked_at_ms, release.revoke_reason)
                assert self.revoked_seen.setdefault(release_id, revocation) == revocation
        for release_id in self.revoked_seen:
            assert releases[release_id].status is ReleaseStatus.REVOKED, "a revocation was undone"
        versions = Counter((r.listing_id, r.version) for r in releases.values())
        assert all(count == 1 for count in versions.values()), "a version is used twice"

    @invariant()
    def store_agrees_with_model(self) -> None:
        now = self.now
        for listing_id, model in self.listing_model.items():
            assert self.store.listings[listing_id].status is model.status, listing_id
        for release_id, release in self.release_model.items():
            revoked = self.store.releases[release_id].status is ReleaseStatus.REVOKED
            assert revoked == release.revoked, release_id
        assert set(self.store.intents) == set(self.intent_model)
        for intent_id, intent in self.intent_model.items():
            stored = self.store.intents[intent_id].observed(now)
            assert stored.status is intent.observed(now), intent_id

    @invariant()
    def tenants_are_isolated(self) -> None:
        assert set(self.store.listings) == set(self.listing_model)
        for listing_id, listing in self.store.listings.items():
            assert listing.publisher_user_id == self.listing_model[listing_id].owner.user_id
        for release in self.store.releases.values():
            owner = self.store.listings[release.listing_id].publisher_user_id
            assert release.publisher_user_id == owner
        for publisher in self.publishers:
            page = self.fp.publishing.list_listings(publisher.call, PAGE)
            listed = {view.listing.listing_id for view in page.items}
            own = {i for i, m in self.listing_model.items() if m.owner == publisher}
            assert listed == own, f"{publisher.name} lists {listed}, owns {own}"
        for buyer in self.buyers:
            page = self.fp.installs.list_intents(buyer.call, PAGE)
            assert all(intent.buyer_user_id == buyer.user_id for intent in page.items)
            listed = {intent.install_intent_id for intent in page.items}
            own = {i for i, m in self.intent_model.items() if m.buyer == buyer}
            assert listed == own, f"{buyer.name} lists {listed}, owns {own}"

    @invariant()
    def tokens_are_single_use(self) -> None:
        stored_tokens = self.store.tokens
        assert set(stored_tokens) == {t.token_id for t in self.token_model.values()}
        for raw, token in self.token_model.items():
            assert token.redemptions <= 1, "a token was redeemed twice"
            stored = stored_tokens[token.token_id]
            assert stored.token_hash == hash_token(raw)
            if token.redemptions:
                assert stored.status is InstallTokenStatus.REDEEMED
            else:
                assert stored.status is not InstallTokenStatus.REDEEMED
            if stored.status is InstallTokenStatus.REDEEMED:
                assert stored.redeemed_at_ms is not None
                assert stored.redeemed_by_system is not None
            else:
                assert stored.redeemed_at_ms is None
                assert stored.redeemed_by_system is None
            if token.revoked and not token.redemptions:
                assert stored.status in (InstallTokenStatus.REVOKED, InstallTokenStatus.EXPIRED)
        redeemed = Counter(
            t.install_intent_id
            for t in stored_tokens.values()
            if t.status is InstallTokenStatus.REDEEMED
        )
        for intent_id, intent in self.store.intents.items():
            is_redeemed = intent.status is InstallIntentStatus.REDEEMED
            assert redeemed[intent_id] == int(is_redeemed), intent_id


# The example count comes from the hypothesis profile (tests/conftest.py): a few
# runs while developing, many in CI.
MarketplaceMachine.TestCase.settings = settings(stateful_step_count=30, deadline=None)
TestMarketplace = MarketplaceMachine.TestCase
