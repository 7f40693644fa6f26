"""``edgekit export`` and ``edgekit build``: options into an ExportConfig, then the one-line summary of what was written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekit.cli._common import Encoding, Overwrite, Verbose, handled, split_list

_HELP_EXPORT = {
    "model": "Hugging Face model folder (config.json, weights, tokenizer), an edgekit ONNX artifact, a CTranslate2 Whisper folder, or a .gguf file (or a folder holding one).",
    "out": "Artifact folder to write.",
    "target": "Export target: onnx, ort, openvino, trt, android.",
    "precision": "fp32; fp16 (openvino weights; trt, the one decoder precision for trt); int8 (encoders: static, needs --calib, for onnx, ort, openvino, trt, android; decoders: weight-only, ort/openvino); int8-dynamic (ort); int4 (decoders, weight-only, ort/openvino; android: weight-only .ort and 8-bit dynamic activations with int4 weights in the .pte, likewise int8); bf16 (decoders, openvino, CPUs with bf16 instructions: 16-bit weights); gguf (a .gguf --model's own Q4_0/Q4_1/Q8_0 blocks, ort). Default: gguf for a .gguf on ort, else fp32.",
    "task": "auto, feature-extraction (last_hidden_state), sentence-embedding (adds the pooled embedding), text-generation (causal LM with KV cache) or seq2seq (encoder-decoder: T5, BART, Whisper).",
    "opset": "ONNX opset.",
    "exporter": "auto (torch.export-based, TorchScript fallback), dynamo or torchscript.",
    "atol": "Max |diff| against PyTorch; default 1e-4 for fp32.",
    "seed": "Random seed (recorded in the manifest).",
    "calib": "INT8 calibration data: .txt (a text per line), .jsonl (field 'text'), or a folder of .txt files or images.",
    "calib_text": "INT8 of an image-text model (CLIP family): texts for the text tower (--calib holds the images for the vision tower).",
    "calib_size": "INT8: calibration samples (drawn with --seed).",
    "calib_method": "INT8 ranges: percentile, minmax or entropy.",
    "percentile": "INT8 --calib-method percentile: share of |values| kept in range.",
    "smooth_quant": "INT8 on ONNX graphs: SmoothQuant alpha (0 = off).",
    "seq_len": "INT8: comma-separated sequence lengths the model will run at (calibration text is padded to each).",
    "max_drop": "INT8 accuracy guard: largest drop allowed vs fp32 (1 - mean cosine, or accuracy with labelled --eval-data); keeps sensitive layers in float until it fits.",
    "eval_data": "INT8: held-out texts to measure quality on (.jsonl 'label' fields or class subfolders add accuracy).",
    "max_float_nodes": "INT8 accuracy guard: most layers it may keep in float.",
    "max_batch": "--target trt: largest batch of the optimization profiles; android: largest batch the ExecuTorch program is planned for.",
    "max_seq": "--target trt: longest sequence of the optimization profiles (decoders: prompt + new tokens; default: the model's limit, at most 2048 for decoders); android: longest sequence the ExecuTorch program is planned for, a decoder's cache length (default: the model's limit, at most 512 for encoders and 1024 for decoders).",
    "gqa": "--target ort, llama-style decoders: one fused GroupQueryAttention node per layer (rows unpadded or right-padded); --no-gqa keeps the standard graph.",
}

_HELP_BUILD = {"artifact": "A folder written by 'edgekit export --target trt'."}


@handled
def export(
    model: Annotated[Path, typer.Option("--model", "-m", help=_HELP_EXPORT["model"])],
    out: Annotated[Path, typer.Option("--out", "-o", help=_HELP_EXPORT["out"])],
    target: Annotated[str, typer.Option(help=_HELP_EXPORT["target"])] = "onnx",
    precision: Annotated[Optional[str], typer.Option(help=_HELP_EXPORT["precision"])] = None,
    task: Annotated[str, typer.Option(help=_HELP_EXPORT["task"])] = "auto",
    opset: Annotated[int, typer.Option(help=_HELP_EXPORT["opset"])] = 20,
    exporter: Annotated[str, typer.Option(help=_HELP_EXPORT["exporter"])] = "auto",
    atol: Annotated[Optional[float], typer.Option(help=_HELP_EXPORT["atol"])] = None,
    seed: Annotated[int, typer.Option(help=_HELP_EXPORT["seed"])] = 0,
    calib: Annotated[Optional[Path], typer.Option(help=_HELP_EXPORT["calib"])] = None,
    calib_text: Annotated[
        Optional[Path], typer.Option("--calib-text", help=_HELP_EXPORT["calib_text"])
    ] = None,
    calib_size: Annotated[int, typer.Option("--calib-size", help=_HELP_EXPORT["calib_size"])] = 128,
    calib_method: Annotated[
        str, typer.Option("--calib-method", help=_HELP_EXPORT["calib_method"])
    ] = "percentile",
    percentile: Annotated[float, typer.Option(help=_HELP_EXPORT["percentile"])] = 99.999,
    smooth_quant: Annotated[float, typer.Option("--smooth-quant", help=_HELP_EXPORT["smooth_quant"])] = 0.8,
    seq_len: Annotated[str, typer.Option("--seq-len", help=_HELP_EXPORT["seq_len"])] = "128",
    max_drop: Annotated[Optional[float], typer.Option("--max-drop", help=_HELP_EXPORT["max_drop"])] = None,
    eval_data: Annotated[Optional[Path], typer.Option("--eval-data", help=_HELP_EXPORT["eval_data"])] = None,
    max_float_nodes: Annotated[
        int, typer.Option("--max-float-nodes", help=_HELP_EXPORT["max_float_nodes"])
    ] = 16,
    max_batch: Annotated[int, typer.Option("--max-batch", help=_HELP_EXPORT["max_batch"])] = 16,
    max_seq: Annotated[Optional[int], typer.Option("--max-seq-len", help=_HELP_EXPORT["max_seq"])] = None,
    gqa: Annotated[bool, typer.Option("--gqa/--no-gqa", help=_HELP_EXPORT["gqa"])] = True,
    encoding: Encoding = None,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """Export a model to a validated artifact folder (ONNX or IR + tokenizer + manifest.json)."""
    from edgekit.export import ExportConfig, export_model

    cfg = ExportConfig(
        model=model,
        out=out,
        target=target,
        precision=precision,
        task=task,
        opset=opset,
        exporter=exporter,
        atol=atol,
        seed=seed,
        overwrite=overwrite,
        calib=calib,
        calib_text=calib_text,
        calib_size=calib_size,
        calib_method=calib_method,
        percentile=percentile,
        smooth_alpha=smooth_quant,
        seq_lens=split_list(seq_len, int, "--seq-len"),
        max_drop=max_drop,
        eval_data=eval_data,
        max_float_nodes=max_float_nodes,
        max_batch=max_batch,
        max_seq=max_seq,
        gqa=gqa,
        encoding=encoding,
    )
    path = export_model(cfg)
    _print_export_summary(path)


@handled
def build_cmd(
    artifact: Annotated[Path, typer.Argument(help=_HELP_BUILD["artifact"])], verbose: Verbose = False
) -> None:
    """Build the TensorRT engine of a --target trt artifact on this device (TensorRT and a GPU needed)."""
    from edgekit.export.tensorrt import build_artifact

    stamp = build_artifact(artifact)
    print(
        f"built {', '.join(stamp['engines'])} with TensorRT {stamp['tensorrt_version']} for {stamp['gpu']} (compute {stamp['compute_capability']})"
    )


def _tower_lines(path: Path, manifest: dict) -> list[str] | None:
    validation, export = manifest["validation"], manifest["export"]
    if "towers" in validation:
        return [
            _part_line(
                path, f"{name} tower", tower["model_file"], validation["towers"][name], export["precision"]
            )
            for name, tower in export["towers"].items()
        ]
    if export.get("format") == "android":
        return [
            _part_line(path, f"for {runtime}", name, validation[runtime], export["precision"])
            for runtime, name in export["runtime_files"].items()
        ]
    return None


def _bf16_line(path: Path, manifest: dict) -> str | None:
    if manifest["export"].get("precision") != "bf16":
        return None
    validation = manifest["validation"]
    g = validation["greedy_generation"]
    return (
        f"wrote {path} (openvino-ir, run in {validation['inference_precision']}); logits within "
        f"{validation['max_abs_diff']['logits']:.3f} of PyTorch fp32; greedy tokens identical to transformers "
        f"fp32 on {g['identical_prompts']} of {g['prompts']} prompts ({g['new_tokens']} tokens each)"
    )


def _seq2seq_compressed_line(path: Path, manifest: dict) -> str | None:
    """An encoder-decoder whose graphs were compressed: how each part was, and its greedy tokens against fp32."""
    export, validation = manifest["export"], manifest["validation"]
    if export.get("task") != "seq2seq" or "fp32" not in validation:
        return None
    g = validation["greedy_generation"]
    parts = ", ".join(
        f"{part} {'static INT8' if q.get('mode') == 'static' else 'weight-only ' + export['precision']}"
        for part, q in export.get("quantization", {}).items()
    )
    engines = ""
    if "tensorrt_graphs" in export:  # fp16 graphs for TensorRT, in a folder each
        worst = max(validation["max_abs_diff"].values())
        parts = (
            f"encoder/ and decoder/ in fp16 for TensorRT, within {worst:.2e} of PyTorch fp32 on ONNX Runtime"
        )
        why = next(
            (t["not_built_because"] for t in export["tensorrt_graphs"].values() if not t["engine_built"]),
            None,
        )
        engines = (
            f"\nTensorRT engines not built: {why}; on the device run 'edgekit build {path}'"
            if why
            else "\nbuilt both TensorRT engines"
        )
    return (
        f"wrote {path} ({export['format']}: {parts}); greedy tokens identical to fp32 on "
        f"{g['identical_inputs']} of {g['inputs']} inputs ({g['new_tokens']} tokens each){engines}"
    )


def _weight_only_line(path: Path, manifest: dict) -> str | None:
    export, validation = manifest["export"], manifest["validation"]
    if export.get("quantization", {}).get("mode") != "weight-only":
        return None
    g = validation["greedy_generation"]
    what = export["quantization"]["weights"] if export["precision"] == "gguf" else export["precision"]
    exact = validation.get("gguf_blocks_exact")
    blocks = (
        f"; with float compute the blocks match the dequantized model to max |diff| "
        f"{max(exact['max_abs_diff'].values()):.2e}"
        if exact
        else ""
    )
    return (
        f"wrote {path} ({export['format']}, weight-only {what}); greedy tokens identical to transformers fp32 "
        f"on {g['identical_prompts']} of {g['prompts']} prompts ({g['new_tokens']} tokens each){blocks}"
    )


def _quality_line(path: Path, manifest: dict) -> str | None:
    export, validation = manifest["export"], manifest["validation"]
    if "quality" not in validation:
        return None
    q, quant = validation["quality"], export.get("quantization", {})
    acc = f", accuracy {q['accuracy']:.4f} vs fp32 {q['reference_accuracy']:.4f}" if "accuracy" in q else ""
    if "cer_vs_fp32" in q:
        acc += f", character error rate against fp32's transcripts {100 * q['cer_vs_fp32']:.2f}%"
    kept = f"; {len(quant['float_nodes'])} layer(s) kept in float" if quant.get("float_nodes") else ""
    return (
        f"wrote {path} ({export['format']}, {export['precision']}); on {validation['runtime']} vs PyTorch fp32 "
        f"over {q['texts']} {q.get('inputs', 'texts')}: mean cosine {q['mean_cosine']:.4f} "
        f"(min {q['min_cosine']:.4f}){acc}{kept}"
    )


def _validation_line(path: Path, manifest: dict) -> str:
    export, validation = manifest["export"], manifest["validation"]
    worst = max(validation["max_abs_diff"].items(), key=lambda kv: kv[1])
    diffs = (
        ", ".join(f"{k} {v:.2e}" for k, v in validation["max_abs_diff"].items())
        if len(validation["max_abs_diff"]) <= 3
        else f"{worst[0]} {worst[1]:.2e} (worst of {len(validation['max_abs_diff'])} outputs)"
    )
    if "greedy_generation" in validation:
        greedy = validation["greedy_generation"]
        total = greedy.get("prompts", greedy.get("inputs"))
        agreed = total if greedy.get("identical", True) else f"{greedy['identical_prompts']} of {total}"
        diffs += f"; greedy tokens identical to transformers on {agreed} " + (
            "prompts" if "prompts" in greedy else "inputs"
        )
    if "validation_inputs" in export:
        diffs += "; inputs: seeded random token ids (the folder has no tokenizer)"
    return (
        f"wrote {path} ({export.get('format', 'onnx')}, {export['exporter']} exporter, opset {export['opset']}); "
        f"validated on {validation.get('runtime')} on {len(validation['cases'])} inputs: max |diff| {diffs} "
        f"(atol {validation['atol']:g}"
        + (f" + {validation['rtol']:g} of the largest |logit|)" if validation.get("rtol") else ")")
    )


def _print_export_summary(path: Path) -> None:
    """One line per written graph: the first summary below that applies to the manifest."""
    from edgekit.artifacts import read_manifest

    manifest = read_manifest(path)
    lines = _tower_lines(path, manifest)
    if lines is not None:
        print("\n".join(lines))
        return
    for summary in (_bf16_line, _seq2seq_compressed_line, _weight_only_line):
        if (line := summary(path, manifest)) is not None:
            print(line)
            return
    print(_quality_line(path, manifest) or _validation_line(path, manifest))
    _print_engine_status(manifest, path)


def _part_line(path: Path, label: str, model_file: str, validation: dict, precision: str) -> str:
    """One line per graph of an artifact that holds several (an image-text model's towers, an
    android artifact's file per runtime): its file and how it compared with PyTorch."""
    if "quality" in validation:
        q = validation["quality"]
        got = f"{precision} vs PyTorch fp32 over {q['texts']} {q.get('inputs', 'texts')}: mean cosine {q['mean_cosine']:.4f} (min {q['min_cosine']:.4f})"
        if "zero_shot_agreement" in q:
            got += f", zero-shot top-1 agreement {q['zero_shot_agreement']:.3f} on {q['eval_data']}"
    elif "max_abs_diff" in validation:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in validation["max_abs_diff"].items())
        got = f"validated on {validation.get('runtime')} on {len(validation['cases'])} inputs: max |diff| {diffs} (atol {validation['atol']:g})"
    elif "max_abs_logit_diff" in validation:
        got = f"run on {validation['runtime']}: next-token logits within {validation['max_abs_logit_diff']:.2e} of PyTorch fp32"
    else:
        got = f"run on {validation['runtime']}"
    g = validation.get("greedy_generation")
    if g:
        got += f"; greedy tokens identical to transformers fp32 on {g['identical_prompts']} of {g['prompts']} prompts ({g['new_tokens']} tokens each)"
    return f"wrote {path}/{model_file} ({label}); {got}"


def _print_engine_status(manifest: dict, path: Path) -> None:
    trt = manifest["export"].get("tensorrt")
    if trt is None:
        return
    if trt["engine_built"]:
        print(f"built the TensorRT engine: {trt['engine']['tensorrt_version']} on {trt['engine']['gpu']}")
    else:
        print(
            f"TensorRT engine not built: {trt['not_built_because']}; on the device run 'edgekit build {path}' or {path}/build_trt.sh"
        )
