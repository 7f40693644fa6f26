"""A decoder's attention on ExecuTorch's own LLM operators: ``llama::update_cache`` writes the
new keys and values into the cache at the start position, in place, and ``llama::custom_sdpa``
attends over the positions written so far only (causal from the start position). With
transformers' ``StaticCache`` instead, every step copies each layer's whole cache (the buffer is
functionalized) and attends over all ``max_seq`` positions, masked.

The cache is kept ``[1, max_seq, kv_heads, head_dim]``, the layout the operators read; the layers
hand transformers transposed views of it. The start position reaches the attention function
through ``_START``, set by the module's forward while it is traced (one trace at a time).
"""

from __future__ import annotations

from typing import Any

ATTENTION = "edgekit_executorch_llm"
"""The name the attention function and its (absent) mask are registered under in transformers."""


class _Start:
    position: Any = 0


_START = _Start()


def fits(config: Any) -> bool:
    """Whether every layer attends causally over the whole sequence with plain scaled scores (no
    sliding window in use, every layer type full attention, no logit soft-capping), which is what
    ``custom_sdpa`` computes. A family it does not fit would still fail the export's fp32 check."""
    text = config.get_text_config()
    sliding = getattr(text, "sliding_window", None) is not None and getattr(text, "use_sliding_window", True)
    types = getattr(text, "layer_types", None) or []
    capped = getattr(text, "attn_logit_softcapping", None) is not None
    return not sliding and not capped and all(t == "full_attention" for t in types)


def _register() -> None:
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (defines torch.ops.llama.*)
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
        # query [1, heads, n, dim]; key / value: views [1, kv_heads, max_seq, dim] of the cache
        out = torch.ops.llama.custom_sdpa(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            _START.position,
            None,
            0.0,
            True,
            scaling,
        )
        return out, None  # [1, n, heads, dim], as transformers' attention functions return it

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, lambda *args, **kwargs: None)  # the op masks by position


def runner_module(model: Any, max_seq: int) -> Any:
    """``model`` (changed: its attention is switched to the operators) as the runner's module."""
    import torch
    from transformers.cache_utils import StaticCache, StaticLayer

    from edgekit.models.decoder import cache_layout

    _register()
    model.set_attn_implementation(ATTENTION)
    config = model.config.get_text_config()
    layout = cache_layout(config, uses_position_ids=False)
    head_dim, kv_heads = layout.head_dim, layout.kv_heads

    class OperatorLayer(StaticLayer):
        def __init__(self):
            super().__init__(max_seq)
            self.keys = torch.zeros(1, max_seq, kv_heads, head_dim, dtype=model.dtype)
            self.values = torch.zeros(1, max_seq, kv_heads, head_dim, dtype=model.dtype)
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            torch.ops.llama.update_cache(key_states.transpose(1, 2), self.keys, _START.position)
            torch.ops.llama.update_cache(value_states.transpose(1, 2), self.values, _START.position)
            return self.keys.transpose(1, 2), self.values.transpose(1, 2)

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return max_seq, 0

    class OperatorDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.cache = StaticCache(config=config, max_cache_len=max_seq)
            self.cache.layers = [OperatorLayer() for _ in self.cache.layers]
            for i, layer in enumerate(self.cache.layers):
                self.register_buffer(f"key_cache_{i}", layer.keys, persistent=False)
                self.register_buffer(f"value_cache_{i}", layer.values, persistent=False)

        def forward(self, input_ids, cache_position):
            start = cache_position[0].item()
            torch._check(start >= 0)
            torch._check(start + input_ids.shape[1] <= max_seq)
            _START.position = start
            out = self.model(
                input_ids=input_ids,
                position_ids=cache_position[None],
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=1,
            )
            return out.logits[:, -1]

    return OperatorDecoder().eval()
