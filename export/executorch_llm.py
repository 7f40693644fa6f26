"""ExecuTorch programs of KV-cache decoders, in the shape ExecuTorch's LLM runner loads:
``forward(input_ids [1, n], cache_position [n]) -> logits [1, vocab]`` (the last position's), the
KV cache a static buffer of ``max_seq`` positions inside the program, a prompt of up to ``max_seq`` tokens in
one call, and the runner's metadata (``get_max_seq_len``, ``get_eos_ids``, ...) as constant
methods of the program. The cache's initial values are not stored in the file (it would grow by
the whole cache): ExecuTorch's ``Module`` zero-fills planned memory when it loads a program, and
attention gives the positions past the last one written a weight of exactly zero, so what an
earlier sequence left there never counts. Causal full-sequence attention runs on ExecuTorch's
LLM operators (export/executorch_attention.py); sliding-window models keep transformers'
``StaticCache`` (``static_cache_module``).

Precisions: fp32, or XNNPACK's dynamically quantized linears (activations int8 per token at run
time, weights int8 per output channel or int4 in groups of ``INT4_GROUP``; torchao), with the token
embedding int8 per row, weight-only. A tied output projection gets its own copy first, so the
embedding and the projection are quantized each for its use.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgekit.runtimes.executorch_backend import quiet_executorch

quiet_executorch()

DECODER_MAX_SEQ = 1024
"""The default cache length of a decoder's program: the model's positions, at most this."""
INT4_GROUP = 32
PTE_QUANTIZATION = {
    "int8": "linears: int8 weights per output channel, activations int8 per token at run time (XNNPACK 8da8w)",
    "int4": f"linears: int4 weights in groups of {INT4_GROUP}, activations int8 per token at run time (XNNPACK 8da4w)",
}


def static_cache_module(model: Any, max_seq: int) -> Any:
    """``model`` (a transformers causal LM) as the runner's module: the static cache registered
    as buffers so the program carries it, every call writing at ``cache_position``."""
    import torch
    from transformers.cache_utils import StaticCache

    from edgekit.models.decoder import cache_layout

    config = model.config.get_text_config()
    layout = cache_layout(config, uses_position_ids=False)
    head_dim, kv_heads = layout.head_dim, layout.kv_heads

    class StaticCacheDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.cache = StaticCache(config=config, max_cache_len=max_seq)
            self.cache.early_initialization(1, kv_heads, head_dim, model.dtype, torch.device("cpu"))
            for i, layer in enumerate(self.cache.layers):
                self.register_buffer(f"key_cache_{i}", layer.keys, persistent=False)
                self.register_buffer(f"value_cache_{i}", layer.values, persistent=False)
                self.register_buffer(f"cache_length_{i}", layer.cumulative_length, persistent=False)

        def forward(self, input_ids, cache_position):
            # the cache's own count of written positions is set from the call, so one program
            # serves any number of sequences: a new one starts again at position 0
            for layer in self.cache.layers:
                layer.cumulative_length.copy_(cache_position[0])
            out = self.model(
                input_ids=input_ids, past_key_values=self.cache, use_cache=True, logits_to_keep=1
            )
            return out.logits[:, -1]

    return StaticCacheDecoder().eval()


def quantized_copy(model: Any, precision: str) -> Any:
    """A copy of ``model`` (the program's module changes it), with XNNPACK's dynamically quantized
    linears (``int8``/``int4``) and an int8 token embedding."""
    import copy

    if precision == "fp32":
        return copy.deepcopy(model)
    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    quantized = copy.deepcopy(model)
    out, embed = quantized.get_output_embeddings(), quantized.get_input_embeddings()
    if out is not None and out.weight is embed.weight:
        out.weight = torch.nn.Parameter(embed.weight.detach().clone())
    # a padding index changes only gradients; the lookup with one is not the pattern that
    # becomes ExecuTorch's embedding_byte kernel
    embed.padding_idx = None
    weights = (torch.int4, PerGroup(INT4_GROUP)) if precision == "int4" else (torch.int8, PerAxis(0))
    quantize_(
        quantized,
        Int8DynamicActivationIntxWeightConfig(weight_dtype=weights[0], weight_granularity=weights[1]),
    )
    quantize_(
        quantized,
        IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
        filter_fn=lambda module, _name: isinstance(module, torch.nn.Embedding),
    )
    return quantized


def runner_metadata(model: Any, max_seq: int, eos_ids: list[int]) -> dict:
    """What ExecuTorch's LLM runner asks a program for, by constant method name."""
    config = model.config.get_text_config()
    meta = {
        "get_max_seq_len": max_seq,
        "get_max_context_len": max_seq,
        "get_vocab_size": int(config.vocab_size),
        "get_n_layers": int(config.num_hidden_layers),
        "use_kv_cache": True,
        "enable_dynamic_shape": True,
        "get_eos_ids": list(eos_ids),
    }
    bos = getattr(model.generation_config, "bos_token_id", None)
    if isinstance(bos, int):
        meta["get_bos_id"] = bos
    return meta


def write_decoder_pte(model: Any, precision: str, max_seq: int, eos_ids: list[int], path: Path) -> dict:
    """The decoder's program at ``path`` (fp32, int8 or int4); what the manifest says about it."""
    import torch

    from edgekit.export import executorch_attention

    started = time.perf_counter()
    operators = executorch_attention.fits(model.config)
    module = (executorch_attention.runner_module if operators else static_cache_module)(
        quantized_copy(model, precision), max_seq
    )
    example = (torch.tensor([[1, 2, 3, 4]], dtype=torch.long), torch.arange(4, dtype=torch.long))
    seq = torch.export.Dim("sequence", min=1, max=max_seq)
    with torch.no_grad():
        program = torch.export.export(module, example, dynamic_shapes=({1: seq}, {0: seq}), strict=True)
    from edgekit.export.executorch_pte import lower

    section = lower(program, path, started, runner_metadata(model, max_seq, eos_ids), precision != "fp32")
    return {
        **section,
        "model_file": path.name,
        "max_seq": max_seq,
        "inputs": [
            {"name": "input_ids", "shape": [1, "sequence"], "dtype": "int64"},
            {"name": "cache_position", "shape": ["sequence"], "dtype": "int64"},
        ],
        "outputs": [
            {
                "name": "logits",
                "shape": [1, int(model.config.get_text_config().vocab_size)],
                "dtype": "float32",
            }
        ],
        "cache": "static, inside the program: written at cache_position, a new sequence starts at 0",
        "attention": (
            "ExecuTorch's llama::update_cache and llama::custom_sdpa (the positions written so far)"
            if operators
            else "transformers' StaticCache and sdpa over the whole cache, masked"
        ),
        **(
            {
                "quantization": {
                    "scheme": PTE_QUANTIZATION[precision],
                    "embedding": "int8 per row, weight-only",
                }
            }
            if precision in PTE_QUANTIZATION
            else {}
        ),
    }
