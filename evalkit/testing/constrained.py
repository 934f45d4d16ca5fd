"""The dev server's constrained decoding: a request that asks for structured output gets an answer that
keeps to it, as a real constrained decoder's would.

Read from the request body, in the forms evalkit sends: vLLM's ``structured_outputs`` (``{"choice": [...]}``
or ``{"json": schema}``) and OpenAI's ``response_format`` (``{"type": "json_schema", "json_schema":
{"schema": ...}}``). The scripted reply is kept when it already conforms; otherwise a choice request
gets the first allowed choice the reply names (else the first choice), and a schema request gets the
JSON value in the reply when it validates, else the smallest instance of the schema (enum values the
reply names preferred). Schema-valid is then guaranteed; whether the answer is *right* is not — just
as with a real model. What was asked stays in the request log (``RequestRecord.body``).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import jsonschema

from evalkit.scoring.parse import parse_json
from evalkit.testing.replies import Reply


def requested(body: dict[str, Any]) -> tuple[str, Any] | None:
    """("choice", [choices]) or ("json", schema) when the request asks for constrained output."""
    structured = body.get("structured_outputs")
    if isinstance(structured, dict):
        if isinstance(structured.get("choice"), list):
            return "choice", [str(c) for c in structured["choice"]]
        if structured.get("json") is not None:
            schema = structured["json"]
            return "json", json.loads(schema) if isinstance(schema, str) else schema
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        return "json", spec.get("schema", spec.get("json_schema", {}))
    return None


def _named(options: list[Any], text: str) -> Any:
    """The first option the text names as a whole word, else the first option."""
    for option in options:
        if re.search(rf"(?<!\w){re.escape(str(option))}(?!\w)", text, re.IGNORECASE):
            return option
    return options[0]


def instance(schema: Any, text: str = "") -> Any:
    """The smallest value that keeps to ``schema`` (enum / const values ``text`` names preferred)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _named(schema["enum"], text)
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance(schema[key][0], text)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: instance(props.get(name, {}), text) for name in schema.get("required") or []}
    if kind == "array":
        return [instance(schema.get("items", {}), text) for _ in range(int(schema.get("minItems", 0)))]
    if kind in ("integer", "number"):
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", 0)) or 0)
        return int(low) + (1 if "exclusiveMinimum" in schema else 0) if kind == "integer" else low
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    if kind == "boolean":
        return False
    return None


def honour(body: dict[str, Any], reply: Reply) -> Reply:
    """``reply`` itself when it keeps to what the request asked for, else the answer a constrained decoder
    would have been forced to."""
    asked = requested(body)
    if asked is None:
        return reply
    kind, spec = asked
    if kind == "choice":
        if reply.text.strip() in spec or not spec:
            return reply
        return replace(reply, text=str(_named(spec, reply.text)))
    value = parse_json(reply.text).value
    try:
        if value is not None and jsonschema.validators.validator_for(spec)(spec).is_valid(value):
            return replace(reply, text=json.dumps(value))
    except (jsonschema.exceptions.SchemaError, TypeError, ValueError):
        pass
    return replace(reply, text=json.dumps(instance(spec, reply.text)))
