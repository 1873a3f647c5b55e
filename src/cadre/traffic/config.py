"""The ``capture:`` block of ``ecosystem.yaml``: which answers the gateway records, where, and what it redacts.

Absent, nothing is recorded. Present, it records (``enabled: false`` keeps the block and turns it off).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from cadre.config.base import StrictModel
from cadre.errors import ConfigError
from cadre.traffic.location import check_store

__all__ = ["PII_TYPES", "CaptureSpec", "PiiType", "Price", "RedactionSpec", "RetentionSpec", "ShadowSpec"]

PiiType = Literal["email", "iban", "card", "ip", "phone"]
PII_TYPES: tuple[PiiType, ...] = ("email", "iban", "card", "ip", "phone")
"""The built-in detectors, in the order they run (a span one detector replaced is not seen by the next)."""


class Price(StrictModel):
    """What one model costs, in the currency of your invoice, per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0.0, description="price per million prompt tokens")
    output_per_mtok: float = Field(default=0.0, ge=0.0, description="price per million completion tokens")


class RetentionSpec(StrictModel):
    """How much is kept: the oldest records go first once either bound is passed."""

    max_rows: int = Field(default=100_000, ge=1, description="keep at most this many records")
    max_age_days: float | None = Field(default=30.0, gt=0, description="delete records older than this")


class RedactionSpec(StrictModel):
    """What is replaced by a placeholder (``[EMAIL]``, ``[CARD]``...) before anything is written."""

    types: list[PiiType] = Field(
        default_factory=lambda: list(PII_TYPES), description="built-in detectors to run (all by default)"
    )
    patterns: dict[str, str] = Field(
        default_factory=dict,
        description="your own detectors: NAME -> regular expression (Python syntax); matches become [NAME]",
    )

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", name):
                raise ValueError(
                    f"pattern name {name!r}: use letters, digits and '_' (it becomes [{name.upper()}])"
                )
            try:
                compiled = re.compile(pattern)
            except re.error as err:
                raise ValueError(f"pattern {name!r} is not a valid regular expression: {err}") from None
            if compiled.fullmatch(""):
                raise ValueError(f"pattern {name!r} matches the empty string; it would redact nothing useful")
        return v


class ShadowSpec(StrictModel):
    """A specialist run in shadow: the generalist still answers; the specialist answers the same request off the
    request path, and both answers are logged side by side (``cadre traffic shadow`` compares them)."""

    specialist: str = Field(description="a specialist of this ecosystem (its name under specialists:)")
    scope: Literal["routed", "generalist"] = Field(
        default="routed",
        description="routed: the model='auto' requests the router sends to this specialist (the generalist "
        "answers them instead); generalist: every request the generalist answers",
    )
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0, description="share of those requests shadowed")
    max_in_flight: int = Field(
        default=2,
        ge=1,
        description="shadow generations running at once; a request arriving when they are all busy is not "
        "shadowed (counted as dropped), never waited for",
    )


class CaptureSpec(StrictModel):
    """Record the requests and answers of chosen models (usually the generalist) to a local SQLite file, or to
    PostgreSQL tables when the ecosystem already runs one."""

    enabled: bool = Field(default=True, description="false keeps the block but records nothing")
    store: str = Field(
        default="traffic.db",
        description="SQLite file (relative to the ecosystem file), or PostgreSQL: a postgresql:// URL (optionally "
        "?table_prefix=NAME, default traffic_) or env:NAME to read the URL from an environment variable, e.g. "
        "env:CADRE_PG_DSN (docs/flywheel.md)",
    )
    models: list[str] = Field(
        default_factory=lambda: ["generalist"],
        description="record answers given by these models (a specialist's name, 'generalist', or '*' for all)",
    )
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0, description="share of matching requests recorded")
    retention: RetentionSpec = Field(default_factory=lambda: RetentionSpec())
    redact: RedactionSpec = Field(default_factory=lambda: RedactionSpec())
    queue_size: int = Field(
        default=1024,
        ge=1,
        description="records waiting for the background writer; when full, new records are dropped (counted), "
        "never waited for",
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="per model name: price per million tokens, to record each request's cost (absent: cost 0)",
    )

    shadow: list[ShadowSpec] = Field(
        default_factory=list,
        description="specialists run in shadow beside the generalist, their answers logged to the store "
        "(docs/flywheel.md)",
    )

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(
                "name a SQLite file (traffic.db) or a PostgreSQL URL (postgresql://USER@HOST/DB)"
            )
        try:
            check_store(v)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return v

    @field_validator("shadow")
    @classmethod
    def _shadow(cls, v: list[ShadowSpec]) -> list[ShadowSpec]:
        names = [s.specialist for s in v]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"specialist {name!r} is shadowed twice; keep one entry")
        return v

    def shadowed(self, specialist: str) -> ShadowSpec | None:
        """The shadow entry of ``specialist`` (None when it is not shadowed or capture is off)."""
        if not self.enabled:
            return None
        return next((s for s in self.shadow if s.specialist == specialist), None)

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one model ('generalist', a specialist's name, or '*')")
        return v

    def wants(self, model: str) -> bool:
        """Whether answers by ``model`` are recorded (before sampling)."""
        return self.enabled and ("*" in self.models or model in self.models)
