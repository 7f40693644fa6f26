"""INT8 encoders: one calibration set and one set of ranges for every backend, quality measured
against the fp32 PyTorch reference, and the accuracy guard (``--max-drop``).

Quality is the mean cosine between the quantized and the PyTorch embeddings on held-out text
(``--eval-data``, else edgekit's built-in sample); when the eval data has labels it is also the
5-fold logistic-regression accuracy on the embeddings. The guard's drop is ``1 - mean cosine``
without labels and the accuracy lost with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.errors import InputError, ValidationError

log = logging.getLogger("edgekit.export")

EVAL_BATCH = 8
WARN_BELOW_COSINE = 0.98


def check_int8_options(cfg: Any, decoder: bool = False) -> None:
    """Everything about the INT8 options that can be wrong, checked before any work."""
    from edgekit.calibration.dataset import check_calib_path
    from edgekit.calibration.ranges import RangeMethod
    from edgekit.export.targets import NEEDS_CALIBRATION, WEIGHT_ONLY

    if decoder:
        if cfg.precision.startswith("int"):
            if cfg.precision not in WEIGHT_ONLY or cfg.target not in ("ort", "openvino"):
                raise InputError(f"--precision {cfg.precision} --target {cfg.target} is not available for decoders", "decoders take weight-only int8 or int4 with --target ort or openvino")
            for option, value in (("--calib", cfg.calib), ("--max-drop", cfg.max_drop), ("--eval-data", cfg.eval_data)):
                if value is not None:
                    raise InputError(f"{option} does not apply to a decoder's weight-only {cfg.precision}", "drop the option; generation is compared with fp32 instead")
        return
    if cfg.precision == "int4":
        raise InputError("--precision int4 is weight-only, for decoders", "use --precision int8 for an encoder")
    int8 = cfg.precision.startswith("int8")
    if not int8:
        for option, value in (("--calib", cfg.calib), ("--max-drop", cfg.max_drop), ("--eval-data", cfg.eval_data if cfg.target != "trt" else None)):
            if value is not None:
                raise InputError(f"{option} applies only to INT8 exports, not --precision {cfg.precision}", "add --precision int8, or drop the option")
        return
    if cfg.precision in NEEDS_CALIBRATION:
        check_calib_path(cfg.calib)
        RangeMethod(cfg.calib_method, cfg.percentile).check()
    elif cfg.calib is not None:
        raise InputError(f"--precision {cfg.precision} takes its ranges at run time and reads no --calib", "drop --calib, or use --precision int8 (static)")
    if not 0 <= cfg.smooth_alpha <= 1:
        raise InputError(f"--smooth-quant must be between 0 and 1, got {cfg.smooth_alpha}", "pass e.g. --smooth-quant 0.8, or 0 to turn it off")
    if cfg.calib_size < 1:
        raise InputError(f"--calib-size must be at least 1, got {cfg.calib_size}", "pass e.g. --calib-size 128")
    if any(s < 2 for s in cfg.seq_lens):
        raise InputError(f"--seq-len values must be at least 2, got {list(cfg.seq_lens)}", "pass e.g. --seq-len 128")
    if cfg.max_drop is not None:
        if not 0 < cfg.max_drop < 1:
            raise InputError(f"--max-drop must be between 0 and 1, got {cfg.max_drop}", "pass e.g. --max-drop 0.01 (1%)")
        if cfg.eval_data is None:
            raise InputError("--max-drop needs held-out data to measure the drop on", "pass --eval-data with texts (a .jsonl with a 'label' field adds accuracy)")
    if cfg.eval_data is not None and not Path(cfg.eval_data).expanduser().exists():
        raise InputError(f"--eval-data '{cfg.eval_data}' does not exist", "pass a .txt/.jsonl file or a folder of .txt files")


@dataclass
class EvalSet:
    feeds: list[dict[str, Any]]
    labels: list[str] | None
    source: str
    output: str
    reference: list[Any] = field(default_factory=list)
    reference_accuracy: float | None = None


def build_calibration(cfg: Any, model_dir: Path, tokenizer: Any, input_names: list[str]):
    from edgekit.calibration.dataset import check_calib_path, image_calibration, is_image_folder, text_calibration

    path = check_calib_path(cfg.calib)
    if "pixel_values" in input_names:
        require_images(path, "--calib")
    if is_image_folder(path):
        if "pixel_values" not in input_names:
            raise InputError(f"--calib '{path}' holds images but this model reads text", "pass calibration text (.txt, .jsonl, or a folder of .txt files)")
        return image_calibration(model_dir, path, "pixel_values", cfg.calib_size, cfg.seed)
    return text_calibration(tokenizer, path, input_names, cfg.calib_size, tuple(cfg.seq_lens), cfg.seed)


def require_images(path: Path, option: str) -> None:
    from edgekit.calibration.dataset import is_image_folder

    if not is_image_folder(Path(path).expanduser()):
        raise InputError(f"{option} '{path}' holds no images but this model reads images", "pass a folder of JPEG/PNG images")


def build_eval_set(cfg: Any, built: Any, reference: Any, model_dir: Path) -> EvalSet:
    """Held-out feeds and the reference outputs on them: texts in batches of 8 padded to their
    longest, or images (``--eval-data``, else the calibration images) in batches of 8."""
    from edgekit.calibration.text import load_labeled, sample_texts, tokenize_natural

    names = built.output_names
    if "pixel_values" in built.input_names:
        from edgekit.export.vision import image_eval_feeds

        folder = cfg.eval_data or cfg.calib
        if folder is not None:
            require_images(Path(folder), "--eval-data" if cfg.eval_data else "--calib")
        if folder is None:
            from edgekit.export.vision import vision_cases

            feeds, labels, source = [case for _, case in vision_cases(built, cfg.seed)], None, "seeded random pixels (no --eval-data given)"
        else:
            feeds, labels = image_eval_feeds(model_dir, folder)
            source = str(folder) + ("" if cfg.eval_data else " (the calibration images: no --eval-data given)")
        output = "pooler_output" if "pooler_output" in names else "last_hidden_state"
    else:
        if cfg.eval_data is not None:
            texts, labels = load_labeled(cfg.eval_data)
            source = str(cfg.eval_data)
        else:
            texts, labels, source = sample_texts(min_words=0), None, "edgekit built-in sample text"
        max_length = max(cfg.seq_lens)
        feeds = [tokenize_natural(built.tokenizer, texts[i : i + EVAL_BATCH], built.input_names, max_length=max_length) for i in range(0, len(texts), EVAL_BATCH)]
        output = "sentence_embedding" if "sentence_embedding" in names else "last_hidden_state"
    evalset = EvalSet(feeds, labels, source, output)
    evalset.reference = [reference.run(f, [output])[output] for f in feeds]
    if labels is not None:
        evalset.reference_accuracy = probe_accuracy(_pooled(evalset, evalset.reference), labels, cfg.seed)
    return evalset


def _pooled(evalset: EvalSet, outputs: list[Any]) -> Any:
    """One vector per text: the embedding itself, or the mask-weighted mean of the token states."""
    rows = []
    for feed, out in zip(evalset.feeds, outputs):
        if out.ndim == 2:
            rows.append(out)
        elif "attention_mask" not in feed:
            rows.append(out.mean(1))
        else:
            mask = feed["attention_mask"][..., None].astype(np.float32)
            rows.append((out * mask).sum(1) / np.maximum(mask.sum(1), 1))
    return np.concatenate(rows)


def probe_accuracy(embeddings: Any, labels: list[str], seed: int = 0) -> float:
    """5-fold (fewer for tiny sets) logistic-regression accuracy on the embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    counts = {label: labels.count(label) for label in set(labels)}
    folds = min(5, min(counts.values()))
    if len(counts) < 2 or folds < 2:
        raise InputError("the eval data needs at least two labels with two examples each to measure accuracy", "add labelled examples, or drop the labels")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=2000), embeddings, labels, cv=cv).mean())


def measure(evalset: EvalSet, candidate: Any, seed: int = 0) -> dict:
    """Cosine (per text, or per real token) and max |diff| against the reference; accuracy with labels."""
    cosines, max_diff, outputs = [], 0.0, []
    for feed, ref in zip(evalset.feeds, evalset.reference):
        got = candidate.run(feed, [evalset.output])[evalset.output]
        outputs.append(got)
        cosines.append(_cosines(got, ref, feed))
        max_diff = max(max_diff, float(np.abs(got.astype(np.float64) - ref).max()))
    cos = np.concatenate(cosines)
    result = {"output": evalset.output, "texts": int(sum(len(next(iter(f.values()))) for f in evalset.feeds)), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "max_abs_diff": max_diff, "eval_data": evalset.source}
    if evalset.labels is not None:
        acc = probe_accuracy(_pooled(evalset, outputs), evalset.labels, seed)
        result.update({"accuracy": acc, "reference_accuracy": evalset.reference_accuracy, "relative_accuracy": acc / evalset.reference_accuracy if evalset.reference_accuracy else None})
    result["drop"] = (evalset.reference_accuracy - result["accuracy"]) if evalset.labels is not None else 1.0 - result["mean_cosine"]
    return result


def guarded(build: Callable[[list[str]], Any], candidates: Callable[[], list[str]], evalset: EvalSet, max_drop: float | None, limit: int, seed: int, steps: Any) -> tuple[Any, dict, list[str], list[dict]]:
    """Build with nothing kept in float; while the drop is over ``max_drop``, keep the next most
    sensitive node in float and build again, up to ``limit`` nodes. Returns the last build, its
    quality, the nodes kept in float and the tries."""
    kept: list[str] = []
    tries: list[dict] = []
    ranked: list[str] | None = None
    while True:
        session = build(kept)
        quality = measure(evalset, session, seed)
        tries.append({"float_nodes": len(kept), "drop": quality["drop"], "mean_cosine": quality["mean_cosine"], **({"accuracy": quality["accuracy"]} if "accuracy" in quality else {})})
        if max_drop is None or quality["drop"] <= max_drop:
            if max_drop is None and quality["mean_cosine"] < WARN_BELOW_COSINE:
                log.warning("INT8 mean cosine to PyTorch is %.4f on %s; consider --max-drop with --eval-data", quality["mean_cosine"], evalset.source)
            return session, quality, kept, tries
        if ranked is None:
            with steps.step("rank nodes by quantization error"):
                ranked = candidates()
        remaining = [n for n in ranked if n not in kept]
        if len(kept) >= limit or not remaining:
            raise ValidationError(
                f"INT8 cannot meet --max-drop {max_drop:g}: the drop is still {quality['drop']:.4f} with {len(kept)} node(s) kept in float",
                f"nothing was written; raise --max-drop, --max-float-nodes (now {limit}), or try another --calib-method",
            )
        kept.append(remaining[0])
        log.info("drop %.4f > %.4f: keeping %s in float", quality["drop"], max_drop, remaining[0])


def local_errors(model_path: Path, feeds: list[dict[str, Any]], ranges: dict[str, tuple[float, float]], symmetric: bool = False) -> list[str]:
    """Weight-MatMul nodes ranked by the error quantization adds at the node itself: the
    relative error of Q(x) @ Q(W) against x @ W, with x captured from the fp32 graph."""
    import onnx
    from onnx import numpy_helper

    from edgekit.calibration.ranges import collect_tensors
    from edgekit.compress.ort_quant import fake_quant_activation, fake_quant_weight, weight_matmuls

    model = onnx.load(str(model_path))
    target = weight_matmuls(model)
    inits = {i.name: i for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    captured = collect_tensors(model_path, feeds, target.activations)
    scores = {}
    for name in target.nodes:
        node = nodes[name]
        act = next(i for i in node.input[:2] if i not in inits)
        weight = numpy_helper.to_array(inits[next(i for i in node.input[:2] if i in inits)]).astype(np.float32)
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            weight = weight.T
        x = np.concatenate([c.reshape(-1, c.shape[-1]) for c in captured[act]])
        exact = x @ weight
        approx = fake_quant_activation(x, *ranges[act], symmetric) @ fake_quant_weight(weight)
        scores[name] = float(np.linalg.norm(approx - exact) / max(np.linalg.norm(exact), 1e-12))
    return sorted(scores, key=scores.get, reverse=True)


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


def ort_int8(cfg: Any, model_dir: Path, built: Any, reference: Any, tmp: Path, steps: Any) -> tuple[dict, dict]:
    """Quantize the validated fp32 ``tmp/model.onnx`` in place: pure Q/DQ for ``--target onnx``,
    ONNX Runtime's fused form for ``--target ort``; static (calibrated, SmoothQuant) or dynamic."""
    from edgekit.calibration.ranges import RangeMethod, cached_ranges, collect
    from edgekit.compress.ort_quant import load_with_shapes, qdq_summary, quantize_dynamic_int8, quantize_static_qdq, weight_matmuls
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    static = cfg.precision == "int8"
    src = tmp / "model.fp32.onnx"
    (tmp / "model.onnx").rename(src)
    target = weight_matmuls(load_with_shapes(src))
    with steps.step("reference outputs on eval data"):
        evalset = build_eval_set(cfg, built, reference, model_dir)
    calib, ranges, smoothed = None, None, []
    if static:
        method = RangeMethod(cfg.calib_method, cfg.percentile).check()
        with steps.step("calibration set"):
            calib = build_calibration(cfg, model_dir, built.tokenizer, built.input_names)
        if cfg.smooth_alpha > 0:
            src, target, smoothed = smooth_graph(src, target, calib, cfg.smooth_alpha, steps)
            (tmp / "model.fp32.onnx").unlink()
        with steps.step(f"calibrate ({method.name}, {len(calib.feeds)} samples)"):
            ranges = cached_ranges(src, calib, target.activations, method)

    def build(kept: list[str]):
        nodes = [n for n in target.nodes if n not in kept]
        if static:
            quantize_static_qdq(load_with_shapes(src), tmp / "model.onnx", ranges.tensors, nodes, fuse=cfg.target == "ort")
        else:
            quantize_dynamic_int8(src, tmp / "model.onnx", nodes)
        return OrtSession(tmp / "model.onnx", SessionOptions())

    def candidates() -> list[str]:
        feeds = calib.feeds[:16] if calib else evalset.feeds[:4]
        node_ranges = ranges.tensors if ranges else collect(src, feeds, target.activations, RangeMethod("minmax")).tensors
        return local_errors(src, feeds, node_ranges)

    with steps.step("quantize and measure"):
        _, quality, kept, tries = guarded(build, candidates, evalset, cfg.max_drop, cfg.max_float_nodes, cfg.seed, steps)
    src.unlink()
    fused = static and cfg.target == "ort"
    section = {
        "quantization": {
            "mode": "static" if static else "dynamic",
            "format": ("Q/DQ, weight MatMul + bias fused to com.microsoft.MatMulIntegerToFloat" if fused else "Q/DQ") if static else "QOperator (DynamicQuantizeLinear + MatMulInteger)",
            "weights": "int8 symmetric, per output channel",
            "activations": "uint8 asymmetric, per tensor, " + ("calibrated" if static else "range computed at run time"),
            "ops": "MatMul/Gemm with a weight operand",
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
    return section, quality


def openvino_int8(cfg: Any, model_dir: Path, built: Any, reference: Any, xml: Path, steps: Any) -> tuple[dict, dict]:
    """NNCF post-training quantization of the validated fp32 IR at ``xml``, in place, with the
    same calibration set; ``--max-drop`` runs NNCF's accuracy-control loop on the eval data."""
    import nncf
    import openvino as ov

    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.openvino_backend import OpenVINOSession

    with steps.step("reference outputs on eval data"):
        evalset = build_eval_set(cfg, built, reference, model_dir)
    with steps.step("calibration set"):
        calib = build_calibration(cfg, model_dir, built.tokenizer, built.input_names)
    model = ov.Core().read_model(str(xml))
    calibration = nncf.Dataset(calib.feeds)
    options = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(calib.feeds)}
    with steps.step(f"quantize with NNCF ({len(calib.feeds)} samples)"):
        if cfg.max_drop is None:
            quantized = nncf.quantize(model, calibration, **options)
        else:
            items = list(range(len(evalset.feeds)))

            def validate(compiled, indices) -> float:
                outputs = [compiled(evalset.feeds[i])[evalset.output] for i in indices]
                if evalset.labels is not None:
                    return probe_accuracy(_pooled(evalset, outputs), evalset.labels, cfg.seed)
                cos = [_cosines(o, evalset.reference[i], evalset.feeds[i]) for o, i in zip(outputs, indices)]
                return float(np.concatenate(cos).mean())

            try:
                quantized = nncf.quantize_with_accuracy_control(
                    model, calibration, nncf.Dataset(items), validate, max_drop=cfg.max_drop, drop_type=nncf.DropType.ABSOLUTE, **options
                )
            except RuntimeError as exc:
                raise ValidationError(f"OpenVINO INT8 cannot meet --max-drop {cfg.max_drop:g}: {str(exc).splitlines()[0]}", "nothing was written; raise --max-drop") from exc
    from edgekit.export.openvino_ir import replace_ir

    replace_ir(quantized, xml)
    del quantized, model
    session = OpenVINOSession(xml, SessionOptions(), "f32")
    quality = measure(evalset, session, cfg.seed)
    if cfg.max_drop is not None and quality["drop"] > cfg.max_drop:
        raise ValidationError(f"OpenVINO INT8 drop {quality['drop']:.4f} is over --max-drop {cfg.max_drop:g}", "nothing was written; raise --max-drop")
    section = {
        "quantization": {
            "mode": "static",
            "tool": f"nncf {nncf.__version__}",
            "model_type": "transformer",
            "calibration": calib.manifest(),
            "int8_ops": runtime_int8_ops(session),
            "guard": {"max_drop": cfg.max_drop, "method": "nncf.quantize_with_accuracy_control" if cfg.max_drop is not None else None},
        }
    }
    return section, quality


def _cosines(got: Any, ref: Any, feed: dict[str, Any]) -> Any:
    a, b = got.reshape(-1, got.shape[-1]).astype(np.float64), ref.reshape(-1, ref.shape[-1]).astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return cos[feed["attention_mask"].reshape(-1) > 0] if got.ndim == 3 and "attention_mask" in feed else cos


def runtime_int8_ops(session: Any) -> dict[str, int]:
    """Compute layers of the compiled OpenVINO model that run with u8/i8 runtime precision, by type."""
    counts: dict[str, int] = {}
    for op in session._compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
        if layer in ("FullyConnected", "MatMul", "Convolution", "Subgraph") and precision in ("u8", "i8"):
            counts[layer] = counts.get(layer, 0) + 1
    return counts
