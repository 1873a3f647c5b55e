"""Tools a pipeline's ``tool`` steps call: a registry by name, never a module path in YAML.

Built-ins: ``arithmetic`` (``+ - * / // % **`` and parentheses over numbers), ``date`` (parse a date in common
formats, add days, print it in one format), ``regex_extract`` (the first match of a pattern fixed in the file),
and ``http_get`` (off unless the step lists the hosts it may reach). Another package adds tools through the
entry-point group ``cadre.tools`` (``my_tool = "my_pkg.tools:TOOL"``, a :class:`Tool`).
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cadre.registry import Registry

__all__ = ["TOOLS", "Tool", "parse_date"]


@dataclass(frozen=True)
class Tool:
    """A function a pipeline may call: its arguments, the fields of its result, and the function.

    ``fn(args, allowed_hosts)`` gets the rendered arguments and, for a ``network`` tool, the hosts the step
    allows; it returns a JSON value (a mapping with ``fields`` when it declares them). It raises ``ValueError``
    (or any exception) on bad input; the pipeline reports the message as the step's error.
    """

    name: str
    description: str
    fn: Callable[[Mapping[str, Any], Sequence[str]], Any]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    literal: tuple[str, ...] = field(default=())  # arguments that must not be templates (e.g. a regex)
    network: bool = False

    def check_args(self, args: Mapping[str, Any]) -> None:
        """Raise ValueError naming a missing or unknown argument."""
        missing = [a for a in self.required if a not in args]
        if missing:
            raise ValueError(f"tool {self.name!r} needs the argument(s) {', '.join(missing)}")
        unknown = sorted(set(args) - set(self.required) - set(self.optional))
        if unknown:
            allowed = ", ".join([*self.required, *self.optional])
            raise ValueError(
                f"tool {self.name!r} takes no argument {unknown[0]!r} (its arguments: {allowed})"
            )


TOOLS: Registry[Tool] = Registry("tools")

# --- arithmetic -------------------------------------------------------------------------------------------------

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _arith(node: ast.AST) -> float | int:
    # A whitelist walk over the parsed expression: only numbers and the operators above exist here.
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _arith(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _arith(node.left), _arith(node.right)
        if isinstance(node.op, ast.Pow) and (
            abs(right) > 64 or math.log2(abs(left) + 1) * abs(right) > 1024
        ):  # (9**64)**64... would grow without bound: refuse results beyond ~1024 bits
            raise ValueError("exponent too large (at most 64, result at most 2**1024)")
        return _BINOPS[type(node.op)](left, right)  # type: ignore[no-any-return]
    raise ValueError("only numbers, + - * / // % ** and parentheses are allowed")


def _arithmetic(args: Mapping[str, Any], _hosts: Sequence[str]) -> float | int:
    text = str(args["expression"]).replace(",", "").strip()
    if len(text) > 200:
        raise ValueError("expression longer than 200 characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"{text!r} is not an arithmetic expression") from None
    try:
        result = _arith(tree)
    except ZeroDivisionError:
        raise ValueError(f"{text!r} divides by zero") from None
    if isinstance(result, float) and args.get("round") is not None:
        return round(result, int(args["round"]))
    return result


ARITHMETIC = Tool(
    "arithmetic",
    "evaluate an arithmetic expression over numbers (no names, no calls)",
    _arithmetic,
    required=("expression",),
    optional=("round",),
)

# --- dates ------------------------------------------------------------------------------------------------------

_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%d/%m/%Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d %Y",
    "%b %d %Y",
)


def parse_date(text: str) -> dt.date:
    """A date in one of the common formats (ISO first; ``D/M/Y`` before ``M/D/Y`` is never guessed)."""
    cleaned = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text.strip())
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, fmt).date()
        except ValueError:
            continue
    raise ValueError(
        f"{text!r} is not a date in a known format (e.g. 2024-03-05, 5 March 2024, March 5, 2024)"
    )


def _date(args: Mapping[str, Any], _hosts: Sequence[str]) -> str:
    day = parse_date(str(args["date"]))
    days = int(float(args.get("add_days", 0) or 0))
    return (day + dt.timedelta(days=days)).strftime(str(args.get("format", "%Y-%m-%d")))


DATE = Tool(
    "date",
    "parse a date, add days, and print it (default ISO 8601)",
    _date,
    required=("date",),
    optional=("add_days", "format"),
    literal=("format",),
)

# --- regex extract ----------------------------------------------------------------------------------------------


def _regex_extract(args: Mapping[str, Any], _hosts: Sequence[str]) -> dict[str, Any]:
    pattern = re.compile(str(args["pattern"]), re.IGNORECASE if args.get("ignore_case") else 0)
    text = str(args["text"])[:100_000]
    m = pattern.search(text)
    if m is None:
        return {"match": None, "groups": []}
    return {"match": m.group(0), "groups": list(m.groups())}


REGEX_EXTRACT = Tool(
    "regex_extract",
    "the first match of a pattern in a text, with its groups",
    _regex_extract,
    required=("text", "pattern"),
    optional=("ignore_case",),
    fields=("match", "groups"),
    literal=("pattern", "ignore_case"),
)

# --- http get ---------------------------------------------------------------------------------------------------

_MAX_BODY = 100_000


def _http_get(args: Mapping[str, Any], allowed_hosts: Sequence[str]) -> dict[str, Any]:
    import httpx

    url = str(args["url"])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if parts.hostname not in allowed_hosts and host not in allowed_hosts:
        raise ValueError(f"host {host!r} is not in the step's allowed_hosts ({', '.join(allowed_hosts)})")
    with httpx.Client(timeout=float(args.get("timeout_s", 10)), follow_redirects=False) as client:
        response = client.get(url)
    return {"status": response.status_code, "text": response.text[:_MAX_BODY]}


HTTP_GET = Tool(
    "http_get",
    "GET a URL on a host the step allows (off unless the step lists allowed_hosts); no redirects",
    _http_get,
    required=("url",),
    optional=("timeout_s",),
    fields=("status", "text"),
    literal=("timeout_s",),
    network=True,
)

for _tool in (ARITHMETIC, DATE, REGEX_EXTRACT, HTTP_GET):
    TOOLS.register(_tool.name, _tool)
