"""``edgekit demo``: a real result with no model of your own.

Exports the packaged all-MiniLM-L6-v2 to ONNX (cached in ~/.cache/edgekit), validates it against
PyTorch, and benches ONNX Runtime against PyTorch. Later stages join this run as they land.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("edgekit-demo")
    batches: tuple[int, ...] = (1, 8)
    seq_lens: tuple[int, ...] = (128,)
    repeat: int = 30
    overwrite: bool = False


def run_demo(cfg: DemoConfig) -> dict:
    from edgekit.artifacts import check_out_dir, read_manifest
    from edgekit.assets import MINILM
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table
    from edgekit.export.cached import cached_export

    check_out_dir(cfg.out, cfg.overwrite)
    MINILM.path()  # fail early, with the install command, when the model package is missing
    artifact = cached_export(MINILM, "onnx")
    validation = read_manifest(artifact)["validation"]
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in validation["max_abs_diff"].items())
    print(
        f"exported {MINILM.name} -> {artifact}\nvalidated against PyTorch on {len(validation['cases'])} real inputs: max |diff| {diffs}"
    )
    result = bench(
        BenchConfig(
            artifacts=(artifact,),
            backends=("torch", "ort"),
            batches=cfg.batches,
            seq_lens=cfg.seq_lens,
            repeat=cfg.repeat,
            out=cfg.out,
            overwrite=cfg.overwrite,
        )
    )
    print_table(result)
    print(f"results: {cfg.out}/bench.md, bench.json, bench.png")
    return result
