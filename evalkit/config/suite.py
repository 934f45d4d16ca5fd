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
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalkit.config.data_specs import DatasetSpec, OutputSpec, PromptSpec, TargetSpec
from evalkit.config.gate_specs import GatesSpec
from evalkit.config.model_specs import LiteLLMModel, ModelSpec, Strict, VLLMModel
from evalkit.config.retention_spec import RetentionSpec, is_task_file
from evalkit.config.run_spec import RunSpec
from evalkit.config.scoring_specs import ConfidenceSpec, ScoringSpec

SUITE_FORMAT_VERSION = 1


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
        needs_target = self.scoring.scorer not in ("custom", "none", "judge")
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
        for ref in referenced_files(self) + self._schema_ref_files():
            h.update(str(ref).encode())
            h.update(ref.read_bytes() if ref.is_file() else b"<missing>")
        return h.hexdigest()

    def _schema_ref_files(self) -> list[Path]:
        """The local files the JSON Schema's ``$ref`` s reach, transitively (scoring checks them)."""
        spec = self.suite.output.schema_
        if spec is None:
            return []
        seen: set[Path] = set()
        if isinstance(spec, str):
            root = self.resolve(spec)
            seen.add(root)
            texts = [(root.read_text(encoding="utf-8", errors="replace") if root.is_file() else "", root.parent)]
        else:
            texts = [(json.dumps(spec), self.base_dir)]
        found: list[Path] = []
        while texts:
            text, folder = texts.pop()
            for ref in _LOCAL_REF.findall(text):
                path = (folder / ref).resolve()
                if path not in seen:
                    seen.add(path)
                    found.append(path)
                    if path.is_file():
                        texts.append((path.read_text(encoding="utf-8", errors="replace"), path.parent))
        return found


# A relative $ref to another file (no scheme, not only a fragment).
_LOCAL_REF = re.compile(r'"\$ref"\s*:\s*"(?![a-zA-Z][a-zA-Z0-9+.-]*:)([^"#]+)')


def referenced_files(loaded: LoadedSuite) -> list[Path]:
    """Files other than the dataset that the suite reads: they shape results, so they are hashed."""
    s = loaded.suite
    refs: list[str] = [r.split(":", 1)[0] for r in s.scoring.feasibility]
    if s.scoring.custom:
        refs.append(s.scoring.custom.split(":", 1)[0])
    if s.scoring.correct is not None and s.scoring.correct.custom:
        refs.append(s.scoring.correct.custom.rpartition(":")[0])
    if isinstance(s.output.schema_, str):
        refs.append(s.output.schema_)
    refs += [f for f in (s.prompt.system_file, s.prompt.user_file) if f]
    if s.retention is not None:
        refs += [t for t in s.retention.tasks if is_task_file(t)]
    return [loaded.resolve(r) for r in refs]
