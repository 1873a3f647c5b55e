"""cadre.integrations: plug a running ``cadre serve`` into the tools people already use.

- :mod:`cadre.integrations.llm_plugin`: a plugin for simonw's ``llm`` CLI (``llm -m cadre-auto "..."``),
  registered through the ``llm`` entry point in pyproject.toml. It talks to the server over HTTP only.

Recipes for the ``openai`` SDK, LiteLLM and LangChain need no code here: see docs/integrations.md.
"""

from __future__ import annotations

__all__: list[str] = []
