"""Chat templates: the Jinja template stored in a model's metadata (GGUF ``tokenizer.chat_template``).

Rendered in a sandboxed Jinja environment, the way Hugging Face tokenizers render them. A model without a
template (a base model such as Gemma-3-270M) gets a plain "User:/Assistant:" transcript, with a warning once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from cadre.errors import ConfigError
from cadre.runtime.protocol import ChatMessage

__all__ = ["FALLBACK_TEMPLATE", "ChatTemplate"]

log = logging.getLogger(__name__)

# For base models: a transcript the model can continue; the stop keeps it from writing the next user turn.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
_FALLBACK_STOPS = ("\nUser:", "\nAssistant:")  # nor its own next turn


def _raise(message: str) -> None:
    raise ConfigError(f"the chat template rejected the messages: {message}")


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


class ChatTemplate:
    """A compiled chat template plus the special-token strings it refers to."""

    def __init__(
        self, source: str | None, *, bos_token: str = "", eos_token: str = "", model: str = ""
    ) -> None:
        self.is_fallback = not source
        if self.is_fallback:
            log.warning("model %s has no chat template; using a plain 'User:/Assistant:' transcript", model)
        self.source = source or FALLBACK_TEMPLATE
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.extra_stops: tuple[str, ...] = _FALLBACK_STOPS if self.is_fallback else ()
        try:
            self._template = _compile(self.source)
        except Exception as err:
            raise ConfigError(
                f"the chat template of {model or 'the model'} does not compile: {err}"
            ) from None

    def starts_with_bos(self, text: str) -> bool:
        """Whether ``text`` (a rendered prompt) already begins with the BOS token."""
        return bool(self.bos_token) and text.startswith(self.bos_token)

    def render(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        if not messages:
            raise ConfigError("a chat request needs at least one message")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ConfigError(f"messages[{i}] must be a mapping with 'role' and 'content'")
        text: str = self._template.render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )
        return text
