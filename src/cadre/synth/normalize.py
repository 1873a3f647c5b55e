"""Date and amount normalization: a free-form date or money amount in, its canonical form out (exact answer).

Dates become ISO ``YYYY-MM-DD``; amounts become a plain decimal with two places (``$1.2k`` -> ``1200.00``).
The conventions are stated in the system prompt: numeric dates with slashes are month/day/year, with dots
day.month.year; two-digit years are 20xx; the currency is dropped.
"""

from __future__ import annotations

import random
from typing import Any

from cadre.errors import ConfigError
from cadre.synth._formats import (
    AMOUNT_FORMATS,
    CURRENCY_SYMBOLS,
    DATE_FORMATS,
    amount_ok,
    canonical_amount,
    canonical_date,
)

__all__ = ["GENERATOR", "NormalizeGenerator"]

_WRAPPERS = (
    "Normalize: {value}",
    "Normalize this value: {value}",
    "{value}",
    "Convert to canonical form: {value}",
    'What is the canonical form of "{value}"?',
    "normalize {value}",
    "Standardize the following: {value}",
    "Please normalize {value} for the database.",
)
# Amount magnitudes paired with the formats that can express them exactly.
_AMOUNT_FORMAT_NAMES = tuple(AMOUNT_FORMATS)


def _sample_cents(fmt: str, rng: random.Random) -> int:
    if fmt == "k_suffix":
        return rng.randrange(10, 9999) * 10_000  # 1.0k .. 999.9k
    if fmt in ("m_suffix", "million_words"):
        return rng.randrange(100, 9999) * 1_000_000  # 1.00M .. 99.99M in 0.01M steps
    if fmt == "words":
        return rng.randrange(1, 999) * 100 + rng.choice((0, 0, rng.randrange(1, 100)))
    if fmt == "whole":
        return rng.randrange(1, 100000) * 100
    return rng.randrange(1, 10 ** rng.randrange(3, 9))


class NormalizeGenerator:
    """Free-form dates and amounts → ``YYYY-MM-DD`` or ``1234.50``."""

    name = "normalize"
    kind = "normalization"
    description = "Date and amount normalization to canonical strings (ISO dates, plain two-decimal amounts)."
    metric = "exact_match"
    labels = None
    resample_kinds = ("numbers",)
    system_prompt = (
        "Normalize the value. Dates: reply YYYY-MM-DD (numeric dates with slashes are month/day/year, with dots "
        "day.month.year; two-digit years are 20xx). Amounts of money: reply the number with two decimals, no "
        "currency and no separators (e.g. 1200.00). Reply with the normalized value only."
    )

    def sample_fields(self, rng: random.Random) -> dict[str, Any]:
        kind = rng.choice(("date", "amount"))
        fields: dict[str, Any] = {
            "kind": kind,
            "wrapper": rng.randrange(len(_WRAPPERS)),
            "format": rng.choice(tuple(DATE_FORMATS)) if kind == "date" else rng.choice(_AMOUNT_FORMAT_NAMES),
            "currency": rng.choice(tuple(CURRENCY_SYMBOLS)),
        }
        fields.update(self._numbers(fields, rng))
        return fields

    @staticmethod
    def _numbers(fields: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        if fields["kind"] == "date":
            import calendar

            y, m = rng.randrange(1990, 2036), rng.randrange(1, 13)
            if fields["format"] == "us_slash_short":
                y = rng.randrange(2000, 2036)
            return {"year": y, "month": m, "day": rng.randrange(1, calendar.monthrange(y, m)[1] + 1)}
        cents = _sample_cents(fields["format"], rng)
        assert amount_ok(fields["format"], cents), (fields["format"], cents)
        return {"cents": cents}

    def render(self, fields: dict[str, Any]) -> str:
        if fields["kind"] == "date":
            value = DATE_FORMATS[fields["format"]](fields["year"], fields["month"], fields["day"])
        else:
            value = AMOUNT_FORMATS[fields["format"]](fields["cents"], fields["currency"])
        return _WRAPPERS[fields["wrapper"]].format(value=value)

    def answer(self, fields: dict[str, Any]) -> str:
        if fields["kind"] == "date":
            return canonical_date(fields["year"], fields["month"], fields["day"])
        return canonical_amount(fields["cents"])

    def resample(self, fields: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
        if kind != "numbers":
            raise ConfigError(
                f"normalize cannot re-sample {kind!r}; use one of {', '.join(self.resample_kinds)}"
            )
        fields.update(self._numbers(fields, rng))
        return fields


GENERATOR = NormalizeGenerator()
