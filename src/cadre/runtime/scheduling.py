"""Which request the llama.cpp engine admits next and which adapter group it decodes next.

llama.cpp applies one adapter set to a whole ``llama_decode`` (``llama_set_adapters_lora`` is per context), so a
step can only batch the sequences of one adapter. The engine therefore decodes one *group* per step, and these
two choices decide fairness between specialists:

- **admission** (a slot and KV room are free): the oldest waiting request of the adapter with the fewest running
  sequences, so a burst of requests for one specialist cannot take every slot while another's request waits
  (llama.cpp's own server admits in arrival order and advances slots in index order);
- **the next group**: the one whose member has waited longest since it last got a token (or since it arrived),
  so every running request advances at the same token rate whatever its adapter, and a newly admitted request's
  group comes up at once instead of after a full round. Under equal load this is round robin; a group waits
  at most one turn (one burst) of each other group, so none starves.
- **bursts**: switching the adapter makes llama.cpp re-plan its compute graph on the next decode, which costs
  about as much as a small decode. A group that was just switched to therefore keeps the engine for ``burst``
  steps (the engine sizes it from measured switch and step times), trading a little token-time jitter for fewer
  switches.

The functions here are pure (no llama.cpp), so the policy is tested without a model.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

__all__ = ["Schedulable", "burst_steps", "pick_admission", "pick_group"]


class Schedulable(Protocol):
    """What the policy reads of a request."""

    @property
    def group(
        self,
    ) -> Hashable: ...  # the adapter it decodes with (one key per adapter; the base has its own)

    @property
    def waiting_since(self) -> float: ...  # when it arrived, then when it last got a token


def pick_admission(waiting: Sequence[Schedulable], running: Mapping[Hashable, int]) -> int:
    """Index in ``waiting`` (arrival order) of the request to admit next: fewest running of its group, then oldest."""
    best = 0
    best_key = (running.get(waiting[0].group, 0), 0)
    for i in range(1, len(waiting)):
        key = (running.get(waiting[i].group, 0), i)
        if key < best_key:
            best, best_key = i, key
    return best


def pick_group(groups: Mapping[Hashable, Sequence[Schedulable]]) -> Hashable:
    """The group whose longest-waiting member has waited longest (the smallest ``waiting_since``)."""
    return min(groups, key=lambda g: min(s.waiting_since for s in groups[g]))


def burst_steps(switch_s: float, step_s: float, *, overhead: float = 0.25, limit: int = 4) -> int:
    """Steps a group keeps the engine after a switch so the switch costs at most ``overhead`` of them.

    ``switch_s`` is the extra time of the first decode after an adapter switch, ``step_s`` a decode's time
    without one; 1 (plain alternation) when switching is cheap, at most ``limit``.
    """
    if step_s <= 0 or switch_s <= overhead * step_s:
        return 1
    return max(1, min(limit, round(switch_s / (overhead * step_s))))
