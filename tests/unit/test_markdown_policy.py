"""The one markdown policy (contract §3 "Markdown policy"; U-XSS-01..06, S-XSS-01..03)."""

from __future__ import annotations

import html
import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import attrs
import nh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xss_corpus import PAYLOADS

from fleetprompt_core.policies import markdown as markdown_policy
from fleetprompt_core.policies.markdown import (
    RENDERER_VERSION,
    RenderedMarkdown,
    render_markdown,
    rendered,
)
from fleetprompt_core.policies.urls import url_problem

# The contract's allowlist, restated here independently of the module under test
# so that a change to the policy's configuration is caught by these tests.
ALLOWED_TAGS = frozenset(
    {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre"}
    | {"blockquote", "ul", "ol", "li", "a"}
)
ALLOWED_ATTRIBUTES = {"a": frozenset({"href", "title", "rel"}), "ol": frozenset({"start"})}
FORBIDDEN_ATTRIBUTES = frozenset({"style", "src", "srcdoc", "formaction", "xlink:href"})
LINK_REL = "noopener noreferrer nofollow"
_FORBIDDEN_TAG_TEXT = re.compile(r"<\s*/?\s*(script|iframe|svg|math|img)", re.IGNORECASE)
_URL_NOISE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")

REFERENCE_SANITIZER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "ol": {"start"}},
    link_rel=LINK_REL,
    url_schemes={"https"},
    url_relative="deny",
)

# Fragments that make random sources look like (hostile) markdown, so that
# generated inputs exercise links, images, raw HTML and entities, not just prose.
_MARKDOWN_FRAGMENTS = [
    "<",
    ">",
    "</",
    "[",
    "]",
    "](",
    ")",
    "![",
    "<script>",
    "</script>",
    "<img src=x onerror=alert(1)>",
    "<a href=",
    "<svg onload=",
    '"',
    "'",
    "`",
    "```\n",
    "*",
    "_",
    "#",
    "- ",
    "1. ",
    "> ",
    "\n",
    "\n\n",
    "    ",
    "\t",
    "\x00",
    "\\",
    "&",
    "&#",
    "&#x6A;",
    ";",
    ":",
    "javascript:",
    "JaVaScRiPt:",
    "data:text/html,",
    "vbscript:",
    "https://",
    "http://",
    "//",
    "mailto:",
    "[x]: ",
    "onerror=",
    "style=",
    " ",
]
_fragment = st.sampled_from(_MARKDOWN_FRAGMENTS) | st.text(max_size=4)
markdownish = st.lists(_fragment, max_size=60).map("".join)
any_text = st.text(st.characters(exclude_categories=()), max_size=3000)


class _MarkupAudit(HTMLParser):
    """Collects every way an HTML fragment could carry executable markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}> is not allowed")
        names = [name for name, _ in attrs]
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name in FORBIDDEN_ATTRIBUTES:
                self.problems.append(f"forbidden attribute {name} on <{tag}>")
            if name not in ALLOWED_ATTRIBUTES.get(tag, frozenset()):
                self.problems.append(f"attribute {name} is not allowed on <{tag}>")
            if name == "href":
                url = _URL_NOISE.sub("", html.unescape(value or "")).lower()
                if not url.startswith("https:"):
                    self.problems.append(f"href {value!r} is not https")
        if tag == "a" and dict(attrs).get("rel") != LINK_REL:
            self.problems.append(f"<a> without rel={LINK_REL!r}: {names}")

    def handle_endtag(self, tag: str) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"end tag </{tag}> is not allowed")

    def handle_data(self, data: str) -> None:
        # A sanitizer always escapes "<" in text; a raw one is markup this
        # parser could not read, so it counts against the fragment.
        if "<" in data:
            self.problems.append(f"unescaped '<' in text: {data!r}")

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"unknown declaration {data!r}")


def assert_no_executable_markup(fragment: str) -> None:
    """Fail unless ``fragment`` holds only allowlisted, inert markup."""
    problems: list[str] = []
    if _FORBIDDEN_TAG_TEXT.search(fragment):
        problems.append("a script/iframe/svg/math/img tag appears in the output")
    audit = _MarkupAudit()
    audit.feed(fragment)
    audit.close()
    problems.extend(audit.problems)
    assert not problems, f"{problems} in {fragment!r}"


# --- the checker itself ------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        f'<a href="javascript:x" rel="{LINK_REL}">x</a>',
        f'<a href=" java&#9;script:x" rel="{LINK_REL}">x</a>',
        f'<a href="//evil.example" rel="{LINK_REL}">x</a>',
        "<img src=x onerror=y>",
        "<p onclick=x>x</p>",
        '<p style="color:red">x</p>',
        '<p class="x">x</p>',
        "<script>x</script>",
        "<iframe srcdoc=x></iframe>",
        "<svg><a>x</a></svg>",
        "<!-- x -->",
        '<a href="https://ok.example">x</a>',
        "<p>a <b</p>",
    ],
)
def test_assert_no_executable_markup_rejects_known_bad_html(bad: str) -> None:
    """The S-XSS checker fails on each known-bad fragment, so it is not vacuous."""
    with pytest.raises(AssertionError):
        assert_no_executable_markup(bad)


def test_assert_no_executable_markup_accepts_allowlisted_html() -> None:
    """The S-XSS checker passes allowlisted markup, so it is not failing everything."""
    assert_no_executable_markup(
        f'<h2>t</h2><p><a href="https://ok.example/?a=1&amp;b=2" title="t" rel="{LINK_REL}">'
        'x</a> &lt;script&gt;</p><ol start="3"><li><code>&lt;b&gt;</code></li></ol>'
    )


# --- U-XSS-01..06 -------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
        "<scr<script>ipt>alert(1)</scr</script>ipt>",
        "intro\n\n<script>\nalert(1)\n</script>\n",
    ],
)
def test_u_xss_01_script_tags_never_survive(source: str) -> None:
    """A <script> in the source never comes out as a script element."""
    output = render_markdown(source)
    assert "<script" not in output.lower()
    assert "&lt;script" in output.lower()
    assert_no_executable_markup(output)


@pytest.mark.parametrize(
    "source",
    [
        "<img src=x onerror=alert(1)>",
        '<IMG SRC="x" ONERROR="alert(1)">',
        '![x" onerror="alert(1)](https://a.example/b.png)',
    ],
)
def test_u_xss_02_img_onerror_is_removed(source: str) -> None:
    """No <img> element and no onerror attribute survive rendering."""
    output = render_markdown(source)
    assert "<img" not in output.lower()
    assert_no_executable_markup(output)


@pytest.mark.parametrize(
    "source",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](<javascript:alert(1)>)",
        "[click][x]\n\n[x]: javascript:alert(1)",
        "[click](&#106;avascript:alert(1))",
        "<javascript:alert(1)>",
    ],
)
def test_u_xss_03_javascript_links_lose_their_href(source: str) -> None:
    """A javascript: destination never becomes an href."""
    output = render_markdown(source)
    assert "href" not in output
    assert_no_executable_markup(output)


def test_u_xss_04_raw_html_is_escaped_not_passed_through() -> None:
    """Raw HTML in the source shows as escaped text, not as elements."""
    output = render_markdown('<div class="x"><b>bold</b> <em>e</em></div>')
    assert output == (
        '<p>&lt;div class="x"&gt;&lt;b&gt;bold&lt;/b&gt; &lt;em&gt;e&lt;/em&gt;&lt;/div&gt;</p>\n'
    )


@pytest.mark.parametrize(
    "source",
    [
        "[a](https://ok.example)",
        "<https://ok.example/auto>",
        "[ref][r]\n\n[r]: https://ok.example/ref",
        "[no href](javascript:alert(1)) and [bad](http://plain.example)",
        '<a href="https://ok.example" rel="opener">raw</a>',
    ],
)
def test_u_xss_05_every_link_gets_rel_noopener_noreferrer_nofollow(source: str) -> None:
    """Every <a> in the output, with or without href, carries the contract's rel."""
    output = render_markdown(source)
    anchors = re.findall(r"<a\b[^>]*>", output)
    for anchor in anchors:
        assert f'rel="{LINK_REL}"' in anchor
        assert anchor.count("rel=") == 1
    assert_no_executable_markup(output)


def test_u_xss_06_rendering_is_deterministic() -> None:
    """Rendering the corpus twice, and concurrently, yields identical bytes."""
    first = [render_markdown(p) for p in PAYLOADS]
    second = [render_markdown(p) for p in PAYLOADS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(render_markdown, PAYLOADS * 4))
    assert first == second
    assert concurrent == first * 4


@settings(deadline=None)
@given(any_text | markdownish)
def test_u_xss_06_rendering_is_deterministic_for_any_text(source: str) -> None:
    """For any str (controls, NUL, lone surrogates), rendering never raises and repeats."""
    assert render_markdown(source) == render_markdown(source)


# --- S-XSS-01..03 --------------------------------------------------------------


def test_corpus_is_large_and_distinct() -> None:
    """The XSS corpus holds at least 70 distinct string payloads."""
    assert all(isinstance(p, str) for p in PAYLOADS)
    assert len(set(PAYLOADS)) == len(PAYLOADS) >= 70


@pytest.mark.parametrize("payload", PAYLOADS, ids=[str(i) for i in range(len(PAYLOADS))])
def test_s_xss_01_corpus_renders_no_executable_markup(payload: str) -> None:
    """Each stored-XSS payload renders to allowlisted, inert HTML only."""
    assert_no_executable_markup(render_markdown(payload))


@pytest.mark.parametrize("payload", PAYLOADS, ids=[str(i) for i in range(len(PAYLOADS))])
def test_s_xss_01_sanitizer_stage_alone_neutralises_raw_html(payload: str) -> None:
    """Defence in depth: the sanitizer stage by itself makes each payload, read as HTML, inert.

    markdown-it already escapes raw HTML, so the rendering tests cannot tell
    whether the sanitizer would still catch it; this feeds the payload straight
    to the module's sanitizer.
    """
    assert_no_executable_markup(markdown_policy._SANITIZER.clean(payload))


@pytest.mark.parametrize(
    ("source", "href"),
    [
        ("[x](https://ok.example/a?b=1)", "https://ok.example/a?b=1"),
        ("[x](HTTPS://OK.example)", "HTTPS://OK.example"),
        ("<https://ok.example>", "https://ok.example"),
        ("[x](http://plain.example)", None),
        ("[x](mailto:someone@example.com)", None),
        ("[x](/relative/path)", None),
        ("[x](relative)", None),
        ("[x](#fragment)", None),
        ("[x](?query)", None),
        ("[x](//evil.example/x)", None),
        ("[x](https:evil.example)", None),
        ("[x](https:///evil.example)", None),
        ("[x](ftp://files.example)", None),
        ("[x](data:text/plain,hi)", None),
        ("[x](javascript:alert(1))", None),
    ],
)
def test_s_xss_02_links_keep_only_https(source: str, href: str | None) -> None:
    """Absolute https links keep their href; every other destination loses it.

    markdown-it refuses some destinations (``data:`` here) before the sanitizer
    runs; those stay literal text, which also has no href.
    """
    output = render_markdown(source)
    if href is None:
        assert "href" not in output
    else:
        assert f'<a href="{href}" rel="{LINK_REL}">' in output
    assert_no_executable_markup(output)


@pytest.mark.parametrize("payload", PAYLOADS, ids=[str(i) for i in range(len(PAYLOADS))])
def test_s_xss_03_corpus_output_is_stable_and_sanitized_twice(payload: str) -> None:
    """Stored HTML is a fixed point of an independent allowlist sanitizer and is stable.

    Re-cleaning the output with a sanitizer configured from the contract (not
    from the module) changes nothing: no tag, attribute or URL is left for it
    to remove and no link lacks the rel it would add. A second render of the
    same source gives the same bytes, so stored HTML never drifts.
    """
    output = render_markdown(payload)
    assert REFERENCE_SANITIZER.clean(output) == output
    assert render_markdown(payload) == output
    assert_no_executable_markup(output)


@settings(deadline=None)
@given(any_text | markdownish)
def test_s_xss_arbitrary_text_renders_no_executable_markup(source: str) -> None:
    """For any str, the output is inert and a fixed point of the reference sanitizer."""
    output = render_markdown(source)
    assert_no_executable_markup(output)
    assert REFERENCE_SANITIZER.clean(output) == output


# --- ordinary markdown still works ------------------------------------------------


def test_headings_emphasis_and_lists_render() -> None:
    """Headings, emphasis, quotes, rules and both list kinds render as expected."""
    source = "# One\n\n###### Six\n\n*em* **strong**\n\n- a\n- b\n\n3. c\n4. d\n\n> q\n\n---\n"
    assert render_markdown(source) == (
        "<h1>One</h1>\n<h6>Six</h6>\n<p><em>em</em> <strong>strong</strong></p>\n"
        "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"
        '<ol start="3">\n<li>c</li>\n<li>d</li>\n</ol>\n'
        "<blockquote>\n<p>q</p>\n</blockquote>\n<hr>\n"
    )


def test_code_keeps_angle_brackets_escaped() -> None:
    """Code spans and fenced blocks keep '<' escaped and drop the language class."""
    output = render_markdown("`a<b`\n\n```python\nif a < b: print('<b>')\n```\n")
    assert output == (
        "<p><code>a&lt;b</code></p>\n<pre><code>if a &lt; b: print('&lt;b&gt;')\n</code></pre>\n"
    )


def test_hard_line_break_renders_br() -> None:
    """A hard line break renders as <br>."""
    assert render_markdown("a  \nb") == "<p>a<br>\nb</p>\n"


def test_https_link_is_preserved_with_title_and_rel() -> None:
    """An https link keeps href and title, gets rel, and escapes the title's quotes."""
    output = render_markdown('[site](https://ok.example/p?a=1&b=2 "A \\"title\\"")')
    assert output == (
        '<p><a href="https://ok.example/p?a=1&amp;b=2" title="A &quot;title&quot;" '
        f'rel="{LINK_REL}">site</a></p>\n'
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("![a *cat* <3](https://img.example/cat.png)", "<p>a cat &lt;3</p>\n"),
        ("![](https://img.example/cat.png)", "<p></p>\n"),
        # markdown-it refuses the destination, so the source stays literal text.
        ("![x](javascript:alert(1))", "<p>![x](javascript:alert(1))</p>\n"),
        (
            "[![logo](https://img.example/l.png)](https://ok.example)",
            f'<p><a href="https://ok.example" rel="{LINK_REL}">logo</a></p>\n',
        ),
    ],
)
def test_images_render_as_alt_text(source: str, expected: str) -> None:
    """A markdown image renders as its escaped alt text, never as <img>."""
    assert render_markdown(source) == expected


def test_nul_and_lone_surrogates_become_replacement_characters() -> None:
    """U+0000 and lone surrogates render as U+FFFD instead of raising."""
    assert render_markdown("a\x00b\ud800c\udfffd") == "<p>a\ufffdb\ufffdc\ufffdd</p>\n"


def test_rendered_keeps_source_html_and_renderer_version() -> None:
    """rendered() stores the source beside its HTML and the renderer version, frozen."""
    result = rendered("*hi* <b>")
    assert result == RenderedMarkdown(
        "*hi* <b>", "<p><em>hi</em> &lt;b&gt;</p>\n", RENDERER_VERSION
    )
    assert RENDERER_VERSION == "fp-md-2"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.html = "<script>"  # type: ignore[misc]


def test_public_api_is_exactly_the_contracted_names() -> None:
    """The policy module exports exactly its five public names."""
    assert sorted(markdown_policy.__all__) == [
        "RENDERER_VERSION",
        "RenderedMarkdown",
        "current",
        "render_markdown",
        "rendered",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "[x](https://user:pw@evil.com)",
        "[x](https://trusted.example@evil.com/)",
        "<https://trusted.example@evil.com/>",
        "[x](https://user@evil.com/path)",
        "[x][ref]\n\n[ref]: https://user:pw@evil.com",
        "[x](https://evil.com:99999/)",
        "[x](https://bad_host.example/)",
        "[x](https://1.2.3/)",
    ],
)
def test_u_xss_03_links_the_url_policy_refuses_lose_their_href(source: str) -> None:
    """Inside markdown, a link keeps its href only when the URL policy accepts it (issue 14.3).

    Credentials in the authority (``https://trusted.example@evil.com/`` is the
    classic phishing form), bad ports and invalid hosts are refused as they are
    in ``links.docsUrl``.
    """
    output = render_markdown(source)
    assert "href" not in output
    assert "@evil.com" not in output.split(">", 1)[0]
    assert_no_executable_markup(output)


@pytest.mark.parametrize(
    "source",
    ["![x](https://user:pw@evil.com/a.png)", "![x](https://trusted.example@evil.com/a.png)"],
)
def test_u_xss_03_images_with_credentials_render_no_url(source: str) -> None:
    """Markdown images render as alt text only, so no URL of theirs reaches the output."""
    assert render_markdown(source) == "<p>x</p>\n"


def test_u_xss_03_markdown_links_and_listing_links_share_one_url_policy() -> None:
    """Every href the renderer keeps is a URL the URL policy accepts, and vice versa."""
    urls = [
        "https://ok.example/a?b=1&c=2#d",
        "https://user:pw@evil.com",
        "https://trusted.example@evil.com/",
        "https://[::1]:8443/x",
        "https://xn--bcher-kva.de/",
        "https://evil.com:0/",
    ]
    for url in urls:
        kept = "href" in render_markdown(f"[x](<{url}>)")
        assert kept is (url_problem(url) is None), url


def test_stored_html_of_an_older_renderer_is_rendered_again() -> None:
    """current() keeps HTML of this renderer and re-renders HTML stored by an older one."""
    stale = RenderedMarkdown(
        "[x](https://user:pw@evil.com)", '<a href="https://user:pw@evil.com">x</a>', "fp-md-1"
    )
    fresh = markdown_policy.current(stale)
    assert fresh == rendered(stale.markdown)
    assert "href" not in fresh.html
    up_to_date = rendered("*hi*")
    assert markdown_policy.current(up_to_date) is up_to_date
