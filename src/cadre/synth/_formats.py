"""The many ways people write a date or an amount of money; shared by the invoice and normalization tasks.

Every formatter is a pure function of the value, so the canonical answer can always be recomputed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = [
    "AMOUNT_FORMATS",
    "CURRENCY_SYMBOLS",
    "DATE_FORMATS",
    "MONTHS",
    "amount_ok",
    "canonical_amount",
    "canonical_date",
    "number_words",
]

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CHF": "CHF ", "CAD": "C$"}


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def canonical_date(y: int, m: int, d: int) -> str:
    """ISO 8601 calendar date, the normalization target (``2024-03-03``)."""
    return dt.date(y, m, d).isoformat()


def canonical_amount(cents: int) -> str:
    """A plain decimal with two places and no separators, the normalization target (``1200.00``)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


# Numeric dates with slashes are month/day/year (US); with dots they are day.month.year (European).
DATE_FORMATS: dict[str, Callable[[int, int, int], str]] = {
    "month_ordinal": lambda y, m, d: f"{MONTHS[m - 1]} {_ordinal(d)}, {y}",
    "month_day_year": lambda y, m, d: f"{MONTHS[m - 1]} {d}, {y}",
    "day_month_year": lambda y, m, d: f"{d} {MONTHS[m - 1]} {y}",
    "abbrev": lambda y, m, d: f"{MONTHS[m - 1][:3]} {d}, {y}",
    "ordinal_of": lambda y, m, d: f"the {_ordinal(d)} of {MONTHS[m - 1]}, {y}",
    "us_slash": lambda y, m, d: f"{m:02d}/{d:02d}/{y}",
    "us_slash_short": lambda y, m, d: f"{m}/{d}/{y % 100:02d}",
    "eu_dots": lambda y, m, d: f"{d:02d}.{m:02d}.{y}",
    "iso_slash": lambda y, m, d: f"{y}/{m}/{d}",
    "weekday": lambda y, m, d: f"{dt.date(y, m, d).strftime('%A')}, {MONTHS[m - 1]} {d}, {y}",
    "compact": lambda y, m, d: f"{y}{m:02d}{d:02d}",
    "abbrev_dash": lambda y, m, d: f"{d:02d}-{MONTHS[m - 1][:3]}-{y}",
}


def _grouped(units: int, sep: str) -> str:
    return f"{units:,}".replace(",", sep)


_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """English words for 0 <= n < 1000 (``342`` -> ``three hundred forty-two``)."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_words supports 0..999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


def _symbol(cur: str) -> str:
    return CURRENCY_SYMBOLS.get(cur, cur + " ")


def _money_words(cents: int, cur: str) -> str:
    unit = {"USD": "dollars", "EUR": "euros", "GBP": "pounds", "CHF": "francs", "CAD": "dollars"}[cur]
    sub = {"GBP": "pence"}.get(cur, "cents")
    text = f"{number_words(cents // 100)} {unit}"
    return text + (f" and {number_words(cents % 100)} {sub}" if cents % 100 else "")


def _k(cents: int, cur: str) -> str:
    return f"{_symbol(cur)}{cents / 100_000:g}k"


def _m(cents: int, cur: str) -> str:
    return f"{_symbol(cur)}{cents / 100_000_000:g}M"


AMOUNT_FORMATS: dict[str, Callable[[int, str], str]] = {
    "symbol": lambda c, cur: f"{_symbol(cur)}{_grouped(c // 100, ',')}.{c % 100:02d}",
    "symbol_plain": lambda c, cur: f"{_symbol(cur)}{c // 100}.{c % 100:02d}",
    "code_after": lambda c, cur: f"{_grouped(c // 100, ',')}.{c % 100:02d} {cur}",
    "code_before": lambda c, cur: f"{cur} {_grouped(c // 100, ',')}.{c % 100:02d}",
    "european": lambda c, cur: f"{_grouped(c // 100, '.')},{c % 100:02d} {_symbol(cur).strip()}",
    "space_thousands": lambda c, cur: f"{_grouped(c // 100, ' ')},{c % 100:02d} {cur}",
    "short_decimal": lambda c, cur: (
        f"{c // 100}.{c % 100 // 10} {cur}" if c % 10 == 0 else f"{c / 100:.2f} {cur}"
    ),
    "whole": lambda c, cur: f"{_symbol(cur)}{_grouped(c // 100, ',')}",
    "k_suffix": _k,
    "m_suffix": _m,
    "words": _money_words,
    "million_words": lambda c, cur: f"{c / 100_000_000:g} million {_money_words(100, cur).split(' ', 1)[1]}",
}


def amount_ok(fmt: str, cents: int) -> bool:
    """Whether ``cents`` can be written in ``fmt`` without losing precision (so the answer stays exact)."""
    if fmt == "whole":
        return cents % 100 == 0
    if fmt == "k_suffix":
        return cents % 10_000 == 0 and 100_000 <= cents < 100_000_000
    if fmt in ("m_suffix", "million_words"):
        return cents % 1_000_000 == 0 and cents >= 100_000_000
    if fmt == "words":
        return cents < 100_000
    return cents >= 0
