"""The model card's learning curve: held-out score vs examples seen, and what it says about more data or time."""

from __future__ import annotations

from cadre.train import learning_curve


def test_the_curve_says_whether_the_run_was_still_improving() -> None:
    improving = [
        {"examples_seen": 80, "eval_loss": 2.0},
        {"examples_seen": 160, "eval_loss": 1.2},
        {"examples_seen": 240, "eval_loss": 0.9},
    ]
    lines = learning_curve(improving, None, 80)
    assert lines[:2] == ["| examples seen | epochs | held-out loss |", "|---|---|---|"]
    assert "| 240 | 3 | 0.9 |" in lines
    assert "still improving" in lines[-1]
    flat = [*improving, {"examples_seen": 320, "eval_loss": 0.895}]
    assert "levelled off" in learning_curve(flat, None, 80)[-1]
    # with a task metric, higher is better and the metric is what is shown
    acc = [
        {"examples_seen": 80, "eval_loss": 1.0, "exact_match": 0.5},
        {"examples_seen": 160, "eval_loss": 0.9, "exact_match": 0.8},
    ]
    lines = learning_curve(acc, "exact_match", 80)
    assert "exact_match" in lines[0] and "| 160 | 2 | 0.8 |" in lines and "still improving" in lines[-1]
    assert "levelled off" in learning_curve(acc[::-1], "exact_match", 80)[-1]
    assert "no learning curve" in learning_curve([], None, 80)[0]
