"""What one call costs (the ``cost_usd`` column): suite prices, LiteLLM's price table, or self-hosted GPU time.

Order: token prices in the suite's ``cost`` block; then ``gpu_usd_per_hour`` with a stated
throughput (per request: $/h ÷ 3600 ÷ requests/s), or, without one, the throughput measured in the
run (filled in when the model finishes, see :func:`measured_gpu_cost_per_row`); then, for LiteLLM
models, LiteLLM's bundled price table. A model with no known price gets NULL, never a guess.

For a self-hosted model ``cost_usd`` is the GPU time a request used — a per-call figure only (routing's
cost per 1k). Its monthly cost is never this × volume: it is the always-on replicas' cost
(:mod:`evalkit.analysis.costs`, metric ``monthly_cost_usd``).
"""

from __future__ import annotations

import functools
from typing import Any

from evalkit.config.model_specs import LiteLLMModel, VLLMModel
from evalkit.records import Completion


def token_cost(prompt_tokens: int | None, completion_tokens: int | None, input_per_mtok: float,
               output_per_mtok: float) -> float | None:
    """USD for one call at per-million-token prices."""
    if prompt_tokens is None and completion_tokens is None:
        return None
    return ((prompt_tokens or 0) * input_per_mtok + (completion_tokens or 0) * output_per_mtok) / 1e6


_UNPRICED: set[str] = set()


def litellm_price(model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """LiteLLM's bundled price for a call, or None when the model is not in its table."""
    if prompt_tokens is None and completion_tokens is None:
        return None
    if model in _UNPRICED:
        return None
    return _litellm_price(model, prompt_tokens or 0, completion_tokens or 0)


@functools.lru_cache(maxsize=65536)
def _litellm_price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    # One lookup in LiteLLM's table costs ~1 ms of CPU (about 12 model-info resolutions), as much as the
    # rest of evalkit's work on a sample; the price of the same token counts never changes in a run.
    from evalkit.backends.litellm_backend import import_litellm

    litellm = import_litellm()
    try:
        prompt_usd, completion_usd = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    except Exception:  # LiteLLM raises for models it has no price for; that is "unknown", not an error
        _UNPRICED.add(model)
        return None
    return float(prompt_usd + completion_usd)


def call_cost(spec: LiteLLMModel | VLLMModel, completion: Completion) -> float | None:
    """The cost of one successful call, or None if it is unknown (or measured later)."""
    cost = spec.cost
    if cost is not None and (cost.input_per_mtok is not None or cost.output_per_mtok is not None):
        return token_cost(completion.prompt_tokens, completion.completion_tokens,
                          cost.input_per_mtok or 0.0, cost.output_per_mtok or 0.0)
    if cost is not None and cost.gpu_usd_per_hour is not None:
        if cost.requests_per_second:
            return cost.gpu_usd_per_hour / 3600.0 / cost.requests_per_second
        return None
    if isinstance(spec, LiteLLMModel):
        return litellm_price(spec.model, completion.prompt_tokens, completion.completion_tokens)
    return None


def measured_gpu_cost_per_row(spec: LiteLLMModel | VLLMModel, wall_s: float, rows: int) -> float | None:
    """Self-hosted GPU time per request (the ``cost_usd`` column, not a monthly projection) from GPU $/h and the
    run's own measured throughput."""
    cost = spec.cost
    if cost is None or cost.gpu_usd_per_hour is None or cost.requests_per_second or rows <= 0:
        return None
    return cost.gpu_usd_per_hour / 3600.0 * wall_s / rows


def describe(spec: LiteLLMModel | VLLMModel) -> dict[str, Any]:
    """How this model's cost is computed, for provenance."""
    cost = spec.cost
    if cost is not None and (cost.input_per_mtok is not None or cost.output_per_mtok is not None):
        return {"source": "suite token prices", **cost.model_dump(exclude_none=True, exclude={"min_replicas"})}
    if cost is not None and cost.gpu_usd_per_hour is not None:
        how = "stated throughput" if cost.requests_per_second else "throughput measured in the run"
        return {"source": f"GPU hour: cost_usd is GPU time per request at the {how}; monthly cost is "
                          "always-on replicas × $/h × 730", **cost.model_dump(exclude_none=True)}
    if isinstance(spec, LiteLLMModel):
        return {"source": "LiteLLM price table"}
    return {"source": "none (set models.<name>.cost)"}
