"""The output JSON Schema, its ``$ref`` s resolved and checked once, before any model is called.

Every ``$ref`` of the schema — and of the files it references, transitively — is followed at validate
time: relative references are read from local files (relative to the file that holds them), each
pointer or anchor is looked up, and a missing file, unreadable JSON or a pointer to nowhere is one
error naming the file and line of the ``$ref``. A remote reference (``http(s)://``) is refused unless
the suite sets ``output.allow_remote_refs: true``; then it is fetched once, here, never per sample.

The result is a ``referencing`` :class:`~referencing.Registry` (jsonschema ≥ 4.18's way; no deprecated
``RefResolver``) that holds every document, and a validator built once on it. The registry retrieves
nothing on its own, so scoring never touches the disk or the network.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.exceptions import SchemaError

from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError

_KEY = "output.schema"
# Keywords whose values are data, not subschemas: a "$ref" inside them is not a reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "examples", "default"})
REMOTE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CompiledSchema:
    """The root schema, the registry of every document it references, and the validator on both."""

    schema: dict[str, Any]
    registry: referencing.Registry[Any]
    validator: Any  # a jsonschema Validator instance (its class depends on the schema's $schema)
    documents: tuple[str, ...]  # the URIs loaded besides the root (for provenance and tests)


@dataclass
class _Document:
    uri: str
    contents: Any
    text: str | None  # the file's text, to find the line of a $ref; None for inline schemas
    label: str  # how errors name it: a path, or the suite's output.schema


def _line_of(doc: _Document, ref: str) -> int | None:
    if doc.text is None:
        return None
    match = re.search(r'"\$ref"\s*:\s*' + re.escape(json.dumps(ref)), doc.text)
    return doc.text.count("\n", 0, match.start()) + 1 if match else None


def _refs(node: Any, base: str, path: tuple[str, ...] = ()) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every ``$ref`` under ``node``: (the reference, the base URI it is relative to, where it sits)."""
    found: list[tuple[str, str, tuple[str, ...]]] = []
    if isinstance(node, dict):
        if isinstance(node.get("$id"), str):
            base = urljoin(base, node["$id"])
        if isinstance(node.get("$ref"), str):
            found.append((node["$ref"], base, path))
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                found.extend(_refs(value, base, (*path, str(key))))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_refs(value, base, (*path, str(i))))
    return found


class _Builder:
    def __init__(self, loaded: LoadedSuite) -> None:
        self.loaded = loaded
        self.allow_remote = loaded.suite.output.allow_remote_refs
        self.documents: dict[str, _Document] = {}

    def error(self, doc: _Document, ref: str, where: tuple[str, ...], problem: str) -> ConfigError:
        line = _line_of(doc, ref)
        place = f"{doc.label}:{line}: " if line else (f"{doc.label}: " if doc.text is not None else "")
        at = "/".join(where) or "(root)"
        return ConfigError(f"{place}$ref '{ref}' at {at}{problem}", file=str(self.loaded.path), key=_KEY)

    def load(self, uri: str, doc: _Document, ref: str, where: tuple[str, ...]) -> None:
        """Read the document at ``uri`` (named by ``ref`` in ``doc``) unless it is loaded already."""
        if uri in self.documents:
            return
        scheme = urlsplit(uri).scheme
        if scheme in ("http", "https"):
            if not self.allow_remote:
                raise self.error(doc, ref, where, " is remote; evalkit resolves $ref from local files only "
                                 "(copy the schema next to the suite, or set output.allow_remote_refs: true "
                                 "to fetch it once at validate time)")
            self.documents[uri] = _Document(uri, self._fetch(uri, doc, ref, where), None, uri)
        elif scheme == "file":
            path = Path(unquote(urlsplit(uri).path))
            if path.is_dir() or not path.is_file():
                raise self.error(doc, ref, where, f": file not found: {path}")
            text = path.read_text(encoding="utf-8")
            try:
                contents = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{exc.lineno}: the referenced schema is not valid JSON ({exc.msg}); "
                                  f"referenced by $ref '{ref}' in {doc.label}", file=str(self.loaded.path),
                                  key=_KEY) from None
            self.documents[uri] = _Document(uri, contents, text, str(path))
        else:
            raise self.error(doc, ref, where, f": unsupported URI scheme '{scheme}' (local files only)")
        self.crawl(self.documents[uri])

    def _fetch(self, uri: str, doc: _Document, ref: str, where: tuple[str, ...]) -> Any:
        try:
            with urllib.request.urlopen(uri, timeout=REMOTE_TIMEOUT_S) as resp:  # noqa: S310 (http(s) only)
                return json.loads(resp.read())
        except (OSError, ValueError) as exc:
            raise self.error(doc, ref, where, f": cannot fetch it ({type(exc).__name__}: {exc})") from None

    def crawl(self, doc: _Document) -> None:
        for ref, base, where in _refs(doc.contents, doc.uri):
            target, _ = urldefrag(urljoin(base, ref))
            if target and target not in self.documents and not self._is_id(target):
                self.load(target, doc, ref, where)

    def _is_id(self, uri: str) -> bool:
        """True when some loaded document declares ``uri`` as an embedded ``$id``."""
        return any(uri == urljoin(d.uri, i) for d in self.documents.values() for i in _ids(d.contents))


def _ids(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$id"]] if isinstance(node.get("$id"), str) else []
        return own + [i for k, v in node.items() if k not in _DATA_KEYWORDS for i in _ids(v)]
    if isinstance(node, list):
        return [i for v in node for i in _ids(v)]
    return []


def _root(loaded: LoadedSuite) -> _Document | None:
    spec = loaded.suite.output.schema_
    if spec is None:
        return None
    if isinstance(spec, str):
        path = loaded.resolve(spec)
        if path.is_dir() or not path.is_file():
            raise ConfigError(f"referenced file not found: {path}", file=str(loaded.path), key=_KEY)
        text = path.read_text(encoding="utf-8")
        try:
            contents = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: the JSON Schema is not valid JSON ({exc.msg})",
                              file=str(loaded.path), key=_KEY) from None
        return _Document(path.resolve().as_uri(), contents, text, str(path))
    # An inline schema's relative references are relative to the suite file.
    return _Document((loaded.base_dir.resolve() / "__inline_schema__.json").as_uri(), spec, None, _KEY)


def compile_schema(loaded: LoadedSuite) -> CompiledSchema | None:
    """The suite's output schema with every reference loaded and checked; None when it has none."""
    root = _root(loaded)
    if root is None:
        return None
    schema = root.contents
    if not isinstance(schema, dict):
        raise ConfigError("the JSON Schema must be an object", file=str(loaded.path), key=_KEY)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise ConfigError(f"invalid JSON Schema at {where}: {exc.message}", file=str(loaded.path),
                          key=_KEY) from None
    id_key = "id" if cls in (jsonschema.Draft3Validator, jsonschema.Draft4Validator) else "$id"
    if not isinstance(schema.get(id_key), str):
        # Without an id of its own the schema is known by its file's URI, so that its relative $refs
        # resolve against its folder at scoring time as they did here (a copy: the suite's is untouched).
        schema = root.contents = {id_key: root.uri, **schema}
    builder = _Builder(loaded)
    builder.documents[root.uri] = root
    builder.crawl(root)
    spec = referencing.jsonschema.specification_with(cls.META_SCHEMA.get("$schema", ""),
                                                     default=referencing.jsonschema.DRAFT202012)
    registry: referencing.Registry[Any] = referencing.Registry()  # its default retriever fetches nothing
    for uri, doc in builder.documents.items():
        if not isinstance(doc.contents, dict | bool):
            raise ConfigError(f"{doc.label}: a referenced schema must be an object", file=str(loaded.path),
                              key=_KEY)
        resource = referencing.Resource.from_contents(doc.contents, default_specification=spec)
        registry = registry.with_resource(uri, resource)
    registry = registry.crawl()
    for doc in builder.documents.values():
        _check_lookups(builder, registry, doc)
    validator = cls(schema, registry=registry)
    others = tuple(uri for uri in builder.documents if uri != root.uri)
    return CompiledSchema(schema, registry, validator, others)


def _check_lookups(builder: _Builder, registry: referencing.Registry[Any], doc: _Document) -> None:
    """Look every reference of ``doc`` up in the registry: a pointer to nowhere fails here, not later."""
    for ref, base, where in _refs(doc.contents, doc.uri):
        try:
            registry.resolver(base_uri=base).lookup(ref)
        except referencing.exceptions.PointerToNowhere as exc:
            target = urldefrag(urljoin(base, ref))[0]
            name = builder.documents[target].label if target in builder.documents else target
            raise builder.error(doc, ref, where, f": no '{exc.ref}' in {name}") from None
        except referencing.exceptions.Unresolvable as exc:
            raise builder.error(doc, ref, where, f": cannot be resolved ({type(exc).__name__})") from None
