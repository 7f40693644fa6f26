"""The ``edgekit`` command line. Thin: it parses options into a config and calls the library.

Errors a user can cause print one line and exit non-zero; ``--verbose`` adds the traceback
and debug logs.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

app = typer.Typer(
    name="edgekit",
    help="Make trained transformers small and fast on edge devices: export, validate, run and benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists (the old folder is removed only after success).")]


def _setup_logging(verbose: bool) -> None:
    import os

    from rich.logging import RichHandler

    if not verbose:  # transformers' weight-loading bars would break the one-line error contract
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s", handlers=[RichHandler(show_path=False, console=_stderr())], force=True)
    if not verbose:
        for noisy in ("torch", "transformers", "onnxscript", "httpx"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _split(value: str, cast: Callable, option: str) -> tuple:
    from edgekit.errors import InputError

    try:
        items = tuple(cast(v.strip()) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise InputError(f"{option} '{value}' is not a comma-separated list of {cast.__name__}", f"pass e.g. {option} 1,8") from exc
    if not items:
        raise InputError(f"{option} is empty", f"pass e.g. {option} 1,8")
    return items


def handled(fn):
    """Turn errors into one line on stderr and an exit code; keep the traceback for --verbose."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        verbose = bool(kwargs.get("verbose"))
        _setup_logging(verbose)
        from edgekit.errors import EdgekitError

        try:
            return fn(*args, **kwargs)
        except EdgekitError as exc:
            if verbose:
                _stderr().print_exception()
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted; nothing was written", file=sys.stderr)
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - an unexpected failure: one line unless --verbose
            if verbose:
                _stderr().print_exception()
            first = (str(exc).splitlines() or [""])[0][:300]
            print(f"error: unexpected {type(exc).__name__}: {first} (rerun with --verbose for the traceback)", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        from edgekit import __version__

        print(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """edgekit: distil, export, quantize, run and benchmark transformers for edge devices."""


@app.command()
@handled
def export(
    model: Annotated[Path, typer.Option("--model", "-m", help="Hugging Face model folder (config.json, weights, tokenizer).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Artifact folder to write.")],
    target: Annotated[str, typer.Option(help="Export target: onnx, ort, openvino, trt.")] = "onnx",
    precision: Annotated[str, typer.Option(help="fp32; fp16 (openvino weights; trt, the one decoder precision for trt); int8 (encoders: static, needs --calib, for onnx, ort, openvino, trt; decoders: weight-only, ort/openvino); int8-dynamic (ort); int4 (decoders, weight-only, ort/openvino).")] = "fp32",
    task: Annotated[str, typer.Option(help="auto, feature-extraction (last_hidden_state), sentence-embedding (adds the pooled embedding), text-generation (causal LM with KV cache) or seq2seq (encoder-decoder: T5, BART, Whisper).")] = "auto",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 20,
    exporter: Annotated[str, typer.Option(help="auto (torch.export-based, TorchScript fallback), dynamo or torchscript.")] = "auto",
    atol: Annotated[Optional[float], typer.Option(help="Max |diff| against PyTorch; default 1e-4 for fp32.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (recorded in the manifest).")] = 0,
    calib: Annotated[Optional[Path], typer.Option(help="INT8 calibration data: .txt (a text per line), .jsonl (field 'text'), or a folder of .txt files or images.")] = None,
    calib_size: Annotated[int, typer.Option("--calib-size", help="INT8: calibration samples (drawn with --seed).")] = 128,
    calib_method: Annotated[str, typer.Option("--calib-method", help="INT8 ranges: percentile, minmax or entropy.")] = "percentile",
    percentile: Annotated[float, typer.Option(help="INT8 --calib-method percentile: share of |values| kept in range.")] = 99.999,
    smooth_quant: Annotated[float, typer.Option("--smooth-quant", help="INT8 on ONNX graphs: SmoothQuant alpha (0 = off).")] = 0.8,
    seq_len: Annotated[str, typer.Option("--seq-len", help="INT8: comma-separated sequence lengths the model will run at (calibration text is padded to each).")] = "128",
    max_drop: Annotated[Optional[float], typer.Option("--max-drop", help="INT8 accuracy guard: largest drop allowed vs fp32 (1 - mean cosine, or accuracy with labelled --eval-data); keeps sensitive layers in float until it fits.")] = None,
    eval_data: Annotated[Optional[Path], typer.Option("--eval-data", help="INT8: held-out texts to measure quality on (.jsonl 'label' fields or class subfolders add accuracy).")] = None,
    max_float_nodes: Annotated[int, typer.Option("--max-float-nodes", help="INT8 accuracy guard: most layers it may keep in float.")] = 16,
    max_batch: Annotated[int, typer.Option("--max-batch", help="--target trt: largest batch of the optimization profiles.")] = 16,
    max_seq: Annotated[Optional[int], typer.Option("--max-seq-len", help="--target trt: longest sequence of the optimization profiles (decoders: prompt + new tokens; default: the model's limit, at most 2048 for decoders).")] = None,
    gqa: Annotated[bool, typer.Option("--gqa/--no-gqa", help="--target ort, llama-style decoders: one fused GroupQueryAttention node per layer (rows unpadded or right-padded); --no-gqa keeps the standard graph.")] = True,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """Export a model to a validated artifact folder (ONNX or IR + tokenizer + manifest.json)."""
    from edgekit.export import ExportConfig, export_model

    cfg = ExportConfig(
        model=model, out=out, target=target, precision=precision, task=task, opset=opset, exporter=exporter, atol=atol, seed=seed, overwrite=overwrite,
        calib=calib, calib_size=calib_size, calib_method=calib_method, percentile=percentile, smooth_alpha=smooth_quant, seq_lens=_split(seq_len, int, "--seq-len"),
        max_drop=max_drop, eval_data=eval_data, max_float_nodes=max_float_nodes, max_batch=max_batch, max_seq=max_seq, gqa=gqa,
    )
    path = export_model(cfg)
    _print_export_summary(path)


def _print_export_summary(path: Path) -> None:
    from edgekit.artifacts import read_manifest

    manifest = read_manifest(path)
    validation = manifest["validation"]
    if manifest["export"].get("quantization", {}).get("mode") == "weight-only":
        g = validation["greedy_generation"]
        print(f"wrote {path} ({manifest['export']['format']}, weight-only {manifest['export']['precision']}); greedy tokens identical to transformers fp32 on {g['identical_prompts']} of {g['prompts']} prompts ({g['new_tokens']} tokens each)")
        return
    if "quality" in validation:
        q = validation["quality"]
        quant = manifest["export"].get("quantization", {})
        acc = f", accuracy {q['accuracy']:.4f} vs fp32 {q['reference_accuracy']:.4f}" if "accuracy" in q else ""
        kept = f"; {len(quant['float_nodes'])} layer(s) kept in float" if quant.get("float_nodes") else ""
        print(f"wrote {path} ({manifest['export']['format']}, {manifest['export']['precision']}); on {validation['runtime']} vs PyTorch fp32 over {q['texts']} texts: mean cosine {q['mean_cosine']:.4f} (min {q['min_cosine']:.4f}){acc}{kept}")
        _print_engine_status(manifest, path)
        return
    worst = max(validation["max_abs_diff"].items(), key=lambda kv: kv[1])
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in validation["max_abs_diff"].items()) if len(validation["max_abs_diff"]) <= 3 else f"{worst[0]} {worst[1]:.2e} (worst of {len(validation['max_abs_diff'])} outputs)"
    if "greedy_generation" in validation:
        greedy = validation["greedy_generation"]
        total = greedy.get("prompts", greedy.get("inputs"))
        agreed = total if greedy.get("identical", True) else f"{greedy['identical_prompts']} of {total}"
        diffs += f"; greedy tokens identical to transformers on {agreed} " + ("prompts" if "prompts" in greedy else "inputs")
    fmt = manifest["export"].get("format", "onnx")
    print(f"wrote {path} ({fmt}, {manifest['export']['exporter']} exporter, opset {manifest['export']['opset']}); validated on {validation.get('runtime')} on {len(validation['cases'])} inputs: max |diff| {diffs} (atol {validation['atol']:g})")
    _print_engine_status(manifest, path)


def _print_engine_status(manifest: dict, path: Path) -> None:
    trt = manifest["export"].get("tensorrt")
    if trt is None:
        return
    if trt["engine_built"]:
        print(f"built the TensorRT engine: {trt['engine']['tensorrt_version']} on {trt['engine']['gpu']}")
    else:
        print(f"TensorRT engine not built: {trt['not_built_because']}; on the device run 'edgekit build {path}' or {path}/build_trt.sh")


@app.command()
@handled
def distill(
    teacher: Annotated[Optional[Path], typer.Option(help="Teacher: a Hugging Face model folder.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Training text: .txt (a text per line), .jsonl (field 'text') or a folder of .txt files.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Student folder to write (HF folder, ready for 'edgekit export').")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML/JSON file with any of these options (command-line options win).")] = None,
    student: Annotated[Optional[Path], typer.Option(help="Use this HF folder as the student.")] = None,
    student_layers: Annotated[Optional[int], typer.Option("--student-layers", help="Build a student with N layers from the teacher (uniformly chosen teacher layers).")] = None,
    student_layer_list: Annotated[Optional[str], typer.Option("--student-layer-list", help="Teacher layers (1-based, comma-separated) the student layers start from.")] = None,
    student_hidden: Annotated[Optional[int], typer.Option("--student-hidden", help="Narrower student width (a learned projection bridges the widths).")] = None,
    student_heads: Annotated[Optional[int], typer.Option("--student-heads")] = None,
    student_ffn: Annotated[Optional[int], typer.Option("--student-ffn")] = None,
    task: Annotated[Optional[str], typer.Option(help="sentence-embedding, sequence-classification (labels from a jsonl 'label' field or class subfolders), masked-lm or causal-lm.")] = None,
    a2: Annotated[Optional[float], typer.Option("--a2", help="Weight of the student's own task loss (cross-entropy on the labels).")] = None,
    a1: Annotated[Optional[float], typer.Option("--a1", help="Weight of the distillation loss L_kd.")] = None,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    grad_accum: Annotated[Optional[int], typer.Option("--grad-accum")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="cosine or linear decay after warmup.")] = None,
    save_every: Annotated[Optional[int], typer.Option("--save-every", help="Checkpoint every N steps.")] = None,
    eval_fraction: Annotated[Optional[float], typer.Option("--eval-fraction", help="Held-out share of the data, never trained on.")] = None,
    layer_map: Annotated[Optional[str], typer.Option("--layer-map", help="g(m): uniform, last or list.")] = None,
    layer_map_list: Annotated[Optional[str], typer.Option("--layer-map-list", help="Teacher layer for each student layer (with --layer-map list).")] = None,
    w_embed: Annotated[Optional[float], typer.Option("--w-embed")] = None,
    w_attn: Annotated[Optional[float], typer.Option("--w-attn")] = None,
    w_hidden: Annotated[Optional[float], typer.Option("--w-hidden")] = None,
    w_pred: Annotated[Optional[float], typer.Option("--w-pred")] = None,
    temperature: Annotated[Optional[float], typer.Option()] = None,
    attn_loss: Annotated[Optional[str], typer.Option("--attn-loss", help="mse (pre-softmax scores) or kl.")] = None,
    pred_loss: Annotated[Optional[str], typer.Option("--pred-loss", help="mse or cosine on the pooled embedding.")] = None,
    freeze: Annotated[Optional[list[str]], typer.Option("--freeze", help="Glob on parameter names to keep frozen (repeatable).")] = None,
    momentum_teacher: Annotated[Optional[float], typer.Option("--momentum-teacher", help="EMA decay of a momentum teacher (an average of the student), combined with the fixed teacher.")] = None,
    w_momentum: Annotated[Optional[float], typer.Option("--w-momentum")] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    amp: Annotated[Optional[str], typer.Option(help="Autocast while training: no, bf16 (CPU or GPU) or fp16 (GPU).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out.")] = False,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """Distil a teacher into a smaller student, layer by layer; resumable."""
    from edgekit.distill.config import DistillConfig, load_config_file
    from edgekit.distill.train import distill as run

    def ints(value: Optional[str], option: str):
        return _split(value, int, option) if value is not None else None

    given = dict(
        teacher=teacher, data=data, out=out, student=student, student_layers=student_layers, student_layer_list=ints(student_layer_list, "--student-layer-list"),
        student_hidden=student_hidden, student_heads=student_heads, student_ffn=student_ffn, task=task, seq_len=seq_len, batch_size=batch_size,
        max_steps=max_steps, lr=lr, grad_accum=grad_accum, schedule=schedule, save_every=save_every, eval_fraction=eval_fraction, layer_map=layer_map,
        layer_map_list=ints(layer_map_list, "--layer-map-list"), w_embed=w_embed, w_attn=w_attn, w_hidden=w_hidden, w_pred=w_pred, temperature=temperature,
        attn_loss=attn_loss, pred_loss=pred_loss, a1=a1, a2=a2, freeze=tuple(freeze) if freeze else None, momentum_teacher=momentum_teacher, w_momentum=w_momentum, seed=seed, amp=amp, resume=resume or None, overwrite=overwrite or None,
    )
    if config is not None:
        cfg = load_config_file(config, given)
    else:
        from edgekit.errors import InputError

        missing = [k for k in ("teacher", "data", "out") if given[k] is None]
        if missing:
            raise InputError(f"missing option --{missing[0]}", "give --teacher, --data and --out, or --config FILE")
        cfg = DistillConfig(**{k: v for k, v in given.items() if v is not None})
    path = run(cfg)
    import json
    import os

    if os.environ.get("RANK", "0") != "0":
        return
    report = json.loads((path / "report.json").read_text())
    cos = report.get("mean_cosine_to_teacher")
    quality = f", mean cosine to the teacher {cos:.4f} on {report['eval_texts']} held-out texts" if cos is not None else ""
    if "student_perplexity" in report:
        quality = f", held-out perplexity {report['student_perplexity']:.2f} (teacher {report['teacher_perplexity']:.2f}) on {report['eval_texts']} texts"
    if "student_accuracy" in report:
        quality = f", held-out accuracy {report['student_accuracy']:.4f} (teacher {report['teacher_accuracy']:.4f}) on {report['eval_texts']} texts"
    print(f"wrote {path}: {report['student_parameters'] / 1e6:.1f}M parameters (teacher {report['teacher_parameters'] / 1e6:.1f}M), {report['speedup_vs_teacher']:.2f}x the teacher's PyTorch speed{quality}")


@app.command("build")
@handled
def build_cmd(
    artifact: Annotated[Path, typer.Argument(help="A folder written by 'edgekit export --target trt'.")],
    verbose: Verbose = False,
) -> None:
    """Build the TensorRT engine of a --target trt artifact on this device (TensorRT and a GPU needed)."""
    from edgekit.export.tensorrt import build_artifact

    stamp = build_artifact(artifact)
    print(f"built {artifact}/model.engine with TensorRT {stamp['tensorrt_version']} for {stamp['gpu']} (compute {stamp['compute_capability']})")


@app.command("bench")
@handled
def bench_cmd(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifact folders written by 'edgekit export'.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="Comma-separated backends: torch (reference), ort, openvino.")] = "torch,ort",
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1",
    seq_len: Annotated[str, typer.Option("--seq-len", help="Comma-separated sequence lengths (inputs padded/truncated to each).")] = "128",
    warmup: Annotated[int, typer.Option(help="Untimed runs per case.")] = 5,
    repeat: Annotated[int, typer.Option(help="Timed runs per case.")] = 30,
    threads: Annotated[Optional[int], typer.Option(help="Intra-op threads for every backend (default: all cores).")] = None,
    text: Annotated[Optional[Path], typer.Option(help="Input texts: .txt (a line each), .jsonl (field 'text') or a folder of .txt; default: built-in sample.")] = None,
    new_tokens: Annotated[int, typer.Option("--new-tokens", help="Decoders: greedy tokens per generation run.")] = 128,
    prompt_len: Annotated[int, typer.Option("--prompt-len", help="Decoders: prompt tokens for time-to-first-token and tokens/s.")] = 32,
    contexts: Annotated[Optional[str], typer.Option("--contexts", help="Decoders and encoder-decoders: context lengths for per-token latency, with and without cache (default 16,128,512, less those past the model's positions).")] = None,
    eval_data: Annotated[Optional[Path], typer.Option("--eval-data", help="Encoders: texts to measure quality on against PyTorch fp32 (embedding cosine; labels in .jsonl 'label' or class subfolders add 5-fold accuracy).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for bench.json, bench.md and bench.png.")] = None,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """Benchmark artifacts on several backends: latency percentiles, throughput, peak RSS, size, agreement with
    PyTorch; for decoders, time to first token, tokens/s and per-token latency by context, with and without cache."""
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table

    cfg = BenchConfig(
        artifacts=tuple(artifacts),
        backends=_split(backend, str, "--backend"),
        batches=_split(batch, int, "--batch"),
        seq_lens=_split(seq_len, int, "--seq-len"),
        warmup=warmup,
        repeat=repeat,
        threads=threads,
        text=text,
        out=out,
        overwrite=overwrite,
        new_tokens=new_tokens,
        prompt_len=prompt_len,
        contexts=_split(contexts, int, "--contexts") if contexts else None,
        eval_data=eval_data,
    )
    result = bench(cfg, verbose=verbose)
    print_table(result)
    if out is not None:
        print(f"wrote {out}/bench.json, bench.md")


@app.command()
@handled
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the bench results.")] = Path("edgekit-demo"),
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    seq_len: Annotated[str, typer.Option("--seq-len", help="Comma-separated sequence lengths.")] = "128",
    repeat: Annotated[int, typer.Option(help="Timed runs per case.")] = 30,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """The default run: export the packaged all-MiniLM-L6-v2 to ONNX, validate it, bench it against PyTorch."""
    from edgekit.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=out, batches=_split(batch, int, "--batch"), seq_lens=_split(seq_len, int, "--seq-len"), repeat=repeat, overwrite=overwrite))


@app.command()
@handled
def generate(
    artifact: Annotated[Path, typer.Argument(help="A text-generation or seq2seq artifact written by 'edgekit export'.")],
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="The prompt text (text models).")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="A WAV file to transcribe (speech models such as Whisper; at most 30 s).")] = None,
    language: Annotated[Optional[str], typer.Option("--language", help="Speech models: the spoken language code, e.g. en (default: detected from the audio).")] = None,
    translate: Annotated[bool, typer.Option("--translate", help="Speech models: translate into English instead of transcribing.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Stop after this many new tokens.")] = 32,
    do_sample: Annotated[bool, typer.Option("--do-sample", help="Sample instead of greedy decoding.")] = False,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (with --do-sample).")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Sample from the k most likely tokens (0 = off).")] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling threshold (1.0 = off).")] = 1.0,
    seed: Annotated[Optional[int], typer.Option(help="Seed for sampling.")] = None,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", help="Stop when this text appears (repeatable).")] = None,
    num_beams: Annotated[int, typer.Option(help="Beam search with this many beams (1 = greedy or sampling).")] = 1,
    length_penalty: Annotated[float, typer.Option(help="Beam search: scores are divided by length ** this (> 0 favours longer outputs).")] = 1.0,
    early_stopping: Annotated[str, typer.Option(help="Beam search: false (stop when no beam can improve), true (stop when num_beams are done) or never.")] = "false",
    no_repeat_ngram_size: Annotated[int, typer.Option(help="Never repeat an n-gram of this size (0 = off).")] = 0,
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the tokenizer's chat template.")] = False,
    backend: Annotated[str, typer.Option("--backend", "-b", help="Runtime backend (auto: the one the artifact was made for).")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="Intra-op threads (default: all cores).")] = None,
    verbose: Verbose = False,
) -> None:
    """Generate text with a KV-cache decoder (continues the prompt), an encoder-decoder (reads the prompt, writes a new text) or a speech model (transcribes --audio); tokens are printed as they come (beam search: at the end)."""
    from edgekit.runtimes.generate import GenerationConfig, generate_text

    stopping = {"true": True, "false": False, "never": "never"}.get(early_stopping.lower(), early_stopping)
    cfg = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, stop_strings=tuple(stop or ()),
        num_beams=num_beams, length_penalty=length_penalty, early_stopping=stopping, no_repeat_ngram_size=no_repeat_ngram_size,
    )
    result = generate_text(
        artifact, prompt, cfg, backend=backend, chat=chat, threads=threads, on_text=lambda piece: print(piece, end="", flush=True),
        audio=audio, language=language, translate=translate,
    )
    print()
    if result.language and not language:
        _stderr().print(f"detected language: {result.language}")
    logging.getLogger("edgekit").info("%d prompt tokens, %d new tokens, stopped by %s", result.prompt_tokens, len(result.token_ids), result.stopped_by)


@app.command()
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
        table.add_row(entry.name, "yes" if entry.available() else f"no ({', '.join(entry.missing())} missing)", escape(f"edgekit[{entry.extra}]"), entry.description)
    wide_console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
