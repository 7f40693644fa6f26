"""What ``edgekit bench`` is asked (``BenchConfig``), and every check of it made before a worker
starts: options, lengths against each artifact's positions, backends that can read each artifact."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgekit.artifacts import check_out_dir, read_manifest
from edgekit.audio import read_wav
from edgekit.benchmarks.caption_bench import is_captioner, output_kind
from edgekit.benchmarks.generation import GENERATING, PER_CONTEXT_STEPS
from edgekit.calibration.audio import require_audio
from edgekit.calibration.images import check_image_folder
from edgekit.calibration.pairs import load_pairs
from edgekit.calibration.text import load_texts
from edgekit.errors import InputError, MissingExtraError
from edgekit.models.ctc import CTC_TASKS
from edgekit.models.dual import DUAL_TASKS
from edgekit.models.vision import VISION_TASKS

log = logging.getLogger("edgekit.bench")

DEFAULT_CONTEXTS = (16, 128, 512)
DEFAULT_NEW_TOKENS = 128


@dataclass(frozen=True)
class BenchConfig:
    artifacts: tuple[Path, ...]
    backends: tuple[str, ...] = ("torch", "ort")
    batches: tuple[int, ...] = (1,)
    seq_lens: tuple[int, ...] = (128,)
    warmup: int = 5
    repeat: int = 30
    """Timed runs per (artifact, backend, case), split into ``rounds`` interleaved blocks."""
    rounds: int | None = None
    """Interleaved blocks per case; None = blocks of about 3 runs (fine interleaving evens out drift)."""
    threads: int | None = None
    """Intra-op threads for every backend; None = all cores (os.cpu_count())."""
    text: Path | None = None
    """Text file / jsonl / folder for the inputs; None uses edgekit's built-in sample."""
    out: Path | None = None
    overwrite: bool = False
    settle_s: float = 0.1
    new_tokens: int | None = None
    """Decoders: greedy tokens per generation run (EOS ignored); None = DEFAULT_NEW_TOKENS, or
    fewer where an encoder-decoder's positions hold fewer (captioners often hold 64)."""
    prompt_len: int = 32
    """Decoders: prompt length for time-to-first-token and tokens/s."""
    contexts: tuple[int, ...] | None = None
    """Decoders and encoder-decoders: context lengths at which per-token latency (cached and
    recomputed) is measured; None = DEFAULT_CONTEXTS, less those the artifacts' positions cannot hold."""
    eval_data: Path | None = None
    """Encoders: held-out texts for quality against the fp32 PyTorch reference (embedding cosine;
    with labels, 5-fold logistic-regression accuracy and its ratio to the reference's). Image-text
    models: image-text pairs (``calibration/pairs.py``) for recall and zero-shot agreement."""
    encoding: str | None = None
    """Encoding of --text / --eval-data files; None = UTF-8, strictly."""
    runs: tuple[tuple[Path, str], ...] = ()
    """(artifact, backend) pairs to run; empty = every backend on every artifact it reads."""


def tokens_after_context(task: str, cfg: BenchConfig) -> int:
    """Positions a context run takes beyond the context: a decoder's whole generation, an
    encoder-decoder's timed steps after its context."""

    return cfg.new_tokens if task == "text-generation" else PER_CONTEXT_STEPS + 1


def sequence_limit(export: dict) -> int | None:
    """The longest sequence an artifact runs: an android artifact's ExecuTorch program is planned
    for one (an encoder's bounds, a decoder's cache length; its .ort is timed within it too),
    else the model's positions."""
    pte = export.get("executorch", {})
    return pte.get("bounds", {}).get("max_seq") or pte.get("max_seq") or export.get("max_length")


def decoder_room(manifest: dict, cfg: BenchConfig) -> int | None:
    """The longest context a generating artifact can be timed at: its positions less the tokens
    generated after the context (None: no limit known)."""
    limit = sequence_limit(manifest.get("export", {}))
    if not limit:
        return None
    return int(limit) - tokens_after_context(manifest["export"].get("task"), cfg)


def resolve_new_tokens(cfg: BenchConfig, manifests: list[dict]) -> BenchConfig:
    """Default new tokens: DEFAULT_NEW_TOKENS, within every encoder-decoder's positions after its start token."""
    import dataclasses

    if cfg.new_tokens is not None:
        return cfg
    limits = [
        int(limit) - 1
        for m in manifests
        if m.get("export", {}).get("task") == "seq2seq" and (limit := sequence_limit(m["export"]))
    ]
    new_tokens = max(2, min([DEFAULT_NEW_TOKENS, *limits]))
    if new_tokens != DEFAULT_NEW_TOKENS:
        log.info("new tokens %d: the encoder-decoders hold %d positions", new_tokens, new_tokens + 1)
    return dataclasses.replace(cfg, new_tokens=new_tokens)


def resolve_contexts(cfg: BenchConfig, manifests: list[dict]) -> BenchConfig:
    """Default contexts: DEFAULT_CONTEXTS that every generating artifact can hold (at least the shortest)."""
    import dataclasses

    if cfg.contexts is not None:
        return cfg
    rooms = [
        r
        for r in (decoder_room(m, cfg) for m in manifests if m.get("export", {}).get("task") in GENERATING)
        if r is not None
    ]
    fitting = tuple(c for c in DEFAULT_CONTEXTS if all(c <= r for r in rooms)) or DEFAULT_CONTEXTS[:1]
    if fitting != DEFAULT_CONTEXTS:
        log.info("contexts %s: the artifacts hold at most %d positions for them", list(fitting), min(rooms))
    return dataclasses.replace(cfg, contexts=fitting)


def check_bench(cfg: BenchConfig) -> tuple[list[tuple[Path, dict]], BenchConfig]:
    """The artifacts' folders and manifests, and the config with its defaults resolved; bad input raises."""
    _check_options(cfg)
    manifests = [read_manifest(Path(artifact)) for artifact in cfg.artifacts]
    cfg = resolve_contexts(resolve_new_tokens(cfg, manifests), manifests)
    loaded = []
    for artifact, manifest in zip(cfg.artifacts, manifests):
        _check_artifact(cfg, artifact, manifest)
        loaded.append((Path(artifact).resolve(), manifest))
    if cfg.eval_data is not None and not Path(cfg.eval_data).expanduser().exists():
        raise InputError(
            f"--eval-data '{cfg.eval_data}' does not exist",
            "pass a .txt/.jsonl file or a folder of .txt files (class subfolders give labels)",
        )
    seq2seq = all(m.get("export", {}).get("task") == "seq2seq" for m in manifests)
    pairs = all(m.get("export", {}).get("task") in DUAL_TASKS for m in manifests)
    speech = all(
        m.get("export", {}).get("task") in CTC_TASKS or (seq2seq and output_kind(m) == "transcript")
        for m in manifests
    )
    images = all(m.get("export", {}).get("task") in VISION_TASKS or is_captioner(m) for m in manifests)
    unscored = [m["export"]["task"] for m in manifests if m.get("export", {}).get("task") in GENERATING]
    if cfg.eval_data is not None and unscored and not seq2seq:
        raise InputError(
            f"--eval-data scores encoders, image-text models, vision, speech CTC and encoder-decoder artifacts; "
            f"{unscored[0]} artifacts are timed on --text only",
            "drop --eval-data",
        )
    for data in (cfg.text, cfg.eval_data):
        if data is None:
            continue
        # read once now: a file that does not decode, or an image that does not open, fails before any worker runs
        if data is cfg.eval_data and speech:
            for f in require_audio(data, "--eval-data"):
                read_wav(f)
        elif data is cfg.eval_data and pairs:
            load_pairs(data, encoding=cfg.encoding)
        elif data is cfg.eval_data and images:
            check_image_folder(data, "--eval-data")
        else:
            load_texts(data, encoding=cfg.encoding)
    if cfg.out is not None:
        check_out_dir(cfg.out, cfg.overwrite, (*cfg.artifacts, cfg.text, cfg.eval_data))
    return loaded, cfg


def _check_options(cfg: BenchConfig) -> None:
    """The options that need no artifact read."""
    from edgekit.runtimes.registry import get_backend_entry

    if not cfg.artifacts:
        raise InputError("no artifact folder given", "pass one or more folders written by 'edgekit export'")
    for backend in cfg.backends:
        entry = get_backend_entry(backend)
        if entry.missing():
            raise MissingExtraError(f"the '{backend}' backend", entry.missing()[0], entry.extra)
    if len(set(cfg.backends)) != len(cfg.backends):
        raise InputError(f"backend listed twice in {list(cfg.backends)}", "list each backend once")
    for label, values in (("--batch", cfg.batches), ("--seq-len", cfg.seq_lens)):
        if not values or any(v < 1 for v in values):
            raise InputError(f"{label} needs positive integers, got {list(values)}", f"pass e.g. {label} 1,8")
    if cfg.repeat < 1 or cfg.warmup < 0 or (cfg.rounds is not None and cfg.rounds < 1):
        raise InputError(
            f"--repeat must be >= 1 and --warmup >= 0 (got {cfg.repeat}, {cfg.warmup})",
            "pass e.g. --warmup 5 --repeat 30",
        )
    if cfg.new_tokens is not None and cfg.new_tokens < 2:
        raise InputError(f"--new-tokens must be >= 2, got {cfg.new_tokens}", "pass e.g. --new-tokens 128")
    if cfg.prompt_len < 1:
        raise InputError(f"--prompt-len must be >= 1, got {cfg.prompt_len}", "pass e.g. --prompt-len 32")
    if cfg.contexts is not None and (not cfg.contexts or min(cfg.contexts) < 1):
        raise InputError(
            f"--contexts needs positive integers, got {list(cfg.contexts)}", "pass e.g. --contexts 16,128,512"
        )
    if cfg.threads is not None and cfg.threads < 1:
        raise InputError(f"--threads must be >= 1, got {cfg.threads}", "omit it to use every core")


def _check_artifact(cfg: BenchConfig, artifact: Path, manifest: dict) -> None:
    """Lengths, batch and backends that this artifact can be timed with."""
    from edgekit.runtimes.registry import get_backend_entry

    export = manifest.get("export", {})
    limit = sequence_limit(export)
    task = export.get("task")
    generation = task in GENERATING
    if generation and cfg.batches != (1,):
        raise InputError(
            f"generation is benchmarked at batch 1, got --batch {','.join(map(str, cfg.batches))}",
            "drop --batch for decoder artifacts",
        )
    if task == "seq2seq":
        # decoder positions: the start token + the new tokens, and each context + its timed steps
        source_limit = export.get("max_source_length")
        if (
            export["seq2seq"]["encoder_input"] == "input_ids"
            and source_limit
            and max(cfg.seq_lens) > source_limit
        ):
            raise InputError(
                f"--seq-len {max(cfg.seq_lens)} is longer than the encoder of '{artifact}' reads ({source_limit} tokens)",
                f"keep it within {source_limit}",
            )
        after = tokens_after_context(task, cfg)
        too_long = [
            n for n in (1 + cfg.new_tokens, *[c + after for c in cfg.contexts]) if limit and n > limit
        ]
        option = "--new-tokens or --contexts"
    else:
        lengths = (*cfg.contexts, cfg.prompt_len) if generation else cfg.seq_lens
        grows_by = cfg.new_tokens if generation else 0
        too_long = [n + grows_by for n in lengths if limit and n + grows_by > limit]
        option = "--contexts/--prompt-len plus --new-tokens" if generation else "--seq-len"
    if too_long:
        raise InputError(
            f"{option} reach {too_long[0]} tokens, longer than '{artifact}' allows ({limit} tokens)",
            f"keep them within {limit}",
        )
    if not any(get_backend_entry(b).reads(manifest) for b in cfg.backends):
        fmt = manifest.get("export", {}).get("format", "onnx")
        raise InputError(
            f"none of the backends {list(cfg.backends)} runs '{artifact}' ({fmt})",
            "add a backend that reads it, e.g. --backend openvino for an OpenVINO IR",
        )
