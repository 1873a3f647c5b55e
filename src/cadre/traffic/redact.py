"""PII redaction: replace e-mail addresses, IBANs, card numbers, IP addresses, phone numbers and your own patterns
by placeholders (``[EMAIL]``, ``[IBAN]``, ``[CARD]``, ``[IP]``, ``[PHONE]``, ``[NAME]``), counting each kind.

Pattern detectors with checksums where the format has one, as Microsoft Presidio's pattern recognizers do (its
NER part needs spaCy and a downloaded model, so it is not used): a card number must pass the Luhn check and an
IBAN the ISO 13616 mod-97 check, so order numbers and other long digit runs survive. Phone numbers have no
checksum: a run of digits counts as a phone number when it is written like one (a ``+``/``00`` country prefix, an
area code in parentheses, or 10-12 digits in at least three groups with one kind of separator), and never when it
reads as a date. Names of people are not detected.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from cadre.traffic.config import PII_TYPES, RedactionSpec

__all__ = ["Redactor", "iban_valid", "luhn_valid"]

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+.-])(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,5}){1,4}(?![\w-]|[.,]\d)"
)
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers (ISO/IEC 7812-1, annex B)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616's check: move the first four characters to the end, letters to 10..35, the number mod 97 is 1."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rotated = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1


def _card(m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group())
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _iban(m: re.Match[str]) -> bool:
    return iban_valid(m.group())


def _ipv6(m: re.Match[str]) -> bool:
    text = m.group()
    groups = [g for g in text.split(":") if g]
    if len(groups) < 2 or not any(c.isdigit() for c in text):
        return False  # "a::b" in code, "::" alone
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _phone(m: re.Match[str]) -> bool:
    text = m.group()
    if _DATE.search(text):
        return False
    n = sum(c.isdigit() for c in text)
    if text.startswith(("+", "00")):
        return 8 <= n <= 15
    if "(" in text:
        return 9 <= n <= 15
    seps = re.findall(r"[ .-]", text)
    return 10 <= n <= 12 and len(seps) >= 2 and len(set(seps)) == 1


def _always(m: re.Match[str]) -> bool:
    return True


_BUILTIN: dict[str, list[tuple[re.Pattern[str], Callable[[re.Match[str]], bool]]]] = {
    "email": [(_EMAIL, _always)],
    "iban": [(_IBAN, _iban)],
    "card": [(_CARD, _card)],
    "ip": [(_IPV4, _always), (_IPV6, _ipv6)],
    "phone": [(_PHONE, _phone)],
}


def _replace(
    rx: re.Pattern[str], check: Callable[[re.Match[str]], bool], placeholder: str, text: str
) -> tuple[str, int]:
    hits = 0

    def one(m: re.Match[str]) -> str:
        nonlocal hits
        if check(m):
            hits += 1
            return placeholder
        return m.group()

    return rx.sub(one, text), hits


class Redactor:
    """Replaces PII by placeholders. Thread-safe (no state but the compiled patterns).

    Args:
        spec: which built-in detectors run, and your own ``patterns`` (NAME -> regex; matches become ``[NAME]``).
    """

    def __init__(self, spec: RedactionSpec | None = None) -> None:
        spec = spec or RedactionSpec()
        wanted = set(spec.types)
        self._detectors: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], bool]]] = [
            (kind, rx, check) for kind in PII_TYPES if kind in wanted for rx, check in _BUILTIN[kind]
        ]
        self._detectors += [(name, re.compile(rx), _always) for name, rx in spec.patterns.items()]

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(kind for kind, _, _ in self._detectors))

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        """``text`` with every detected span replaced; adds what it replaced, per kind, to ``counts``."""
        for kind, rx, check in self._detectors:
            text, hits = _replace(rx, check, f"[{kind.upper()}]", text)
            if hits and counts is not None:
                counts[kind] += hits
        return text

    def redact_messages(
        self, messages: Iterable[Mapping[str, object]], counts: Counter[str] | None = None
    ) -> list[dict[str, object]]:
        """Chat messages with every string ``content`` and every tool call's ``function.arguments`` redacted
        (other fields kept as they are)."""
        out = []
        for m in messages:
            msg = dict(m)
            if isinstance(msg.get("content"), str):
                msg["content"] = self.redact(str(msg["content"]), counts)
            calls = msg.get("tool_calls")
            if isinstance(calls, list):
                msg["tool_calls"] = [self._redact_call(c, counts) for c in calls]
            out.append(msg)
        return out

    def _redact_call(self, call: object, counts: Counter[str] | None) -> object:
        if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
            return call
        function = dict(call["function"])
        if isinstance(function.get("arguments"), str):
            function["arguments"] = self.redact(function["arguments"], counts)
        return {**call, "function": function}
