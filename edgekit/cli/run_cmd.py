"""Commands that run artifacts: ``generate``, ``bench``, ``demo`` and ``backends``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekit.cli._common import Encoding, Overwrite, Verbose, handled, split_list, stderr

_HELP_GENERATE = {
    "artifact": "A text-generation or seq2seq artifact written by 'edgekit export'.",
    "prompt": "The prompt text (text models; BLIP captioners: the start of the caption, continued).",
    "audio": "A WAV file to transcribe (speech models: Whisper reads at most 30 s; CTC models any length, in 20 s windows).",
    "image": "A picture to caption (image captioners: a vision encoder with a text decoder).",
    "language": "Speech models: the spoken language code, e.g. en (default: detected from the audio).",
    "translate": "Speech models: translate into English instead of transcribing.",
    "max_new_tokens": "Stop after this many new tokens.",
    "do_sample": "Sample instead of greedy decoding.",
    "temperature": "Sampling temperature (with --do-sample).",
    "top_k": "Sample from the k most likely tokens (0 = off).",
    "top_p": "Nucleus sampling threshold (1.0 = off).",
    "seed": "Seed for sampling.",
    "stop": "Stop when this text appears (repeatable).",
    "num_beams": "Beam search with this many beams (1 = greedy or sampling).",
    "length_penalty": "Beam search: scores are divided by length ** this (> 0 favours longer outputs).",
    "early_stopping": "Beam search: false (stop when no beam can improve), true (stop when num_beams are done) or never.",
    "no_repeat_ngram_size": "Never repeat an n-gram of this size (0 = off).",
    "chat": "Wrap the prompt in the tokenizer's chat template.",
    "backend": "Runtime backend (auto: the one the artifact was made for).",
    "threads": "Intra-op threads (default: all cores).",
}

_HELP_BENCH = {
    "artifacts": "Artifact folders written by 'edgekit export'.",
    "backend": "Comma-separated backends: torch (reference), ort, openvino.",
    "batch": "Comma-separated batch sizes.",
    "seq_len": "Comma-separated sequence lengths (inputs padded/truncated to each).",
    "warmup": "Untimed runs per case.",
    "repeat": "Timed runs per case.",
    "threads": "Intra-op threads for every backend (default: all cores).",
    "text": "Input texts: .txt (a line each), .jsonl (field 'text') or a folder of .txt; default: built-in sample.",
    "new_tokens": "Decoders and encoder-decoders: greedy tokens per generation run (default 128, fewer where an encoder-decoder holds fewer positions).",
    "prompt_len": "Decoders: prompt tokens for time-to-first-token and tokens/s.",
    "contexts": "Decoders and encoder-decoders: context lengths for per-token latency, with and without cache (default 16,128,512, less those past the model's positions).",
    "eval_data": "Encoders: texts to measure quality on against PyTorch fp32 (embedding cosine; labels in .jsonl 'label' or class subfolders add 5-fold accuracy). Image-text models: image-text pairs (.jsonl of image/text/label, or images with same-name .txt captions) for recall and zero-shot agreement against fp32. Vision encoders: an image folder. CTC models: WAV files. Captioners: a folder of photos, each variant's greedy captions against fp32's (exact match, token F1).",
    "out": "Folder for bench.json, bench.md and bench.png.",
}

_HELP_DEMO = {
    "out": "Folder for the demo: optimize/ (report.md, report.html, pareto.png, best-ort/, best-openvino/) and generation/.",
    "max_steps": "Distillation steps of the 3-layer MiniLM student.",
    "held_docs": "Held-out BBC News documents the quality is measured on (0: all 1112).",
    "repeat": "Timed runs per cell.",
    "new_tokens": "SmolLM2: greedy tokens per timed generation.",
    "no_generation": "Skip the SmolLM2 generation part.",
    "resume": "Go on with a demo folder that was interrupted, reusing its finished stages.",
}


@handled
def generate(
    artifact: Annotated[Path, typer.Argument(help=_HELP_GENERATE["artifact"])],
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help=_HELP_GENERATE["prompt"])] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help=_HELP_GENERATE["audio"])] = None,
    image: Annotated[Optional[Path], typer.Option("--image", help=_HELP_GENERATE["image"])] = None,
    language: Annotated[Optional[str], typer.Option("--language", help=_HELP_GENERATE["language"])] = None,
    translate: Annotated[bool, typer.Option("--translate", help=_HELP_GENERATE["translate"])] = False,
    max_new_tokens: Annotated[int, typer.Option(help=_HELP_GENERATE["max_new_tokens"])] = 32,
    do_sample: Annotated[bool, typer.Option("--do-sample", help=_HELP_GENERATE["do_sample"])] = False,
    temperature: Annotated[float, typer.Option(help=_HELP_GENERATE["temperature"])] = 1.0,
    top_k: Annotated[int, typer.Option(help=_HELP_GENERATE["top_k"])] = 0,
    top_p: Annotated[float, typer.Option(help=_HELP_GENERATE["top_p"])] = 1.0,
    seed: Annotated[Optional[int], typer.Option(help=_HELP_GENERATE["seed"])] = None,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", help=_HELP_GENERATE["stop"])] = None,
    num_beams: Annotated[int, typer.Option(help=_HELP_GENERATE["num_beams"])] = 1,
    length_penalty: Annotated[float, typer.Option(help=_HELP_GENERATE["length_penalty"])] = 1.0,
    early_stopping: Annotated[str, typer.Option(help=_HELP_GENERATE["early_stopping"])] = "false",
    no_repeat_ngram_size: Annotated[int, typer.Option(help=_HELP_GENERATE["no_repeat_ngram_size"])] = 0,
    chat: Annotated[bool, typer.Option("--chat", help=_HELP_GENERATE["chat"])] = False,
    backend: Annotated[str, typer.Option("--backend", "-b", help=_HELP_GENERATE["backend"])] = "auto",
    threads: Annotated[Optional[int], typer.Option(help=_HELP_GENERATE["threads"])] = None,
    verbose: Verbose = False,
) -> None:
    """Generate text with a KV-cache decoder (continues the prompt), an encoder-decoder (reads the prompt, writes a new text) a speech model (transcribes --audio) or an image captioner (describes --image); tokens are printed as they come (beam search: at the end)."""
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    stopping = {"true": True, "false": False, "never": "never"}.get(early_stopping.lower(), early_stopping)
    cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop_strings=tuple(stop or ()),
        num_beams=num_beams,
        length_penalty=length_penalty,
        early_stopping=stopping,
        no_repeat_ngram_size=no_repeat_ngram_size,
    )
    result = generate_text(
        artifact,
        prompt,
        cfg,
        backend=backend,
        chat=chat,
        threads=threads,
        on_text=lambda piece: print(piece, end="", flush=True),
        audio=audio,
        image=image,
        language=language,
        translate=translate,
    )
    print()
    if result.language and not language:
        stderr().print(f"detected language: {result.language}")
    logging.getLogger("edgekit").info(
        "%d prompt tokens, %d new tokens, stopped by %s",
        result.prompt_tokens,
        len(result.token_ids),
        result.stopped_by,
    )


@handled
def bench_cmd(
    artifacts: Annotated[list[Path], typer.Argument(help=_HELP_BENCH["artifacts"])],
    backend: Annotated[str, typer.Option("--backend", "-b", help=_HELP_BENCH["backend"])] = "torch,ort",
    batch: Annotated[str, typer.Option(help=_HELP_BENCH["batch"])] = "1",
    seq_len: Annotated[str, typer.Option("--seq-len", help=_HELP_BENCH["seq_len"])] = "128",
    warmup: Annotated[int, typer.Option(help=_HELP_BENCH["warmup"])] = 5,
    repeat: Annotated[int, typer.Option(help=_HELP_BENCH["repeat"])] = 30,
    threads: Annotated[Optional[int], typer.Option(help=_HELP_BENCH["threads"])] = None,
    text: Annotated[Optional[Path], typer.Option(help=_HELP_BENCH["text"])] = None,
    new_tokens: Annotated[Optional[int], typer.Option("--new-tokens", help=_HELP_BENCH["new_tokens"])] = None,
    prompt_len: Annotated[int, typer.Option("--prompt-len", help=_HELP_BENCH["prompt_len"])] = 32,
    contexts: Annotated[Optional[str], typer.Option("--contexts", help=_HELP_BENCH["contexts"])] = None,
    eval_data: Annotated[Optional[Path], typer.Option("--eval-data", help=_HELP_BENCH["eval_data"])] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=_HELP_BENCH["out"])] = None,
    encoding: Encoding = None,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """Benchmark artifacts on several backends: latency percentiles, throughput, peak RSS, size, agreement with
    PyTorch; for decoders, time to first token, tokens/s and per-token latency by context, with and without cache."""
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table

    cfg = BenchConfig(
        artifacts=tuple(artifacts),
        backends=split_list(backend, str, "--backend"),
        batches=split_list(batch, int, "--batch"),
        seq_lens=split_list(seq_len, int, "--seq-len"),
        warmup=warmup,
        repeat=repeat,
        threads=threads,
        text=text,
        out=out,
        overwrite=overwrite,
        new_tokens=new_tokens,
        prompt_len=prompt_len,
        contexts=split_list(contexts, int, "--contexts") if contexts else None,
        eval_data=eval_data,
        encoding=encoding,
    )
    result = bench(cfg, verbose=verbose)
    print_table(result)
    if out is not None:
        print(f"wrote {out}/bench.json, bench.md")


@handled
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help=_HELP_DEMO["out"])] = Path("edgekit-demo"),
    max_steps: Annotated[int, typer.Option(help=_HELP_DEMO["max_steps"])] = 400,
    held_docs: Annotated[int, typer.Option(help=_HELP_DEMO["held_docs"])] = 500,
    repeat: Annotated[int, typer.Option(help=_HELP_DEMO["repeat"])] = 20,
    new_tokens: Annotated[int, typer.Option(help=_HELP_DEMO["new_tokens"])] = 64,
    no_generation: Annotated[bool, typer.Option("--no-generation", help=_HELP_DEMO["no_generation"])] = False,
    resume: Annotated[bool, typer.Option(help=_HELP_DEMO["resume"])] = False,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """The default run, about 10 minutes on 2 cores: optimize the packaged MiniLM (a distilled
    3-layer student, fp32 and INT8 on ONNX Runtime and OpenVINO, benched against the teacher in
    PyTorch, quality on BBC News), then time SmolLM2 generating in fp32 and int4."""
    from edgekit.demo import DemoConfig, run_demo

    run_demo(
        DemoConfig(
            out=out,
            max_steps=max_steps,
            held_docs=held_docs or None,
            repeat=repeat,
            new_tokens=new_tokens,
            generation=not no_generation,
            resume=resume,
            overwrite=overwrite,
        )
    )


@handled
def backends(verbose: Verbose = False) -> None:
    """List the runtime backends, whether each is installed, and the extra that provides it."""
    from rich.markup import escape
    from rich.table import Table

    from edgekit.benchmarks.report import wide_console
    from edgekit.runtimes import list_backends

    table = Table()
    for col in ("backend", "installed", "pip extra", "what"):
        table.add_column(col)
    for entry in list_backends():
        table.add_row(
            entry.name,
            "yes" if entry.available() else f"no ({', '.join(entry.missing())} missing)",
            escape(f"edgekit[{entry.extra}]"),
            entry.description,
        )
    wide_console().print(table)
