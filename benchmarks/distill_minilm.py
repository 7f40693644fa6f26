"""Benchmark: distil all-MiniLM-L6-v2 (teacher) into a 3-layer student on this CPU, then compare.

    python -m edgekit.benchmarks.distill_minilm [--max-steps 1500] [--out DIR]
    python -m edgekit.benchmarks.distill_minilm --pair mpnet [--max-steps 400]

``--pair mpnet``: all-mpnet-base-v2 (12 layers, 768 wide) teaches a student of MiniLM's width
(MiniLM itself as the starting student); the tokenizers differ, so only the output-level loss
(cosine between pooled embeddings, through a learned 384 -> 768 projection) applies.

Training text: the 300 Lee background news texts plus the even-numbered half of BBC News.
Evaluation, on what training never saw: the odd-numbered half of BBC News (5-fold logistic
regression on the mean-pooled, normalised embeddings) and the Lee similarity ratings (Pearson
between cosine and the human ratings over the 1225 document pairs); PyTorch latency at batch 8,
sequence 128, teacher and student interleaved. Targets (issue 4): the student keeps >= 97% of the
teacher's BBC accuracy and runs >= 1.8x faster than the teacher in PyTorch, distilled in <= 30
minutes here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from edgekit.artifacts import cpu_info

TARGET_RELATIVE_ACCURACY = 0.97
TARGET_SPEEDUP = 1.8


def _embed(model_dir: Path, texts: list[str]):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from edgekit.compress.distill.data import mean_pool

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    rows = []
    with torch.inference_mode():
        for i in range(0, len(texts), 32):
            enc = tok(texts[i : i + 32], padding=True, truncation=True, max_length=128, return_tensors="pt")
            rows.append(
                torch.nn.functional.normalize(
                    mean_pool(model(**enc).last_hidden_state, enc["attention_mask"]), dim=-1
                )
            )
    return torch.cat(rows).numpy(), model, tok


def _lee_pearson(model_dir: Path) -> float:
    import numpy as np

    from edgekit.assets import lee_similarity, read_latin1_lines

    docs_file, ratings_file = lee_similarity()
    emb, _, _ = _embed(model_dir, read_latin1_lines(docs_file))
    ratings = np.loadtxt(ratings_file)
    iu = np.triu_indices(len(emb), k=1)
    return float(np.corrcoef((emb @ emb.T)[iu], ratings[iu])[0, 1])


def _latency(models: dict, texts: list[str], rounds: int = 10) -> dict[str, float]:
    """Median batch-8, sequence-128 latency of each (model, tokenizer), timed in turn."""
    import torch

    encs = {
        name: tok(texts[:8], padding="max_length", truncation=True, max_length=128, return_tensors="pt")
        for name, (_, tok) in models.items()
    }
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, (model, _) in models.items():
                enc = encs[name]
                model(**enc)
                t0 = time.perf_counter()
                model(**enc)
                times[name].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] * 1e3 for k, v in times.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="student folder (default: a temp folder)")
    parser.add_argument(
        "--pair",
        choices=("minilm", "mpnet"),
        default="minilm",
        help="minilm: MiniLM -> 3 layers; mpnet: MPNet -> MiniLM's width",
    )
    args = parser.parse_args(argv)

    from edgekit.assets import MINILM, MPNET, bbc_news, lee_background, read_latin1_lines
    from edgekit.compress.distill.config import DistillConfig
    from edgekit.compress.distill.train import distill
    from edgekit.compress.quality import probe_accuracy

    work = Path(tempfile.mkdtemp(prefix="edgekit-distill-"))
    files = sorted(bbc_news().glob("*/*.txt"))
    train_docs = [" ".join(f.read_text(encoding="latin-1").split()) for f in files[0::2]]
    eval_files = files[1::2]
    data = work / "train.txt"
    data.write_text("\n".join(read_latin1_lines(lee_background()) + train_docs))
    out = args.out or work / "student"
    common = dict(
        data=data,
        out=out,
        seq_len=128,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        seed=7,
        save_every=100,
        eval_fraction=0.02,
        overwrite=True,
    )
    if args.pair == "mpnet":
        teacher_dir = MPNET.path()
        cfg = DistillConfig(teacher=teacher_dir, student=MINILM.path(), **common)
    else:
        teacher_dir = MINILM.path()
        cfg = DistillConfig(teacher=teacher_dir, student_layers=3, **common)
    t0 = time.perf_counter()
    distill(cfg)
    minutes = (time.perf_counter() - t0) / 60
    texts = [" ".join(f.read_text(encoding="latin-1").split()) for f in eval_files]
    labels = [f.parent.name for f in eval_files]
    t_emb, teacher, tok = _embed(teacher_dir, texts)
    s_emb, student, s_tok = _embed(out, texts)
    t_acc, s_acc = probe_accuracy(t_emb, labels, 0), probe_accuracy(s_emb, labels, 0)
    lat = _latency({"teacher": (teacher, tok), "student": (student, s_tok)}, texts)
    summary = {
        "minutes": minutes,
        "steps": args.max_steps,
        "bbc_accuracy_teacher": t_acc,
        "bbc_accuracy_student": s_acc,
        "relative_accuracy": s_acc / t_acc,
        "pair": args.pair,
        "lee_pearson_teacher": _lee_pearson(teacher_dir),
        "lee_pearson_student": _lee_pearson(out),
        "teacher_ms_b8": lat["teacher"],
        "student_ms_b8": lat["student"],
        "speedup": lat["teacher"] / lat["student"],
    }
    met = (
        summary["relative_accuracy"] >= TARGET_RELATIVE_ACCURACY
        and summary["speedup"] >= TARGET_SPEEDUP
        and minutes <= 30
    )
    what = "student (MiniLM's width, taught by MPNet" if args.pair == "mpnet" else "student (3 of 6 layers"
    print(
        f"{what}, {args.max_steps} steps, {minutes:.1f} min): BBC accuracy {s_acc:.4f} = {summary['relative_accuracy']:.3f} of the teacher's {t_acc:.4f} "
        f"(target {TARGET_RELATIVE_ACCURACY}); Lee Pearson {summary['lee_pearson_student']:.3f} vs {summary['lee_pearson_teacher']:.3f}; "
        f"{summary['speedup']:.2f}x the teacher in PyTorch (target {TARGET_SPEEDUP}x): {'met' if met else 'NOT met'}"
    )
    print(json.dumps({"benchmark": "distill_minilm", "cpu": cpu_info(), "summary": summary, "met": met}))
    return summary


if __name__ == "__main__":
    main()
