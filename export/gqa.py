"""ONNX Runtime's fused ``GroupQueryAttention`` for llama-style decoders (``--target ort``).

The standard graph spells attention out per layer: rotary embedding, concatenation onto the
past, repeating the KV heads, two MatMuls, a mask and a softmax: about 30 small nodes a layer,
which cost more than the layer's weights on a decode step of a small model on CPU. For
``--target ort`` the attention of each layer is exported as one ``com.microsoft``
GroupQueryAttention node instead:

    q_proj(h), k_proj(h), v_proj(h) ─┐
    past_key_values.{i}.key/value   ─┤
    seqlens_k, total_sequence_length ┼─> GroupQueryAttention (rotary inside, GQA heads, causal) ─> o_proj
    cos/sin cache (constants)       ─┘                     └─> present.{i}.key/value

``seqlens_k`` (valid tokens - 1 per row) and ``total_sequence_length`` come from
``attention_mask``; positions are counted from the start of each row, so the graph serves rows
that are unpadded or right-padded (transformers pads decoders on the left; edgekit's generation
runs one unpadded sequence per row). The projections stay MatMuls, so weight-only int8/int4
applies as before. The attention forward is swapped only while exporting: the PyTorch reference
stays the model's own code, and the graph is validated against it.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any

ATTENTION_CLASSES = ("LlamaAttention", "Qwen2Attention", "MistralAttention")


def gqa_layers(model) -> list[Any]:
    """The attention modules this rewrite handles, or [] when any layer differs (then the standard graph is used)."""
    layers = [layer.self_attn for layer in getattr(getattr(model, "model", None), "layers", [])]
    if not layers or any(type(a).__name__ not in ATTENTION_CLASSES for a in layers):
        return []
    return layers


def rotary_cache(model, max_positions: int):
    """cos and sin of every position, [max_positions, head_dim / 2], as the model's rotary embedding computes them."""
    import torch

    rotary = model.model.rotary_emb
    positions = torch.arange(max_positions)[None]
    probe = torch.zeros(1, dtype=torch.float32)
    with torch.no_grad():
        cos, sin = rotary(probe, positions)
    half = cos.shape[-1] // 2
    return cos[0, :, :half].contiguous(), sin[0, :, :half].contiguous()


def _gqa_forward(
    self, hidden_states, position_embeddings=None, attention_mask=None, past_key_values=None, **kwargs
):
    import torch

    ctx = self._edgekit_gqa
    batch, seq = hidden_states.shape[0], hidden_states.shape[1]
    heads, kv_heads, dim = self.config.num_attention_heads, self.config.num_key_value_heads, self.head_dim
    query, key, value = self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)
    layer = past_key_values.layers[self.layer_idx]
    past_key, past_value = layer.keys, layer.values
    total = past_key.shape[2] + seq
    window = getattr(self, "sliding_window", None)
    out, present_key, present_value = torch.onnx.ops.symbolic_multi_out(
        "com.microsoft::GroupQueryAttention",
        [query, key, value, past_key, past_value, ctx["seqlens_k"], ctx["total"], ctx["cos"], ctx["sin"]],
        {
            "num_heads": heads,
            "kv_num_heads": kv_heads,
            "do_rotary": 1,
            "rotary_interleaved": 0,
            "scale": float(self.scaling),
            "local_window_size": int(window) if window else -1,
        },
        dtypes=[query.dtype] * 3,
        shapes=[[batch, seq, heads * dim], [batch, kv_heads, total, dim], [batch, kv_heads, total, dim]],
        version=1,
    )
    layer.keys, layer.values = present_key, present_value
    return self.o_proj(out), None


def usable(model) -> bool:
    """Whether the model's attention can become GroupQueryAttention: llama-style layers, full rotary."""
    layers = gqa_layers(model)
    if not layers:
        return False
    cos, _ = rotary_cache(model, 2)
    return 2 * cos.shape[-1] == layers[0].head_dim


@contextlib.contextmanager
def gqa_attention(wrapper, max_positions: int):
    """While active, ``wrapper`` (edgekit/models/decoder.py's DecoderWithPast) exports each attention as one
    GroupQueryAttention node; its forward derives seqlens_k and total_sequence_length from the mask."""
    import torch

    model = wrapper.model
    layers = gqa_layers(model)
    cos, sin = rotary_cache(model, max_positions)
    wrapper.register_buffer("gqa_cos_cache", cos, persistent=False)
    wrapper.register_buffer("gqa_sin_cache", sin, persistent=False)
    ctx: dict[str, Any] = {"cos": wrapper.gqa_cos_cache, "sin": wrapper.gqa_sin_cache}
    original = type(wrapper).forward

    def forward(self, input_ids, attention_mask, position_ids=None, past=()):
        ctx["seqlens_k"] = (attention_mask.sum(-1) - 1).to(torch.int32)
        ctx["total"] = torch.ones_like(attention_mask[0]).sum().to(torch.int32)  # mask width as a scalar
        return original(self, input_ids, attention_mask, position_ids, past)

    for attn in layers:
        attn._edgekit_gqa = ctx
        attn.forward = types.MethodType(_gqa_forward, attn)
    wrapper.forward = types.MethodType(forward, wrapper)
    try:
        yield
    finally:
        for attn in layers:
            del attn.forward
            del attn._edgekit_gqa
        del wrapper.forward
        del wrapper.gqa_cos_cache, wrapper.gqa_sin_cache
