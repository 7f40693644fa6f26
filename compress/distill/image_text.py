"""Image-text distillation (``--task image-text``): a CLIP-family teacher into a student whose
towers keep fewer of the teacher's layers, trained on image-text pairs (``calibration/pairs.py``).

The loss of a batch of B pairs, ``L = a1 * sum_k w_k L_k + a2 * L_contrastive``:

- ``pred``: the similarity logits (B images x B texts, each model's own scale) distilled with a
  temperature, image-to-text and text-to-image (the light-CLIP recipe: match the teacher's
  similarity distribution, not only its embeddings);
- ``feature``: 1 - cosine between the student's and the teacher's projected embeddings, per tower;
- ``embed`` / ``hidden``: the towers' embedding outputs and hidden states through g(m), per tower
  (the student keeps the teacher's widths, so no projection is needed);
- ``momentum``: the same similarity distillation against a momentum (EMA) copy of the student
  (ALBEF's momentum distillation: soft targets that smooth the noisy one-hot pairing);
- ``a2``: the student's own contrastive loss on the true pairs (CLIP's softmax cross-entropy, or
  SigLIP's pairwise sigmoid loss, as the family scores).

``--student-layers`` shrinks the text tower and ``--student-vision-layers`` the vision tower
(default: the vision tower kept whole); ``--freeze "vision_model.*"`` locks the image tower, which
with a whole vision tower is LiT-tuning.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.compress.distill.config import DistillConfig
from edgekit.compress.distill.distiller import MomentumTeacher
from edgekit.compress.distill.stages import Stages, run_section, write_distilled
from edgekit.errors import InputError

log = logging.getLogger("edgekit.compress.distill")

TOWERS = ("text", "vision")


@dataclass
class PairData:
    pairs: Any
    train_idx: list[int]
    held_idx: list[int]


@dataclass
class DualModels:
    teacher: Any
    student: Any
    tokenizer: Any
    preprocess: Any
    layers: dict[str, list[int]]
    plan: dict
    weights: dict[str, float]
    scoring: str
    text_padding: str
    input_names: list[str]
    max_length: int
    """Text tokens per caption: --seq-len, capped at the text tower's positions."""


def read_pairs(cfg: DistillConfig) -> PairData:
    from edgekit.calibration.pairs import load_pairs
    from edgekit.compress.distill.data import split_held_out

    pairs = load_pairs(cfg.data, cfg.encoding)
    train_idx, held_idx = split_held_out(len(pairs), cfg.eval_fraction, cfg.seed)
    if len(train_idx) < cfg.batch_size:
        raise InputError(
            f"{len(train_idx)} training pairs are fewer than one batch of {cfg.batch_size}",
            "give more pairs or a smaller --batch-size",
        )
    if cfg.batch_size < 2:
        raise InputError(
            "image-text distillation needs --batch-size 2 or more", "the batch is the set of candidates"
        )
    return PairData(pairs, train_idx, held_idx)


def _layer_slot(model: Any, tower: str) -> tuple[Any, str]:
    """The module holding a tower's ModuleList of transformer layers, and its attribute name:
    ``encoder.layers`` (CLIP, SigLIP), ``encoder.layer`` (BERT) or ``layers`` (ViT in transformers 5)."""
    import torch

    module = getattr(model, f"{tower}_model")
    for parent in (getattr(module, "encoder", None), module):
        for name in ("layers", "layer"):
            if parent is not None and isinstance(getattr(parent, name, None), torch.nn.ModuleList):
                return parent, name
    raise InputError(
        f"cannot find the layers of the {tower} tower ({type(module).__name__})",
        "distil a CLIP, Chinese CLIP, SigLIP or vision-text dual encoder model",
    )


def tower_layers(model: Any, tower: str) -> Any:
    """The ModuleList of a tower's transformer layers."""
    parent, name = _layer_slot(model, tower)
    return getattr(parent, name)


def build_dual_student(teacher: Any, keep: dict[str, list[int]]) -> Any:
    """A copy of the teacher whose towers keep only the teacher layers in ``keep`` (1-based)."""
    import torch

    student = copy.deepcopy(teacher)
    for tower, layers in keep.items():
        parent, name = _layer_slot(student, tower)
        full = getattr(parent, name)
        setattr(parent, name, torch.nn.ModuleList(full[i - 1] for i in layers))
        for config in {id(c): c for c in _tower_configs(student, tower)}.values():
            config.num_hidden_layers = len(layers)
    for p in student.parameters():
        p.requires_grad_(True)
    return student


def _tower_configs(model: Any, tower: str) -> list[Any]:
    configs = [
        getattr(model.config, f"{tower}_config", None),
        getattr(getattr(model, f"{tower}_model"), "config", None),
    ]
    return [c for c in configs if c is not None]


def load_dual_models(cfg: DistillConfig, teacher_dir: Path, data: PairData) -> DualModels:
    import random

    import torch
    import transformers

    from edgekit.calibration.images import ImagePreprocessor
    from edgekit.compress.distill.losses import layer_map
    from edgekit.models.dual import dual_spec_for, text_input_names
    from edgekit.models.source import read_model_config
    from edgekit.models.tokenizer import load_tokenizer

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    spec = dual_spec_for(read_model_config(teacher_dir).get("model_type"))  # before any weights load
    tokenizer = load_tokenizer(teacher_dir, needed_for="image-text distillation")
    teacher = transformers.AutoModel.from_pretrained(str(teacher_dir), attn_implementation="eager").eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    depth = {t: len(tower_layers(teacher, t)) for t in TOWERS}
    if cfg.student is not None:
        student, asked = _given_student(cfg, teacher, tokenizer, transformers)
        plan: dict = {"from": str(cfg.student), "teacher_layers": depth}
    else:
        asked = {
            "text": cfg.student_layers or depth["text"],
            "vision": cfg.student_vision_layers or depth["vision"],
        }
        for tower, n in asked.items():
            if not 1 <= n <= depth[tower]:
                raise InputError(
                    f"the {tower} tower has {depth[tower]} layers, so a student cannot keep {n}",
                    f"pass a count from 1 to {depth[tower]}",
                )
        keep = {t: layer_map(asked[t], depth[t], "uniform") for t in TOWERS}
        student = build_dual_student(teacher, keep)
        plan = {"built_from_teacher": {"kept_layers": keep, "teacher_layers": depth}}
    layers = {t: layer_map(asked[t], depth[t], cfg.layer_map) for t in TOWERS}
    return DualModels(
        teacher,
        student,
        tokenizer,
        ImagePreprocessor.from_model(teacher_dir),
        layers,
        plan,
        dual_weights(cfg),
        spec.scoring,
        spec.text_padding,
        text_input_names(tokenizer, teacher),
        min(
            cfg.seq_len,
            int(getattr(teacher.config.text_config, "max_position_embeddings", None) or cfg.seq_len),
        ),
    )


def _given_student(cfg: DistillConfig, teacher: Any, tokenizer: Any, transformers: Any) -> tuple[Any, dict]:
    """``--student DIR``: a model of the teacher's family, widths and tokenizer (the per-tower losses
    compare hidden states and embeddings as they are), with at most the teacher's layers."""
    from edgekit.models.source import read_model_config
    from edgekit.models.tokenizer import load_tokenizer

    folder = Path(cfg.student).expanduser()
    kind = read_model_config(folder).get("model_type")
    if kind != teacher.config.model_type:
        raise InputError(
            f"--student '{folder}' is a {kind} model and the teacher a {teacher.config.model_type}",
            "give a student of the teacher's family, or build one with --student-layers",
        )
    if load_tokenizer(folder, needed_for="image-text distillation").get_vocab() != tokenizer.get_vocab():
        raise InputError(
            f"--student '{folder}' has another tokenizer than the teacher", "give it the teacher's tokenizer"
        )
    student = transformers.AutoModel.from_pretrained(str(folder), attn_implementation="eager")
    for tower in TOWERS:
        widths = [
            c.hidden_size for c in (_tower_configs(student, tower)[0], _tower_configs(teacher, tower)[0])
        ]
        if widths[0] != widths[1] or len(tower_layers(student, tower)) > len(tower_layers(teacher, tower)):
            raise InputError(
                f"--student '{folder}': its {tower} tower is {widths[0]} wide with {len(tower_layers(student, tower))} layers, the teacher's {widths[1]} wide with {len(tower_layers(teacher, tower))}",
                "give a student with the teacher's widths and no more layers (narrower students are not available yet)",
            )
    return student.train(), {t: len(tower_layers(student, t)) for t in TOWERS}


def dual_weights(cfg: DistillConfig) -> dict[str, float]:
    if cfg.w_attn:
        raise InputError(
            "the attention-score loss is for BERT-style text encoders, not image-text towers", "drop --w-attn"
        )
    return {
        "embed": 1.0 if cfg.w_embed is None else float(cfg.w_embed),
        "hidden": 1.0 if cfg.w_hidden is None else float(cfg.w_hidden),
        "attn": 0.0,
        "pred": cfg.w_pred,
        "feature": cfg.w_feature,
        "momentum": cfg.w_momentum if cfg.momentum_teacher else 0.0,
    }


def _contrastive(logits_per_image: Any, scoring: str) -> Any:
    """The student's own loss on the true pairs (the diagonal)."""
    import torch

    n = logits_per_image.shape[0]
    if scoring == "sigmoid":  # SigLIP: every (image, text) is a binary question
        signs = 2 * torch.eye(n, device=logits_per_image.device) - 1
        return -torch.nn.functional.logsigmoid(signs * logits_per_image).sum() / n
    target = torch.arange(n, device=logits_per_image.device)
    ce = torch.nn.functional.cross_entropy
    return (ce(logits_per_image, target) + ce(logits_per_image.T, target)) / 2


class DualDistiller:
    """Teacher, student, the momentum teacher and the loss of one batch of pairs."""

    def __init__(self, cfg: DistillConfig, models: DualModels):
        self.cfg, self.teacher, self.student = cfg, models.teacher, models.student
        self.layers, self.weights, self.scoring = models.layers, models.weights, models.scoring
        self.projection = None
        self.momentum = MomentumTeacher(self.student, cfg.momentum_teacher) if cfg.momentum_teacher else None
        self.student_forward = self.student

    def parameters(self) -> list[Any]:
        return [p for p in self.student.parameters() if p.requires_grad]

    def loss(self, batch: dict[str, Any], teacher_batch: Any = None, labels: Any = None) -> tuple[Any, dict]:
        import torch

        from edgekit.compress.distill.losses import embedding_loss, masked_mse, soft_cross_entropy, total_loss

        cfg, w = self.cfg, self.weights
        with torch.no_grad():
            t = self.teacher(**batch, output_hidden_states=True)
        s = self.student_forward(**batch, output_hidden_states=True)

        def similarity(student_out, target_out):
            return (
                soft_cross_entropy(student_out.logits_per_image, target_out.logits_per_image, cfg.temperature)
                + soft_cross_entropy(student_out.logits_per_text, target_out.logits_per_text, cfg.temperature)
            ) / 2

        terms: dict[str, Any] = {}
        if w["pred"]:
            terms["pred"] = similarity(s, t)
        if w["feature"]:
            terms["feature"] = (
                embedding_loss(s.image_embeds, t.image_embeds, "cosine")
                + embedding_loss(s.text_embeds, t.text_embeds, "cosine")
            ) / 2
        masks = {"text": batch["attention_mask"], "vision": None}
        hidden = {
            tower: (
                getattr(s, f"{tower}_model_output").hidden_states,
                getattr(t, f"{tower}_model_output").hidden_states,
            )
            for tower in TOWERS
        }
        if w["embed"]:
            terms["embed"] = sum(masked_mse(hidden[x][0][0], hidden[x][1][0], masks[x]) for x in TOWERS) / 2
        if w["hidden"]:
            terms["hidden"] = (
                sum(
                    sum(
                        masked_mse(hidden[x][0][m], hidden[x][1][g], masks[x])
                        for m, g in enumerate(self.layers[x], 1)
                    )
                    / len(self.layers[x])
                    for x in TOWERS
                )
                / 2
            )
        if self.momentum is not None:
            with torch.no_grad():
                ema = self.momentum.model(**batch)
            terms["momentum"] = similarity(s, ema)
        own = _contrastive(s.logits_per_image, self.scoring) if cfg.a2 else None
        return total_loss(terms, w, cfg.a1, cfg.a2, own)


def pair_batch(models: DualModels, pairs: Any, idx: list[int]) -> dict[str, Any]:
    """Tokenized captions and preprocessed images of the pairs ``idx``, as torch tensors."""
    import numpy as np
    import torch

    enc = models.tokenizer(
        [pairs.texts[i] for i in idx],
        padding="max_length" if models.text_padding == "max_length" else True,
        truncation=True,
        max_length=models.max_length,
        return_tensors="pt",
    )
    batch = {k: enc[k] for k in models.input_names}
    if "attention_mask" not in batch:
        batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    batch["pixel_values"] = torch.from_numpy(np.stack([models.preprocess(pairs.images[i]) for i in idx]))
    return batch


def pair_micro_step(
    cfg: DistillConfig, data: PairData, models: DualModels, loop: Any, place: Any, k: int
) -> dict:
    """Forward and backward of micro-batch ``k`` of pairs (this rank's share of it)."""
    import torch

    from edgekit.compress.distill.data import batch_indices

    picks = batch_indices(k, len(data.train_idx), cfg.batch_size, cfg.seed)[place.rank :: place.world]
    batch = pair_batch(models, data.pairs, [data.train_idx[i] for i in picks])
    batch = {key: v.to(place.device) for key, v in batch.items()}
    amp = loop.amp_dtype
    with torch.autocast(device_type=place.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss, logged = loop.distiller.loss(batch)
    scaled = loss / cfg.grad_accum
    (loop.scaler.scale(scaled) if loop.scaler is not None else scaled).backward()
    return logged


def _embeddings(model: Any, models: DualModels, pairs: Any, idx: list[int], labels: list[str]) -> dict:
    """Normalised image and caption embeddings of the pairs ``idx`` (and of the label names), numpy."""
    import torch

    out: dict[str, Any] = {"image": [], "text": []}
    with torch.no_grad():
        for i in range(0, len(idx), 16):
            batch = pair_batch(models, pairs, idx[i : i + 16])
            result = model(**batch)
            out["image"].append(result.image_embeds.float().numpy())
            out["text"].append(result.text_embeds.float().numpy())
        if labels:
            enc = models.tokenizer(
                labels,
                padding="max_length" if models.text_padding == "max_length" else True,
                truncation=True,
                max_length=models.max_length,
                return_tensors="pt",
            )
            feats = model.get_text_features(**{k: enc[k] for k in models.input_names})
            feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
            out["labels"] = torch.nn.functional.normalize(feats, dim=-1).float().numpy()
    import numpy as np

    return {k: np.concatenate(v) if isinstance(v, list) else v for k, v in out.items()}


def evaluate_pairs(cfg: DistillConfig, data: PairData, models: DualModels) -> dict[str, Any]:
    """On the held-out pairs (never trained on): retrieval of teacher and student, the student's
    agreement with the teacher, zero-shot accuracy where pairs have labels; sizes and speed."""
    import numpy as np

    from edgekit.compress.distill.report import forward_ms
    from edgekit.numerics import retrieval_scores

    teacher, student, pairs = models.teacher.eval(), models.student.eval(), data.pairs
    report: dict[str, Any] = {
        "eval_pairs": len(data.held_idx),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "student_parameters": sum(p.numel() for p in student.parameters()),
    }
    sample = pair_batch(models, pairs, (data.held_idx or data.train_idx)[:8])
    report["teacher_latency_ms"] = forward_ms(teacher, sample)
    report["student_latency_ms"] = forward_ms(student, sample)
    report["speedup_vs_teacher"] = report["teacher_latency_ms"] / report["student_latency_ms"]
    if not data.held_idx:
        return report
    labels = sorted({pairs.labels[i] for i in data.held_idx}) if pairs.labels else []
    t = _embeddings(teacher, models, pairs, data.held_idx, labels)
    s = _embeddings(student, models, pairs, data.held_idx, labels)
    report["teacher"] = retrieval_scores(t["image"], t["text"])
    report["student"] = retrieval_scores(s["image"], s["text"], t["image"], t["text"])
    report["mean_cosine_to_teacher"] = (
        report["student"]["image_cosine"] + report["student"]["text_cosine"]
    ) / 2
    if labels:
        truth = np.asarray([labels.index(pairs.labels[i]) for i in data.held_idx])
        predicted = {
            name: (e["image"] @ e["labels"].T).argmax(1) for name, e in (("teacher", t), ("student", s))
        }
        report["teacher_zero_shot_accuracy"] = float(np.mean(predicted["teacher"] == truth))
        report["student_zero_shot_accuracy"] = float(np.mean(predicted["student"] == truth))
        report["zero_shot_agreement"] = float(np.mean(predicted["student"] == predicted["teacher"]))
    return report


def save_dual_student(student: Any, tokenizer: Any, teacher_dir: Path, out: Path) -> None:
    """An HF folder AutoModel and ``edgekit export`` read: weights, config, tokenizer, preprocessor."""
    import shutil

    student.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    for name in ("preprocessor_config.json", "processor_config.json"):
        if (teacher_dir / name).is_file():
            shutil.copy2(teacher_dir / name, out / name)


def write_dual_student(
    cfg: DistillConfig,
    out: Path,
    teacher_dir: Path,
    data: PairData,
    models: DualModels,
    loop: Any,
    place: Any,
    started: str,
) -> None:
    """Evaluate on the held-out pairs and write the student folder with its report and manifest."""
    report = evaluate_pairs(cfg, data, models)
    section = {
        "task": "image-text",
        **run_section(cfg, models, loop, place),
        "train_pairs": len(data.train_idx),
        "eval_pairs": len(data.held_idx),
    }
    write_distilled(
        cfg,
        out,
        teacher_dir,
        models.teacher.config.model_type,
        section,
        report,
        loop.history,
        lambda tmp: save_dual_student(models.student, models.tokenizer, teacher_dir, tmp),
        started,
    )


STAGES = Stages(read_pairs, load_dual_models, DualDistiller, pair_micro_step, write_dual_student)
