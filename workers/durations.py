"""LiteLLM's durations: `30s`, `10m`, `1h` (or `1hr`), `1d`, `2w`, `1mo`, used for a key's
`duration` (its expiry) and every `budget_duration` (when spend resets). A month is a calendar
month (Jan 31 + 1mo = Feb 28), as LiteLLM counts it; the rest are fixed lengths."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta

SECONDS = {"s": 1, "m": 60, "h": 3600, "hr": 3600, "d": 86400, "w": 7 * 86400}
PATTERN = re.compile(r"^(?P<count>[0-9]{1,6})(?P<unit>s|m|hr|h|d|w|mo)$")
EXAMPLES = "30s, 10m, 1h, 1d, 2w or 1mo"
# Longer than any budget period or key lifetime anyone means; past it, dates overflow.
MAX_SECONDS = 100 * 365 * 86400
MONTH_SECONDS = 31 * 86400


def check(text: str) -> str:
    """`text` when it is a duration; ValueError saying what one looks like otherwise."""
    match = PATTERN.match(text.strip())
    if match is None or int(match["count"]) == 0:
        raise ValueError(
            f"{text!r} is not a duration: use a positive number and a unit, {EXAMPLES}"
        )
    unit_s = MONTH_SECONDS if match["unit"] == "mo" else SECONDS[match["unit"]]
    if int(match["count"]) * unit_s > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than 100 years")
    return text.strip()


def after(start: datetime, text: str) -> datetime:
    """The moment `text` after `start`."""
    match = PATTERN.match(check(text))
    assert match is not None
    count, unit = int(match["count"]), match["unit"]
    if unit == "mo":
        return add_months(start, count)
    return start + timedelta(seconds=count * SECONDS[unit])


def add_months(start: datetime, months: int) -> datetime:
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)
