"""Differential test: one random sequence of use cases, run on the in-memory adapter, on
SQLite and on PostgreSQL, must give identical answers everywhere.

The pattern of Hypothesis's own ``test_database_agreement.py``: a
:class:`~hypothesis.stateful.RuleBasedStateMachine` holds one FleetPrompt per
backend and applies every rule to each of them, in the same order, with the
same payloads, the same idempotency keys and identically advanced clocks. The
backends are made deterministic (``differential_support``: sequential ids and
tokens, one cursor key), so every answer (returned views, error code, message,
hint and fields, replay flags, next cursors) must be *identical*, exact types
included; the in-memory adapter is the reference.

Rules cover listings (create, patch, publish/unlist/draft, an unknown status,
suspend and lift, a stranger's attempts), releases (publish, duplicate
versions, refs of the wrong kind, revoke), publisher profiles, install
intents, tokens, signed redemption (``redemption.redeem_signed``, as a target
system calls it), cancellation, a clock that jumps past token, intent, key and
30-day statistics windows or lands exactly on one of those instants (±1 ms),
the retention job in batches of 1, 2 or 500, and idempotent replays with the
same or another body.

Reads walk every page, through ``nextCursor``, of public searches (terms that
prefix one another; casefold cases such as ``Straße``/``STRASSE``, ``İstanbul``
(whose case fold splits the token), ``ǅ``/``Ǆ``/``ǆ``, final sigma, the ``ﬁ``
ligature, the Kelvin sign; superscript and Arabic-Indic digits; emoji and
punctuation, which are no tokens; prefixes of words the catalogue holds, in any
case; tag, category, kind and ``verified`` filters (publishers' verification
changes through A3); every sort, ``name``, ``relevance`` and ``installs``
(install intents in the 30-day window, which intents and the clock move)
included; limits of 1 to 3, so pages are many), of saved cursors resumed after
the catalogue changed, of publisher listings, releases, buyer intents (by each
observed status) and the admin audit log. A search with terms and a sort other
than relevance runs on each SQL backend twice: with the default plan threshold
(terms first, on catalogues this small) and with every term counted as common
(``SqlStore.common_term_rows = 1``: order first), so both plans are compared.

After every step (the invariant) the newest audit events and the catalogue
must agree too: in turn the whole catalogue by update, creation and name, and
the hits of a broad prefix by relevance in pages of one.

A relevance search with words is ranked by each backend's search engine (ADR
0034), whose scores follow its index's history; those walks are compared by
the invariants of the one oracle instead of page by page (the same errors, the
same listings with identical views, none twice, every page but the last full;
``test_port_search.py`` checks the order itself on every adapter).

Without ``FLEETPROMPT_TEST_POSTGRES_URL`` the test compares the in-memory
adapter with SQLite only (it is not skipped).
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any, Final

import attrs
import pytest
import sqlalchemy as sa
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
    run_state_machine_as_test,
)
from test_app_support import VERIFIER, redeem_request

import databases
import strategies as fps
from contract.differential_support import (
    Backend,
    Observed,
    agree,
    memory_backend,
    observe,
    sql_backend,
    walk,
)
from fleetprompt_core import (
    AssetKind,
    Call,
    FleetPrompt,
    InstallIntentStatus,
    InstallTargetSystem,
    ListingStatus,
    Role,
    SearchSort,
)
from fleetprompt_core.base.enums import VerificationStatus
from fleetprompt_core.domain.search import search_terms
from fleetprompt_core.policies.signing import DEFAULT_SOURCES

MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
#: The window of ``install_attempts_30d`` (restated from the contract).
STATS_WINDOW_MS: Final = 30 * DAY
#: What the invariant walks of the catalogue, one per step in turn.
CATALOGUE_VIEWS: Final[tuple[dict[str, object], ...]] = (
    {"limit": 200, "sort": "updated"},
    {"limit": 1, "q": "a"},
    {"limit": 200, "sort": "created"},
    {"limit": 1, "q": "s"},
    {"limit": 200, "sort": "name"},
    {"limit": 1, "q": "i"},
    {"limit": 200, "sort": "installs"},
    {"limit": 200, "verified": "true"},
)
#: A search parameter left out.
ABSENT: Final = object()


def _has_terms(params: dict[str, object]) -> bool:
    q = params.get("q")
    return isinstance(q, str) and bool(search_terms(q))


def _ranked(params: dict[str, object]) -> bool:
    """Whether the search engine orders this search: words, by relevance (the default)."""
    return _has_terms(params) and params.get("sort") in (None, SearchSort.RELEVANCE.value)


# ----------------------------------------------------------------------------- vocabulary

#: Words for names, summaries and profiles: prefixes of one another, several spellings
#: of one casefolded token (Straße/STRASSE, ǅ/Ǆ/ǆ, final sigma, the ﬁ ligature, the
#: Kelvin sign), İ (casefolds to i + a combining dot, which splits the token), dotless
#: ı, superscript and Arabic-Indic digits, fullwidth letters, CJK, and emoji and
#: punctuation, which are no tokens at all.
WORDS: Final = (
    "agent",
    "Agents",
    "AGENTIC",
    "age",
    "ag",
    "triage",
    "Tri",
    "trio",
    "Straße",
    "STRASSE",
    "strass",
    "Strasbourg",
    "İstanbul",
    "istanbul",
    "ıstanbul",
    "ǅemal",
    "ǄEMAL",
    "ǆ",
    "Σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "ﬁle",
    "FILE",
    "filet",
    "\u212aelvin",
    "kelvin",
    "x²",
    "x2",
    "v2.0",
    "2024",
    "٣٣",
    "naïve",
    "nai\u0308ve",
    "Åström",
    "ｆｕｌｌ",
    "中文",
    "🤖",
    "👩\u200d💻",
    "_under_score",
)
#: Half of all words come from here: spellings whose lower case and case fold differ, or
#: whose case fold is shared with another spelling.
CASEFOLD_WORDS: Final = (
    "Straße",
    "STRASSE",
    "strasse",
    "ﬁle",
    "FILE",
    "ΣΊΣΥΦΟΣ",
    "σίσυφος",
    "ǅemal",
    "ǆemal",
    "İstanbul",
    "\u212aelvin",
    "Agent",
    "agent",
)
SEPARATORS: Final = (" ", " ", " ", "-", "/", ".", " · ", "🤖", "_", ", ")
#: Tags and categories (stored lower-cased: ``Straße`` and ``straße`` are one label,
#: ``strasse`` another); filters use these and other spellings. The first three are
#: drawn half of the time, so that listings share labels.
LABELS: Final = (
    "agent",
    "Straße",
    "ai",
    "agents",
    "ops",
    "data-ops",
    "strasse",
    "İstanbul",
    "ǅ",
    "x²",
    "🤖",
    "triage",
)
LABEL_FILTERS: Final = (*LABELS, "AGENT", "STRASSE", "straße", "ǆ", "i̇stanbul", "Data-Ops")
#: Pieces of ``q``: prefixes in several cases and spellings, whole words, non-tokens.
QUERY_PIECES: Final = (
    "a",
    "s",
    "t",
    "f",
    "ag",
    "AGE",
    "agent",
    "agents",
    "agentic",
    "tri",
    "TRIAGE",
    "stra",
    "STRASS",
    "straß",
    "strasse",
    "ss",
    "i",
    "İst",
    "stanbul",
    "ıs",
    "ǆ",
    "Ǆe",
    "ǅEMAL",
    "σίσ",
    "ΣΊΣΥΦΟΣ",
    "fi",
    "ﬁ",
    "file",
    "k",
    "\u212a",
    "x",
    "x²",
    "2",
    "20",
    "٣",
    "nai",
    "naïve",
    "å",
    "ｆ",
    "中",
    "under",
    "🤖",
    "!!",
    "v2",
)

ASSET_KINDS: Final = tuple(AssetKind)
TARGETS: Final = tuple(InstallTargetSystem)
SOURCES: Final = tuple(sorted(DEFAULT_SOURCES))
AUDIT_TYPES: Final = (
    "listing.created",
    "listing.updated",
    "listing.status_changed",
    "listing.suspended",
    "release.published",
    "install_token.issued",
    "install_token.redeemed",
    "retention.purged",
)


def vocabulary_text(min_words: int, max_words: int) -> st.SearchStrategy[str]:
    """Words of :data:`WORDS` joined by separators (at least one word)."""
    return st.lists(
        st.tuples(
            st.one_of(st.sampled_from(CASEFOLD_WORDS), st.sampled_from(WORDS)),
            st.sampled_from(SEPARATORS),
        ),
        min_size=min_words,
        max_size=max_words,
    ).map(lambda parts: "".join(word + sep for word, sep in parts).strip(" ,-/._·"))


def visible_name() -> st.SearchStrategy[str]:
    """A name of vocabulary words with at least one visible character."""
    return vocabulary_text(1, 3).filter(lambda name: any(not c.isspace() for c in name))


def label_lists() -> st.SearchStrategy[list[str]]:
    label = st.one_of(st.sampled_from(LABELS[:3]), st.sampled_from(LABELS))
    return st.lists(label, max_size=3, unique_by=str.lower)


def vocabulary_listing(kind: AssetKind | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A listing whose name, summary and labels come from the search vocabulary."""
    return st.fixed_dictionaries(
        {
            "assetKind": st.just(kind.value) if kind else st.sampled_from(ASSET_KINDS),
            "name": visible_name(),
        },
        optional={
            "summary": vocabulary_text(1, 4),
            "tags": label_lists(),
            "categories": label_lists(),
            "description": st.just({"markdown": "# Hello\n\nIt **works**."}),
        },
    )


def listing_bodies(kind: AssetKind | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly vocabulary listings (so searches hit), one in four from ``strategies``."""
    return st.integers(0, 3).flatmap(
        lambda n: vocabulary_listing(kind) if n else fps.listing_payloads(kind)
    )


def listing_patches() -> st.SearchStrategy[dict[str, Any]]:
    vocabulary = st.fixed_dictionaries(
        {},
        optional={
            "name": visible_name(),
            "summary": vocabulary_text(0, 4),
            "tags": label_lists(),
            "categories": label_lists(),
        },
    )
    return st.integers(0, 3).flatmap(lambda n: vocabulary if n else fps.listing_patches())


def queries() -> st.SearchStrategy[str]:
    """Mostly one or two pieces (every term must match), now and then none or many."""
    pieces = st.sampled_from((1, 1, 1, 2, 2, 3)).flatmap(
        lambda n: st.lists(st.sampled_from(QUERY_PIECES), min_size=n, max_size=n)
    )
    return st.one_of(
        st.builds(
            lambda words, sep: sep.join(words), pieces, st.sampled_from((" ", ", ", "-", "🤖"))
        ),
        st.sampled_from(("", "   ", "🤖 !!", " ".join(QUERY_PIECES[:12]))),
    )


def label_filters() -> st.SearchStrategy[object]:
    """One or two labels, as a list or as one comma-separated string."""
    values = st.sampled_from((1, 1, 2)).flatmap(
        lambda n: st.lists(
            st.one_of(st.sampled_from(LABELS[:3]), st.sampled_from(LABEL_FILTERS)),
            min_size=n,
            max_size=n,
        )
    )
    return st.one_of(values, values.map(",".join))


def sometimes(strategy: st.SearchStrategy[Any], chance: int) -> st.SearchStrategy[Any]:
    """``strategy`` in ``chance`` draws out of 10, else :data:`ABSENT`."""
    return st.integers(1, 10).flatmap(lambda n: strategy if n <= chance else st.just(ABSENT))


def search_params() -> st.SearchStrategy[dict[str, object]]:
    """A public search with a small limit (many pages): mostly a query, now and then
    filters (each narrows the hits), any sort or none."""
    return st.fixed_dictionaries(
        {
            "limit": st.integers(1, 2),
            "q": sometimes(queries(), 8),
            "tags": sometimes(label_filters(), 2),
            "categories": sometimes(label_filters(), 2),
            "assetKind": sometimes(st.sampled_from(ASSET_KINDS).map(lambda k: k.value), 2),
            "verified": sometimes(st.sampled_from(("true", "false")), 3),
            "sort": sometimes(st.sampled_from(SearchSort).map(lambda sort: sort.value), 6),
        }
    ).map(lambda params: {key: value for key, value in params.items() if value is not ABSENT})


def reasons() -> st.SearchStrategy[str]:
    return st.one_of(vocabulary_text(1, 4), fps.reasons())


# ----------------------------------------------------------------------------- the machine


@attrs.frozen
class Sent:
    """An idempotent write already sent: how to send it again."""

    what: str
    send: Callable[[FleetPrompt, object, str | None], Any]
    payload: object
    key: str
    at_ms: int


Opener = Callable[[], list[Backend]]


class DifferentialMachine(RuleBasedStateMachine):
    """The same use cases on every backend; after each, every answer must be identical."""

    listings = Bundle("listings")
    releases = Bundle("releases")
    intents = Bundle("intents")

    def __init__(self, open_backends: Opener) -> None:
        super().__init__()
        self.backends = open_backends()
        self._keys = itertools.count(1)
        self.owner: dict[str, int] = {}  # listing → publisher index
        self.kind: dict[str, AssetKind] = {}
        self.status: dict[str, ListingStatus] = {}
        self.content: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
        self.release_listing: dict[str, str] = {}
        self.intent_buyer: dict[str, int] = {}
        self.token_target: dict[str, InstallTargetSystem] = {}
        self.sent: list[Sent] = []
        self.saved_cursors: list[tuple[dict[str, object], str]] = []
        self.user_ids: list[str] = []
        #: Instants at which something expires, by what: intents, tokens, statistics.
        self.expiries: dict[str, set[int]] = {"intent": set(), "token": set(), "stats": set()}
        self.steps = 0
        self.admin = self._provision("admin", [Role.ADMIN])
        self.publishers = [self._provision(f"pub-{i}", [Role.PUBLISHER]) for i in range(2)]
        self.buyers = [self._provision(f"buyer-{i}", []) for i in range(2)]

    # -- running on every backend ------------------------------------------------------

    def _on_all(self, what: str, action: Callable[[Backend], Any]) -> Observed:
        """``action`` on every backend in turn; every answer identical; the reference's."""
        answers = {b.name: observe(what, b.name, lambda b=b: action(b)) for b in self.backends}
        agree(what, answers)
        return answers["memory"]

    def _on_all_plans(self, what: str, action: Callable[[Backend], Any]) -> Observed:
        """Like :meth:`_on_all`, and each SQL backend again with every term counted as
        common, so that a search with terms sorted by other than relevance takes the
        order-first plan (the default threshold keeps test catalogues on terms-first)."""
        answers: dict[str, Any] = {}
        for b in self.backends:
            answers[b.name] = observe(what, b.name, lambda b=b: action(b))
            if b.sql_store is not None:
                default = b.sql_store.common_term_rows
                b.sql_store.common_term_rows = 1
                try:
                    plan = f"{b.name} (order-first)"
                    answers[plan] = observe(what, plan, lambda b=b: action(b))
                finally:
                    b.sql_store.common_term_rows = default
        agree(what, answers)
        return answers["memory"]

    def _on_all_ranked(
        self, what: str, action: Callable[[Backend], Any], *, resumed: bool = False
    ) -> Observed:
        """A walk of a relevance search with words, on every backend, compared by the one
        oracle's invariants (ADR 0034), not page by page: the engine's scores follow each
        index's history (a deleted document counts until its segment merges, in the
        background), so near-ties may order differently between backends. Every backend
        gives the same errors and the same listings, each with an identical view, none
        twice, every page but the last full. A walk resumed from a saved cursor (the
        reference's) continues from that listing in each backend's own order: its
        listings may differ, but none comes twice and the views agree."""
        answers = {b.name: observe(what, b.name, lambda b=b: action(b)) for b in self.backends}
        shapes: dict[str, Any] = {}
        views: dict[str, dict[str, Any]] = {}
        for name, observed in answers.items():
            pages = observed.value
            items = [item for page in pages if page.ok for item in page.value.items]
            ids = [item.listing_id for item in items]
            assert len(ids) == len(set(ids)), f"{what}: {name} returned a listing twice: {ids}"
            sizes = {len(page.value.items) for page in pages if page.ok and page.value.next_cursor}
            last = len(pages[-1].value.items) if pages[-1].ok else 0
            assert len(sizes) <= 1, (what, name, sizes)
            assert all(last <= size for size in sizes), (what, name, sizes, last)
            errors = tuple(page.error for page in pages if not page.ok)
            views[name] = {item.listing_id: item for item in items}
            shapes[name] = errors if resumed else (errors, sorted(views[name].items()))
        agree(what, shapes)
        if resumed:
            reference = views["memory"]
            for name, seen in views.items():
                common = sorted(set(seen) & set(reference))
                agree(
                    f"{what} (views)",
                    {"memory": [reference[i] for i in common], name: [seen[i] for i in common]},
                )
        return answers["memory"]

    def _provision(self, name: str, roles: list[Role]) -> Call:
        user = self._on_all(
            f"provision {name}",
            lambda b: b.fp.operator.ensure_user(name, display_name=name.title(), roles=roles),
        )
        assert user.ok, user.error
        self.user_ids.append(user.value.user_id)
        return Call.as_user(name, request_id=f"req-{name}")

    def _key(self) -> str:
        return f"key-{next(self._keys)}"

    def _keyed(
        self,
        what: str,
        send: Callable[[FleetPrompt, object, str | None], Any],
        payload: object,
        *,
        key: str | None = "fresh",
    ) -> Observed:
        """An idempotent write with a new key (or none), remembered for :meth:`replay`."""
        used = self._key() if key == "fresh" else key
        observed = self._on_all(what, lambda b: send(b.fp, copy.deepcopy(payload), used))
        if used is not None:
            self.sent.append(Sent(what, send, payload, used, self.now))
        return observed

    @property
    def now(self) -> int:
        return self.backends[0].clock.now_ms()

    def _publisher_of(self, listing: str) -> Call:
        return self.publishers[self.owner[listing]]

    # -- publishers: listings ----------------------------------------------------------

    def _create_listing(self, pub: int, payload: dict[str, Any]) -> str | None:
        caller = self.publishers[pub]
        observed = self._keyed(
            "create_listing",
            lambda fp, p, k: fp.publishing.create_listing(caller, p, idempotency_key=k),
            payload,
        )
        if not observed.ok:
            return None
        listing = observed.value.value.listing
        self.owner[listing.listing_id] = pub
        self.kind[listing.listing_id] = listing.asset_kind
        self._remember(observed)
        return str(listing.listing_id)

    def _remember(self, observed: Observed) -> None:
        """Remember the listing a successful write answered (status, name and labels)."""
        if observed.ok:
            listing = observed.value.value.listing
            self.status[listing.listing_id] = listing.status
            self.content[listing.listing_id] = (listing.name, listing.tags, listing.categories)

    def _published(self) -> list[str]:
        return sorted(i for i, status in self.status.items() if status is ListingStatus.PUBLISHED)

    @initialize(target=listings, count=st.integers(4, 8), data=st.data())
    def seed_catalogue(self, count: int, data: st.DataObject) -> object:
        """A few published vocabulary listings, so that searches find something at once."""
        seeded = []
        for index in range(count):
            kind = data.draw(st.sampled_from(ASSET_KINDS), label="kind")
            listing = self._create_listing(
                index % 2, data.draw(vocabulary_listing(kind), label="listing")
            )
            assert listing is not None
            release = {"version": "1.0.0", "refs": data.draw(fps.release_refs(kind), label="refs")}
            self._publish_release(listing, self.publishers[index % 2], release)
            self._change_status(listing, self.publishers[index % 2], {"status": "published"})
            seeded.append(listing)
        return multiple(*seeded)

    @rule(target=listings, pub=st.integers(0, 1), payload=listing_bodies())
    def create_listing(self, pub: int, payload: dict[str, Any]) -> object:
        listing = self._create_listing(pub, payload)
        return multiple() if listing is None else listing

    @rule(
        target=listings,
        pub=st.integers(0, 1),
        kind=st.sampled_from(ASSET_KINDS),
        data=st.data(),
    )
    def open_shop(self, pub: int, kind: AssetKind, data: st.DataObject) -> object:
        """A listing, its first release, then published: the catalogue fills quickly."""
        listing = self._create_listing(pub, data.draw(listing_bodies(kind), label="listing"))
        if listing is None:
            return multiple()
        release = data.draw(fps.release_payloads(kind), label="release")
        self._publish_release(listing, self.publishers[pub], release)
        self._change_status(listing, self.publishers[pub], {"status": "published"})
        return listing

    @rule(listing=listings, patch=listing_patches(), keyed=st.booleans())
    def patch_listing(self, listing: str, patch: dict[str, Any], keyed: bool) -> None:
        caller = self._publisher_of(listing)
        observed = self._keyed(
            "update_listing",
            lambda fp, p, k: fp.publishing.update_listing(caller, listing, p, idempotency_key=k),
            patch,
            key="fresh" if keyed else None,
        )
        self._remember(observed)

    def _change_status(self, listing: str, caller: Call, payload: object) -> None:
        self._remember(
            self._keyed(
                "change_status",
                lambda fp, p, k: fp.publishing.change_status(caller, listing, p, idempotency_key=k),
                payload,
            )
        )

    @rule(
        listing=listings,
        status=st.sampled_from([*(s.value for s in ListingStatus), "archived"]),
        intruder=st.booleans(),
    )
    def change_status(self, listing: str, status: str, intruder: bool) -> None:
        """Any status (``suspended`` and an unknown one are refused), by the owner or not."""
        owner = self.owner[listing]
        caller = self.publishers[1 - owner if intruder else owner]
        self._change_status(listing, caller, {"status": status})

    # -- publishers: releases and profile ----------------------------------------------

    def _publish_release(self, listing: str, caller: Call, payload: object) -> str | None:
        observed = self._keyed(
            "publish_release",
            lambda fp, p, k: fp.publishing.publish_release(caller, listing, p, idempotency_key=k),
            payload,
        )
        if not observed.ok:
            return None
        release_id = str(observed.value.value.release_id)
        self.release_listing[release_id] = listing
        return release_id

    @rule(
        target=releases,
        listing=listings,
        version=st.one_of(st.sampled_from(("1.0.0", "1.0.1", "2.0.0")), fps.release_versions()),
        wrong_kind=st.integers(0, 5),
        data=st.data(),
    )
    def publish_release(
        self, listing: str, version: str, wrong_kind: int, data: st.DataObject
    ) -> object:
        """A release (versions repeat: duplicates conflict; refs now and then of a wrong kind)."""
        kind = self.kind[listing]
        if wrong_kind == 0:
            kind = ASSET_KINDS[(ASSET_KINDS.index(kind) + 1) % len(ASSET_KINDS)]
        payload = data.draw(fps.release_payloads(kind, version=version), label="release")
        release = self._publish_release(listing, self._publisher_of(listing), payload)
        return multiple() if release is None else release

    @rule(release=releases, reason=st.one_of(st.none(), reasons()))
    def revoke_release(self, release: str, reason: str | None) -> None:
        caller = self._publisher_of(self.release_listing[release])
        self._keyed(
            "revoke_release",
            lambda fp, p, k: fp.publishing.revoke_release(caller, release, p, idempotency_key=k),
            {} if reason is None else {"reason": reason},
        )

    @rule(
        pub=st.integers(0, 1),
        name=visible_name(),
        bio=st.one_of(st.none(), vocabulary_text(0, 6)),
        keyed=st.booleans(),
    )
    def put_profile(self, pub: int, name: str, bio: str | None, keyed: bool) -> None:
        """The display name shows in every public listing of the publisher."""
        caller = self.publishers[pub]
        payload: dict[str, object] = {"displayName": name}
        if bio is not None:
            payload["bioMarkdown"] = bio
        self._keyed(
            "put_profile",
            lambda fp, p, k: fp.profiles.put(caller, p, idempotency_key=k),
            payload,
            key="fresh" if keyed else None,
        )
        self._on_all("get_profile", lambda b: b.fp.profiles.get(caller))

    # -- buyers ----------------------------------------------------------------------------

    @rule(
        target=intents,
        buyer=st.integers(0, 1),
        listing=listings,
        any_listing=st.integers(0, 4),
        pick_release=st.integers(0, 3),
        data=st.data(),
    )
    def create_intent(
        self, buyer: int, listing: str, any_listing: int, pick_release: int, data: st.DataObject
    ) -> object:
        """Mostly for a published listing; for its latest release, or a named one (of this
        listing or, now and then, not)."""
        if any_listing and self._published():
            listing = data.draw(st.sampled_from(self._published()), label="published listing")
        release = None
        if pick_release and self.release_listing:
            mine = [r for r, owner in self.release_listing.items() if owner == listing]
            pool = mine if mine and pick_release > 1 else sorted(self.release_listing)
            release = data.draw(st.sampled_from(pool), label="release")
        payload = data.draw(fps.intent_payloads(listing, release), label="intent")
        intent = self._create_intent(buyer, payload)
        return multiple() if intent is None else intent

    def _create_intent(self, buyer: int, payload: dict[str, Any]) -> str | None:
        caller = self.buyers[buyer]
        observed = self._keyed(
            "create_intent",
            lambda fp, p, k: fp.installs.create_intent(caller, p, idempotency_key=k),
            payload,
        )
        if not observed.ok:
            return None
        intent = observed.value.value
        intent_id = str(intent.install_intent_id)
        self.intent_buyer[intent_id] = buyer
        self.expiries["intent"].add(intent.expires_at_ms)
        self.expiries["stats"].add(intent.created_at_ms + STATS_WINDOW_MS)
        return intent_id

    def _issue_token(self, intent: str, caller: Call, body: dict[str, int] | None) -> None:
        observed = self._keyed(
            "issue_token",
            lambda fp, p, k: fp.installs.issue_token(caller, intent, p, idempotency_key=k),
            body,
        )
        if observed.ok:
            issued = observed.value.value
            assert isinstance(issued.install_token, str)
            self.token_target[issued.install_token] = issued.target_system
            self.expiries["token"].add(issued.expires_at_ms)

    @rule(intent=intents, body=fps.token_requests(), intruder=st.integers(0, 5))
    def issue_token(self, intent: str, body: dict[str, int] | None, intruder: int) -> None:
        """A new token for the intent (revoking its earlier ones), now and then by a stranger."""
        buyer = self.intent_buyer[intent]
        self._issue_token(intent, self.buyers[1 - buyer if intruder == 0 else buyer], body)

    @precondition(lambda self: bool(self._published()))
    @rule(
        target=intents,
        buyer=st.integers(0, 1),
        target_system=st.sampled_from(TARGETS),
        body=fps.token_requests(),
        data=st.data(),
    )
    def buy(
        self,
        buyer: int,
        target_system: InstallTargetSystem,
        body: dict[str, int] | None,
        data: st.DataObject,
    ) -> object:
        """Shortcut to redemption: an intent for a published listing and a token for it."""
        listing = data.draw(st.sampled_from(self._published()), label="published listing")
        intent = self._create_intent(
            buyer, {"listingId": listing, "targetSystem": target_system.value}
        )
        if intent is None:
            return multiple()
        self._issue_token(intent, self.buyers[buyer], body)
        return intent

    @rule(intent=intents, body=st.sampled_from([None, {}]))
    def cancel_intent(self, intent: str, body: dict[str, object] | None) -> None:
        caller = self.buyers[self.intent_buyer[intent]]
        self._keyed(
            "cancel_intent",
            lambda fp, p, k: fp.installs.cancel_intent(caller, intent, p, idempotency_key=k),
            body,
        )

    @rule(intent=intents, buyer=st.integers(0, 1))
    def read_intent(self, intent: str, buyer: int) -> None:
        caller = self.buyers[buyer]
        self._on_all("get_intent", lambda b: b.fp.installs.get_intent(caller, intent))

    # -- target systems: signed redemption ------------------------------------------------

    @precondition(lambda self: bool(self.token_target))
    @rule(
        newest=st.booleans(),
        right_target=st.integers(0, 3),
        other=st.sampled_from(TARGETS),
        source=st.sampled_from(SOURCES),
        data=st.data(),
    )
    def redeem(
        self,
        newest: bool,
        right_target: int,
        other: InstallTargetSystem,
        source: str,
        data: st.DataObject,
    ) -> None:
        """A signed redemption of the newest token or any earlier one: mostly by the token's
        own system, else by any source for any target (``NOT_FOUND`` unless it is the
        token's target)."""
        issued = list(self.token_target)
        token = issued[-1] if newest else data.draw(st.sampled_from(issued), label="token")
        target = self.token_target[token] if right_target else other
        sender = target.value if right_target else source

        def send(b: Backend) -> Any:
            request = redeem_request(
                token, target.value, source=sender, sent_at_ms=b.clock.now_ms()
            )
            return b.fp.redemption.redeem_signed(VERIFIER, **request)

        self._on_all("redeem_signed", send)

    # -- admin -----------------------------------------------------------------------------

    @rule(listing=listings, reason=reasons())
    def suspend(self, listing: str, reason: str) -> None:
        admin = self.admin
        observed = self._keyed(
            "suspend_listing",
            lambda fp, p, k: fp.admin.suspend_listing(admin, listing, p, idempotency_key=k),
            {"reason": reason},
        )
        self._remember(observed)

    @rule(listing=listings, body=st.one_of(st.sampled_from([None, {}]), reasons()))
    def unsuspend(self, listing: str, body: object) -> None:
        admin = self.admin
        payload = {"reason": body} if isinstance(body, str) else body
        observed = self._keyed(
            "unsuspend_listing",
            lambda fp, p, k: fp.admin.unsuspend_listing(admin, listing, p, idempotency_key=k),
            payload,
        )
        self._remember(observed)

    @rule(pub=st.integers(0, 1), status=st.sampled_from(VerificationStatus))
    def set_verification(self, pub: int, status: VerificationStatus) -> None:
        """A3: the verified filter (contract §14) follows the publisher's verification."""
        admin = self.admin
        publisher_id = self.user_ids[1 + pub]  # provisioned after the admin
        self._keyed(
            "set_verification",
            lambda fp, p, k: fp.admin.set_verification(admin, publisher_id, p, idempotency_key=k),
            {"status": status.value, "reason": "checked"},
        )

    # -- time, retention and replays -------------------------------------------------------

    @rule(
        ms=st.one_of(
            st.integers(0, 5 * MINUTE),
            st.sampled_from([15 * MINUTE, HOUR, DAY, DAY + 1, 31 * DAY]),
        ),
        retention=st.booleans(),
        batch=st.sampled_from([1, 2, 500]),
    )
    def time_passes(self, ms: int, retention: bool, batch: int) -> None:
        """Every clock moves alike (past token, intent, key and 30-day windows); then perhaps
        the retention job runs, in batches of ``batch``."""
        for backend in self.backends:
            backend.clock.advance(ms)
        if retention:
            self._on_all("retention", lambda b: b.fp.retention.run(batch_size=batch))

    def _upcoming(self) -> dict[str, list[int]]:
        """Instants still ahead (or just now) at which something expires, by what."""
        instants = {**self.expiries, "idempotency key": {sent.at_ms + DAY for sent in self.sent}}
        now = self.now
        upcoming = {what: sorted(at for at in ats if at >= now) for what, ats in instants.items()}
        return {what: ats for what, ats in upcoming.items() if ats}

    @precondition(lambda self: bool(self._upcoming()))
    @rule(data=st.data(), offset=st.sampled_from([-1, 0, 0, 1]), retention=st.booleans())
    def to_an_expiry(self, data: st.DataObject, offset: int, retention: bool) -> None:
        """Every clock moves to just before, exactly at or just after the instant an intent,
        a token, an idempotency key or an intent's 30-day statistics window expires: the
        boundaries of every expiry check. Buyers' intents are read there at once."""
        upcoming = self._upcoming()
        what = data.draw(st.sampled_from(sorted(upcoming)), label="what expires")
        at = data.draw(st.sampled_from(upcoming[what]), label="when")
        step = max(0, at + offset - self.now)
        for backend in self.backends:
            backend.clock.advance(step)
        self._buyer_walks(2, (InstallIntentStatus.CREATED, InstallIntentStatus.EXPIRED))
        if retention:
            self._on_all("retention", lambda b: b.fp.retention.run())

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), same=st.booleans())
    def replay(self, data: st.DataObject, same: bool) -> None:
        """An earlier write again with its key: the stored answer (same body), ``CONFLICT``
        (another body), or a new execution once the key's 24 h are over."""
        sent = data.draw(st.sampled_from(self.sent), label="sent")
        payload = sent.payload if same else {"other": "body"}
        self._on_all(
            f"replay of {sent.what}",
            lambda b: sent.send(b.fp, copy.deepcopy(payload), sent.key),
        )

    # -- reads: every page ----------------------------------------------------------------

    def _search_walk(self, params: dict[str, object], cursor: str | None = None) -> Observed:
        def fetch(b: Backend) -> Any:
            start = [cursor]

            def page(next_cursor: str | None) -> Any:
                given = next_cursor or start[0]
                return b.fp.catalog.search({**params, "cursor": given} if given else params)

            return walk(page)

        what = f"search {params!r}" + (" from a saved cursor" if cursor else "")
        if _ranked(params):
            observed = self._on_all_ranked(what, fetch, resumed=cursor is not None)
        elif _has_terms(params):
            observed = self._on_all_plans(what, fetch)  # only then may the plans differ
        else:
            observed = self._on_all(what, fetch)
        for page in observed.value:
            if page.ok and page.value.next_cursor and len(self.saved_cursors) < 40:
                self.saved_cursors.append((params, page.value.next_cursor))
        return observed

    @rule(params=search_params())
    def search(self, params: dict[str, object]) -> None:
        self._search_walk(params)

    def _catalogue_query(self, data: st.DataObject) -> str:
        """A prefix of a word of a published listing's name, in some case (so it hits)."""
        names = [self.content[i][0] for i in self._published()]
        words = [word for name in names for word in name.split()] if names else []
        if not words:
            return data.draw(queries(), label="q")
        word = data.draw(st.sampled_from(words), label="word")
        prefix = word[: data.draw(st.integers(1, len(word)), label="prefix length")]
        case = data.draw(st.sampled_from((str, str.upper, str.lower, str.title)), label="case")
        return str(case(prefix))

    def _catalogue_label(self, data: st.DataObject) -> tuple[str, object]:
        """A tag or category filter, mostly one that a published listing carries."""
        carried = [
            (field, label)
            for i in self._published()
            for field, labels in zip(("tags", "categories"), self.content[i][1:], strict=True)
            for label in labels
        ]
        if carried and data.draw(st.integers(0, 3), label="carried label"):
            return data.draw(st.sampled_from(carried), label="label")
        field = data.draw(st.sampled_from(("tags", "categories")), label="field")
        return field, data.draw(label_filters(), label="label")

    @rule(
        q_from=st.sampled_from(("catalogue", "catalogue", "vocabulary", "none")),
        limit=st.integers(1, 3),
        kind=sometimes(st.sampled_from(ASSET_KINDS), 2),
        label=st.booleans(),
        verified=st.sampled_from((False, False, True)),
        data=st.data(),
    )
    def search_every_sort(
        self,
        q_from: str,
        limit: int,
        kind: object,
        label: bool,
        verified: bool,
        data: st.DataObject,
    ) -> None:
        """One search walked in every order (and in the default order): mostly a prefix of
        a word some published listing's name has; often with a label filter, which the SQL
        adapter serves from its label index in every order."""
        params: dict[str, object] = {"limit": limit}
        if q_from == "catalogue":
            params["q"] = self._catalogue_query(data)
        elif q_from == "vocabulary":
            params["q"] = data.draw(queries(), label="q")
        if isinstance(kind, AssetKind):
            params["assetKind"] = kind.value
        if label:
            field, value = self._catalogue_label(data)
            params[field] = value
        if verified:
            params["verified"] = "true"
        self._search_walk(params)
        for sort in SearchSort:
            self._search_walk({**params, "sort": sort.value})

    @precondition(lambda self: bool(self.saved_cursors))
    @rule(data=st.data())
    def resume_saved_cursor(self, data: st.DataObject) -> None:
        """A cursor from an earlier walk, used after the catalogue changed (keyset positions
        of listings that moved or left)."""
        params, cursor = data.draw(st.sampled_from(self.saved_cursors), label="saved cursor")
        self._search_walk(params, cursor)

    @rule(
        status=st.one_of(st.none(), st.sampled_from(ListingStatus)),
        limit=st.integers(1, 3),
    )
    def publisher_pages(self, status: ListingStatus | None, limit: int) -> None:
        """Each publisher's own listings, optionally by status."""
        params: dict[str, object] = {"limit": limit}
        if status is not None:
            params["status"] = status.value
        for index, caller in enumerate(self.publishers):

            def fetch(b: Backend, caller: Call = caller) -> Any:
                return walk(
                    lambda c: b.fp.publishing.list_listings(
                        caller, {**params, "cursor": c} if c else params
                    )
                )

            self._on_all(f"publisher {index} listings {params!r}", fetch)

    @rule(limit=st.integers(1, 3))
    def buyer_pages(self, limit: int) -> None:
        """Each buyer's own intents, all and by each observed status (``expired`` before
        retention stored it)."""
        self._buyer_walks(limit, (None, *InstallIntentStatus))

    def _buyer_walks(self, limit: int, statuses: tuple[InstallIntentStatus | None, ...]) -> None:
        """Every page of each buyer's intents (of buyers who have some), by each status."""
        for status in statuses:
            params: dict[str, object] = {"limit": limit}
            if status is not None:
                params["status"] = status.value
            for index, caller in enumerate(self.buyers):
                if index not in self.intent_buyer.values():
                    continue

                def fetch(
                    b: Backend, caller: Call = caller, params: dict[str, object] = params
                ) -> Any:
                    return walk(
                        lambda c: b.fp.installs.list_intents(
                            caller, {**params, "cursor": c} if c else params
                        )
                    )

                self._on_all(f"buyer {index} intents {params!r}", fetch)

    @rule(
        type_=st.one_of(st.none(), st.sampled_from(AUDIT_TYPES)),
        by_listing=st.booleans(),
        actor=st.one_of(st.none(), st.integers(0, 4)),
        limit=st.integers(1, 4),
        data=st.data(),
    )
    def audit_pages(
        self,
        type_: str | None,
        by_listing: bool,
        actor: int | None,
        limit: int,
        data: st.DataObject,
    ) -> None:
        params: dict[str, object] = {"limit": limit}
        if type_ is not None:
            params["type"] = type_
        if by_listing and self.owner:
            params["listingId"] = data.draw(st.sampled_from(sorted(self.owner)), label="listing")
        if actor is not None:
            params["actorUserId"] = self.user_ids[actor]
        admin = self.admin

        def fetch(b: Backend) -> Any:
            return walk(
                lambda c: b.fp.admin.read_audit(admin, {**params, "cursor": c} if c else params)
            )

        self._on_all(f"audit log {params!r}", fetch)

    @rule(listing=listings, include_revoked=st.booleans(), limit=st.integers(1, 2))
    def listing_detail(self, listing: str, include_revoked: bool, limit: int) -> None:
        """The public detail and release pages, the owner's view and release pages."""
        owner = self._publisher_of(listing)
        params: dict[str, object] = {"limit": limit, "includeRevoked": include_revoked}
        self._on_all("public detail", lambda b: b.fp.catalog.listing(listing))
        self._on_all(
            f"public releases {params!r}",
            lambda b: walk(
                lambda c: b.fp.catalog.releases(listing, {**params, "cursor": c} if c else params)
            ),
        )
        self._on_all("publisher detail", lambda b: b.fp.publishing.get_listing(owner, listing))
        self._on_all(
            "publisher releases",
            lambda b: walk(
                lambda c: b.fp.publishing.list_releases(
                    owner, listing, {"limit": limit, "cursor": c} if c else {"limit": limit}
                )
            ),
        )

    # -- after every step --------------------------------------------------------------------

    @invariant()
    def audit_logs_and_catalogues_agree(self) -> None:
        """The newest audit events (the last step's mutations), and the catalogue: whole,
        by update, creation or name, or by relevance to a broad prefix in pages of one (so
        that each hit's score shows in a cursor), in turn."""
        admin = self.admin
        self._on_all("the audit log", lambda b: b.fp.admin.read_audit(admin, {"limit": 5}))
        self.steps += 1
        params = CATALOGUE_VIEWS[self.steps % len(CATALOGUE_VIEWS)]
        compare = self._on_all_ranked if _ranked(params) else self._on_all
        compare(
            f"the catalogue {params!r}",
            lambda b: walk(lambda c: b.fp.catalog.search({**params, "cursor": c} if c else params)),
        )


# ----------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = databases.sqlite_engine(tmp_path_factory.mktemp("differential"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[sa.Engine | None]:
    """This run's PostgreSQL database, or ``None`` when it is not configured."""
    if not os.environ.get(databases.POSTGRES_ENV):
        yield None
        return
    engine = databases.postgres_engine()
    yield engine
    engine.dispose()


#: About 25-35 s with PostgreSQL (half of it PostgreSQL's round trips), 10-15 s without.
#: No health check needs suppressing.
SETTINGS: Final = settings(
    max_examples=20,
    stateful_step_count=35,
    deadline=None,
)


def test_backends_agree(sqlite_engine: sa.Engine, postgres_engine: sa.Engine | None) -> None:
    """Memory, SQLite and (when configured) PostgreSQL answer every step identically."""
    engines = {"sqlite": sqlite_engine}
    if postgres_engine is not None:
        engines["postgres"] = postgres_engine

    def open_backends() -> list[Backend]:
        backends = [memory_backend()]
        for name, engine in engines.items():
            databases.empty(engine)
            backends.append(sql_backend(name, engine))
        return backends

    run_state_machine_as_test(lambda: DifferentialMachine(open_backends), settings=SETTINGS)
