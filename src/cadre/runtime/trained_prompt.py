"""The system prompt a specialist was trained with, read from its adapter, and applied to the requests it serves.

``cadre train`` records the prompt in the adapter's metadata: in ``cadre.json`` of a PEFT folder (key
``prompt``) and, when exported, as GGUF keys (``cadre.prompt.*``) that llama.cpp ignores — in a GGUF adapter,
and in a merged GGUF (the adapter folded into its base). The backends read it when they load an adapter (or a
merged model) and apply it to every chat request for that adapter (or model), so ``cadre serve``,
``cadre eval`` and ``cadre generate`` give a specialist the prompt it learned with without being told:

- a request without a system message gets the trained one (a client of a specialist need not know its label
  list);
- a request whose system message is the training data's constant prompt — the portable form, exactly as in the
  data file — gets the trained one in its place (none, when it was dropped in training);
- any other system message is the client's choice and is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cadre.runtime.protocol import ChatMessage

__all__ = ["GGUF_PROMPT_KEYS", "PromptMode", "TrainedPrompt", "gguf_prompt_keys", "read_trained_prompt"]

PromptMode = Literal["keep", "drop", "replace"]

# GGUF metadata keys of an exported adapter (strings; an absent key means None).
GGUF_PROMPT_KEYS = {
    "mode": "cadre.prompt.mode",
    "system": "cadre.prompt.system",
    "data_system": "cadre.prompt.data_system",
}


@dataclass(frozen=True)
class TrainedPrompt:
    """How the training data's constant system prompt was handled, and the prompt the model learned with."""

    mode: PromptMode  # keep: as in the data; drop: removed; replace: swapped for ``system``
    system: str | None  # the system prompt every training example had (None: none, the template's default)
    data_system: str | None  # the training data's constant system prompt (None: the data had none in common)

    def apply(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """``messages`` as the specialist should see them (see the module docstring for the rules)."""
        msgs = list(messages)
        trained: list[ChatMessage] = [{"role": "system", "content": self.system}] if self.system else []
        if msgs and msgs[0]["role"] == "system":
            if self.data_system is not None and msgs[0]["content"] == self.data_system:
                return [*trained, *msgs[1:]]
            return msgs
        return [*trained, *msgs]

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "system": self.system, "data_system": self.data_system}

    def to_gguf(self) -> dict[str, str]:
        """The ``cadre.prompt.*`` string keys of a GGUF file (a None field is left out)."""
        record = self.to_json()
        return {key: record[f] for f, key in GGUF_PROMPT_KEYS.items() if record[f] is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainedPrompt:
        mode = data.get("mode", "keep")
        if mode not in ("keep", "drop", "replace"):
            mode = "keep"
        return cls(mode=mode, system=_text(data.get("system")), data_system=_text(data.get("data_system")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def gguf_prompt_keys(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The ``cadre.prompt.*`` keys present in a GGUF header's ``metadata`` (to copy them into another file)."""
    return {key: metadata[key] for key in GGUF_PROMPT_KEYS.values() if isinstance(metadata.get(key), str)}


def read_trained_prompt(
    adapter: str | Path, metadata: Mapping[str, Any] | None = None
) -> TrainedPrompt | None:
    """The prompt recorded with ``adapter`` (a PEFT folder, a GGUF adapter or a merged GGUF model), or None when
    none was recorded.

    Args:
        adapter: the adapter's (or merged model's) path.
        metadata: the GGUF header's metadata when the caller has read it already (llama.cpp backend).
    """
    path = Path(adapter)
    if path.is_dir():
        meta = path / "cadre.json"
        if not meta.is_file():
            return None
        try:
            record = json.loads(meta.read_text(encoding="utf-8")).get("prompt")
        except (json.JSONDecodeError, AttributeError):
            return None
        return TrainedPrompt.from_json(record) if isinstance(record, dict) else None
    if metadata is None:
        from cadre.formats import read_gguf_header

        metadata = read_gguf_header(path, what="adapter").metadata
    if GGUF_PROMPT_KEYS["mode"] not in metadata:
        return None
    return TrainedPrompt.from_json({field: metadata.get(key) for field, key in GGUF_PROMPT_KEYS.items()})
