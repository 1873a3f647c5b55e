"""Real-looking PII (each must be replaced) and near misses (each must survive), shared by the redaction and
capture tests. Card numbers are the issuers' published test numbers; IBANs are the registry's examples."""

from __future__ import annotations

# (kind, the PII as it would appear in a request)
PII: list[tuple[str, str]] = [
    ("email", "jane.doe@example.com"),
    ("email", "jo.brien+billing@mail.example.co.uk"),
    ("email", "SUPPORT_team-7@sub.example-corp.io"),
    ("card", "4111 1111 1111 1111"),  # Visa test number
    ("card", "5500-0000-0000-0004"),  # Mastercard test number
    ("card", "378282246310005"),  # Amex test number, 15 digits
    ("card", "6011000990139424"),  # Discover test number
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "NL91ABNA0417164300"),
    ("ip", "192.168.1.20"),
    ("ip", "8.8.4.4"),
    ("ip", "2001:db8::8a2e:370:7334"),
    ("ip", "fe80::1ff:fe23:4567:890a"),
    ("phone", "+1 415-555-2671"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "(415) 555-2671"),
    ("phone", "415.555.2671"),
    ("phone", "0049 30 901820"),
    ("phone", "+33612345678"),
]

# Text that looks like PII but is not; it must come through unchanged.
NEAR_MISSES: list[str] = [
    "order 4111 1111 1111 1112",  # 16 digits, fails Luhn
    "tracking 1234567890123456",  # fails Luhn
    "DE89 3704 0044 0532 0130 02",  # IBAN shape, fails mod 97 (and its digits fail Luhn)
    "version 1.2.3 and 10.4",  # not four octets
    "999.12.1.1 is no address",  # octet out of range
    "meet on 2024-01-15 at 10:30:45",  # date and time
    "due 15/01/2024",
    "ISBN 978-3-16-148410-0",
    "zip 94105-1234",
    "invoice INV-2024-00042 total 1,299.00 EUR",
    "std::vector and a::b in C++",
    "ratio 3.14159 and 2.71828",
    "call me at noon",
    "the user@ handle and @example.com alone",
    "order number 123456789",
]
