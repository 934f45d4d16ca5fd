"""A model's training data, as the inputs it was trained on: what the held-out overlap check and the
leakage probe compare with.

Where it is named (first that applies):

1. ``training_data: PATH`` on the model (relative to the suite);
2. the adapter's training record: ``ADAPTER_PATH/training.json`` with
   ``"training_data": {"path": ..., "sha256": ...}`` (the path relative to the adapter folder), as
   ``scripts/train_lora.py`` writes it. A record whose file no longer has the recorded sha256 is an
   error: the check would compare with data the adapter was not trained on.

What is read from it:

- **chat JSONL** (each line has ``messages``: OpenAI ``[{role, content}]``, or ``conversations``:
  ShareGPT ``[{from, value}]``): the input is the text of the user turns (``user`` / ``human``), the
  training text is every turn, and the answer the assistant turn(s);
- **a data set** (JSONL, CSV, Parquet the dataset loader reads, like the held-out file): each row is
  rendered with the suite's own prompt templates, and the input is the user message(s).

The system prompt is left out of the input on both sides: it is usually the same for every sample and
would make unrelated samples look alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.config.dataset import Sample, _read_csv, _read_jsonl, _read_parquet
from evalkit.config.prompts import PromptRenderer
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError, DatasetError

TRAINING_RECORD = "training.json"
USER_ROLES = {"user", "human"}
ASSISTANT_ROLES = {"assistant", "gpt"}


@dataclass(frozen=True)
class TrainingExample:
    ref: str                   # where it is: "line 12" (or its id field)
    input: str                 # the user turn(s): what the held-out inputs are compared with
    text: str                  # every turn: what a leakage probe takes prefixes from
    answer: str = ""


@dataclass
class TrainingData:
    path: Path
    sha256: str
    source: str                # "training_data" | "adapter record"
    format: str                # "chat" | "dataset"
    examples: list[TrainingExample] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "source": self.source, "format": self.format,
                "examples": len(self.examples)}


def training_data_path(loaded: LoadedSuite, model: str) -> tuple[Path, str, str | None] | None:
    """Where a model's training data is: (path, source, recorded sha256 or None), or None when unnamed."""
    spec = loaded.suite.models[model]
    if spec.training_data:
        return loaded.resolve(spec.training_data), "training_data", None
    adapter = getattr(spec, "adapter_path", None)
    if not adapter:
        return None
    record_path = loaded.resolve(adapter) / TRAINING_RECORD
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the adapter's training record {record_path} is not readable JSON ({exc})",
                          file=str(loaded.path), key=f"models.{model}.adapter_path") from None
    named = record.get("training_data") if isinstance(record, dict) else None
    if not isinstance(named, dict) or not isinstance(named.get("path"), str):
        return None
    path = Path(named["path"])
    return (path if path.is_absolute() else (record_path.parent / path).resolve()), "adapter record", \
        named.get("sha256") if isinstance(named.get("sha256"), str) else None


def _chat_turns(row: dict[str, Any]) -> list[tuple[str, str]] | None:
    """(role, content) of a chat row, or None when the row is not a chat row."""
    if isinstance(row.get("messages"), list):
        turns = [(str(m.get("role", "")), m.get("content")) for m in row["messages"] if isinstance(m, dict)]
    elif isinstance(row.get("conversations"), list):
        turns = [(str(m.get("from", "")), m.get("value")) for m in row["conversations"] if isinstance(m, dict)]
    else:
        return None
    return [(role, content if isinstance(content, str) else json.dumps(content)) for role, content in turns]


def load_training_data(loaded: LoadedSuite, model: str) -> TrainingData | None:
    """The model's training examples (None when it names no training data)."""
    found = training_data_path(loaded, model)
    if found is None:
        return None
    path, source, recorded = found
    key = f"models.{model}.training_data" if source == "training_data" else f"models.{model}.adapter_path"
    if not path.is_file():
        raise ConfigError(f"training data not found: {path} (named by the {source})", file=str(loaded.path),
                          key=key)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if recorded and recorded != digest:
        raise ConfigError(f"the adapter's training record names {path} with sha256 {recorded[:12]}…, but the file "
                          f"now has {digest[:12]}…: it is not the data the adapter was trained on; restore it, or "
                          "name the real file with training_data", file=str(loaded.path), key=key)
    suffixes = [s.lower() for s in path.suffixes]
    if ".csv" in suffixes:
        rows = _read_csv(path, data)
    elif ".parquet" in suffixes or ".pq" in suffixes:
        rows = _read_parquet(path)
    else:
        rows = _read_jsonl(path, data)
    if not rows:
        raise DatasetError(f"{path}: the training data has no rows")
    id_field = loaded.suite.dataset.id
    chat = _chat_turns(rows[0][1]) is not None
    examples: list[TrainingExample] = []
    renderer = None if chat else PromptRenderer(loaded)
    for lineno, row in rows:
        ref = str(row[id_field]) if id_field in row and row[id_field] is not None else f"line {lineno}"
        if chat:
            turns = _chat_turns(row)
            if turns is None:
                raise DatasetError(f"{path}:{lineno}: no 'messages' or 'conversations' list (the first row has one)")
        else:
            assert renderer is not None
            turns = [(m["role"], m["content"]) for m in renderer.messages(Sample(ref, lineno, row))]
            if loaded.suite.target is not None and loaded.suite.target.field in row:
                turns.append(("assistant", str(row[loaded.suite.target.field])))
        examples.append(TrainingExample(
            ref=ref, input="\n".join(c for r, c in turns if r in USER_ROLES),
            text="\n".join(c for r, c in turns if r != "system"),
            answer="\n".join(c for r, c in turns if r in ASSISTANT_ROLES)))
    return TrainingData(path, digest, source, "chat" if chat else "dataset", examples)


def input_text(messages: list[dict[str, Any]]) -> str:
    """The compared input of rendered chat messages: the user turns' text."""
    return "\n".join(str(m.get("content", "")) for m in messages if m.get("role") in USER_ROLES)
