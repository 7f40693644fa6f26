"""``edgekit optimize``: options (or a YAML/JSON file) into an OptimizeConfig, then the verdict per backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekit.cli._common import Encoding, Overwrite, Verbose, handled, split_list

_H = {
    "model": "The teacher: a Hugging Face model folder.",
    "out": "Folder for the stages, report.md/.html, pareto.png, results.json and best-<backend>/.",
    "config": "YAML/JSON file with any of these options (command-line options win).",
    "task": "What the model does: sentence-embedding (an encoder), image-text (a CLIP-family dual encoder; --data and --eval-data are image-text pairs), causal-lm (a KV-cache decoder), speech-ctc (a wav2vec2/HuBERT/WavLM CTC model, quantized only; --eval-data and --calib are WAV files) image-feature-extraction (a ViT/DeiT encoder, quantized only; --eval-data is a folder of class subfolders of images), image-captioning (ViT-GPT2, BLIP, Florence-2; --eval-data and --calib are folders of photos), automatic-speech-recognition (Whisper; --eval-data is WAV files) or text2text-generation (T5, BART, Marian; --eval-data is texts); encoder-decoders are quantized only.",
    "data": "Text to distil the students on (.txt, .jsonl or a folder of .txt); also INT8 calibration unless --calib.",
    "eval_data": "Held-out texts. Encoders: labelled (.jsonl with 'text' and 'label', or a folder of class subfolders), quality is 5-fold probe accuracy relative to the teacher's; decoders: quality is perplexity, with greedy agreement beside it; speech-ctc: WAV files, quality is 1 - CER against the teacher's transcripts.",
    "students": "Student shapes: layer counts (6,3,2), LAYERSxHIDDEN (4x256), TEXTvVISION for image-text (4v6), or none to only quantize the teacher.",
    "widths": "With --students as layer counts: a grid of those layers x these hidden sizes (e.g. 384,256).",
    "backends": "Comma-separated backends: ort, openvino.",
    "precisions": "Comma-separated precisions: fp32, int8 (encoders: static, calibrated, with the accuracy guard; decoders: weight-only), int4 (decoders, weight-only).",
    "new_tokens": "Decoders: greedy tokens per timed generation.",
    "max_drop": "Largest relative quality drop against the teacher a best cell may have (0.02 keeps 98%).",
    "calib": "INT8 calibration: texts (encoders; default --data), images (image-text; default the images of --data) or WAV files (speech-ctc).",
    "calib_text": "Image-text INT8: texts for the text tower (default: the captions of --data).",
    "max_steps": "Distillation steps per student.",
    "batch": "Batch size the cells are timed and compared at.",
    "seq_len": "Sequence length the cells are timed at (and distilled at).",
    "repeat": "Timed runs per cell.",
    "threads": "Intra-op threads for every backend (default: all cores).",
    "resume": "Reuse the finished stages of an earlier run in --out (after a crash or kill, or with changed options).",
    "no_guard": "INT8 without the accuracy guard.",
}


@handled
def optimize(
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help=_H["model"])] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=_H["out"])] = None,
    config: Annotated[Optional[Path], typer.Option(help=_H["config"])] = None,
    task: Annotated[Optional[str], typer.Option(help=_H["task"])] = None,
    data: Annotated[Optional[Path], typer.Option(help=_H["data"])] = None,
    eval_data: Annotated[Optional[Path], typer.Option(help=_H["eval_data"])] = None,
    students: Annotated[Optional[str], typer.Option(help=_H["students"])] = None,
    widths: Annotated[Optional[str], typer.Option(help=_H["widths"])] = None,
    backends: Annotated[Optional[str], typer.Option(help=_H["backends"])] = None,
    precisions: Annotated[Optional[str], typer.Option(help=_H["precisions"])] = None,
    max_drop: Annotated[Optional[float], typer.Option(help=_H["max_drop"])] = None,
    calib: Annotated[Optional[Path], typer.Option(help=_H["calib"])] = None,
    calib_text: Annotated[Optional[Path], typer.Option(help=_H["calib_text"])] = None,
    max_steps: Annotated[Optional[int], typer.Option(help=_H["max_steps"])] = None,
    batch: Annotated[Optional[int], typer.Option(help=_H["batch"])] = None,
    seq_len: Annotated[Optional[int], typer.Option(help=_H["seq_len"])] = None,
    repeat: Annotated[Optional[int], typer.Option(help=_H["repeat"])] = None,
    new_tokens: Annotated[Optional[int], typer.Option(help=_H["new_tokens"])] = None,
    threads: Annotated[Optional[int], typer.Option(help=_H["threads"])] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    no_guard: Annotated[bool, typer.Option("--no-guard", help=_H["no_guard"])] = False,
    resume: Annotated[bool, typer.Option(help=_H["resume"])] = False,
    encoding: Encoding = None,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """From a teacher to the fastest student that keeps its quality: distil, export, quantize and bench every cell."""
    from edgekit.errors import InputError
    from edgekit.optimize.config import OptimizeConfig, load_optimize_file
    from edgekit.optimize.report import print_table, verdicts
    from edgekit.optimize.run import optimize as run

    given = {
        "model": model,
        "out": out,
        "task": task,
        "data": data,
        "eval_data": eval_data,
        "students": _students(students, widths),
        "backends": split_list(backends, str, "--backends") if backends else None,
        "precisions": split_list(precisions, str, "--precisions") if precisions else None,
        "max_drop": max_drop,
        "calib": calib,
        "calib_text": calib_text,
        "max_steps": max_steps,
        "batch": batch,
        "seq_len": seq_len,
        "bench_seq_len": seq_len,
        "repeat": repeat,
        "new_tokens": new_tokens,
        "threads": threads,
        "seed": seed,
        "int8_guard": False if no_guard else None,
        "encoding": encoding,
        "resume": resume or None,
        "overwrite": overwrite or None,
    }
    if config is not None:
        cfg = load_optimize_file(config, given)
    else:
        missing = [k for k in ("model", "out") if given[k] is None]
        if missing:
            raise InputError(f"missing option --{missing[0]}", "give --model and --out, or --config FILE")
        cfg = OptimizeConfig(**{k: v for k, v in given.items() if v is not None})
    results = run(cfg, verbose=verbose)
    print_table(results)
    failed = [c for c in results["cells"] if c["state"] == "failed"]
    for line in verdicts(results):
        print(line)
    if failed:
        print(f"{len(failed)} of {len(results['cells'])} cells failed; see the table", flush=True)
    print(f"report: {Path(cfg.out) / 'report.md'} (and report.html, pareto.png, results.json)")


def _students(students: Optional[str], widths: Optional[str]):
    from edgekit.errors import InputError
    from edgekit.optimize.config import parse_students, student_grid

    shapes = parse_students(students) if students is not None else None
    if widths is None:
        return shapes
    if not shapes or any(s.hidden for s in shapes):
        raise InputError(
            "--widths needs --students as layer counts", "pass e.g. --students 4,2 --widths 384,256"
        )
    return student_grid(shapes, split_list(widths, int, "--widths"))
