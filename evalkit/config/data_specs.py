"""The suite's task sections: which data set, how to prompt for each sample, what output to expect,
and where the target comes from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from evalkit.config.model_specs import Strict


class DatasetSpec(Strict):
    """Where the held-out samples come from."""

    path: str = Field(description="JSONL, CSV or Parquet file, relative to the suite file.")
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    id: str = Field("id", description="Field holding a unique sample id.")
    filter: str | None = Field(
        None, description="DuckDB SQL boolean expression over the sample fields, e.g. "
        "\"slice <> 'easy_ham'\".")
    limit: int | None = Field(None, ge=1, description="Keep the first N samples after filtering.")
    slice: str | None = Field(
        None, description="Field whose value groups samples into slices for per-slice tables.")


class PromptSpec(Strict):
    """Jinja2 templates over a sample's fields (sandboxed, undefined fields are errors)."""

    system: str | None = None
    user: str | None = None
    system_file: str | None = None
    user_file: str | None = None

    @model_validator(mode="after")
    def _one_source_each(self) -> PromptSpec:
        if self.system and self.system_file:
            raise ValueError("give either 'system' or 'system_file', not both")
        if self.user and self.user_file:
            raise ValueError("give either 'user' or 'user_file', not both")
        if not (self.user or self.user_file):
            raise ValueError("a prompt needs 'user' (or 'user_file')")
        return self


class OutputSpec(Strict):
    """What a model answer should look like."""

    type: Literal["label", "labels", "json", "text"] = Field(
        description="label: one of 'labels'; labels: a list of them (multi-label, a JSON list or comma-separated); "
        "json: a JSON value; text: free text.")
    labels: list[str] | None = Field(None, description="Allowed labels (type: label or labels).")
    schema_: dict[str, Any] | str | None = Field(
        None, alias="schema", description="JSON Schema (inline or a file path) for type: json.")
    case_sensitive: bool = Field(False, description="Compare labels case-sensitively.")
    allow_remote_refs: bool = Field(
        False, description="Let the JSON Schema's $refs name http(s) URLs, fetched once at validate time "
        "(default: local files only; a remote $ref is an error).")

    constrain: bool = Field(
        False, description="Constrained decoding: send the JSON Schema (type: json) or the label set (type: "
        "label) in each provider's native structured-output form; models.<name>.constrain overrides it.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _type_needs(self) -> OutputSpec:
        if self.type in ("label", "labels") and not self.labels:
            raise ValueError(f"output type '{self.type}' needs 'labels: [..]'")
        if self.type not in ("label", "labels") and self.labels:
            raise ValueError(f"'labels' only applies to output types 'label' and 'labels', not '{self.type}'")
        if self.allow_remote_refs and self.schema_ is None:
            raise ValueError("'allow_remote_refs' only applies to a JSON Schema ('schema')")
        if self.type != "json" and self.schema_ is not None:
            raise ValueError(f"'schema' only applies to output type 'json', not '{self.type}'")
        if self.constrain and self.type == "text":
            raise ValueError("'constrain' needs output type 'json' (with a schema) or 'label': text has nothing "
                             "to constrain to")
        if self.constrain and self.type == "json" and self.schema_ is None:
            raise ValueError("'constrain' with output type 'json' needs 'schema' (the JSON Schema to decode with)")
        return self


class TargetSpec(Strict):
    """Where the expected answer of a sample comes from."""

    field: str | None = None
    template: str | None = None
    allow_null: bool = Field(
        False, description="Let samples whose target field is null through to the scorer, which gets None "
        "(needs scoring.scorer: custom; without it a null target is an error naming the sample).")

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetSpec:
        if bool(self.field) == bool(self.template):
            raise ValueError("target needs exactly one of 'field' or 'template'")
        return self
