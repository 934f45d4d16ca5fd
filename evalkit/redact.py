"""Secrets out of everything evalkit stores or prints: one function, used where strings enter the store
(:mod:`evalkit.store.rows`), where errors are made (the backends) and where data leaves (exports).

Two kinds of secret are replaced by ``***redacted***``:

* the values of the keys in use: every key a model's ``api_key_env`` named (registered when it is
  read, :func:`register_secret`) and the value of every environment variable whose name looks like a
  secret (``OPENAI_API_KEY``, ``HF_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ...), 8 characters or more;
* key-shaped strings, wherever they come from: ``sk-…`` (OpenAI, Anthropic ``sk-ant-…``), ``Bearer …``,
  Google ``AIza…``, AWS ``AKIA…``, GitHub ``ghp_…``/``github_pat_…``, Hugging Face ``hf_…``, Slack
  ``xox?-…``, Groq ``gsk_…``, Replicate ``r8_…``.

In mappings, the value of a secret-looking key (``api_key``, ``token``, ``authorization``, ...; not
``api_key_env``, which holds a variable's name) is replaced whole.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

REDACTED = "***redacted***"
SECRET_NAME = re.compile(r"^(.*[_-])?(api[_-]?key|key|token|secret|password|passwd|authori[sz]ation|bearer|"
                         r"credentials?|session)$", re.IGNORECASE)
_MIN_SECRET = 8
_KEY_SHAPED = re.compile(
    r"\bBearer\s+[A-Za-z0-9._~+/=-]+"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\bhf_[A-Za-z0-9]{30,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bgsk_[A-Za-z0-9]{30,}"
    r"|\br8_[A-Za-z0-9]{30,}")

_registered: set[str] = set()
_lock = threading.Lock()
_cache: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)


def register_secret(value: str | None) -> None:
    """Treat ``value`` (a key evalkit read) as a secret from now on."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _registered.add(value)


def _known_values() -> re.Pattern[str] | None:
    """One pattern for every secret value known now (rebuilt only when the set changes)."""
    global _cache
    values = frozenset(_registered | {v for k, v in os.environ.items()
                                      if len(v) >= _MIN_SECRET and SECRET_NAME.search(k)
                                      and not k.lower().endswith("_env")})
    if values != _cache[0]:
        ordered = sorted(values, key=len, reverse=True)  # the longest first, so no secret is half-replaced
        _cache = (values, re.compile("|".join(map(re.escape, ordered))) if ordered else None)
    return _cache[1]


def redact_text(text: str) -> str:
    """``text`` with every known secret value and every key-shaped string replaced."""
    known = _known_values()
    if known is not None:
        text = known.sub(REDACTED, text)
    return _KEY_SHAPED.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with secrets replaced: strings anywhere, and the whole value of a
    secret-looking key of a mapping."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_NAME.search(str(k)) and not str(k).endswith("_env") and v
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_optional(text: str | None) -> str | None:
    """:func:`redact_text` for a value that may be None."""
    return redact_text(text) if text else text


def redact_strings(row: dict[str, Any]) -> dict[str, Any]:
    """A table row with :func:`redact_text` applied to its text values (column names are kept as they
    are: ``cache_key`` is a column, not a secret)."""
    return {k: redact_text(v) if isinstance(v, str) else v for k, v in row.items()}


def _spans(text: str) -> list[tuple[int, int]]:
    known = _known_values()
    spans = [m.span() for m in known.finditer(text)] if known is not None else []
    return spans + [m.span() for m in _KEY_SHAPED.finditer(text)]


def redact_logprobs(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Token logprobs (``{"token", "logprob", "top"}``) with every token that is part of a secret in the
    joined answer replaced, so a key spelled across several tokens is caught too."""
    if not entries:
        return entries
    tokens = [str(e.get("token") or "") for e in entries]
    spans = _spans("".join(tokens))
    if not spans and not any(isinstance(e.get("top"), list) for e in entries):
        return entries
    out, start = [], 0
    for entry, token in zip(entries, tokens, strict=True):
        end = start + len(token)
        hit = any(s < end and start < e for s, e in spans) if token else False
        top = entry.get("top")
        out.append({**entry, "token": REDACTED if hit else token,
                    **({"top": [[redact_text(str(t)), lp] for t, lp in top]} if isinstance(top, list) else {})})
        start = end
    return out
