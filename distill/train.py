"""``distill(config) -> student folder``: layer-wise distillation with checkpoints and exact resume.

Data order is a seeded permutation per epoch, so the data position is just the step number; a
checkpoint holds student, projection, optimizer, scheduler, the RNG states and the step, written
to a temp file and renamed. ``--resume`` continues from it and ends with the same weights as an
uninterrupted run on the same machine. Work state lives in ``<out>.work/`` until the student
folder is complete and renamed into place.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgekit.distill.config import DistillConfig
from edgekit.errors import InputError

log = logging.getLogger("edgekit.distill")
CHECKPOINT = "checkpoint.pt"


def work_dir(out: Path) -> Path:
    return out.with_name(out.name + ".work")


def _config_key(cfg: DistillConfig) -> str:
    keep = {k: str(v) for k, v in asdict(cfg).items() if k not in ("resume", "overwrite", "max_steps", "save_every")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the training and held-out examples (a seeded shuffle; held out = never trained on)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_eval = int(n * fraction)
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def label_ids(labels: list[str], teacher_config: Any) -> list[int]:
    """Label names to the teacher's class ids (its ``label2id`` when the names match, else the
    sorted names in order); the count must match the teacher's classifier."""
    names = sorted(set(labels))
    n = int(getattr(teacher_config, "num_labels", 0))
    known = {str(k): int(v) for k, v in (getattr(teacher_config, "label2id", None) or {}).items()}
    if set(names) <= set(known):
        return [known[label] for label in labels]
    if len(names) != n:
        raise InputError(f"the data has {len(names)} labels {names[:6]} but the teacher classifies into {n}", "give data with the teacher's labels (names from its config.json label2id, or exactly that many classes)")
    index = {name: i for i, name in enumerate(names)}
    return [index[label] for label in labels]


def batch_indices(step: int, n: int, batch: int, seed: int) -> list[int]:
    """The examples of global batch ``step``: epoch e walks a permutation seeded by (seed, e)."""
    import numpy as np

    per_epoch = max(1, n // batch)
    epoch, pos = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [int(i) for i in order[pos * batch : pos * batch + batch]]


AUTO_CLASSES = {
    "sentence-embedding": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "masked-lm": "AutoModelForMaskedLM",
    "causal-lm": "AutoModelForCausalLM",
}


def lm_batch(enc: dict[str, Any], task: str, tokenizer: Any, step: int, seed: int, probability: float) -> tuple[dict[str, Any], Any]:
    """Inputs and labels for the language-model tasks. masked-lm masks tokens with a generator
    seeded by (seed, step), so a resumed run masks exactly as an uninterrupted one."""
    import torch

    ids, mask = enc["input_ids"], enc["attention_mask"]
    if task == "causal-lm":
        labels = ids.masked_fill(mask == 0, -100)
        return enc, labels
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    special = torch.tensor([[t in tokenizer.all_special_ids for t in row] for row in ids.tolist()])
    chosen = (torch.rand(ids.shape, generator=gen) < probability) & (mask == 1) & ~special
    labels = ids.masked_fill(~chosen, -100)
    roll = torch.rand(ids.shape, generator=gen)
    masked = ids.clone()
    masked[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = torch.randint(len(tokenizer), ids.shape, generator=gen)[swap]
    return {**enc, "input_ids": masked}, labels


def _query_key(layer: Any) -> tuple[Any, Any, int]:
    """The query and key projections of a BERT-style layer, and its head count."""
    attn = getattr(getattr(layer, "attention", None), "self", None)
    if attn is None or not hasattr(attn, "query") or not hasattr(attn, "key"):
        raise InputError(f"the attention loss needs BERT-style layers (attention.self.query/key), not {type(layer).__name__}", "set --w-attn 0")
    heads = getattr(attn, "num_attention_heads", None) or attn.config.num_attention_heads
    return attn.query, attn.key, int(heads)


def attention_scores(layer: Any, hidden: Any) -> Any:
    """Pre-softmax scores Q K^T / sqrt(d) of ``layer`` on its input ``hidden``: (batch, heads, seq, seq)."""
    query, key, heads = _query_key(layer)
    b, s, _ = hidden.shape
    q = query(hidden).view(b, s, heads, -1).transpose(1, 2)
    k = key(hidden).view(b, s, heads, -1).transpose(1, 2)
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])


def mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


class MomentumTeacher:
    """An exponential moving average of the student (ALBEF-style momentum distillation):
    after each optimizer step, ``p_ema = decay * p_ema + (1 - decay) * p_student``."""

    def __init__(self, student: Any, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(student).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, student: Any) -> None:
        import torch

        with torch.no_grad():
            for ema, live in zip(self.model.parameters(), student.parameters()):
                ema.mul_(self.decay).add_(live.detach(), alpha=1 - self.decay)
            for ema, live in zip(self.model.buffers(), student.buffers()):
                ema.copy_(live)


class Distiller:
    """Teacher, student, projection and the loss of one batch."""

    def __init__(self, cfg: DistillConfig, teacher: Any, student: Any, layers: list[int], weights: dict[str, float]):
        import torch

        self.cfg, self.teacher, self.student, self.layers, self.weights = cfg, teacher, student, layers, weights
        t_width, s_width = teacher.config.hidden_size, student.config.hidden_size
        torch.manual_seed(cfg.seed + 1)
        self.projection = torch.nn.Linear(s_width, t_width) if s_width != t_width else None
        self.momentum = MomentumTeacher(student, cfg.momentum_teacher) if cfg.momentum_teacher else None
        self.student_forward = student
        """What the forward pass calls: the student, or its DistributedDataParallel wrapper."""

    def parameters(self) -> list[Any]:
        params = [p for p in self.student.parameters() if p.requires_grad]
        return params + (list(self.projection.parameters()) if self.projection is not None else [])

    def _proj(self, x: Any) -> Any:
        return self.projection(x) if self.projection is not None else x

    def loss(self, batch: dict[str, Any], teacher_batch: dict[str, Any] | None = None, labels: Any | None = None) -> tuple[Any, dict[str, float]]:
        """The loss of one batch; ``teacher_batch`` is the same texts in the teacher's tokens when
        the tokenizers differ (then only output-level terms are on)."""
        import torch

        from edgekit.distill.losses import attention_score_loss, embedding_loss, masked_mse, soft_cross_entropy, total_loss

        cfg, w, mask = self.cfg, self.weights, batch["attention_mask"]
        teacher_batch = teacher_batch or batch
        with torch.no_grad():
            t_out = self.teacher(**teacher_batch, output_hidden_states=True)
        s_out = self.student_forward(**batch, output_hidden_states=True)
        t_h, s_h = t_out.hidden_states, s_out.hidden_states
        terms: dict[str, Any] = {}
        if w["embed"]:
            terms["embed"] = masked_mse(self._proj(s_h[0]), t_h[0], mask)
        if w["hidden"]:
            terms["hidden"] = sum(masked_mse(self._proj(s_h[m]), t_h[g], mask) for m, g in enumerate(self.layers, 1)) / len(self.layers)
        if w["attn"]:
            s_layers, t_layers = _encoder_layers(self.student), _encoder_layers(self.teacher)
            total = 0
            for m, g in enumerate(self.layers, 1):
                with torch.no_grad():
                    t_scores = attention_scores(t_layers[g - 1], t_h[g - 1])
                total = total + attention_score_loss(attention_scores(s_layers[m - 1], s_h[m - 1]), t_scores, mask, cfg.attn_loss)
            terms["attn"] = total / len(self.layers)
        student_loss = None
        if cfg.task in ("masked-lm", "causal-lm"):
            s_logits, t_logits = s_out.logits, t_out.logits
            if cfg.task == "causal-lm":  # position i predicts token i + 1
                s_logits, t_logits, labels = s_logits[:, :-1], t_logits[:, :-1], labels[:, 1:]
            where = labels != -100
            if w["pred"]:
                terms["pred"] = soft_cross_entropy(s_logits, t_logits, cfg.temperature, mask=where)
            if cfg.a2:
                student_loss = torch.nn.functional.cross_entropy(s_logits.reshape(-1, s_logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        elif cfg.task == "sequence-classification":
            if w["pred"]:
                terms["pred"] = soft_cross_entropy(s_out.logits, t_out.logits, cfg.temperature)
            if labels is not None and cfg.a2:
                student_loss = torch.nn.functional.cross_entropy(s_out.logits, labels)
        elif w["pred"]:
            terms["pred"] = embedding_loss(self._proj(mean_pool(s_h[-1], mask)), mean_pool(t_h[-1], teacher_batch["attention_mask"]), cfg.pred_loss)
        if self.momentum is not None:
            with torch.no_grad():
                ema = mean_pool(self.momentum.model(**batch).last_hidden_state, mask)
            terms["momentum"] = embedding_loss(mean_pool(s_h[-1], mask), ema, cfg.pred_loss)
        return total_loss(terms, w, cfg.a1, cfg.a2, student_loss)


def _bert_style(model: Any) -> bool:
    try:
        _query_key(_encoder_layers(model)[0])
        return True
    except InputError:
        return False


def _encoder_layers(model: Any) -> Any:
    model = getattr(model, "base_model", model)
    for path in ("encoder.layer", "transformer.layer"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    raise InputError(f"cannot find the layers of {type(model).__name__}", "set --w-attn 0")


def _rng_state() -> dict:
    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, step: int, distiller: Distiller, optimizer: Any, scheduler: Any, history: list[dict], key: str) -> None:
    import torch

    state = {
        "step": step,
        "config_key": key,
        "student": distiller.student.state_dict(),
        "projection": distiller.projection.state_dict() if distiller.projection is not None else None,
        "momentum": distiller.momentum.model.state_dict() if distiller.momentum is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "history": history,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_student(cfg: DistillConfig, teacher: Any, auto: Any) -> tuple[Any, list[int], dict]:
    """The student and g(m): built from the teacher, or loaded from ``--student``."""
    from edgekit.distill.losses import layer_map
    from edgekit.distill.student import build_student

    n_teacher = int(teacher.config.num_hidden_layers)
    if cfg.student is not None:
        student = auto.from_pretrained(str(cfg.student), attn_implementation="eager")
        m = int(student.config.num_hidden_layers)
        plan = {"from": str(cfg.student)}
    else:
        keep = list(cfg.student_layer_list) if cfg.student_layer_list else layer_map(int(cfg.student_layers), n_teacher, "uniform")
        student, built = build_student(teacher, keep, cfg.student_hidden, cfg.student_heads, cfg.student_ffn, cfg.seed)
        m = len(keep)
        plan = {"built_from_teacher": built.as_dict()}
    layers = layer_map(m, n_teacher, cfg.layer_map, list(cfg.layer_map_list) if cfg.layer_map_list else None)
    return student, layers, plan


def freeze(model: Any, patterns: tuple[str, ...]) -> list[str]:
    frozen = []
    for name, param in model.named_parameters():
        if any(fnmatch.fnmatch(name, p) for p in patterns):
            param.requires_grad_(False)
            frozen.append(name)
    unused = [p for p in patterns if not any(fnmatch.fnmatch(n, p) for n in frozen)]
    if unused:
        raise InputError(f"--freeze '{unused[0]}' matches no parameter of the student", "check the names with: python -c \"from transformers import AutoModel; print([n for n, _ in AutoModel.from_pretrained('DIR').named_parameters()])\"")
    return frozen


class Placement:
    """Where training runs: one process (CPU, or the GPU when there is one), or one process per
    GPU under ``torchrun`` / ``accelerate launch`` (read from WORLD_SIZE/RANK/LOCAL_RANK; gloo on
    CPU, nccl on GPUs). Rank 0 alone writes checkpoints and the student."""

    def __init__(self) -> None:
        import os

        import torch

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        import torch

        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        import torch

        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def distill(cfg: DistillConfig, quiet: bool = False) -> Path:
    """Run (or resume) a distillation; returns the student folder."""
    place = Placement()
    try:
        return _distill(cfg, place, quiet or not place.main)
    finally:
        place.close()


def _distill(cfg: DistillConfig, place: Placement, quiet: bool) -> Path:
    import torch
    import transformers
    from transformers import AutoTokenizer, get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    from edgekit.artifacts import build_manifest, check_out_dir, hash_folder, now_iso, staged_output, write_json
    from edgekit.calibration.text import load_labeled
    from edgekit.export.api import read_model_config

    cfg.check()
    started = now_iso()
    teacher_dir = Path(cfg.teacher).expanduser().resolve()
    read_model_config(teacher_dir)
    if cfg.student is not None:
        read_model_config(Path(cfg.student).expanduser())
    texts, labels = load_labeled(cfg.data)
    classify = cfg.task == "sequence-classification"
    if classify and labels is None:
        raise InputError(f"sequence classification needs labels, and '{cfg.data}' has none", "use a .jsonl with a 'label' field, or a folder of class subfolders of .txt files")
    train_idx, held_idx = _split(len(texts), cfg.eval_fraction, cfg.seed)
    train, held = [texts[i] for i in train_idx], [texts[i] for i in held_idx]
    if len(train) < cfg.batch_size:
        raise InputError(f"{len(train)} training texts are fewer than one batch of {cfg.batch_size}", "give more data or a smaller --batch-size")
    out = Path(cfg.out).expanduser()
    work = work_dir(out)
    ckpt = work / CHECKPOINT
    if work.exists() and not cfg.resume and not cfg.overwrite:
        raise InputError(f"an interrupted run is in '{work}'", "pass --resume to continue it, or --overwrite to start again")
    if cfg.resume and not ckpt.is_file():
        raise InputError(f"--resume: no checkpoint in '{work}'", "start without --resume")
    check_out_dir(out, cfg.overwrite)
    if cfg.batch_size % place.world:
        raise InputError(f"--batch-size {cfg.batch_size} does not split over {place.world} processes", f"use a multiple of {place.world}")
    place.barrier()  # every rank has checked before rank 0 touches the work folder
    if place.main:
        if cfg.overwrite and work.exists() and not cfg.resume:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
    place.barrier()
    if cfg.amp == "fp16" and place.device.type != "cuda":
        raise InputError("--amp fp16 needs a CUDA GPU", "use --amp bf16 on CPU, or --amp no")

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
    auto = getattr(transformers, AUTO_CLASSES[cfg.task])
    teacher = auto.from_pretrained(str(teacher_dir), attn_implementation="eager").eval()
    ids = label_ids(labels, teacher.config) if classify else None
    for p in teacher.parameters():
        p.requires_grad_(False)
    student, layers, plan = load_student(cfg, teacher, auto)
    student_tokenizer = AutoTokenizer.from_pretrained(str(cfg.student)) if cfg.student is not None else tokenizer
    same_tokenizer = student_tokenizer.get_vocab() == tokenizer.get_vocab()
    weights = cfg.loss_weights(same_tokenizer)
    if weights["attn"] and not _bert_style(student):
        if cfg.w_attn:
            raise InputError(f"the attention loss needs BERT-style layers (attention.self.query/key), not {type(student).__name__}", "set --w-attn 0")
        weights["attn"] = 0.0  # left at its default: off for this architecture
    if cfg.task in ("masked-lm", "causal-lm") and not same_tokenizer:
        raise InputError(f"{cfg.task} compares predictions over the vocabulary, so teacher and student need the same tokenizer", "give the student the teacher's tokenizer")
    if cfg.task == "masked-lm" and tokenizer.mask_token_id is None:
        raise InputError("masked-lm needs a tokenizer with a mask token", "use a teacher trained with masked language modelling")
    if cfg.task == "causal-lm" and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        student_tokenizer.pad_token = student_tokenizer.pad_token or student_tokenizer.eos_token
    frozen = freeze(student, cfg.freeze)
    teacher.to(place.device)
    student.to(place.device).train()
    distiller = Distiller(cfg, teacher, student, layers, weights)
    if distiller.projection is not None:
        distiller.projection.to(place.device)
    if distiller.momentum is not None:
        distiller.momentum.model.to(place.device)
    if place.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: heads the losses never touch (e.g. the BERT pooler) get no gradient
        distiller.student_forward = DistributedDataParallel(student, device_ids=[place.device.index] if place.device.type == "cuda" else None, find_unused_parameters=True)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    optimizer = torch.optim.AdamW(distiller.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    make = get_cosine_schedule_with_warmup if cfg.schedule == "cosine" else get_linear_schedule_with_warmup
    scheduler = make(optimizer, int(cfg.warmup_ratio * cfg.max_steps), cfg.max_steps)
    key = _config_key(cfg)
    step, history = 0, []
    if cfg.resume:
        state = torch.load(ckpt, weights_only=False)
        if state["config_key"] != key:
            raise InputError(f"the checkpoint in '{work}' was made with other settings", "resume with the same options (only --max-steps and --save-every may change), or --overwrite")
        student.load_state_dict(state["student"])
        if distiller.projection is not None:
            distiller.projection.load_state_dict(state["projection"])
        if distiller.momentum is not None:
            distiller.momentum.model.load_state_dict(state["momentum"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step, history = state["step"], state["history"]
        log.info("resumed at step %d", step)

    from edgekit._progress import training_progress

    names = [n for n in ("embed", "attn", "hidden", "pred", "momentum") if weights[n]]
    with training_progress(cfg.max_steps, step, names, quiet) as progress:
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            logged_sum: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                idx = batch_indices(step * cfg.grad_accum + micro, len(train), cfg.batch_size, cfg.seed)[place.rank :: place.world]
                texts_k = [train[i] for i in idx]
                enc = student_tokenizer(texts_k, padding=True, truncation=True, max_length=cfg.seq_len, return_tensors="pt")
                t_enc = None if same_tokenizer else dict(tokenizer(texts_k, padding=True, truncation=True, max_length=cfg.seq_len, return_tensors="pt"))
                batch_labels = torch.tensor([ids[train_idx[i]] for i in idx]) if ids is not None else None
                inputs = dict(enc)
                if cfg.task in ("masked-lm", "causal-lm"):
                    inputs, batch_labels = lm_batch(inputs, cfg.task, student_tokenizer, step * cfg.grad_accum + micro, cfg.seed, cfg.mask_probability)
                inputs = {k: v.to(place.device) for k, v in inputs.items()}
                t_enc = {k: v.to(place.device) for k, v in t_enc.items()} if t_enc is not None else None
                batch_labels = batch_labels.to(place.device) if batch_labels is not None else None
                with torch.autocast(device_type=place.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    loss, logged = distiller.loss(inputs, t_enc, batch_labels)
                scaled = loss / cfg.grad_accum
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                for k, v in logged.items():
                    logged_sum[k] = logged_sum.get(k, 0.0) + v / cfg.grad_accum
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(distiller.parameters(), cfg.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            if distiller.momentum is not None:
                distiller.momentum.update(student)
            step += 1
            history.append({"step": step, **logged_sum, "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - t0})
            progress(step, logged_sum)
            if place.main and (step % cfg.save_every == 0 or step == cfg.max_steps):
                save_checkpoint(ckpt, step, distiller, optimizer, scheduler, history, key)

    place.barrier()
    student.eval().cpu()
    teacher.cpu()
    if not place.main:
        return out
    from edgekit.distill.report import evaluate, plot_losses
    from edgekit.distill.student import save_student

    report = evaluate(teacher, student, tokenizer, student_tokenizer, held, cfg, [ids[i] for i in held_idx] if ids is not None else None)
    if cfg.task in ("masked-lm", "causal-lm") and held:
        from edgekit.distill.report import perplexity

        report.update({"teacher_perplexity": perplexity(teacher, student_tokenizer, held, cfg), "student_perplexity": perplexity(student, student_tokenizer, held, cfg)})
    with staged_output(out, cfg.overwrite) as tmp:
        save_student(student, student_tokenizer, teacher_dir, tmp)
        write_json(tmp / "report.json", {"losses": history, **report})
        plot_losses(history, tmp / "loss_curves.png")
        manifest = build_manifest(
            stage="distill",
            config=cfg,
            source={"path": str(teacher_dir), "sha256": hash_folder(teacher_dir), "model_type": teacher.config.model_type},
            folder=tmp,
            started=started,
            seed=cfg.seed,
            distill={"processes": place.world, "device": str(place.device), "amp": cfg.amp, "student": plan, "layer_map": layers, "frozen": frozen, "projection": distiller.projection is not None, "momentum_teacher": cfg.momentum_teacher, "loss_weights": weights, "same_tokenizer": same_tokenizer, "steps": step, "train_texts": len(train), "eval_texts": len(held)},
            report={k: v for k, v in report.items()},
        )
        write_json(tmp / "manifest.json", manifest)
    shutil.rmtree(work, ignore_errors=True)
    return out
