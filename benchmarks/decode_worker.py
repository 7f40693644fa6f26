"""One decoder runtime in a process of its own, for ``decode_peers``: it loads a model, then answers
each JSON line on stdin (``{"prompt": [ids], "new_tokens": n}``) with one JSON line on stdout:
the greedy tokens (EOS ignored) and the wall-clock time at which each token was ready, measured
around the runtime's own generation loop (Python loop, sampling and copies included, as a user
of that runtime gets them).

Run by path with the ``python`` of the runtime's own virtualenv, so it imports nothing of edgekit
at module level (the llama.cpp and onnxruntime-genai workers run where edgekit is not installed):

    python decode_worker.py KIND MODEL THREADS

KIND: ``edgekit:<backend>`` (MODEL an artifact), ``torch`` (an HF folder, transformers' own
cache), ``llama.cpp`` (a GGUF file), ``ort-genai`` (a model builder folder), ``pte`` (an
ExecuTorch program in the LLM runner's shape, e.g. optimum-executorch's: ``forward(input_ids,
cache_position)`` with the cache inside).
"""

from __future__ import annotations

import json
import sys
import time


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _edgekit(model: str, backend: str, threads: int):
    from edgekit.artifacts import read_manifest
    from edgekit.models.cache_io import DecoderIO
    from edgekit.runtimes.generate import GenerationConfig, generate_ids
    from edgekit.runtimes.registry import load_session

    session = load_session(model, backend, threads=threads)
    io = DecoderIO.from_manifest(read_manifest(model))

    def run(prompt: list[int], new: int, stamp) -> list[int]:
        return generate_ids(session, io, prompt, GenerationConfig(max_new_tokens=new), on_token=stamp)

    return run


def _torch(model: str, threads: int):
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    torch.set_num_threads(threads)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()

    @torch.inference_mode()
    def run(prompt: list[int], new: int, stamp) -> list[int]:
        cache = DynamicCache(config=lm.config)
        ids = torch.tensor([prompt])
        out = []
        for _ in range(new):
            logits = lm(input_ids=ids, past_key_values=cache, use_cache=True).logits[0, -1]
            token = int(torch.argmax(logits))
            out.append(token)
            stamp(token)
            ids = torch.tensor([[token]])
        return out

    return run


def _llama_cpp(model: str, threads: int):
    from llama_cpp import Llama

    llm = Llama(
        model_path=model, n_ctx=1024, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False
    )

    def run(prompt: list[int], new: int, stamp) -> list[int]:
        llm.reset()  # no prefix reuse between runs: every run evaluates its whole prompt
        out = []
        for token in llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            out.append(int(token))
            stamp(token)
            if len(out) == new:
                break
        return out

    return run


def _ort_genai(model: str, threads: int):
    import onnxruntime_genai as og

    config = og.Config(model)
    lm = og.Model(config)

    def run(prompt: list[int], new: int, stamp) -> list[int]:
        params = og.GeneratorParams(lm)
        params.set_search_options(
            do_sample=False, max_length=len(prompt) + new, min_length=len(prompt) + new, batch_size=1
        )
        generator = og.Generator(lm, params)
        generator.append_tokens(prompt)
        out = []
        while len(out) < new and not generator.is_done():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            out.append(token)
            stamp(token)
        return out

    return run


def _pte(model: str, threads: int):
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime

    try:
        import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (custom sdpa / kv cache)
    except ImportError:
        pass
    import executorch.kernels.quantized  # noqa: F401  (embedding_byte)

    _unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(model).load_method("forward")

    def last(logits):
        return int(torch.argmax(logits.reshape(-1, logits.shape[-1])[-1]))

    def run(prompt: list[int], new: int, stamp) -> list[int]:
        ids = torch.tensor([prompt], dtype=torch.long)
        token = last(method.execute([ids, torch.arange(len(prompt), dtype=torch.long)])[0])
        out = [token]
        stamp(token)
        while len(out) < new:
            position = torch.tensor([len(prompt) + len(out) - 1], dtype=torch.long)
            token = last(method.execute([torch.tensor([[token]], dtype=torch.long), position])[0])
            out.append(token)
            stamp(token)
        return out

    return run


def _open(kind: str, model: str, threads: int):
    if kind.startswith("edgekit:"):
        return _edgekit(model, kind.split(":", 1)[1], threads)
    return {"torch": _torch, "llama.cpp": _llama_cpp, "ort-genai": _ort_genai, "pte": _pte}[kind](
        model, threads
    )


def main() -> None:
    kind, model, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.perf_counter()
    run = _open(kind, model, threads)
    print(json.dumps({"ready": {"load_s": time.perf_counter() - t0, "rss_mb": _peak_rss_mb()}}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        stamps: list[float] = []
        start = time.perf_counter()
        tokens = run(request["prompt"], request["new_tokens"], lambda _t: stamps.append(time.perf_counter()))
        print(
            json.dumps(
                {"tokens": tokens, "times_s": [s - start for s in stamps], "peak_rss_mb": _peak_rss_mb()}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
