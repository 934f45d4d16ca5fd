"""Constrained decoding (``output.constrain``, per model ``models.<name>.constrain``): which models ask
for it, whether each can take it, and the native form each backend sends.

- LiteLLM API models: ``response_format = {"type": "json_schema", "json_schema": {"name", "schema",
  "strict": true}}`` (OpenAI structured outputs, which LiteLLM translates for the providers it knows).
  A label set becomes an object schema ``{"label": <one of the labels>}`` (OpenAI wants an object at the
  root); the label parser finds the one label the answer names.
- The vLLM server (``connect`` / ``launch``): vLLM's own ``structured_outputs`` request field,
  ``{"json": schema}`` or ``{"choice": [labels]}`` (vLLM 0.32's ``StructuredOutputsParams``).
- vLLM in-process: ``SamplingParams(structured_outputs=StructuredOutputsParams(json=... | choice=...))``.

A model that cannot take it is a :class:`~evalkit.errors.ConfigError` before any call, naming the file,
line and key: a LiteLLM model whose provider LiteLLM does not know to take ``response_format``
(``litellm.supports_response_schema``), or an OpenAI-strict provider given a schema strict mode refuses.
What was sent is what each backend records in ``request_params``.
"""

from __future__ import annotations

import re
from typing import Any

from evalkit.config.loader import line_of_key
from evalkit.config.model_specs import LiteLLMModel
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError
from evalkit.records import Constraint

# LiteLLM providers whose server takes response_format json_schema whatever LiteLLM's model table says.
SCHEMA_SERVERS = {"hosted_vllm": "vLLM's OpenAI server", "lm_studio": "LM Studio", "fireworks_ai": "Fireworks"}
# LiteLLM providers that enforce OpenAI's strict-mode subset of JSON Schema.
STRICT_PROVIDERS = frozenset({"openai", "azure"})
LABEL_FIELD = "label"


def wants_constraint(loaded: LoadedSuite, model: str) -> bool:
    """The model's ``constrain`` when set, else ``output.constrain``."""
    own = loaded.suite.models[model].constrain
    return loaded.suite.output.constrain if own is None else own


def _key(loaded: LoadedSuite, model: str) -> tuple[str, ...]:
    if loaded.suite.models[model].constrain is not None:
        return ("models", model, "constrain")
    return ("output", "constrain")


def _error(loaded: LoadedSuite, model: str, message: str) -> ConfigError:
    key = _key(loaded, model)
    return ConfigError(message, file=str(loaded.path), line=line_of_key(loaded, key), key=".".join(key))


def label_schema(labels: tuple[str, ...]) -> dict[str, Any]:
    """The label set as a JSON Schema an OpenAI strict response format accepts (an object at the root)."""
    return {"type": "object", "properties": {LABEL_FIELD: {"type": "string", "enum": list(labels)}},
            "required": [LABEL_FIELD], "additionalProperties": False}


def _schema_name(name: str) -> str:
    return (re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "output")[:64]


def build_constraint(loaded: LoadedSuite, model: str, schema: dict[str, Any] | None,
                     external_refs: tuple[str, ...] = ()) -> Constraint | None:
    """The constraint a model's requests carry (None: unconstrained); a ConfigError when it cannot take it."""
    if not wants_constraint(loaded, model):
        return None
    out = loaded.suite.output
    if out.type not in ("label", "json"):
        raise _error(loaded, model, f"constrained decoding needs output type 'json' (with a schema) or 'label', "
                     f"not '{out.type}'")
    if out.type == "label":
        constraint = Constraint("choice", "label", choices=tuple(out.labels or ()))
    else:
        if schema is None:
            raise _error(loaded, model, "constrained decoding with output type 'json' needs output.schema")
        if external_refs:
            raise _error(loaded, model, f"the schema's $refs load other documents ({external_refs[0]}); a provider "
                         "is sent one self-contained schema: move them into its $defs")
        sent = {k: v for k, v in schema.items() if not (k in ("$id", "id") and str(v).startswith("file:"))}
        constraint = Constraint("json", _schema_name(loaded.suite.name), schema=sent)
    check_model(loaded, model, constraint)
    return constraint


def _litellm_provider(model: str) -> str:
    from evalkit.backends.litellm_backend import import_litellm

    try:
        return str(import_litellm().get_llm_provider(model=model)[1])
    except Exception:  # LiteLLM cannot place the model string: its own call would fail the same way
        return model.split("/", 1)[0] if "/" in model else ""


def check_model(loaded: LoadedSuite, model: str, constraint: Constraint) -> None:
    """A ConfigError when this model's backend cannot take ``constraint`` (vLLM's every mode can)."""
    spec = loaded.suite.models[model]
    if not isinstance(spec, LiteLLMModel):
        return
    from evalkit.backends.litellm_backend import import_litellm

    provider = _litellm_provider(spec.model)
    if provider not in SCHEMA_SERVERS and not import_litellm().supports_response_schema(model=spec.model):
        raise _error(loaded, model, f"model '{model}' ({spec.model}) cannot take constrained decoding: LiteLLM's "
                     "model table says it does not support response_format json_schema "
                     "(litellm.supports_response_schema is false); set constrain: false for it, or use a model "
                     f"that supports it (a vLLM server: provider vllm, or hosted_vllm/<name>)")
    if provider in STRICT_PROVIDERS:
        schema = label_schema(constraint.choices) if constraint.kind == "choice" else constraint.schema or {}
        problems = strict_problems(schema)
        if problems:
            raise _error(loaded, model, f"model '{model}' ({spec.model}) decodes in OpenAI's strict mode, which "
                         f"refuses this schema: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                  if len(problems) > 1 else ""))


def strict_problems(schema: Any, path: str = "(root)") -> list[str]:
    """Where a schema breaks OpenAI strict mode's rules for objects: ``additionalProperties: false`` and
    every property listed in ``required``."""
    found: list[str] = []
    if isinstance(schema, dict):
        props = schema.get("properties")
        if schema.get("type") == "object" or isinstance(props, dict):
            if schema.get("additionalProperties") is not False:
                found.append(f"{path}: an object needs additionalProperties: false")
            missing = sorted(set(props or {}) - set(schema.get("required") or []))
            if missing:
                found.append(f"{path}: every property must be required, not {missing}")
        for key, value in schema.items():
            if key in ("enum", "const", "default", "examples"):
                continue
            if isinstance(value, dict):
                sub = value if key not in ("properties", "$defs", "definitions") else None
                if sub is not None:
                    found += strict_problems(sub, f"{path}/{key}")
                else:
                    for name, child in value.items():
                        found += strict_problems(child, f"{path}/{key}/{name}")
            elif isinstance(value, list):
                for i, child in enumerate(value):
                    found += strict_problems(child, f"{path}/{key}/{i}")
    return found


def litellm_form(constraint: Constraint) -> dict[str, Any]:
    """``response_format`` with a strict ``json_schema``: OpenAI structured outputs, as LiteLLM takes it."""
    schema = label_schema(constraint.choices) if constraint.kind == "choice" else constraint.schema
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": constraint.name, "schema": schema, "strict": True}}}


def server_form(constraint: Constraint) -> dict[str, Any]:
    """vLLM's OpenAI server: its ``structured_outputs`` request field."""
    if constraint.kind == "choice":
        return {"structured_outputs": {"choice": list(constraint.choices)}}
    return {"structured_outputs": {"json": constraint.schema}}


def inprocess_form(constraint: Constraint, params_class: Any = None) -> tuple[Any, dict[str, Any]]:
    """vLLM in-process: the ``StructuredOutputsParams`` for ``SamplingParams(structured_outputs=...)`` and
    what is recorded of it (``request_params.structured_outputs``, as the server form)."""
    if params_class is None:
        from vllm.sampling_params import StructuredOutputsParams

        params_class = StructuredOutputsParams
    recorded = server_form(constraint)["structured_outputs"]
    return params_class(**recorded), recorded
