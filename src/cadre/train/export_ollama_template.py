"""Translate a model's Jinja chat template into Ollama's Go template syntax.

The Jinja template is not parsed: it is *probed*. Rendering short conversations whose contents are unique
markers shows the text around each role's content (``<|im_start|>user\\n`` ... ``<|im_end|>\\n``), the text
before the first turn (a default system prompt, a BOS) and the generation prompt. Those pieces make a
:class:`TurnFormat`, which writes the Go template and also renders conversations itself; the translation is
accepted only when that rendering equals the Jinja one on every probe conversation. Templates whose
output depends on more than the role and position of a turn (tool calls, per-turn dates...) fail that check
and raise :class:`~cadre.errors.ConfigError` instead of producing a wrong template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import TemplateError

from cadre.errors import ConfigError
from cadre.runtime.protocol import ChatMessage
from cadre.runtime.templates import ChatTemplate

__all__ = ["TurnFormat", "probe_turn_format"]

_U1, _A1, _U2, _A2, _S1 = (
    "CADREUSERONE",
    "CADREASSISTANTONE",
    "CADREUSERTWO",
    "CADREASSISTANTTWO",
    "CADRESYSTEM",
)


def _go_literal(text: str) -> str:
    """``text`` as literal Go template text: only the left delimiter needs quoting."""
    return text.replace("{{", '{{ "{{" }}')


@dataclass(frozen=True)
class TurnFormat:
    """The text around each turn of a chat template (what a probe found)."""

    lead: (
        str  # before the first turn when the conversation has no system message (e.g. a default system turn)
    )
    system_head: str  # before the system message's content (when the conversation opens with one)
    system_join: str  # between the system content and the first user content (no user prefix follows)
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation: str  # the generation prompt after the last user turn

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """What :meth:`go_template` renders for ``messages`` (the Python twin the translation is checked with).

        A conversation that ends with an assistant turn leaves that turn open (no suffix), so the model
        continues it; one that ends with a user turn gets the generation prompt.
        """
        opens_with_system = bool(messages) and messages[0]["role"] == "system"
        out: list[str] = []
        for i, m in enumerate(messages):
            last = i == len(messages) - 1
            role, content = m["role"], str(m["content"])
            if role == "system":
                if i == 0:
                    out += [self.system_head, content, self.system_join]
            elif role == "user":
                if i == 0:
                    out.append(self.lead)
                if not (opens_with_system and i == 1):
                    out.append(self.user_prefix)
                out += [content, self.user_suffix, self.generation if last else ""]
            elif role == "assistant":
                if i == 0:
                    out.append(self.lead)
                out += [self.assistant_prefix, content, "" if last else self.assistant_suffix]
        return "".join(out)

    def go_template(self) -> str:
        """The Go template (Ollama's ``TEMPLATE``) over ``.Messages``; one line of actions, no whitespace trimming.

        Whitespace-trimming actions (``{{-``) would also eat the newlines that belong to the turn markers, so
        the template has no layout of its own: every character outside ``{{ }}`` is the model's.
        """
        q = _go_literal
        return (
            "{{ $sys := false }}{{ range $i, $m := .Messages }}"
            "{{ $last := eq (len (slice $.Messages $i)) 1 }}"
            '{{ if eq $m.Role "system" }}'
            f"{{{{ if eq $i 0 }}}}{{{{ $sys = true }}}}{q(self.system_head)}{{{{ $m.Content }}}}"
            f"{q(self.system_join)}{{{{ end }}}}"
            '{{ else if eq $m.Role "user" }}'
            f"{{{{ if eq $i 0 }}}}{q(self.lead)}{{{{ end }}}}"
            f"{{{{ if not (and $sys (eq $i 1)) }}}}{q(self.user_prefix)}{{{{ end }}}}"
            f"{{{{ $m.Content }}}}{q(self.user_suffix)}{{{{ if $last }}}}{q(self.generation)}{{{{ end }}}}"
            '{{ else if eq $m.Role "assistant" }}'
            f"{{{{ if eq $i 0 }}}}{q(self.lead)}{{{{ end }}}}"
            f"{q(self.assistant_prefix)}{{{{ $m.Content }}}}"
            f"{{{{ if not $last }}}}{q(self.assistant_suffix)}{{{{ end }}}}"
            "{{ end }}{{ end }}"
        )

    def stops(self, extra: Sequence[str] = ()) -> list[str]:
        """Stop strings: the end of an assistant turn, the start of the next user turn, then ``extra``."""
        found = [self.assistant_suffix.strip(), self.user_prefix.strip(), *(s.strip() for s in extra)]
        return list(dict.fromkeys(s for s in found if s))


def _between(text: str, start: str, end: str | None) -> str:
    i = text.index(start) + len(start)
    return text[i:] if end is None else text[i : text.index(end, i)]


def _cut_prefix(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise ValueError(what)
    return text[len(prefix) :]


def _cut_suffix(text: str, suffix: str, what: str) -> str:
    if suffix and not text.endswith(suffix):
        raise ValueError(what)
    return text[: len(text) - len(suffix)]


def _probe(template: ChatTemplate, bos: str) -> TurnFormat:
    def msgs(*pairs: tuple[str, str]) -> list[ChatMessage]:
        return [{"role": r, "content": c} for r, c in pairs]

    chat = msgs(("user", _U1), ("assistant", _A1), ("user", _U2), ("assistant", _A2))
    full = template.render(chat, add_generation_prompt=False)
    markers = [full.find(m) for m in (_U1, _A1, _U2, _A2)]
    if min(markers) < 0 or markers != sorted(markers):
        raise ValueError("the turns' contents do not appear verbatim and in order")
    assistant_suffix = _between(full, _A2, None)
    user_prefix = _cut_prefix(_between(full, _A1, _U2), assistant_suffix, "assistant turns end differently")
    one = template.render(msgs(("user", _U1)), add_generation_prompt=False)
    one_gen = template.render(msgs(("user", _U1)), add_generation_prompt=True)
    user_suffix = _between(one, _U1, None)
    generation = _cut_prefix(one_gen, one, "the generation prompt is not appended to the prompt")
    assistant_prefix = _cut_prefix(_between(full, _U1, _A1), user_suffix, "user turns end differently")
    lead = _cut_suffix(full[: full.index(_U1)], user_prefix, "the first user turn starts differently")
    with_system = template.render([{"role": "system", "content": _S1}, *chat], add_generation_prompt=False)
    if _between(with_system, _U1, None) != _between(full, _U1, None):
        raise ValueError("a system message changes the turns after it")
    # ``bos`` is set when the tokenizer adds BOS itself (the GGUF's tokenizer.ggml.add_bos_token): a template
    # that writes it too would give two.
    lead, system_head = (
        (s[len(bos) :] if bos and s.startswith(bos) else s)
        for s in (lead, with_system[: with_system.index(_S1)])
    )
    return TurnFormat(
        lead=lead,
        system_head=system_head,
        system_join=_between(with_system, _S1, _U1),
        user_prefix=user_prefix,
        user_suffix=user_suffix,
        assistant_prefix=assistant_prefix,
        assistant_suffix=assistant_suffix,
        generation=generation,
    )


# The conversations a translation must reproduce exactly (contents with spaces, newlines and punctuation).
_CHECKS: list[list[ChatMessage]] = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [
        {"role": "system", "content": "Answer briefly.\nUse digits."},
        {"role": "user", "content": "Two plus two"},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Refund order 42, please."},
    ],
    [
        {"role": "system", "content": "Classify the ticket."},
        {"role": "user", "content": "card charged twice"},
        {"role": "assistant", "content": "billing"},
        {"role": "user", "content": "cannot log in"},
    ],
]


def probe_turn_format(
    template: ChatTemplate, *, adds_bos: bool = False, model: str = "the model"
) -> TurnFormat:
    """The :class:`TurnFormat` of ``template``, checked against its Jinja rendering.

    ``adds_bos``: the tokenizer adds BOS itself, so a BOS the template writes first is left out.

    Raises:
        ConfigError: the template cannot be expressed as role prefixes and suffixes (the message says which
            part differed); write the Modelfile's TEMPLATE by hand for such a model.
    """
    hint = "write the Modelfile's TEMPLATE by hand (Go template syntax over .Messages)"
    try:
        bos = template.bos_token if adds_bos else ""
        found = _probe(template, bos)
        for messages in _CHECKS:
            expected = template.render(messages, add_generation_prompt=True)
            if bos and expected.startswith(bos):
                expected = expected[len(bos) :]
            if found.render(messages) != expected:
                raise ValueError(
                    f"its rendering of {messages!r} is one the translation does not reproduce (the text "
                    "around a turn depends on more than the turn's role)"
                )
    except (ValueError, KeyError, TypeError, ConfigError, TemplateError) as err:
        raise ConfigError(
            f"the chat template of {model} cannot be translated to Ollama's template syntax: {err}; {hint}"
        ) from None
    if '"""' in found.go_template():
        raise ConfigError(
            f'the chat template of {model} contains """, which a Modelfile cannot quote; {hint}'
        )
    return found
