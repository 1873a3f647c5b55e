"""The ``when:`` condition grammar of pipeline steps, parsed here (never Python ``eval``).

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand]
    operand    := ref | string | number | true | false | null | "[" [literal ("," literal)*] "]" | "(" or ")"

A ``ref`` is ``name`` or ``name.field`` as in templates (``intent``, ``input.channel``, ``fields.amount``);
strings are single- or double-quoted. A bare operand is true when it is truthy. Comparing values of different
types (a number with a string) is false, not an error, so a skipped step (None) never breaks a later condition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cadre.ecosystem.template import Ref, parse_ref

__all__ = ["Condition", "parse_condition"]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)"
    r"|(?P<word>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)?))"
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_LITERALS = {"true": True, "false": False, "null": None}


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op in ("in", "not in"):
        inside = isinstance(b, list | tuple | str | Mapping) and (isinstance(b, str) <= isinstance(a, str))
        found = inside and a in b
        return found if op == "in" else not found
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    if not (numeric or (isinstance(a, str) and isinstance(b, str))):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


Node = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its source text, the references it reads, and its evaluator."""

    text: str
    refs: tuple[Ref, ...]
    _eval: Node

    def __call__(self, values: Mapping[str, Any]) -> bool:
        return bool(self._eval(values))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise ValueError(f"when: {text!r}: unexpected {text[pos:].strip()[:12]!r} at character {pos}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.refs: list[Ref] = []

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            want = f"{value!r}" if value else "more"
            got = f"{tok[1]!r}" if tok else "the end"
            raise ValueError(f"when: {self.text!r}: expected {want}, found {got}")
        self.i += 1
        return tok

    def is_word(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok == ("word", word)

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise ValueError(f"when: {self.text!r}: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def or_(self) -> Node:
        nodes = [self.and_()]
        while self.is_word("or"):
            self.take()
            nodes.append(self.and_())
        if len(nodes) == 1:
            return nodes[0]
        either = tuple(nodes)
        return lambda v: any(n(v) for n in either)

    def and_(self) -> Node:
        nodes = [self.not_()]
        while self.is_word("and"):
            self.take()
            nodes.append(self.not_())
        if len(nodes) == 1:
            return nodes[0]
        every = tuple(nodes)
        return lambda v: all(n(v) for n in every)

    def not_(self) -> Node:
        if self.is_word("not"):
            self.take()
            inner = self.not_()
            return lambda v: not inner(v)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        tok = self.peek()
        op: str | None = None
        if (
            tok is not None and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">=")
        ) or self.is_word("in"):
            op = self.take()[1]
        elif self.is_word("not") and self.is_word("in", 1):
            self.take()
            self.take()
            op = "not in"
        if op is None:
            return left
        right = self.operand()
        return lambda v: _compare(op, left(v), right(v))

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "str":
            return text[1:-1]
        if kind == "word" and text in _LITERALS:
            return _LITERALS[text]
        raise ValueError(
            f"when: {self.text!r}: {text!r} is not a literal (a string, number, true/false/null)"
        )

    def operand(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise ValueError(f"when: {self.text!r}: ends where a value was expected")
        kind, text = tok
        if text == "(":
            self.take()
            inner = self.or_()
            self.take(")")
            return inner
        if text == "[":
            self.take()
            items: list[Any] = []
            while not (self.peek() and self.peek() == ("op", "]")):
                items.append(self.literal())
                if self.peek() == ("op", ","):
                    self.take()
                elif self.peek() != ("op", "]"):
                    self.take("]")
            self.take("]")
            values = tuple(items)
            return lambda v: values
        if kind == "word" and text not in _LITERALS:
            if text in _KEYWORDS:
                raise ValueError(f"when: {self.text!r}: {text!r} where a value was expected")
            ref = parse_ref(text)
            self.take()
            self.refs.append(ref)
            return ref.lookup
        value = self.literal()
        return lambda v: value


def parse_condition(text: str) -> Condition:
    """Parse a ``when:`` condition (see the module docstring).

    Raises:
        ValueError: the text does not follow the grammar (the message quotes it and says what was expected).
    """
    if not text.strip():
        raise ValueError("when: is empty; remove it or write a condition such as intent == 'refund'")
    parser = _Parser(text)
    node = parser.parse()
    return Condition(text, tuple(parser.refs), node)
