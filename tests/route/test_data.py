"""Loading and validating routing examples: every bad input gets an error that names the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.errors import DataError, NotFoundError
from cadre.route.data import Example, check_examples, load_examples


def _write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "data.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_load_reads_routes_and_out_of_scope(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        [
            '{"text": "refund my order", "route": "billing"}',
            "",
            '{"text": "what is the capital of Peru?", "route": null}',
            '{"text": "write a haiku", "route": "generalist"}',
        ],
    )
    exs = load_examples(p)
    assert [(e.route, e.line) for e in exs] == [("billing", 1), (None, 3), (None, 4)]


def test_a_row_without_a_route_key_is_an_error_not_out_of_scope(tmp_path: Path) -> None:
    p = _write(tmp_path, ['{"text": "refund my order", "route": "billing"}', '{"text": "tell me a joke"}'])
    with pytest.raises(DataError, match=r':2: no "route" key'):
        load_examples(p)


def test_a_single_route_without_out_of_scope_examples_is_refused() -> None:
    from cadre.route import fit_router

    examples = [Example(text=f"refund order {i}", route="billing") for i in range(12)]
    with pytest.raises(DataError, match="only one route"):
        fit_router(examples)  # refused before any embedding model loads


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"text": "", "route": "billing"}', "non-empty string"),
        ('{"text": "   ", "route": "billing"}', "non-empty string"),
        ('{"route": "billing"}', "non-empty string"),
        ('{"text": "hi", "route": "../etc"}', "not a valid name"),
        ('{"text": "hi", "route": "billing", "lable": 1}', "unknown field"),
        ('{"text": "hi", "route": "billing", "quality": {"specialist": "yes"}}', "quality"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    p = _write(tmp_path, ['{"text": "fine", "route": "billing"}', line])
    with pytest.raises(DataError, match=message) as info:
        load_examples(p)
    assert f"{p}:2" in str(info.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no examples"):
        load_examples(_write(tmp_path, [""]))


def test_too_few_examples_says_how_many_are_needed() -> None:
    exs = [Example(f"billing question {i}", "billing") for i in range(8)]
    exs += [Example(f"shipping question {i}", "shipping") for i in range(3)]
    with pytest.raises(DataError, match=r"at least 8 are needed: shipping: 3 \(add 5\)"):
        check_examples(exs, min_per_route=8)


def test_conflicting_labels_are_an_error_and_duplicates_are_dropped() -> None:
    exs = [Example(f"billing question {i}", "billing") for i in range(3)]
    kept, dropped = check_examples([*exs, Example("  Billing   question 1 ", "billing")], min_per_route=3)
    assert (len(kept), dropped) == (3, 1)
    with pytest.raises(DataError, match="conflicting labels"):
        check_examples([*exs, Example("billing question 1", "shipping")], min_per_route=1)
    with pytest.raises(DataError, match="conflicting labels"):
        check_examples([*exs, Example("billing question 1", None)], min_per_route=1)


def test_no_in_scope_examples_and_empty_text() -> None:
    with pytest.raises(DataError, match="no in-scope examples"):
        check_examples([Example("hello", None)], min_per_route=1)
    with pytest.raises(DataError, match="non-empty"):
        check_examples([Example("", "billing")], min_per_route=1)
