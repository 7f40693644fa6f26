"""``optimize(config) -> results``: distil each student shape, export and quantize every cell,
bench them all in one run on the same held-out data, and name the fastest cell per backend that
keeps the teacher's quality within ``max_drop``.

    out/manifest.json             what made the folder (written first, so --resume knows it is ours)
    out/stages/<stage>-<key>/     each stage's artifact, reused while its key holds (plan.py)
    out/report.md, report.html, pareto.png, results.json
    out/best-<backend>/           a copy of the chosen cell's artifact
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, InputError
from edgekit.optimize.board import Board
from edgekit.optimize.config import (
    CAPTION_NEW_TOKENS,
    OptimizeConfig,
    fit_shapes,
    is_captioner,
    is_ctc,
    is_decoder,
    is_dual,
    is_seq2seq,
    is_vision,
    task_kind,
)
from edgekit.optimize.plan import Plan, Stage, bench_key, input_hash, make_plan

log = logging.getLogger("edgekit.optimize")


@dataclass
class Outcome:
    state: str
    """'done' (made in this run), 'reused', 'failed' or 'skipped' (an input failed)."""
    seconds: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("done", "reused")


def optimize(cfg: OptimizeConfig, quiet: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run (or resume) the whole plan; returns what ``results.json`` holds."""
    from edgekit.artifacts import hash_folder, now_iso
    from edgekit.models.source import read_model_config
    from edgekit.optimize.results import collect, write_outputs

    cfg = cfg.check()
    teacher = Path(cfg.model).expanduser().resolve()
    config = read_model_config(teacher)
    cfg = dataclasses.replace(cfg, students=fit_shapes(cfg.students, config))
    _check_shapes(cfg, config)
    _check_teacher(cfg, config)
    _check_data(cfg)
    out = _prepare_out(cfg)
    started = now_iso()
    if is_dual(cfg.task):
        from edgekit.optimize.dual import fit_dual

        cfg = fit_dual(cfg, config, out / "stages")
    hashes = {
        "data": input_hash(cfg.data),
        "calib": input_hash(cfg.calib),
        "calib_text": input_hash(cfg.calib_text),
        "eval_data": input_hash(cfg.eval_data),
    }
    plan = make_plan(cfg, hash_folder(teacher), hashes)
    stages_dir = out / "stages"
    stages_dir.mkdir(exist_ok=True)
    if not verbose:  # the board is the display: no weight-writing bars from transformers under it
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()  # e.g. "sequence longer than the maximum" while bench cuts prompts
    extra = ["bench", "quality"] if is_decoder(cfg.task) else ["bench"]
    with Board([s.name for s in plan.stages] + extra, quiet) as board:
        outcomes = run_stages(cfg, plan, teacher, stages_dir, board, verbose)
        bench_result, bench_errors = run_bench(cfg, plan, outcomes, stages_dir, hashes, board, verbose)
        if is_decoder(cfg.task):  # bench times decoders; perplexity and greedy tokens are measured here
            from edgekit.optimize.decoder_quality import run_quality

            bench_result = run_quality(cfg, plan, outcomes, stages_dir, hashes, board, bench_result)
    results = collect(cfg, plan, outcomes, bench_result, bench_errors, stages_dir)
    write_outputs(cfg, out, plan, results, stages_dir, started)
    return results


def _check_shapes(cfg: OptimizeConfig, config: dict) -> None:
    """Each student shape fits inside the teacher: before anything is written, not in its own stage."""
    layers = config.get("num_hidden_layers")
    hidden = config.get("hidden_size")
    for shape in cfg.students:
        if layers and shape.layers > layers:
            raise InputError(
                f"student {shape.name} has more layers than the teacher's {layers}",
                f"give student layer counts of at most {layers}",
            )
        if shape.hidden and hidden and shape.hidden > hidden:
            raise InputError(
                f"student {shape.name} is wider than the teacher (hidden {hidden})",
                f"give a student hidden size of at most {hidden}",
            )


def _check_teacher(cfg: OptimizeConfig, config: dict) -> None:
    """A speech or vision task's teacher is a model of that kind (any other would fail in every cell)."""
    from edgekit.models.ctc import ctc_model_types
    from edgekit.models.vision import vision_model_types

    kinds = {
        "ctc": ("a CTC speech", ctc_model_types),
        "vision": ("a vision encoder", vision_model_types),
        "captioner": ("an image captioner", functools.partial(_seq2seq_model_types, "pixel_values")),
        "transcriber": (
            "a speech encoder-decoder",
            functools.partial(_seq2seq_model_types, "input_features"),
        ),
        "text2text": ("a text encoder-decoder", functools.partial(_seq2seq_model_types, "input_ids")),
    }
    if task_kind(cfg.task) in kinds:
        what, types = kinds[task_kind(cfg.task)]
        if config.get("model_type") not in types():
            raise InputError(
                f"--task {cfg.task} takes {what} model; '{cfg.model}' is a {config.get('model_type')} model",
                f"give a {', '.join(types())} model folder, or another --task",
            )


def _seq2seq_model_types(encoder_input: str) -> list[str]:
    """The encoder-decoder families whose encoder reads ``encoder_input`` (pixels, audio features, text)."""
    from edgekit.models.specs import list_seq2seq_specs

    return sorted(
        t for spec in list_seq2seq_specs() if spec.encoder_input == encoder_input for t in spec.model_types
    )


def _check_data(cfg: OptimizeConfig) -> None:
    """Every data file read once before anything is written: one that does not decode, or held-out
    data without labels, is the user's to fix, not a failed cell."""
    from edgekit.calibration.text import load_labeled, load_texts

    if is_ctc(cfg.task) or task_kind(cfg.task) == "transcriber":
        _check_audio(cfg)
        return
    if is_vision(cfg.task) or is_captioner(cfg.task):
        _check_images(cfg, labelled=is_vision(cfg.task))
        return
    for path in (cfg.data, cfg.calib) if not is_dual(cfg.task) else (cfg.calib_text,):
        if path is not None:
            load_texts(path, encoding=cfg.encoding)
    if is_decoder(cfg.task) or is_seq2seq(cfg.task):
        # perplexity, or outputs against the teacher's: texts, no labels
        load_texts(cfg.eval_data, encoding=cfg.encoding)
        return
    if is_dual(cfg.task):  # image-text pairs; labels give zero-shot accuracy, else retrieval recall
        from edgekit.calibration.pairs import load_pairs

        for path in (cfg.data, cfg.eval_data):
            if path is not None:
                load_pairs(path, cfg.encoding)
        return
    _, labels = load_labeled(cfg.eval_data, encoding=cfg.encoding)
    _require_labels(
        cfg, labels, "a .jsonl with 'text' and 'label' fields, or a folder of class subfolders of .txt files"
    )


def _check_audio(cfg: OptimizeConfig) -> None:
    """Speech: every WAV file of --eval-data and --calib decodes (an unreadable one is named)."""
    from edgekit.audio import read_wav
    from edgekit.calibration.audio import require_audio

    for path, option in ((cfg.eval_data, "--eval-data"), (cfg.calib, "--calib")):
        if path is not None:
            for file in require_audio(path, option):
                read_wav(file, 16000)


def _check_images(cfg: OptimizeConfig, labelled: bool) -> None:
    """Images: every image of --eval-data and --calib opens; for vision encoders (probe accuracy)
    --eval-data has class subfolders, captioners are scored on their captions without labels."""
    from edgekit.calibration.images import check_image_folder

    if cfg.calib is not None:
        check_image_folder(cfg.calib, "--calib")
    folder = Path(cfg.eval_data).expanduser()
    labels = [f.parent.name for f in check_image_folder(folder, "--eval-data") if f.parent != folder]
    if labelled:
        _require_labels(cfg, labels, "a folder of class subfolders of images")


def _require_labels(cfg: OptimizeConfig, labels: list[str], what: str) -> None:
    from collections import Counter

    counts = Counter(labels or [])
    if len(counts) < 2 or min(counts.values()) < 2:
        raise InputError(
            f"--eval-data '{cfg.eval_data}' needs labels (at least two, two examples each): quality is probe accuracy",
            f"give {what}",
        )


def _prepare_out(cfg: OptimizeConfig) -> Path:
    """``out`` checked against every input; a folder of an earlier optimize run is reused with
    --resume, replaced with --overwrite, and refused otherwise."""
    from edgekit.artifacts import MANIFEST, check_out_dir, read_json, write_json
    from edgekit.optimize.results import manifest

    out = Path(cfg.out).expanduser()
    inputs = (cfg.model, cfg.data, cfg.eval_data, cfg.calib, cfg.calib_text)
    ours = (out / MANIFEST).is_file() and read_json(out / MANIFEST, "").get("stage") == "optimize"
    if out.exists() and ours and not (cfg.resume or cfg.overwrite):
        raise InputError(
            f"'{out}' holds an earlier optimize run",
            "pass --resume to reuse its finished stages, or --overwrite to start again",
        )
    if cfg.resume and out.exists() and not ours:
        raise InputError(
            f"--resume: '{out}' is not an optimize run's folder", "choose its --out, or drop --resume"
        )
    out = check_out_dir(out, cfg.overwrite or (cfg.resume and out.exists()), inputs)
    if cfg.overwrite and out.exists() and not cfg.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).is_file():
        write_json(out / MANIFEST, manifest(cfg, state="running"))
    return out


def run_stages(
    cfg: OptimizeConfig, plan: Plan, teacher: Path, stages_dir: Path, board: Board, verbose: bool
) -> dict[str, Outcome]:
    """Each stage in order: reused when its folder is complete, skipped when an input failed, else run.
    A failure is recorded on its stage (and the cells after it); the other stages go on."""
    from edgekit.artifacts import MANIFEST

    outcomes: dict[str, Outcome] = {}
    for stage in plan.stages:
        folder = stages_dir / stage.folder
        failed_input = next((i for i in stage.inputs if not outcomes[i].ok), None)
        if (folder / MANIFEST).is_file():
            outcomes[stage.name] = Outcome("reused")
        elif failed_input is not None:
            outcomes[stage.name] = Outcome("skipped", error=f"{failed_input} failed")
        else:
            board.start(stage.name)
            try:
                _run_stage(cfg, plan, stage, teacher, stages_dir, board)
                outcomes[stage.name] = Outcome("done")
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - one cell's failure is reported, the others go on
                outcomes[stage.name] = Outcome("failed", error=_error_line(exc))
                if verbose:
                    log.exception("stage %s failed", stage.name)
        result = outcomes[stage.name]
        board.finish(stage.name, result.state, result.error or "")
        if result.state == "done":
            result.seconds = board.lines[stage.name].seconds
    return outcomes


def _error_line(exc: Exception) -> str:
    if isinstance(exc, EdgekitError):
        return str(exc)
    first = (str(exc).splitlines() or [""])[0][:200]
    return f"unexpected {type(exc).__name__}: {first}"


def _run_stage(
    cfg: OptimizeConfig, plan: Plan, stage: Stage, teacher: Path, stages_dir: Path, board: Board
) -> None:
    folder = stages_dir / stage.folder
    if stage.kind == "distill":
        from edgekit.compress.distill.checkpoint import CHECKPOINT, work_dir
        from edgekit.compress.distill.config import DistillConfig
        from edgekit.compress.distill.train import distill

        resume = (work_dir(folder) / CHECKPOINT).is_file()  # killed mid-way: go on from its checkpoint
        if resume:
            board.detail(stage.name, "resuming from its checkpoint")
        distill(
            DistillConfig(
                teacher=teacher,
                data=Path(cfg.data),
                out=folder,
                resume=resume,
                overwrite=not resume,
                **stage.options,
            ),
            report=board.training(stage.name),
        )
        return
    from edgekit.export import ExportConfig, export_model

    source = stages_dir / plan.stage(stage.inputs[0]).folder if stage.inputs else teacher
    options = dict(stage.options)
    for key in ("calib", "eval_data"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    export_model(ExportConfig(model=source, out=folder, **options), quiet=True)


def run_bench(
    cfg: OptimizeConfig,
    plan: Plan,
    outcomes: dict[str, Outcome],
    stages_dir: Path,
    hashes: dict,
    board: Board,
    verbose: bool,
) -> tuple[dict | None, dict[str, str]]:
    """One bench over the teacher in PyTorch and every cell that was made, on ``eval_data``. If
    that run fails, each cell is benched with the teacher on its own so one cell cannot sink the rest."""
    from edgekit.artifacts import MANIFEST, read_json

    made = [c for c in plan.cells if outcomes[c.stage].ok]
    if not outcomes[plan.reference].ok:
        board.finish("bench", "skipped", "the teacher's export failed")
        return None, {c.stage: "the teacher's export failed" for c in made}
    options = _bench_options(cfg)
    folder = stages_dir / f"bench-{bench_key(plan, made, options, hashes.get('eval_data'))}"
    if (folder / MANIFEST).is_file():
        board.finish("bench", "reused")
        return read_json(folder / "bench.json", "rerun with --overwrite"), {}
    board.start("bench", f"{len(made)} cells and the teacher in PyTorch, one run")
    try:
        result = _bench(cfg, plan, made, stages_dir, folder, verbose)
        board.finish("bench", "done")
        return result, {}
    except EdgekitError as exc:
        log.warning("bench of all cells failed (%s); benching each cell on its own", exc)
    reference = plan.stage(plan.reference).folder
    rows: list[dict] = []
    quality: list[dict] = []
    errors: dict[str, str] = {}
    result: dict | None = None
    for cell in made:
        board.detail("bench", f"one by one: {cell.stage}")
        try:
            one = _bench(cfg, plan, [cell], stages_dir, None, verbose)
        except EdgekitError as exc:
            errors[cell.stage] = f"bench: {exc}"
            continue
        first, result = result is None, result or one  # the teacher's rows from the first run only
        rows += [r for r in one["rows"] if first or r["artifact"] != reference]
        quality += [q for q in one["quality"] if first or q["artifact"] != reference]
    if result is not None:
        result = {**result, "rows": rows, "quality": quality, "separate_runs": True}
    board.finish(
        "bench", "done" if result else "failed", f"{len(errors)} cells failed to bench" if errors else ""
    )
    return result, errors


def _bench_options(cfg: OptimizeConfig) -> dict:
    if is_seq2seq(cfg.task):  # batch 1: the encoder once, then CAPTION_NEW_TOKENS greedy tokens
        return {
            "new_tokens": CAPTION_NEW_TOKENS,
            "contexts": (8,),
            "repeat": cfg.repeat,
            "threads": cfg.threads,
        }
    if is_decoder(cfg.task):  # batch 1: tokens/s after a 32-token prompt, per-token latency at 16 tokens
        return {"new_tokens": cfg.new_tokens, "prompt_len": 32, "contexts": (16,), "threads": cfg.threads}
    if is_ctc(cfg.task) or is_vision(cfg.task):  # speech: each utterance whole, batch 1; images at --batch
        return {
            "batches": (1 if is_ctc(cfg.task) else cfg.batch,),
            "repeat": cfg.repeat,
            "threads": cfg.threads,
        }
    return {
        "batches": (cfg.batch,),
        "seq_lens": (cfg.bench_seq_len,),
        "repeat": cfg.repeat,
        "threads": cfg.threads,
        "encoding": cfg.encoding,
    }


def _bench(
    cfg: OptimizeConfig, plan: Plan, cells: list, stages_dir: Path, out: Path | None, verbose: bool
) -> dict:
    from edgekit.benchmarks.harness import BenchConfig, bench

    reference = stages_dir / plan.stage(plan.reference).folder
    folders = [stages_dir / plan.stage(c.stage).folder for c in cells]
    runs = ((reference, "torch"),) + tuple((f, c.backend) for f, c in zip(folders, cells))
    backends = ("torch",) + tuple(dict.fromkeys(c.backend for c in cells))
    config = BenchConfig(
        artifacts=tuple(dict.fromkeys((reference, *folders))),  # a decoder's reference is a cell too
        backends=backends,
        eval_data=None if is_decoder(cfg.task) else Path(cfg.eval_data),
        out=out,
        runs=runs,
        **_bench_options(cfg),
    )
    return bench(config, quiet=True, verbose=verbose)
