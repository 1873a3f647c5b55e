from __future__ import annotations

from cadre.runtime.stops import StopMatcher


def feed_all(m: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out = []
    for p in pieces:
        text, stopped = m.feed(p)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + m.flush(), False


def test_no_stops_passes_everything() -> None:
    assert feed_all(StopMatcher(()), ["a", "b"]) == ("ab", False)


def test_stop_split_across_pieces_is_never_emitted() -> None:
    m = StopMatcher(["</end>"])
    assert m.feed("hello </e") == ("hello ", False)
    assert m.feed("nd> more") == ("", True)


def test_held_prefix_is_released_when_it_is_not_a_stop() -> None:
    m = StopMatcher(["\n\n"])
    assert m.feed("a\n") == ("a", False)
    assert m.feed("b") == ("\nb", False)


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopMatcher(["XY", "B"]), ["aXYbB"]) == ("a", True)


def test_flush_after_stop_is_empty() -> None:
    m = StopMatcher(["x"])
    m.feed("ax")
    assert m.flush() == ""


def test_a_model_without_a_chat_template_stops_before_any_next_turn() -> None:
    """Issue 16: the bundled base generalist wrote on past its turn ("... Assistant: ..." again)."""
    from cadre.runtime.stops import StopMatcher
    from cadre.runtime.templates import ChatTemplate

    template = ChatTemplate(None, model="base")
    matcher = StopMatcher(template.extra_stops)
    emitted, stopped = matcher.feed("Paris is the capital.\nAssistant: And also")
    assert stopped and emitted == "Paris is the capital."
    emitted, stopped = StopMatcher(template.extra_stops).feed("Sure.\nUser: thanks")
    assert stopped and emitted == "Sure."
