"""llama.cpp's C log, routed with the right levels: errors only by default, everything with ``CADRE_DEBUG=1``.

llama-cpp-python installs a callback whose table of ggml levels predates ggml's current enum (ggml.h:
``NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5``; the package maps 3 to ERROR), so llama.cpp's warnings
(``load: control-looking token ...``, ``llama_kv_cache_iswa: using full-size SWA cache``) reach stderr as if
they were errors. :func:`install` replaces that callback with one that reads the enum as ggml.h defines it.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

__all__ = ["install"]

_ERROR = 4  # GGML_LOG_LEVEL_ERROR (ggml.h)
_CONT = 5  # GGML_LOG_LEVEL_CONT: continues the previous message
_state = {"last": 0}
_callback: Any = None  # the ctypes callback must outlive every call llama.cpp makes to it


def _show(level: int) -> bool:
    if os.environ.get("CADRE_DEBUG"):
        return True
    return level == _ERROR


def install(llama_cpp: Any) -> None:
    """Set the C log callback (once per process)."""
    global _callback
    if _callback is not None:
        return

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        effective = _state["last"] if level == _CONT else level
        _state["last"] = effective
        if _show(effective):
            print(text.decode("utf-8", errors="replace"), end="", flush=True, file=sys.stderr)

    _callback = _log
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
