"""The one markdown policy of FleetPrompt (contract §3, "Markdown policy").

Listing descriptions, release notes and publisher bios are user-generated
CommonMark. They are rendered once, at write time, and the sanitized HTML is
stored next to the source together with :data:`RENDERER_VERSION`; when the
output of this module changes, bump the version so stored HTML is re-rendered.

The pipeline is:

1. **Normalise the input.** Lone surrogates (which cannot be encoded) and
   U+0000 (which CommonMark requires to be replaced) become U+FFFD, so every
   Python ``str`` renders without raising.
2. **CommonMark without raw HTML.** markdown-it-py's ``commonmark`` preset with
   ``html=False``: HTML in the source is escaped as text, never passed through.
   markdown-it's own link validation already refuses ``javascript:``,
   ``vbscript:``, ``file:`` and ``data:`` destinations.
3. **Images are not shown in v1.** A markdown image ``![alt](url)`` renders as
   its escaped alt text only; no ``<img>`` is ever produced, so UGC markdown
   cannot make the reader's browser fetch a URL.
4. **Allowlist sanitizer (nh3).** Only ``p br hr h1..h6 strong em code pre
   blockquote ul ol li a`` survive; ``script``/``style`` lose their content as
   well. Attributes: ``a[href title]`` and ``ol[start]``, nothing else (no
   ``style``, no ``class``, no ``id``, no event handlers). A link keeps its
   ``href`` only when it passes the one URL policy of the contract
   (:func:`fleetprompt_core.policies.urls.url_problem`: ``https://`` with a
   valid host, no credentials such as ``user:pw@``, no whitespace or
   invisible characters...); any other ``href`` is removed and the ``<a>``
   stays without it. Every ``<a>`` gets ``rel="noopener noreferrer nofollow"``.

The output is deterministic (same input, same bytes) and the module holds no
mutable state: the parser and the sanitizer are built once at import and are
safe to share between threads (each call gets a fresh markdown-it ``env``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs
import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from fleetprompt_core.policies.urls import url_problem

__all__ = [
    "RENDERER_VERSION",
    "RenderedMarkdown",
    "current",
    "render_markdown",
    "rendered",
]

RENDERER_VERSION: str = "fp-md-2"
"""Identifies the output of :func:`render_markdown`; bump it when output changes."""

_ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
    }
)
_CLEAN_CONTENT_TAGS: frozenset[str] = frozenset({"script", "style"})
_ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "ol": frozenset({"start"}),
}
_LINK_REL = "noopener noreferrer nofollow"

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3 ``attribute_filter``: drop every ``href`` the URL policy refuses.

    ``url_schemes={"https"}`` already removes other schemes; the URL policy
    also removes relative and protocol-relative (``//host``) URLs, host-less
    ``https:`` values and URLs with credentials (``https://trusted@evil``),
    which a scheme allowlist cannot express. It never raises (nh3 would
    report an exception through ``sys.unraisablehook`` and strip the value).
    """
    if attribute == "href" and not (tag == "a" and url_problem(value) is None):
        return None
    return value


_SANITIZER = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    clean_content_tags=_CLEAN_CONTENT_TAGS,
    attributes=_ALLOWED_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    strip_comments=True,
    link_rel=_LINK_REL,
    generic_attribute_prefixes=set(),
    url_schemes={"https"},
    url_relative="deny",
)


def _render_image_as_alt_text(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """markdown-it render rule: an image becomes its escaped alt text only."""
    children = tokens[idx].children or []
    return escapeHtml(self.renderInlineAsText(children, options, env))


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_MARKDOWN.add_render_rule("image", _render_image_as_alt_text)


def _normalise(source: str) -> str:
    """Replace what cannot be encoded (lone surrogates) and U+0000 with U+FFFD."""
    return _SURROGATE.sub("\ufffd", source).replace("\x00", "\ufffd")


def render_markdown(source: str) -> str:
    """Render UGC markdown to sanitized HTML under the one policy of the contract."""
    html = _MARKDOWN.render(_normalise(source), {})
    return _SANITIZER.clean(html)


@attrs.frozen
class RenderedMarkdown:
    """A markdown source with the sanitized HTML rendered from it at write time."""

    markdown: str
    html: str
    renderer: str


def rendered(source: str) -> RenderedMarkdown:
    """Render ``source`` and keep the source, the HTML and the renderer version together."""
    return RenderedMarkdown(source, render_markdown(source), RENDERER_VERSION)


def current(value: RenderedMarkdown) -> RenderedMarkdown:
    """``value`` as this renderer renders it: re-rendered when it was stored by another.

    Storage adapters apply it when they load stored HTML, so output written
    under an older policy (an earlier :data:`RENDERER_VERSION`) never reaches
    a reader.
    """
    return value if value.renderer == RENDERER_VERSION else rendered(value.markdown)
