"""TensorRT: the device-ready ONNX, optimization profiles, the build command, and the engine build.

TensorRT is not installable on the development machine (no GPU; its library wheels come from
NVIDIA's index). This module therefore splits into what runs everywhere -- profiles, commands,
the implicit-INT8 calibration cache, the status check -- and ``build_engine``, written against the
real TensorRT Python API and type-checked against ``tensorrt-stubs`` in the tests. ``edgekit
export --target trt`` builds the engine right away when TensorRT and a GPU are present; otherwise
the folder holds everything ``edgekit build DIR`` (or the written ``trtexec`` command) needs on
the device.

Precision, for TensorRT 10 and 11 alike (11 removed weak typing and implicit INT8):
- fp16: the ONNX itself is fp16 (inputs/outputs stay as exported), built strongly typed;
- int8: explicit symmetric int8 Q/DQ on the weight MatMuls (TensorRT's required form), built
  strongly typed; on TensorRT 10 the written command adds the weakly-typed ``--int8 --fp16``
  variant so the float parts may run in fp16;
- TensorRT 10 / JetPack 6 implicit INT8: ``calibration.cache`` in TensorRT's text format with the
  fp32 graph ``model.fp32.onnx``.
"""

from __future__ import annotations

import json
import shlex
import struct
from pathlib import Path
from typing import Any

from edgekit.export.fp16 import DECODER_FP32_OPS, FP32_OPS, norm_statistics_nodes, rotary_nodes, to_fp16
from edgekit.runtimes.trt_backend import ENGINE_FILE, tensorrt_status

PROFILE_FILE = "trt_profiles.json"
COMMAND_FILE = "build_trt.sh"
CALIB_CACHE = "calibration.cache"
TIMING_CACHE = "timing.cache"
JETPACK6_TRT_VERSION = (10, 3, 0)


def profiles(
    inputs: list[dict], max_batch: int, opt_batch: int, opt_seq: int, max_seq: int
) -> dict[str, dict[str, list[int]]]:
    """min/opt/max shapes of one profile for every input, from the manifest's named axes.

    ``batch`` 1..max_batch; ``sequence`` 1..max_seq; a KV cache's ``past_sequence`` 0..max_seq-1
    (an empty past for the prefill); ``total_sequence`` (attention mask of a decoder) 1..max_seq;
    a speech encoder's ``samples`` 0.1 s..20 s at 16 kHz (20 s: the window edgekit runs long
    audio in), optimised for 10 s; numbers are fixed dimensions."""
    return shapes_for(
        inputs,
        {
            "batch": (1, opt_batch, max_batch),
            "sequence": (1, opt_seq, max_seq),
            "past_sequence": (0, opt_seq, max_seq - 1),
            "total_sequence": (1, opt_seq, max_seq),
            "samples": (1_600, 160_000, 320_000),
        },
    )


def decoder_profiles(
    inputs: list[dict],
    max_batch: int,
    opt_context: int,
    max_seq: int,
    extra: dict[str, tuple[int, int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Two profiles for a KV-cache decoder, one engine sharing the weights (the layout
    TensorRT-LLM-style runtimes use): index 0 ``decode``, one new token per row over a past of
    0..max_seq-1, tuned at ``opt_context`` -- the step that runs for every generated token; index 1
    ``prefill``, a prompt of 1..max_seq tokens on an empty past, tuned at ``opt_context`` tokens.
    Each profile's min, opt and max are consistent shapes (total = past + new), which TensorRT
    checks; a session picks the profile whose ranges hold the shapes it is given. ``extra``: the
    ranges of other named axes, the same in both (an encoder-decoder's ``encoder_sequence``)."""
    opt = max(1, min(opt_context, max_seq - 1))
    decode = {
        "batch": (1, 1, max_batch),
        "sequence": (1, 1, 1),
        "past_sequence": (0, opt, max_seq - 1),
        "total_sequence": (1, opt + 1, max_seq),
    }
    prefill = {
        "batch": (1, 1, max_batch),
        "sequence": (1, opt, max_seq),
        "past_sequence": (0, 0, 0),
        "total_sequence": (1, opt, max_seq),
    }
    return [
        {"name": "decode", "shapes": shapes_for(inputs, {**(extra or {}), **decode})},
        {"name": "prefill", "shapes": shapes_for(inputs, {**(extra or {}), **prefill})},
    ]


def shapes_for(inputs: list[dict], sizes: dict[str, tuple[int, int, int]]) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for spec in inputs:
        shape: dict[str, list[int]] = {key: [] for key in ("min", "opt", "max")}
        for dim in spec["shape"]:
            lo, opt, hi = sizes.get(dim, (1, 1, 1)) if isinstance(dim, str) else (dim, dim, dim)
            for key, value in zip(("min", "opt", "max"), (lo, opt, hi)):
                shape[key].append(int(value))
        out[spec["name"]] = shape
    return out


def _shape_arg(profile: dict[str, dict[str, list[int]]], key: str) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in shapes[key])}" for name, shapes in profile.items())


def trtexec_commands(precision: str, profile_list: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The exact ``trtexec`` command lines, keyed by the TensorRT versions they are for. Several
    profiles become ``--profile=N`` followed by that profile's shape flags (trtexec's syntax)."""
    shapes: list[str] = []
    for index, profile in enumerate(profile_list):
        if len(profile_list) > 1:
            shapes.append(f"--profile={index}")
        shapes += [f"--{key}Shapes={_shape_arg(profile['shapes'], key)}" for key in ("min", "opt", "max")]
    common = [
        "trtexec",
        "--onnx=model.onnx",
        f"--saveEngine={ENGINE_FILE}",
        f"--timingCacheFile={TIMING_CACHE}",
        *shapes,
    ]
    commands = {"tensorrt>=10.12 (strongly typed)": [*common, "--stronglyTyped"]}
    if precision == "int8":
        commands["tensorrt10 weakly typed (fp16 float parts)"] = [*common, "--int8", "--fp16"]
        implicit = [
            "trtexec",
            "--onnx=model.fp32.onnx",
            f"--saveEngine={ENGINE_FILE}",
            f"--timingCacheFile={TIMING_CACHE}",
            *shapes,
            "--int8",
            "--fp16",
            f"--calib={CALIB_CACHE}",
        ]
        commands["tensorrt10 / jetpack6 implicit int8 (calibration cache)"] = implicit
    elif precision == "fp16":
        commands["tensorrt10 < 10.12"] = common
    return commands


def write_build_script(folder: Path, commands: dict[str, list[str]]) -> None:
    lines = [
        "#!/usr/bin/env bash",
        "# Build the TensorRT engine on the device, in this folder. Pick the line for your TensorRT;",
        "# 'edgekit build .' does the same with the Python API and stamps the engine.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
    ]
    for i, (label, argv) in enumerate(commands.items()):
        lines.append(f"# {label}")
        lines.append(("" if i == 0 else "# ") + " ".join(shlex.quote(a) for a in argv))
    path = folder / COMMAND_FILE
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)


def version_code(version: tuple[int, int, int]) -> int:
    """TensorRT's NV_TENSORRT_VERSION: major * 10000 + minor * 100 + patch for 10.x (8.6.1 -> 8601)."""
    major, minor, patch = version
    return major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch


def calibration_cache_text(
    absmax: dict[str, float], version: tuple[int, int, int] = JETPACK6_TRT_VERSION
) -> str:
    """TensorRT's calibration cache: a header line, then ``tensor: <scale>`` per tensor, the scale
    (|max| / 127, symmetric int8) written as the big-endian IEEE-754 float32 in hex."""
    lines = [f"TRT-{version_code(version)}-EntropyCalibration2"]
    for name, value in absmax.items():
        scale = float(value) / 127.0 if value > 0 else 1.0 / 127.0
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    return "\n".join(lines) + "\n"


def read_calibration_cache(text: str) -> tuple[str, dict[str, float]]:
    """Header and {tensor: scale} of a cache written by TensorRT or by ``calibration_cache_text``."""
    lines = [line for line in text.splitlines() if line.strip()]
    scales = {}
    for line in lines[1:]:
        name, _, value = line.rpartition(": ")
        scales[name] = struct.unpack(">f", bytes.fromhex(value.strip()))[0]
    return lines[0], scales


def build_engine(folder: Path) -> dict[str, Any]:
    """Build ``model.engine`` in ``folder`` from its ONNX and profiles with the TensorRT Python API.

    Keeps a timing cache beside it (reused by the next build) and returns the stamp: TensorRT
    version, GPU name and compute capability, and the build settings."""
    import tensorrt as trt

    folder = Path(folder)
    profile_list: list[dict[str, Any]] = json.loads((folder / PROFILE_FILE).read_text())
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0
    if major < 11:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(folder / "model.onnx")):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse model.onnx: {errors}")
    config = builder.create_builder_config()
    for spec in profile_list:  # added in file order: the index a session selects is the position here
        profile = builder.create_optimization_profile()
        for name, shapes in spec["shapes"].items():
            profile.set_shape(name, trt.Dims(shapes["min"]), trt.Dims(shapes["opt"]), trt.Dims(shapes["max"]))
        config.add_optimization_profile(profile)
    cache_file = folder / TIMING_CACHE
    timing_cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine; rerun with --verbose for its log")
    tmp = folder / (ENGINE_FILE + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(folder / ENGINE_FILE)
    updated = config.get_timing_cache()
    if updated is not None:
        cache_file.write_bytes(bytes(updated.serialize()))
    return {
        "tensorrt_version": trt.__version__,
        **_gpu(),
        "strongly_typed": True,
        "profiles": [p["name"] for p in profile_list],
    }


def _gpu() -> dict[str, Any]:
    try:
        import torch

        props = torch.cuda.get_device_properties(0)
        return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:  # noqa: BLE001 - the stamp is informative; a build without torch still works
        return {"gpu": None, "compute_capability": None}


def float_tensors(model: Any) -> list[str]:
    """Every float32 activation of the graph (not weights): what an implicit-INT8 cache covers."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    inits = {i.name for i in model.graph.initializer}
    typed = {
        v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)
    }
    names = []
    for node in model.graph.node:
        if node.op_type in ("Constant", "Shape"):
            continue
        for out in node.output:
            if out and out not in inits and typed.get(out) == onnx.TensorProto.FLOAT:
                names.append(out)
    return names


def trt_export(
    cfg: Any, model_dir: Path, built: Any, reference: Any, tmp: Path, steps: Any, inputs: list[dict]
) -> tuple[dict, dict]:
    """Turn the validated fp32 ``tmp/model.onnx`` into the TensorRT-ready folder; measure it on ONNX
    Runtime against PyTorch; build the engine when TensorRT and a GPU are here."""
    from edgekit.compress.quality import build_eval_set, measure

    max_seq = cfg.max_seq or built.max_length or max(cfg.seq_lens)
    profile = [
        {
            "name": "default",
            "shapes": profiles(
                inputs, cfg.max_batch, min(8, cfg.max_batch), min(max(cfg.seq_lens), max_seq), max_seq
            ),
        }
    ]
    (tmp / PROFILE_FILE).write_text(json.dumps(profile, indent=2))
    with steps.step("reference outputs on eval data"):
        evalset = build_eval_set(cfg, built, reference, model_dir)
    quant: dict[str, Any] = {}
    if cfg.precision == "fp16":
        with steps.step("convert to fp16"):
            to_fp16(tmp / "model.onnx", tmp / "model.onnx", FP32_OPS)
    elif cfg.precision == "int8":
        quant = _trt_int8(cfg, model_dir, built, tmp, steps)
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    with steps.step("measure on ONNX Runtime"):
        quality = measure(evalset, OrtSession(tmp / "model.onnx", SessionOptions()), cfg.seed)
    section = {
        "tensorrt": {
            **commands_and_engine(tmp, cfg.precision, profile, steps),
            "fp32_ops": list(FP32_OPS) if cfg.precision == "fp16" else None,
        },
        **quant,
    }
    return section, quality


def commands_and_engine(
    tmp: Path, precision: str, profile: list[dict[str, Any]], steps: Any
) -> dict[str, Any]:
    """Write ``build_trt.sh``; build the engine now when TensorRT and a GPU are here. The manifest's
    ``tensorrt`` section, common to encoders and decoders."""
    commands = trtexec_commands(precision, profile)
    write_build_script(tmp, commands)
    ok, why = tensorrt_status()
    engine = None
    if ok:
        with steps.step("build TensorRT engine"):
            engine = build_engine(tmp)
    return {
        "precision": precision,
        "profiles": profile,
        "build_commands": {k: " ".join(shlex.quote(a) for a in v) for k, v in commands.items()},
        "engine_built": engine is not None,
        "engine": engine,
        "not_built_because": None if ok else why,
    }


DECODER_MAX_SEQ = 2048
"""Default longest context (prompt + generated tokens) of a decoder's TensorRT profiles, unless
--max-seq-len says otherwise: models declare 8k-128k, whose prefill activations do not fit an edge GPU."""
FP16_DECODER_ATOL = 0.25
"""Largest |logit - PyTorch fp32 logit| allowed for the fp16 decoder graph (logits of order 10;
fp16 keeps ~3 significant digits through 30 layers). Greedy tokens are compared and reported too."""


def trt_decoder_export(
    cfg: Any,
    built: Any,
    reference: Any,
    tmp: Path,
    steps: Any,
    inputs: list[dict],
    prompts: list[str],
    validation: dict,
) -> tuple[dict, dict]:
    """``--target trt`` for a KV-cache decoder: the validated fp32 ``tmp/model.onnx`` in fp16 (cache
    in and out stay fp32), decode and prefill profiles, the build commands; logits of the fp16
    graph on ONNX Runtime checked against PyTorch on a prefill, a step and a padded batch, greedy
    generation compared with transformers fp32; the engine built when TensorRT and a GPU are here."""
    import onnx

    from edgekit.export.validate import (
        ValidationReport,
        compare_masked_batch,
        decoder_cases,
        greedy_parity,
        require_pass,
    )
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    max_seq = max(2, min(cfg.max_seq or DECODER_MAX_SEQ, built.max_length or DECODER_MAX_SEQ))
    profile = decoder_profiles(inputs, cfg.max_batch, min(max(cfg.seq_lens), max_seq - 1), max_seq)
    (tmp / PROFILE_FILE).write_text(json.dumps(profile, indent=2))
    fp32 = tmp / "model.fp32.onnx"
    (tmp / "model.onnx").rename(fp32)
    with steps.step("convert to fp16"):
        graph = onnx.load(str(fp32), load_external_data=False)
        kept = rotary_nodes(graph) + norm_statistics_nodes(graph)
        del graph
        to_fp16(fp32, tmp / "model.onnx", DECODER_FP32_OPS, kept)
    for leftover in tmp.glob("model.fp32.onnx*"):  # the graph and any external-data file beside it
        leftover.unlink()
    with steps.step("validate fp16 on ONNX Runtime"):
        session = OrtSession(tmp / "model.onnx", SessionOptions())
        report = ValidationReport(atol=FP16_DECODER_ATOL)
        for name, case in decoder_cases(built.tokenizer, built.layout, reference):
            compare_masked_batch(reference, session, case, FP16_DECODER_ATOL, report, name)
        require_pass(report)
        generation = greedy_parity(
            built.model, built.tokenizer, session, built.layout, prompts, new_tokens=32, strict=False
        )
    section = {
        "tensorrt": {
            **commands_and_engine(tmp, "fp16", profile, steps),
            "max_seq": max_seq,
            "fp32_ops": list(DECODER_FP32_OPS),
            "fp32_nodes": len(kept),
            "io_types": "as exported (int64 ids, float32 logits and cache)",
        }
    }
    return section, {
        "runtime": "onnxruntime",
        **report.as_dict(),
        "greedy_generation": generation,
        "fp32": validation,
    }


def _trt_int8(cfg: Any, model_dir: Path, built: Any, tmp: Path, steps: Any) -> dict:
    """Explicit symmetric Q/DQ (what TensorRT 10/11 build from), plus the implicit-INT8 cache and
    fp32 graph for TensorRT 10 / JetPack 6; one calibration set and range method for both."""
    import shutil

    import onnx

    from edgekit.calibration.ranges import RangeMethod, cached_ranges
    from edgekit.compress.int8 import smooth_graph
    from edgekit.compress.ort_quant import load_with_shapes, qdq_summary, quantize_static_qdq, weight_matmuls
    from edgekit.compress.quality import build_calibration

    method = RangeMethod(cfg.calib_method, cfg.percentile).check()
    fp32 = tmp / "model.fp32.onnx"
    shutil.copy2(tmp / "model.onnx", fp32)
    with steps.step("calibration set"):
        calib = build_calibration(cfg, model_dir, built.tokenizer, built.input_names)
    with steps.step(f"calibrate every tensor for the implicit-INT8 cache ({method.name})"):
        everything = float_tensors(onnx.load(str(fp32)))
        ranges = cached_ranges(fp32, calib, everything, method)
        absmax = {name: max(-lo, hi) for name, (lo, hi) in ranges.tensors.items()}
        (tmp / CALIB_CACHE).write_text(calibration_cache_text(absmax))
    src, target = fp32, weight_matmuls(onnx.load(str(fp32)))
    if cfg.smooth_alpha > 0:
        src, target, _ = smooth_graph(fp32, target, calib, cfg.smooth_alpha, steps)
    with steps.step("explicit Q/DQ"):
        act_ranges = cached_ranges(src, calib, target.activations, method)
        quantize_static_qdq(
            load_with_shapes(src),
            tmp / "model.onnx",
            act_ranges.tensors,
            target.nodes,
            symmetric_activations=True,
        )
    if src != fp32:
        src.unlink()
    return {
        "quantization": {
            "mode": "static",
            "format": "Q/DQ, int8 symmetric activations and per-channel weights (TensorRT explicit quantization)",
            "method": ranges.method,
            "smooth_quant": {"alpha": cfg.smooth_alpha},
            "calibration": calib.manifest(),
            "implicit_int8": {
                "graph": "model.fp32.onnx",
                "cache": CALIB_CACHE,
                "tensors": len(absmax),
                "header": calibration_cache_text({}).strip(),
            },
            "graph": qdq_summary(tmp / "model.onnx"),
        }
    }


def graph_folders(folder: Path, export: dict) -> list[tuple[Path, dict]]:
    """The folders of an artifact that each hold a TensorRT graph (model.onnx + profiles), with
    the manifest section of each: the artifact itself, one per tower of an image-text model, or an
    encoder-decoder's encoder and decoder."""
    if "towers" in export:
        return [(folder / name, tower["tensorrt"]) for name, tower in export["towers"].items()]
    if "tensorrt_graphs" in export:
        return [(folder / name, section) for name, section in export["tensorrt_graphs"].items()]
    return [(folder, export["tensorrt"])]


def build_artifact(folder: Path) -> dict[str, Any]:
    """``edgekit build DIR``: build the engine of each graph of a ``--target trt`` artifact on this
    device and stamp it in the manifest (written atomically). Returns the last stamp, and the
    engines' paths under ``engines``."""
    from edgekit.artifacts import file_table, read_manifest, write_json
    from edgekit.errors import InputError

    folder = Path(folder).expanduser()
    manifest = read_manifest(folder)
    export = manifest.get("export", {})
    if export.get("target") != "trt":
        raise InputError(
            f"'{folder}' is not a TensorRT artifact (target {export.get('target')})",
            "export it with 'edgekit export --target trt'",
        )
    graphs = graph_folders(folder, export)
    for graph, _ in graphs:
        for name in ("model.onnx", PROFILE_FILE):
            if not (graph / name).is_file():
                raise InputError(
                    f"'{graph}' has no {name}", "export it again with 'edgekit export --target trt'"
                )
    ok, why = tensorrt_status()
    if not ok:
        raise InputError(
            f"cannot build the TensorRT engine here: {why}",
            f"run 'edgekit build' (or {COMMAND_FILE}) on the device that has TensorRT and a GPU",
        )
    stamp: dict[str, Any] = {}
    for graph, section in graphs:
        stamp = build_engine(graph)
        section.update(engine_built=True, engine=stamp, not_built_because=None)
    export.setdefault("tensorrt", {})["engine_built"] = True
    manifest["files"] = file_table(folder)
    tmp = folder / "manifest.json.tmp"
    write_json(tmp, manifest)
    tmp.replace(folder / "manifest.json")
    return {**stamp, "engines": [str(graph / ENGINE_FILE) for graph, _ in graphs]}
