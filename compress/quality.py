"""Quality of a compressed model against the fp32 PyTorch reference, and the accuracy guard.

Quality is the mean cosine between the candidate's and the reference's embeddings on held-out
data (``--eval-data``, else edgekit's built-in sample or seeded pixels); with labels it is also the
5-fold logistic-regression accuracy on the embeddings. The guard's drop is ``1 - mean cosine``
without labels and the accuracy lost with them. The calibration set is built here too, from the
same options, so every quantizer (ORT, OpenVINO, TensorRT) reads the same data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.errors import InputError, ValidationError
from edgekit.numerics import error_rate, masked_mean, row_cosines

log = logging.getLogger("edgekit.export")

EVAL_BATCH = 8
WARN_BELOW_COSINE = 0.98


@dataclass
class EvalSet:
    feeds: list[dict[str, Any]]
    labels: list[str] | None
    source: str
    output: str
    reference: list[Any] = field(default_factory=list)
    reference_accuracy: float | None = None
    partner: Any | None = None
    """Image-text towers: fp32 embeddings of the other modality (the candidates); quality is then
    zero-shot top-1 agreement with fp32 and the drop ``1 - agreement``."""
    transcribe: Callable[[Any], str] | None = None
    """CTC speech encoders: logits of one utterance -> its greedy transcript; quality is then the
    character error rate against fp32's transcripts, and the drop that rate."""


def build_calibration(cfg: Any, model_dir: Path, tokenizer: Any, input_names: list[str]):
    from edgekit.calibration.dataset import (
        check_calib_path,
        image_calibration,
        is_image_folder,
        text_calibration,
    )

    path = check_calib_path(cfg.calib)
    if "input_values" in input_names:
        from edgekit.calibration.audio import audio_calibration

        return audio_calibration(model_dir, path, input_names, cfg.calib_size, cfg.seed)
    if "pixel_values" in input_names:
        require_images(path, "--calib")
    if is_image_folder(path):
        if "pixel_values" not in input_names:
            raise InputError(
                f"--calib '{path}' holds images but this model reads text",
                "pass calibration text (.txt, .jsonl, or a folder of .txt files)",
            )
        return image_calibration(model_dir, path, "pixel_values", cfg.calib_size, cfg.seed)
    from edgekit.calibration.audio import audio_files

    if audio_files(path):
        raise InputError(
            f"--calib '{path}' holds WAV files but this model reads text",
            "pass calibration text (.txt, .jsonl, or a folder of .txt files)",
        )
    return text_calibration(
        tokenizer, path, input_names, cfg.calib_size, tuple(cfg.seq_lens), cfg.seed, encoding=cfg.encoding
    )


def require_images(path: Path, option: str) -> None:
    from edgekit.calibration.dataset import is_image_folder

    if not is_image_folder(Path(path).expanduser()):
        raise InputError(
            f"{option} '{path}' holds no images but this model reads images",
            "pass a folder of JPEG/PNG images",
        )


def build_eval_set(cfg: Any, built: Any, reference: Any, model_dir: Path) -> EvalSet:
    """Held-out feeds and the reference outputs on them: texts in batches of 8 padded to their
    longest, or images (``--eval-data``, else the calibration images) in batches of 8."""
    from edgekit.calibration.text import load_labeled, sample_texts, tokenize_natural

    names = built.output_names
    pairs = getattr(built, "eval_pairs", None)
    if pairs is not None:
        feeds, partner, source = pairs
        evalset = EvalSet(feeds, None, source, built.quality_output, partner=partner)
        evalset.reference = [reference.run(f, [evalset.output])[evalset.output] for f in feeds]
        return evalset
    if "input_values" in built.input_names:
        return _speech_eval_set(cfg, built, reference, model_dir)
    if "pixel_values" in built.input_names:
        from edgekit.calibration.images import image_eval_feeds

        folder = cfg.eval_data or cfg.calib
        if folder is not None:
            require_images(Path(folder), "--eval-data" if cfg.eval_data else "--calib")
        if folder is None:
            from edgekit.models.vision import vision_cases

            feeds, labels, source = (
                [case for _, case in vision_cases(built, cfg.seed)],
                None,
                "seeded random pixels (no --eval-data given)",
            )
        else:
            feeds, labels = image_eval_feeds(model_dir, folder)
            source = str(folder) + (
                "" if cfg.eval_data else " (the calibration images: no --eval-data given)"
            )
        output = getattr(built, "quality_output", None) or (
            "pooler_output" if "pooler_output" in names else "last_hidden_state"
        )
    else:
        if cfg.eval_data is not None:
            texts, labels = load_labeled(cfg.eval_data, encoding=cfg.encoding)
            source = str(cfg.eval_data)
        else:
            texts, labels, source = sample_texts(min_words=0), None, "edgekit built-in sample text"
        max_length = max(cfg.seq_lens)
        feeds = [
            tokenize_natural(
                built.tokenizer, texts[i : i + EVAL_BATCH], built.input_names, max_length=max_length
            )
            for i in range(0, len(texts), EVAL_BATCH)
        ]
        output = getattr(built, "quality_output", None) or (
            "sentence_embedding" if "sentence_embedding" in names else "last_hidden_state"
        )
    evalset = EvalSet(feeds, labels, source, output)
    evalset.reference = [reference.run(f, [output])[output] for f in feeds]
    if labels is not None:
        evalset.reference_accuracy = probe_accuracy(pooled(evalset, evalset.reference), labels, cfg.seed)
    return evalset


def _speech_eval_set(cfg: Any, built: Any, reference: Any, model_dir: Path) -> EvalSet:
    """WAV files (``--eval-data``, else the calibration files), one utterance per feed."""
    from edgekit.calibration.audio import audio_eval_feeds
    from edgekit.models.ctc import transcript

    folder = cfg.eval_data or cfg.calib
    if folder is None:
        from edgekit.models.ctc import ctc_cases

        feeds, source = (
            [case for _, case in ctc_cases(built, cfg.seed)],
            "seeded waveforms (no --eval-data given)",
        )
    else:
        feeds = audio_eval_feeds(model_dir, Path(folder), built.input_names)
        source = str(folder) + ("" if cfg.eval_data else " (the calibration files: no --eval-data given)")
    evalset = EvalSet(
        feeds,
        None,
        source,
        "logits",
        transcribe=lambda logits: transcript(built.tokenizer, logits, built.blank_token_id),
    )
    evalset.reference = [reference.run(f, ["logits"])["logits"] for f in feeds]
    return evalset


def transcripts(evalset: EvalSet, outputs: list[Any]) -> list[str]:
    """The transcript of every utterance (every row of every batch) of ``outputs``."""
    assert evalset.transcribe is not None
    return [evalset.transcribe(row) for out in outputs for row in out]


def pooled(evalset: EvalSet, outputs: list[Any]) -> Any:
    """One vector per text: the embedding itself, or the mask-weighted mean of the token states."""
    rows = []
    for feed, out in zip(evalset.feeds, outputs):
        rows.append(out if out.ndim == 2 else masked_mean(out, feed.get("attention_mask")))
    return np.concatenate(rows)


def probe_accuracy(embeddings: Any, labels: list[str], seed: int = 0) -> float:
    """5-fold (fewer for tiny sets) logistic-regression accuracy on the embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    counts = {label: labels.count(label) for label in set(labels)}
    folds = min(5, min(counts.values()))
    if len(counts) < 2 or folds < 2:
        raise InputError(
            "the eval data needs at least two labels with two examples each to measure accuracy",
            "add labelled examples, or drop the labels",
        )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=2000), embeddings, labels, cv=cv).mean())


def measure(evalset: EvalSet, candidate: Any, seed: int = 0) -> dict:
    """Cosine (per text, or per real token) and max |diff| against the reference; accuracy with labels."""
    cosines, max_diff, outputs = [], 0.0, []
    for feed, ref in zip(evalset.feeds, evalset.reference):
        got = candidate.run(feed, [evalset.output])[evalset.output]
        outputs.append(got)
        cosines.append(output_cosines(got, ref, feed))
        max_diff = max(max_diff, float(np.abs(got.astype(np.float64) - ref).max()))
    cos = np.concatenate(cosines)
    result = {
        "output": evalset.output,
        "texts": int(sum(len(next(iter(f.values()))) for f in evalset.feeds)),
        "inputs": "images" if any("pixel_values" in f for f in evalset.feeds) else "texts",
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "max_abs_diff": max_diff,
        "eval_data": evalset.source,
    }
    if evalset.labels is not None:
        acc = probe_accuracy(pooled(evalset, outputs), evalset.labels, seed)
        result.update(
            {
                "accuracy": acc,
                "reference_accuracy": evalset.reference_accuracy,
                "relative_accuracy": acc / evalset.reference_accuracy if evalset.reference_accuracy else None,
            }
        )
    result["drop"] = (
        (evalset.reference_accuracy - result["accuracy"])
        if evalset.labels is not None
        else 1.0 - result["mean_cosine"]
    )
    if evalset.partner is not None:
        result["zero_shot_agreement"] = top1_agreement(evalset, outputs, range(len(outputs)))
        result["drop"] = 1.0 - result["zero_shot_agreement"]
    if evalset.transcribe is not None:
        result["inputs"] = "utterances"
        result["cer_vs_fp32"] = error_rate(
            transcripts(evalset, evalset.reference), transcripts(evalset, outputs)
        )
        result["drop"] = result["cer_vs_fp32"]
    return result


def top1_agreement(evalset: EvalSet, outputs: list[Any], indices: Any) -> float:
    """Share of rows whose best candidate (row of ``evalset.partner``) is the one fp32 picks."""
    got = np.concatenate(list(outputs)) @ evalset.partner.T
    ref = np.concatenate([evalset.reference[i] for i in indices]) @ evalset.partner.T
    return float(np.mean(got.argmax(1) == ref.argmax(1)))


def score(evalset: EvalSet, outputs: list[Any], indices: list[int], seed: int) -> float:
    """The figure the accuracy guard keeps (higher is better) on the eval batches ``indices``:
    zero-shot agreement for an image-text tower, accuracy with labels, else mean cosine."""
    if evalset.partner is not None:
        return top1_agreement(evalset, outputs, indices)
    if evalset.transcribe is not None:
        refs = [evalset.reference[i] for i in indices]
        return 1.0 - error_rate(transcripts(evalset, refs), transcripts(evalset, outputs))
    if evalset.labels is not None:
        return probe_accuracy(pooled(evalset, outputs), evalset.labels, seed)
    cos = [output_cosines(o, evalset.reference[i], evalset.feeds[i]) for o, i in zip(outputs, indices)]
    return float(np.concatenate(cos).mean())


def guarded(
    build: Callable[[list[str]], Any],
    candidates: Callable[[], list[str]],
    evalset: EvalSet,
    max_drop: float | None,
    limit: int,
    seed: int,
    steps: Any,
) -> tuple[Any, dict, list[str], list[dict]]:
    """Build with nothing kept in float; while the drop is over ``max_drop``, keep the next most
    sensitive node in float and build again, up to ``limit`` nodes. Returns the last build, its
    quality, the nodes kept in float and the tries."""
    kept: list[str] = []
    tries: list[dict] = []
    ranked: list[str] | None = None
    while True:
        session = build(kept)
        quality = measure(evalset, session, seed)
        tries.append(
            {
                "float_nodes": len(kept),
                "drop": quality["drop"],
                "mean_cosine": quality["mean_cosine"],
                **{k: quality[k] for k in ("accuracy", "zero_shot_agreement", "cer_vs_fp32") if k in quality},
            }
        )
        if max_drop is None or quality["drop"] <= max_drop:
            if max_drop is None and quality["mean_cosine"] < WARN_BELOW_COSINE:
                log.warning(
                    "INT8 mean cosine to PyTorch is %.4f on %s; consider --max-drop with --eval-data",
                    quality["mean_cosine"],
                    evalset.source,
                )
            return session, quality, kept, tries
        if ranked is None:
            with steps.step("rank nodes by quantization error"):
                ranked = candidates()
        remaining = [n for n in ranked if n not in kept]
        if len(kept) >= limit or len(remaining) <= 1:  # keeping the last one would leave nothing in INT8
            raise ValidationError(
                f"INT8 cannot meet --max-drop {max_drop:g}: the drop is still {quality['drop']:.4f} with {len(kept)} node(s) kept in float",
                f"nothing was written; raise --max-drop, --max-float-nodes (now {limit}), or try another --calib-method",
            )
        kept.append(remaining[0])
        log.info("drop %.4f > %.4f: keeping %s in float", quality["drop"], max_drop, remaining[0])


def local_errors(
    model_path: Path,
    feeds: list[dict[str, Any]],
    ranges: dict[str, tuple[float, float]],
    symmetric: bool = False,
) -> list[str]:
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
        weight = numpy_helper.to_array(inits[next(i for i in node.input[:2] if i in inits)]).astype(
            np.float32
        )
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            weight = weight.T
        x = np.concatenate([c.reshape(-1, c.shape[-1]) for c in captured[act]])
        exact = x @ weight
        approx = fake_quant_activation(x, *ranges[act], symmetric) @ fake_quant_weight(weight)
        scores[name] = float(np.linalg.norm(approx - exact) / max(np.linalg.norm(exact), 1e-12))
    return sorted(scores, key=scores.get, reverse=True)


def output_cosines(got: Any, ref: Any, feed: dict[str, Any]) -> Any:
    """Cosine per embedding, or per real token of token states."""
    cos = row_cosines(got.reshape(-1, got.shape[-1]), ref.reshape(-1, ref.shape[-1]))
    mask = feed.get("attention_mask")
    if got.ndim == 3 and mask is not None and mask.shape == got.shape[:2]:  # token states, not audio frames
        return cos[mask.reshape(-1) > 0]
    return cos
