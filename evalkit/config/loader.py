"""Reading a suite file: YAML with line numbers, validated by the models of :mod:`evalkit.config.suite`.

Errors name the file, the key path and the line of the offending key or value, with a "did you mean"
for misspelt keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from evalkit.config.suite import SUITE_FORMAT_VERSION, LoadedSuite, Suite, referenced_files
from evalkit.errors import ConfigError


def _line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location, or of its closest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == str(part)), None)
            if found is None:
                found_key = next((k for k, v in node.value if k.value == str(part)), None)
                return found_key.start_mark.line + 1 if found_key else line
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            continue  # pydantic adds union-member names to the path: they are not in the YAML
        line = node.start_mark.line + 1
    return line


def _key_line(node: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    """Line of the offending *key* itself, for 'extra key' errors."""
    if not path:
        return None
    parent = node
    for part in path[:-1]:
        if isinstance(parent, yaml.MappingNode):
            parent = next((v for k, v in parent.value if k.value == str(part)), parent)
        elif isinstance(parent, yaml.SequenceNode) and isinstance(part, int) and part < len(parent.value):
            parent = parent.value[part]
    if isinstance(parent, yaml.MappingNode):
        for k, _ in parent.value:
            if k.value == str(path[-1]):
                line: int = k.start_mark.line  # yaml's stubs type a node's value as Any
                return line + 1
    return None


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-member tags (e.g. 'litellm', 'function-after[...]') from a path."""
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("litellm", "vllm"))))


def _format_validation_error(err: ValidationError, root: yaml.Node | None, file: str) -> ConfigError:
    # A misspelt key shows up as "unknown key" plus "required key missing": the first says more.
    first = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = _clean_loc(tuple(first["loc"]))
    key = ".".join(str(p) for p in loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        line = _key_line(root, loc) or _line_of(root, loc)
        msg = f"unknown key '{loc[-1]}'"
        hint = _did_you_mean(str(loc[-1]), _allowed_keys(loc[:-1]))
        msg += f" (did you mean '{hint}'?)" if hint else ""
    else:
        line = _line_of(root, loc)
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            msg = "required key is missing"
        elif first["type"] == "string_type" and isinstance(first.get("input"), bool):
            msg += " (YAML reads yes/no/on/off/true/false as booleans: put the value in quotes)"
    more = len(err.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(msg, file=file, line=line, key=key)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Suite
    for part in loc:
        field = getattr(model, "model_fields", {}).get(str(part))
        if field is None:
            return []
        ann = field.annotation
        model = next((a for a in getattr(ann, "__args__", ()) if hasattr(a, "model_fields")), ann)
    fields = getattr(model, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _did_you_mean(word: str, options: list[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def parse_suite(text: str, path: Path, expand_env: bool = True) -> LoadedSuite:
    """Validate suite text; raise :class:`ConfigError` naming file, key and line.

    ``expand_env=False`` leaves ``${VAR}`` in endpoints as written: for commands that read stored
    results and call no model, so the variables need not be set.
    """
    file = str(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", file=file,
                          line=mark.line + 1 if mark else None) from None
    if data is None:
        raise ConfigError("the suite file is empty", file=file)
    if not isinstance(data, dict):
        raise ConfigError("a suite must be a YAML mapping of keys", file=file, line=1)
    if "evalkit" not in data:
        raise ConfigError(f"missing 'evalkit: {SUITE_FORMAT_VERSION}' (the suite format version)",
                          file=file, line=1, key="evalkit")
    if data.get("evalkit") != SUITE_FORMAT_VERSION:
        raise ConfigError(f"unsupported suite format version {data.get('evalkit')!r}; this evalkit "
                          f"reads version {SUITE_FORMAT_VERSION}", file=file,
                          line=_line_of(root, ("evalkit",)), key="evalkit")
    try:
        suite = Suite.model_validate(data, context={"expand_env": expand_env})
    except ValidationError as exc:
        raise _format_validation_error(exc, root, file) from None
    return LoadedSuite(suite=suite, path=path.resolve(), raw=data, text=text)


def load_suite(path: str | Path, expand_env: bool = True) -> LoadedSuite:
    """Read and validate a suite file, and check that the files it references exist
    (``expand_env``: see :func:`parse_suite`)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("suite file not found", file=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"suite file is not UTF-8 text (byte {exc.start})", file=str(p)) from None
    loaded = parse_suite(text, p, expand_env)
    for ref in referenced_files(loaded):
        if not ref.is_file():
            raise ConfigError(f"referenced file not found: {ref}", file=str(p))
    return loaded


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema of the suite format, for editors (``evalkit schema``)."""
    schema = Suite.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"evalkit suite, format {SUITE_FORMAT_VERSION}"
    return schema


def dump_schema() -> str:
    return json.dumps(suite_json_schema(), indent=2)


def suite_line(loaded: LoadedSuite, *path: str | int) -> int | None:
    """1-based line of a key of the loaded suite (or of its closest parent), for errors raised after loading."""
    return line_of_key(loaded, tuple(path))


def line_of_key(loaded: LoadedSuite, path: tuple[Any, ...]) -> int | None:
    """1-based line of a key path of the suite file (e.g. ``("gates", "rules", 0, "metric")``), or of its
    closest parent, for errors found after validation."""
    try:
        root = yaml.compose(loaded.text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    return _key_line(root, tuple(path)) or _line_of(root, tuple(path))
