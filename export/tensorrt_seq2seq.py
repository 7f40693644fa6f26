"""``--target trt`` for encoder-decoders (captioners, T5/BART, Whisper): each graph in fp16 in a
folder of its own, as TensorRT builds one engine per graph.

    encoder/model.onnx  trt_profiles.json  build_trt.sh  (model.engine)   one profile: batch (and the
                                                                          text or prompt length)
    decoder/model.onnx  trt_profiles.json  build_trt.sh  (model.engine)   decode and prefill profiles

The fp16 graphs keep their exported input and output types (ids int64, pixels, logits and caches
float32), so the same stepper feeds them. Both are checked on ONNX Runtime against PyTorch fp32
(encoder outputs, the decoder's prefill and step) at the fp16 tolerance, and greedy generation is
compared with transformers and reported. The engines are built here only when TensorRT and a GPU
are present; otherwise ``edgekit build DIR`` builds both on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.export.fp16 import DECODER_FP32_OPS, FP32_OPS, to_fp16
from edgekit.export.tensorrt import (
    DECODER_MAX_SEQ,
    FP16_DECODER_ATOL,
    PROFILE_FILE,
    commands_and_engine,
    decoder_profiles,
    shapes_for,
)

PROMPT_MAX = 128
"""Longest task prompt (tokens) a task-prompted encoder's profile takes (Florence-2's are ~10-40)."""


def graph_inputs(path: Path) -> list[dict[str, Any]]:
    """The graph's inputs as the manifest lists them: name and shape (axis names or sizes)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [
        {"name": i.name, "shape": [d.dim_param or int(d.dim_value) for d in i.type.tensor_type.shape.dim]}
        for i in graph.input
    ]


def seq2seq_profiles(cfg: Any, built: Any, encoder: Path, decoder: Path) -> dict[str, list[dict]]:
    """One encoder profile (batch 1..--max-batch; the source text up to the encoder's positions, a
    task prompt up to PROMPT_MAX tokens); the decoder's decode and prefill profiles over
    ``--max-seq-len`` target positions (default: the decoder's, at most DECODER_MAX_SEQ), with the
    encoder length's range where it is not fixed."""
    text = built.text_config
    source = int(
        getattr(text, "max_position_embeddings", 0) or getattr(text, "n_positions", 0) or max(cfg.seq_lens)
    )
    target = int(getattr(text, "max_target_positions", 0) or getattr(text, "max_position_embeddings", 0) or 0)
    max_seq = max(2, min(cfg.max_seq or DECODER_MAX_SEQ, target or DECODER_MAX_SEQ))
    opt_source = min(max(cfg.seq_lens), source)
    patches = built.encoder_length
    cross = (1, opt_source, source) if built.spec.text_encoder else (1, patches, patches + PROMPT_MAX)
    encoder_sizes = {
        "batch": (1, 1, cfg.max_batch),
        "encoder_sequence": (1, opt_source, source),
        "prompt_sequence": (1, 16, PROMPT_MAX),
    }
    return {
        "encoder": [{"name": "default", "shapes": shapes_for(graph_inputs(encoder), encoder_sizes)}],
        "decoder": decoder_profiles(
            graph_inputs(decoder),
            cfg.max_batch,
            min(max(cfg.seq_lens), max_seq - 1),
            max_seq,
            extra={"encoder_sequence": cross},
        ),
    }


def trt_seq2seq_export(job: Any, case: Any) -> tuple[dict, dict]:
    """Both validated fp32 graphs of ``case`` to fp16 in ``tmp/encoder/`` and ``tmp/decoder/`` (the
    case's files point there after), checked on ONNX Runtime, with profiles, build commands and,
    where TensorRT runs, the engines."""
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    tmp = job.tmp
    sources = {part: tmp / name for part, name in case.files.items()}
    files = {part: f"{part}/model.onnx" for part in sources}
    with job.steps.step("convert both graphs to fp16"):
        for part, src in sources.items():
            (tmp / part).mkdir()
            to_fp16(src, tmp / files[part], FP32_OPS if part == "encoder" else DECODER_FP32_OPS)
            for leftover in tmp.glob(f"{src.name}*"):  # the fp32 graph and any external data beside it
                leftover.unlink()
    case.files = files
    with job.steps.step("validate fp16 on ONNX Runtime"):
        sessions = {part: OrtSession(tmp / name, SessionOptions()) for part, name in files.items()}
        report = case.compare(sessions, FP16_DECODER_ATOL)
        generation = case.parity(sessions, strict=False)
    plans = seq2seq_profiles(job.cfg, case.built, tmp / files["encoder"], tmp / files["decoder"])
    graphs = {}
    for part, profile in plans.items():
        (tmp / part / PROFILE_FILE).write_text(json.dumps(profile, indent=2))
        graphs[part] = {
            **commands_and_engine(tmp / part, "fp16", profile, job.steps),
            "fp32_ops": list(FP32_OPS if part == "encoder" else DECODER_FP32_OPS),
            "io_types": "as exported (int64 ids, float32 pixels/features, logits and caches)",
        }
    built_all = all(g["engine_built"] for g in graphs.values())
    section = {"tensorrt_graphs": graphs, "tensorrt": {"precision": "fp16", "engine_built": built_all}}
    return section, {
        "runtime": "onnxruntime",
        **report.as_dict(),
        "greedy_generation": generation,
        "fp32": case.validation,
    }
