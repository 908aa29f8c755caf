"""The console's install-attempts chart: inline SVG rendered on the server.

One bar per day over the last 30 days, stacked by release, with an
accessible title and description and a text legend; no script, no style
attribute (colours come from CSS classes, so the page's strict CSP holds),
no chart library.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Final

from markupsafe import Markup, escape

from fleetprompt_core.base import limits
from fleetprompt_core.services.storefront import DailyActivity

__all__ = ["activity_chart"]

_WIDTH: Final = 600
_HEIGHT: Final = 160
_PAD_LEFT: Final = 28
_PAD_BOTTOM: Final = 20
_SERIES: Final = 6  # CSS classes chart-s0..chart-s5


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%b %d")


def activity_chart(activity: DailyActivity, versions: Mapping[str, str]) -> Markup:
    """An ``<svg>`` of install attempts per day, one colour per release."""
    totals = activity.total
    peak = max(max(totals, default=0), 1)
    plot_w = _WIDTH - _PAD_LEFT
    plot_h = _HEIGHT - _PAD_BOTTOM
    slot = plot_w / activity.days
    bar = max(slot - 3, 1)
    releases = list(activity.per_release)
    parts: list[str] = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Install attempts per day, last 30 days</title>',
        f'<desc id="chart-desc">{sum(totals)} install attempts in total; '
        f"the busiest day had {max(totals, default=0)}.</desc>",
        f'<line class="chart-axis" x1="{_PAD_LEFT}" y1="{plot_h}" x2="{_WIDTH}" y2="{plot_h}"/>',
        f'<text class="chart-label" x="0" y="12">{peak}</text>',
        f'<text class="chart-label" x="0" y="{plot_h}">0</text>',
    ]
    for day in range(activity.days):
        x = _PAD_LEFT + day * slot
        y = float(plot_h)
        for index, release_id in enumerate(releases):
            count = activity.per_release[release_id][day]
            if not count:
                continue
            height = plot_h * count / peak
            y -= height
            label = escape(versions.get(release_id, "a release"))
            when = _day(activity.first_day_ms + day * limits.DAY_MS)
            parts.append(
                f'<rect class="chart-s{index % _SERIES}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}"><title>{when}: '
                f"{count} for {label}</title></rect>"
            )
    for day in (0, activity.days // 2, activity.days - 1):
        x = _PAD_LEFT + day * slot
        text = _day(activity.first_day_ms + day * limits.DAY_MS)
        parts.append(
            f'<text class="chart-label" x="{x:.1f}" y="{_HEIGHT - 4}">{escape(text)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch chart-s{i % _SERIES}"></span>'
        f"{escape(versions.get(r, r))}: {sum(activity.per_release[r])}</li>"
        for i, r in enumerate(releases)
    )
    if not releases:
        legend = "<li>No install attempts in the last 30 days.</li>"
    return Markup("".join(parts) + f'<ul class="chart-legend">{legend}</ul>')  # noqa: S704
