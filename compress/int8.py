"""INT8 of stateless graphs (encoders, vision encoders) from one calibration set: ONNX Runtime
Q/DQ (static with SmoothQuant, or dynamic) and OpenVINO through NNCF, each under the accuracy
guard of ``compress/quality.py``."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from edgekit.compress.quality import build_calibration, build_eval_set, guarded, local_errors, measure, score
from edgekit.errors import ValidationError


def smooth_graph(src: Path, target: Any, calib: Any, alpha: float, steps: Any) -> tuple[Path, Any, list[str]]:
    """SmoothQuant on the fp32 graph ``src``: per-channel |max| of the smoothable activations from
    the calibration set, then the rewrite, saved as ``model.smoothed.onnx`` beside ``src``.
    Returns that path, the new quantization target and the smoothed activations."""
    import onnx

    from edgekit.calibration.ranges import RangeMethod, cached_ranges
    from edgekit.compress.ort_quant import QuantTarget, weight_matmuls
    from edgekit.compress.smooth import smooth_quant, smoothable

    with steps.step(f"SmoothQuant (alpha {alpha:g})"):
        model = onnx.load(str(src))
        acts = smoothable(model, target)
        stats = cached_ranges(src, calib, acts, RangeMethod("minmax"), channel_tensors=acts)
        smooth_quant(model, QuantTarget(target.nodes, acts), stats.channel_absmax, alpha)
        out = src.with_name("model.smoothed.onnx")
        onnx.save(model, str(out))
    return out, weight_matmuls(model), acts


def ort_int8(
    cfg: Any, model_dir: Path, built: Any, reference: Any, tmp: Path, steps: Any, fuse: bool
) -> tuple[dict, dict]:
    """Quantize the validated fp32 ``tmp/model.onnx`` in place: pure Q/DQ for ``--target onnx``,
    ONNX Runtime's fused form for ``--target ort``; static (calibrated, SmoothQuant) or dynamic."""
    from edgekit.calibration.ranges import RangeMethod, cached_ranges, collect
    from edgekit.compress.ort_quant import (
        load_with_shapes,
        quantize_dynamic_int8,
        quantize_static_qdq,
        weight_matmuls,
        with_convs,
    )
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    static = cfg.precision == "int8"
    src = tmp / "model.fp32.onnx"
    (tmp / "model.onnx").rename(src)
    target = weight_matmuls(load_with_shapes(src))
    with steps.step("reference outputs on eval data"):
        evalset = build_eval_set(cfg, built, reference, model_dir)
    calib, ranges, smoothed, convs = None, None, [], []
    if static:
        method = RangeMethod(cfg.calib_method, cfg.percentile).check()
        with steps.step("calibration set"):
            calib = build_calibration(cfg, model_dir, built.tokenizer, built.input_names)
        if cfg.smooth_alpha > 0:
            src, target, smoothed = smooth_graph(src, target, calib, cfg.smooth_alpha, steps)
            (tmp / "model.fp32.onnx").unlink()
        if getattr(built, "quantize_convs", False):  # after smoothing, which rewrites MatMuls only
            matmuls = set(target.nodes)
            target = with_convs(load_with_shapes(src), target)
            convs = [n for n in target.nodes if n not in matmuls]
        passes = len(calib.feeds) * (2 if method.needs_histogram else 1)
        with steps.step(f"calibrate ({method.name}, {len(calib.feeds)} samples)", passes) as advance:
            ranges = cached_ranges(src, calib, target.activations, method, progress=advance)

    def build(kept: list[str]):
        nodes = [n for n in target.nodes if n not in kept]
        if static:
            quantize_static_qdq(load_with_shapes(src), tmp / "model.onnx", ranges.tensors, nodes, fuse=fuse)
        else:
            quantize_dynamic_int8(src, tmp / "model.onnx", nodes)
        return OrtSession(tmp / "model.onnx", SessionOptions())

    def candidates() -> list[str]:
        feeds = calib.feeds[:16] if calib else evalset.feeds[:4]
        node_ranges = (
            ranges.tensors
            if ranges
            else collect(src, feeds, target.activations, RangeMethod("minmax")).tensors
        )
        return convs + local_errors(
            src, feeds, node_ranges
        )  # quantized convolutions first, then MatMuls by error

    with steps.step("quantize and measure"):
        _, quality, kept, tries = guarded(
            build, candidates, evalset, cfg.max_drop, cfg.max_float_nodes, cfg.seed, steps
        )
    src.unlink()
    section = _ort_section(
        cfg, static and fuse, static, ranges, smoothed, calib, target, kept, tries, tmp, bool(convs)
    )
    return section, quality


def _ort_section(
    cfg: Any,
    fused: bool,
    static: bool,
    ranges: Any,
    smoothed: list,
    calib: Any,
    target: Any,
    kept: list,
    tries: list,
    tmp: Path,
    convs: bool,
) -> dict:
    """The manifest's ``quantization`` section of an ONNX Runtime INT8 graph."""
    from edgekit.compress.ort_quant import qdq_summary

    section = {
        "quantization": {
            "mode": "static" if static else "dynamic",
            "format": (
                "Q/DQ, weight MatMul + bias fused to com.microsoft.MatMulIntegerToFloat" if fused else "Q/DQ"
            )
            if static
            else "QOperator (DynamicQuantizeLinear + MatMulInteger)",
            "weights": "int8 symmetric, per output channel",
            "activations": "uint8 asymmetric, per tensor, "
            + ("calibrated" if static else "range computed at run time"),
            "ops": "MatMul/Gemm with a weight operand"
            + (", Conv with its output (QLinearConv)" if convs else ""),
            "method": ranges.method if ranges else None,
            "smooth_quant": {"alpha": cfg.smooth_alpha, "activations": len(smoothed)} if static else None,
            "ranges_from_cache": ranges.from_cache if ranges else None,
            "calibration": calib.manifest() if calib else None,
            "quantized_nodes": len(target.nodes) - len(kept),
            "float_nodes": kept,
            "guard": {"max_drop": cfg.max_drop, "tries": tries},
            "graph": qdq_summary(tmp / "model.onnx"),
        }
    }
    return section


def openvino_int8(
    cfg: Any, model_dir: Path, built: Any, reference: Any, xml: Path, steps: Any
) -> tuple[dict, dict]:
    """NNCF post-training quantization of the validated fp32 IR at ``xml``, in place, with the
    same calibration set; ``--max-drop`` runs NNCF's accuracy-control loop on the eval data."""
    import nncf
    import openvino as ov

    if steps.quiet:  # a caller with its own display (edgekit optimize): NNCF's info lines would break it
        nncf.set_log_level(logging.WARNING)
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.openvino_backend import OpenVINOSession

    with steps.step("reference outputs on eval data"):
        evalset = build_eval_set(cfg, built, reference, model_dir)
    with steps.step("calibration set"):
        calib = build_calibration(cfg, model_dir, built.tokenizer, built.input_names)
    model = ov.Core().read_model(str(xml))
    calibration = nncf.Dataset(calib.feeds)
    options = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(calib.feeds)}
    # under a caller's own display (quiet), NNCF's progress bars on stdout are dropped too
    hush = contextlib.redirect_stdout(io.StringIO()) if steps.quiet else contextlib.nullcontext()
    with steps.step(f"quantize with NNCF ({len(calib.feeds)} samples)"), hush:
        if cfg.max_drop is None:
            quantized = nncf.quantize(model, calibration, **options)
        else:
            items = list(range(len(evalset.feeds)))

            def validate(compiled, indices) -> float:
                outputs = [compiled(evalset.feeds[i])[evalset.output] for i in indices]
                return score(evalset, outputs, list(indices), cfg.seed)

            try:
                quantized = nncf.quantize_with_accuracy_control(
                    model,
                    calibration,
                    # validate() gets the items (indices); NNCF's own per-item runs feed the model through the transform
                    nncf.Dataset(items, lambda i: evalset.feeds[i]),
                    validate,
                    max_drop=cfg.max_drop,
                    drop_type=nncf.DropType.ABSOLUTE,
                    **options,
                )
            except RuntimeError as exc:
                raise ValidationError(
                    f"OpenVINO INT8 cannot meet --max-drop {cfg.max_drop:g}: {str(exc).splitlines()[0]}",
                    "nothing was written; raise --max-drop",
                ) from exc
    from edgekit.export.openvino_ir import replace_ir

    replace_ir(quantized, xml)
    del quantized, model
    session = OpenVINOSession(xml, SessionOptions(), "f32")
    quality = measure(evalset, session, cfg.seed)
    if cfg.max_drop is not None and quality["drop"] > cfg.max_drop:
        raise ValidationError(
            f"OpenVINO INT8 drop {quality['drop']:.4f} is over --max-drop {cfg.max_drop:g}",
            "nothing was written; raise --max-drop",
        )
    section = {
        "quantization": {
            "mode": "static",
            "tool": f"nncf {nncf.__version__}",
            "model_type": "transformer",
            "calibration": calib.manifest(),
            "int8_ops": runtime_int8_ops(session),
            "guard": {
                "max_drop": cfg.max_drop,
                "method": "nncf.quantize_with_accuracy_control" if cfg.max_drop is not None else None,
            },
        }
    }
    return section, quality


def runtime_int8_ops(session: Any) -> dict[str, int]:
    """Compute layers of the compiled OpenVINO model that run with u8/i8 runtime precision, by type."""
    counts: dict[str, int] = {}
    for op in session._compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
        if layer in ("FullyConnected", "MatMul", "Convolution", "Subgraph") and precision in ("u8", "i8"):
            counts[layer] = counts.get(layer, 0) + 1
    return counts


def ort_static_encoder(
    src: Path, out: Path, calib: Any, method: Any, fuse: bool, progress: Any = None
) -> dict:
    """Static INT8 of every weight MatMul of the fp32 graph ``src`` (an encoder-decoder's encoder,
    e.g. a captioner's vision tower) into ``out``, with activation ranges from ``calib``. No guard
    here: the caller compares the whole model's greedy tokens with fp32."""
    from edgekit.calibration.ranges import cached_ranges
    from edgekit.compress.ort_quant import load_with_shapes, qdq_summary, quantize_static_qdq, weight_matmuls

    target = weight_matmuls(load_with_shapes(src))
    ranges = cached_ranges(src, calib, target.activations, method, progress=progress)
    quantize_static_qdq(load_with_shapes(src), out, ranges.tensors, target.nodes, fuse=fuse)
    return {
        "mode": "static",
        "format": "Q/DQ, weight MatMul + bias fused to com.microsoft.MatMulIntegerToFloat"
        if fuse
        else "Q/DQ",
        "weights": "int8 symmetric, per output channel",
        "activations": "uint8 asymmetric, per tensor, calibrated",
        "method": ranges.method,
        "ranges_from_cache": ranges.from_cache,
        "calibration": calib.manifest(),
        "quantized_nodes": len(target.nodes),
        "graph": qdq_summary(out),
    }


def openvino_static_encoder(model: Any, calib: Any, quiet: bool) -> tuple[Any, dict]:
    """NNCF post-training INT8 of an encoder-decoder's encoder IR (``model``, an ``ov.Model``) on
    ``calib``; the quantized model and its manifest section."""
    import nncf

    if quiet:
        nncf.set_log_level(logging.WARNING)
    hush = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    with hush:
        quantized = nncf.quantize(
            model,
            nncf.Dataset(calib.feeds),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calib.feeds),
        )
    return quantized, {
        "mode": "static",
        "tool": f"nncf {nncf.__version__}",
        "model_type": "transformer",
        "calibration": calib.manifest(),
    }
