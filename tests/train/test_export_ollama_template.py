"""Chat template → Ollama Go template: the probe's pieces for SmolLM2 (ChatML), a Gemma 3-style template and the
no-template fallback; templates it cannot express are refused rather than translated wrong."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cadre.errors import ConfigError
from cadre.runtime.templates import ChatTemplate
from cadre.train.export_ollama_modelfile import base_chat_template
from cadre.train.export_ollama_template import probe_turn_format

# Gemma 3's layout, written for this test: BOS, the system prompt folded into the first user turn, the assistant
# role called "model", contents trimmed.
GEMMA3_STYLE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set rest = messages[1:] %}{% else %}{% set first = '' %}{% set rest = messages %}{% endif %}"
    "{% for m in rest %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + m['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

CONVERSATION = [
    {"role": "system", "content": "Classify the ticket."},
    {"role": "user", "content": "card charged twice"},
    {"role": "assistant", "content": "billing"},
    {"role": "user", "content": "cannot log in"},
]


@pytest.fixture(scope="module")
def smollm2_template() -> ChatTemplate:
    from cadre.runtime.bundled import bundled_model_path

    path = bundled_model_path("smollm2-135m")
    template, adds_bos = base_chat_template({"kind": "gguf", "path": str(path), "name": "smollm2-135m"})
    # SmolLM2's BOS is <|im_start|>, which its tokenizer does not add: the template's own one stays
    assert (template.bos_token, template.eos_token, adds_bos) == ("<|im_start|>", "<|im_end|>", False)
    return template


def test_smollm2_chatml(smollm2_template: ChatTemplate) -> None:
    turns = probe_turn_format(smollm2_template)
    assert turns.lead.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert turns.system_head == "<|im_start|>system\n"
    assert turns.system_join == "<|im_end|>\n<|im_start|>user\n"
    assert (turns.user_prefix, turns.user_suffix) == ("<|im_start|>user\n", "<|im_end|>\n")
    assert (turns.assistant_prefix, turns.assistant_suffix) == ("<|im_start|>assistant\n", "<|im_end|>\n")
    assert turns.generation == "<|im_start|>assistant\n"
    assert turns.stops([smollm2_template.eos_token]) == ["<|im_end|>", "<|im_start|>user"]
    assert turns.render(CONVERSATION) == smollm2_template.render(CONVERSATION)
    # Without a system message the model's default one comes first, as in the Jinja template.
    assert turns.render(CONVERSATION[1:]) == smollm2_template.render(CONVERSATION[1:])


def test_gemma3_style_folds_the_system_prompt_and_drops_bos() -> None:
    template = ChatTemplate(GEMMA3_STYLE, bos_token="<bos>", eos_token="<eos>")
    assert probe_turn_format(template).lead == "<bos>"  # kept when the tokenizer does not add it
    turns = probe_turn_format(template, adds_bos=True)
    assert turns.lead == ""  # the tokenizer's to add
    assert (turns.system_head, turns.system_join) == ("<start_of_turn>user\n", "\n\n")
    assert turns.assistant_prefix == "<start_of_turn>model\n"
    assert turns.stops([template.eos_token]) == ["<end_of_turn>", "<start_of_turn>user", "<eos>"]
    assert turns.render(CONVERSATION) == template.render(CONVERSATION).removeprefix("<bos>")


def test_fallback_transcript_for_a_model_without_template() -> None:
    template = ChatTemplate(None, eos_token="<eos>", model="gemma3-270m")
    turns = probe_turn_format(template)
    assert (turns.user_prefix, turns.assistant_prefix, turns.generation) == (
        "User: ",
        "Assistant: ",
        "Assistant:",
    )
    assert "User:" in turns.stops(template.extra_stops)
    assert turns.render(CONVERSATION) == template.render(CONVERSATION)


def test_a_conversation_that_ends_with_the_assistant_is_left_open(smollm2_template: ChatTemplate) -> None:
    turns = probe_turn_format(smollm2_template)
    text = turns.render([*CONVERSATION[:3]])
    assert text.endswith("<|im_start|>assistant\nbilling")


@pytest.mark.parametrize(
    "source, problem",
    [
        # the turn number is part of the prefix: no fixed prefix reproduces it
        (
            "{% for m in messages %}[{{ loop.index }}] {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}",
            "starts differently",
        ),
        # the opening depends on the conversation's length
        (
            "{% if messages | length > 2 %}Long chat.\n{% endif %}"
            "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}",
            "does not reproduce",
        ),
        # the content is rewritten
        (
            "{% for m in messages %}{{ m['content'] | lower }}\n{% endfor %}",
            "verbatim",
        ),
    ],
)
def test_templates_it_cannot_express_are_refused(source: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        probe_turn_format(ChatTemplate(source, model="odd"))
    assert "TEMPLATE by hand" in str(info.value)


def test_go_template_shape(smollm2_template: ChatTemplate) -> None:
    go = probe_turn_format(smollm2_template).go_template()
    opens = len(re.findall(r"\{\{ (?:if|range) ", go))
    assert opens == len(re.findall(r"\{\{ end \}\}", go)) and opens > 0
    assert "{{-" not in go and "-}}" not in go  # trimming would eat the turn markers' newlines
    assert "{{ range $i, $m := .Messages }}" in go
    assert "<|im_start|>user\n{{ end }}{{ $m.Content }}<|im_end|>\n" in go
    # a literal left delimiter in a marker is quoted, not read as an action
    quoted = probe_turn_format(
        ChatTemplate(
            "{% for m in messages %}{{ '{{' }}{{ m['role'] }}}} {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}{{ '{{' }}assistant}} {% endif %}"
        )
    ).go_template()
    assert '{{ "{{" }}user}} ' in quoted


GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func main() {
	var in struct {
		Template      string      `json:"template"`
		Conversations [][]Message `json:"conversations"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("t").Parse(in.Template))
	out := []string{}
	for _, c := range in.Conversations {
		var b strings.Builder
		if err := t.Execute(&b, map[string]any{"Messages": c}); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("go") is None,
    reason="Go is not installed: the Go template is checked through its Python twin (TurnFormat.render) only",
)
def test_go_text_template_renders_what_jinja_renders(smollm2_template: ChatTemplate, tmp_path: Path) -> None:
    """Go's own text/template (what Ollama runs) on the translated templates, against the Jinja originals."""
    (tmp_path / "main.go").write_text(GO_RENDER)
    env = {**os.environ, "GOCACHE": str(tmp_path / "cache"), "GOPATH": str(tmp_path / "gopath")}
    conversations = [
        CONVERSATION,
        CONVERSATION[1:],
        CONVERSATION[:1] + CONVERSATION[1:2],
        [{"role": "user", "content": 'a {{ brace }} and "quotes"\nnew line'}],
    ]
    templates = [
        (smollm2_template, False),
        (ChatTemplate(GEMMA3_STYLE, bos_token="<bos>", eos_token="<eos>"), True),
        (ChatTemplate(None, model="no-template"), False),
    ]
    for template, adds_bos in templates:
        turns = probe_turn_format(template, adds_bos=adds_bos)
        done = subprocess.run(
            ["go", "run", "main.go"],
            input=json.dumps({"template": turns.go_template(), "conversations": conversations}),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        rendered = json.loads(done.stdout)
        for conversation, go_text in zip(conversations, rendered, strict=True):
            jinja_text = template.render(conversation, add_generation_prompt=True)
            if adds_bos:
                jinja_text = jinja_text.removeprefix(template.bos_token)
            assert go_text == jinja_text, conversation
            assert go_text == turns.render(conversation)
