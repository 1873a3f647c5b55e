"""Invoice / order field extraction: a document in, a JSON object with five fields out (structured output).

Documents come in several layouts (email prose, key-value block, order confirmation, one-line OCR, forwarded
message) with distractors a careless extractor picks up: the due date next to the invoice date, subtotal and tax
next to the total, PO and customer numbers next to the invoice number, the customer's name next to the vendor's.
"""

from __future__ import annotations

import random
from typing import Any

from cadre.errors import ConfigError
from cadre.synth._formats import AMOUNT_FORMATS, DATE_FORMATS, amount_ok, canonical_amount, canonical_date
from cadre.synth._vocab import CITIES, CUSTOMER_NAMES, PRODUCTS, STREETS, VENDORS

__all__ = ["FIELDS", "GENERATOR", "InvoiceGenerator"]

FIELDS = ("invoice_number", "date", "vendor", "total", "currency")
_CURRENCIES = ("USD", "EUR", "GBP", "CHF", "CAD")
_MONEY_FORMATS = ("symbol", "symbol_plain", "code_after", "code_before", "european")
_DOC_DATE_FORMATS = (
    "month_day_year",
    "day_month_year",
    "abbrev",
    "eu_dots",
    "us_slash",
    "weekday",
    "abbrev_dash",
)
_LAYOUTS = ("email", "block", "order", "oneline", "forwarded")


def _days_in_month(y: int, m: int) -> int:
    import calendar

    return calendar.monthrange(y, m)[1]


def _shift(y: int, m: int, d: int, days: int) -> tuple[int, int, int]:
    import datetime as dt

    t = dt.date(y, m, d) + dt.timedelta(days=days)
    return t.year, t.month, t.day


class InvoiceGenerator:
    """Invoice / order documents → ``{"invoice_number", "date", "vendor", "total", "currency"}``."""

    name = "invoices"
    kind = "extraction"
    description = (
        "Invoice and order field extraction to JSON (invoice_number, date, vendor, total, currency)."
    )
    metric = "json_field_match"
    labels = None
    resample_kinds = ("numbers", "names")
    system_prompt = (
        "Extract the invoice fields from the document. Reply with one JSON object with exactly these keys: "
        '"invoice_number" (string), "date" (the issue date, YYYY-MM-DD), "vendor" (the seller, string), '
        '"total" (the final amount due, a number), "currency" (ISO code such as USD or EUR).'
    )

    def sample_fields(self, rng: random.Random) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "layout": rng.choice(_LAYOUTS),
            "date_format": rng.choice(_DOC_DATE_FORMATS),
            "money_format": rng.choice(_MONEY_FORMATS),
            "currency": rng.choice(_CURRENCIES),
            "number_style": rng.randrange(4),
        }
        fields.update(self._numbers(rng))
        fields.update(self._names(rng))
        if fields["money_format"] == "european" and fields["currency"] not in ("EUR", "CHF"):
            fields["money_format"] = "symbol"
        return fields

    @staticmethod
    def _numbers(rng: random.Random) -> dict[str, Any]:
        y, m = rng.randrange(2019, 2027), rng.randrange(1, 13)
        d = rng.randrange(1, _days_in_month(y, m) + 1)
        items = [
            {"qty": rng.randrange(1, 6), "unit_cents": rng.randrange(199, 49999)}
            for _ in range(rng.randrange(1, 4))
        ]
        return {
            "year": y,
            "month": m,
            "day": d,
            "due_days": rng.choice((14, 15, 30, 30, 45, 60)),
            "serial": rng.randrange(1, 99999),
            "po": rng.randrange(10000, 99999),
            "customer_id": rng.randrange(1000, 9999),
            "items": items,
            "tax_rate": rng.choice((0, 5, 7, 8, 10, 19, 20)),
            "shipping_cents": rng.choice((0, 0, 499, 995, 1500, 2500)),
        }

    @staticmethod
    def _names(rng: random.Random) -> dict[str, Any]:
        return {
            "vendor": rng.choice(VENDORS),
            "customer": rng.choice(CUSTOMER_NAMES),
            "city": rng.choice(CITIES),
            "street": f"{rng.randrange(1, 200)} {rng.choice(STREETS)}",
            "products": rng.sample(PRODUCTS, 3),
        }

    # -- derived values -------------------------------------------------------------------------------------------
    @staticmethod
    def _invoice_number(f: dict[str, Any]) -> str:
        s = f["serial"]
        return (f"INV-{f['year']}-{s:05d}", f"{s + 100000}", f"A{s:05d}", f"{f['year']}/{s:05d}")[
            f["number_style"]
        ]

    @staticmethod
    def _amounts(f: dict[str, Any]) -> tuple[int, int, int]:
        subtotal = sum(it["qty"] * it["unit_cents"] for it in f["items"])
        tax = round(subtotal * f["tax_rate"] / 100)
        return subtotal, tax, subtotal + tax + f["shipping_cents"]

    def _money(self, f: dict[str, Any], cents: int) -> str:
        fmt = f["money_format"] if amount_ok(f["money_format"], cents) else "symbol"
        return AMOUNT_FORMATS[fmt](cents, f["currency"])

    def render(self, f: dict[str, Any]) -> str:
        date = DATE_FORMATS[f["date_format"]](f["year"], f["month"], f["day"])
        due = DATE_FORMATS[f["date_format"]](*_shift(f["year"], f["month"], f["day"], f["due_days"]))
        number = self._invoice_number(f)
        subtotal, tax, total = self._amounts(f)
        money = lambda c: self._money(f, c)  # noqa: E731
        lines = [
            f"{it['qty']} x {f['products'][i]} @ {money(it['unit_cents'])} = {money(it['qty'] * it['unit_cents'])}"
            for i, it in enumerate(f["items"])
        ]
        ship = f"Shipping: {money(f['shipping_cents'])}\n" if f["shipping_cents"] else ""
        layout = f["layout"]
        if layout == "email":
            return (
                f"Hi {f['customer'].split()[0]},\n\nPlease find attached invoice {number} from {f['vendor']}, "
                f"issued on {date} for your PO {f['po']}. The subtotal is {money(subtotal)} plus {f['tax_rate']}% "
                f"tax ({money(tax)})"
                + (f" and {money(f['shipping_cents'])} shipping" if f["shipping_cents"] else "")
                + f", so the total due is {money(total)}. Payment is due by {due}.\n\nBest regards,\n"
                f"Accounts team, {f['vendor']}"
            )
        if layout == "block":
            return (
                f"{f['vendor'].upper()}\n{f['street']}, {f['city']}\n\nINVOICE\nInvoice No.: {number}\n"
                f"Invoice date: {date}\nDue date: {due}\nCustomer ID: {f['customer_id']}\nBill to: {f['customer']}\n\n"
                + "\n".join(lines)
                + f"\n\nSubtotal: {money(subtotal)}\nTax ({f['tax_rate']}%): {money(tax)}\n{ship}"
                f"TOTAL DUE: {money(total)}"
            )
        if layout == "order":
            return (
                f"Order confirmation\n\nThank you for shopping with {f['vendor']}, {f['customer']}!\n"
                f"Order number: {number}\nOrder date: {date}\nEstimated delivery: {due}\n\n"
                + "\n".join(lines)
                + f"\nItems: {money(subtotal)}\nTax: {money(tax)}\n{ship}Order total: {money(total)}\n"
                f"Ship to: {f['street']}, {f['city']}"
            )
        if layout == "oneline":
            return (
                f"INVOICE {number} | {f['vendor']} | Date {date} | Due {due} | PO {f['po']} | "
                f"Net {money(subtotal)} | Tax {money(tax)} | Total {money(total)}"
            )
        return (
            f"---------- Forwarded message ----------\nFrom: billing@{f['vendor'].split()[0].lower()}.example\n"
            f"To: {f['customer']}\nSubject: Your invoice {number}\n\n{f['vendor']} invoice {number} dated {date}.\n"
            + "\n".join(lines)
            + f"\nAmount before tax {money(subtotal)}, tax {money(tax)}. {ship.strip()} "
            f"Please pay {money(total)} by {due}.\n\nCan you check this one? Our ref: {f['customer_id']}."
        )

    def answer(self, f: dict[str, Any]) -> dict[str, Any]:
        total = self._amounts(f)[2]
        return {
            "invoice_number": self._invoice_number(f),
            "date": canonical_date(f["year"], f["month"], f["day"]),
            "vendor": f["vendor"],
            "total": float(canonical_amount(total)),
            "currency": f["currency"],
        }

    def resample(self, fields: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
        if kind == "numbers":
            fields.update(self._numbers(rng))
        elif kind == "names":
            fields.update(self._names(rng))
        else:
            raise ConfigError(
                f"invoices cannot re-sample {kind!r}; use one of {', '.join(self.resample_kinds)}"
            )
        return fields


GENERATOR = InvoiceGenerator()
