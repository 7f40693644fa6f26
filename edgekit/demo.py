"""``edgekit demo``: a real result with no model of your own, in about ten minutes on 2 cores.

1. A short ``edgekit optimize`` run on the packaged all-MiniLM-L6-v2: a 3-layer student distilled
   on news text, fp32 and INT8 on ONNX Runtime and OpenVINO, every cell benched against the
   teacher in PyTorch at batch 8, sequence 128, quality on held-out BBC News (optimize/).
2. The packaged SmolLM2-135M generating in fp32 and weight-only int4 on ONNX Runtime against
   PyTorch: tokens/s and time to first token (generation/). Its exports are cached in ~/.cache/edgekit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import InputError


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("edgekit-demo")
    max_steps: int = 300
    """Distillation steps of the 3-layer student."""
    held_docs: int | None = 500
    """Held-out BBC News documents quality is measured on (None: all 1112)."""
    repeat: int = 20
    new_tokens: int = 64
    generation: bool = True
    resume: bool = False
    overwrite: bool = False


def run_demo(cfg: DemoConfig) -> dict:
    from edgekit.assets import MINILM, SMOLLM2, news_split
    from edgekit.optimize.config import OptimizeConfig, Shape
    from edgekit.optimize.report import print_table, verdicts
    from edgekit.optimize.run import optimize

    if cfg.generation and cfg.new_tokens < 2:
        raise InputError(f"--new-tokens must be >= 2, got {cfg.new_tokens}", "pass e.g. --new-tokens 64")
    MINILM.path()  # fail early, with the install command, when a model package is missing
    if cfg.generation:
        SMOLLM2.gguf_dir()
    out = Path(cfg.out).expanduser().resolve()
    data = out / "data"
    run = OptimizeConfig(
        model=MINILM.path(),
        out=out / "optimize",
        data=data / "train.txt",
        eval_data=data / "bbc-held",
        students=(Shape(3),),
        backends=("ort", "openvino"),
        precisions=("fp32", "int8"),
        max_drop=0.04,
        max_steps=cfg.max_steps,
        seq_len=64,  # distilled on 64-token windows (twice the steps per minute); timed at 128
        batch=8,
        bench_seq_len=128,
        repeat=cfg.repeat,
        distill={"save_every": 50, "eval_fraction": 0.02},
        resume=cfg.resume and (out / "optimize").exists(),
    ).check()  # bad options fail here, before the folder is made
    _prepare(cfg)
    news_split(data, cfg.held_docs)
    results = optimize(run)
    print_table(results)
    for line in verdicts(results):
        print(line)
    summary = {"optimize": results}
    if cfg.generation:
        summary["generation"] = _generation(cfg, out)
    print(f"reports: {out}/optimize/report.md (report.html, pareto.png), {out}/generation/bench.md")
    return summary


def _prepare(cfg: DemoConfig) -> Path:
    """``out`` as for every stage (refused if it holds an input or a folder edgekit did not write);
    --resume goes on with a demo folder killed or stopped half-way."""
    import shutil

    from edgekit.artifacts import MANIFEST, check_out_dir, read_json, write_json

    out = Path(cfg.out).expanduser()
    ours = (out / MANIFEST).is_file() and read_json(out / MANIFEST, "").get("stage") == "demo"
    out = check_out_dir(out, cfg.overwrite or (cfg.resume and ours))
    if cfg.overwrite and out.exists() and not cfg.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MANIFEST, {"stage": "demo", "config": cfg})
    return out


def _generation(cfg: DemoConfig, out: Path) -> dict:
    from edgekit.assets import SMOLLM2
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table
    from edgekit.export.cached import cached_export

    fp32 = cached_export(SMOLLM2, "ort", target="ort")
    int4 = cached_export(SMOLLM2, "ort-int4", target="ort", precision="int4")
    result = bench(
        BenchConfig(
            artifacts=(fp32, int4),
            backends=("torch", "ort"),
            new_tokens=cfg.new_tokens,
            contexts=(128,),
            out=out / "generation",
            overwrite=True,
        )
    )
    print_table(result)
    return result
