"""Shared fixtures: tiny random encoders per model type, and the real packaged MiniLM."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def int8_dot_products() -> bool:
    """Whether this CPU has int8 dot-product instructions (VNNI, AMX, Arm dot products). Without them
    (an AMD Zen 3 with AVX2 only, for one) the runtimes' int8 kernels take another path and INT8
    results move: measured on such a CPU, the OpenVINO INT8 MiniLM test's cosine is 0.9949 (at least
    0.995 on the VNNI machines that set that threshold) and SmolLM2's int8 greedy prefixes are
    28, 4, 15 (28, 24, 15 with VNNI). The tests take the threshold of the kind of CPU they run on."""
    from edgekit.artifacts import cpu_info

    return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & set(cpu_info()["features"]))


def memory_available_gb() -> float:
    """What this process may still allocate: the kernel's MemAvailable, lowered to what is left
    under the memory limit of the cgroup it runs in (v2 ``memory.max``, v1 ``limit_in_bytes``)."""

    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""

    meminfo = dict(line.split(":", 1) for line in read("/proc/meminfo").splitlines() if ":" in line)
    free = int(meminfo["MemAvailable"].split()[0]) * 1024
    for line in read("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        pairs = (
            [("memory.max", "memory.current")]
            if controllers == ""
            else [("memory.limit_in_bytes", "memory.usage_in_bytes")]
            if "memory" in controllers.split(",")
            else []
        )
        root = "/sys/fs/cgroup" if controllers == "" else "/sys/fs/cgroup/memory"
        for limit_name, usage_name in pairs:
            limit, usage = read(f"{root}{path}/{limit_name}"), read(f"{root}{path}/{usage_name}")
            if limit.isdigit() and usage.isdigit() and int(limit) < 1 << 60:
                free = min(free, int(limit) - int(usage))
    return free / 2**30


GB_PER_WORKER = 8
"""Memory one pytest worker is given room for. Measured on the 24 GB development machine (AMD EPYC,
2 cores), cold cache: the whole run with two workers peaked at 4.4 GB used, one worker at 3.7 GB
RSS with real models loaded in-process while its CLI children exported others. A worker the
kernel kills for memory takes its tests down with it, so a machine with less room runs fewer."""


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per core, at most two, and no more than the
    memory allows (``GB_PER_WORKER`` each)."""
    import os

    cores = len(os.sched_getaffinity(0))
    return max(1, min(2, cores, int(memory_available_gb() // GB_PER_WORKER)))


def pytest_configure(config) -> None:
    """Each xdist worker's PyTorch (and its CLI children's, through the environment) gets its share
    of the cores. Two processes each spinning two OpenMP threads on two cores wait on each other at
    every parallel region: measured on the 2-core machine, 30 LiT training steps took 82 s in each
    of two processes side by side, 8 s with one thread each (6.7 s alone with two)."""
    import os
    import sys

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if workers < 2:
        return
    share = str(max(1, len(os.sched_getaffinity(0)) // workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, share)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=130,
)

# model_type -> (config class name, extra config kwargs, tokenizer input names)
TINY_CONFIGS = {
    "bert": ("BertConfig", {}, ["input_ids", "token_type_ids", "attention_mask"]),
    "roberta": ("RobertaConfig", {}, ["input_ids", "attention_mask"]),
    "xlm-roberta": ("XLMRobertaConfig", {}, ["input_ids", "attention_mask"]),
    "camembert": ("CamembertConfig", {}, ["input_ids", "attention_mask"]),
    "distilbert": (
        "DistilBertConfig",
        {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64},
        ["input_ids", "attention_mask"],
    ),
    "mpnet": ("MPNetConfig", {}, ["input_ids", "attention_mask"]),
    "electra": ("ElectraConfig", {"embedding_size": 16}, ["input_ids", "token_type_ids", "attention_mask"]),
    "albert": ("AlbertConfig", {"embedding_size": 16}, ["input_ids", "token_type_ids", "attention_mask"]),
}


def _vocab() -> list[str]:
    from edgekit.calibration._sample import SAMPLE_PARAGRAPHS

    words = sorted({w for p in SAMPLE_PARAGRAPHS for w in re.findall(r"\w+|[^\w\s]", p.lower())})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    return (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + sorted(set(words) | set(letters))
        + ["##" + ch for ch in letters]
    )


def write_tokenizer(folder: Path, input_names: list[str]) -> int:
    """A real WordPiece tokenizer over the sample-text vocabulary; returns the vocab size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(_vocab())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
        model_input_names=list(input_names),
    )
    fast.save_pretrained(str(folder))
    return len(vocab)


def make_tiny_encoder(folder: Path, model_type: str, seed: int = 0) -> Path:
    import torch
    import transformers

    cls_name, extra, input_names = TINY_CONFIGS[model_type]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(folder, input_names)
    config = getattr(transformers, cls_name)(vocab_size=vocab_size, pad_token_id=0, **{**TINY, **extra})
    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(config).eval()
    model.save_pretrained(str(folder))
    return folder


def add_sentence_transformers_files(folder: Path, mode: str = "mean", normalize: bool = True) -> Path:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    flags = {
        "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean",
        "pooling_mode_max_tokens": mode == "max",
        "pooling_mode_mean_sqrt_len_tokens": mode == "mean_sqrt_len",
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **flags}))
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """model_type -> folder, built once per session."""
    cache: dict[str, Path] = {}

    def get(model_type: str) -> Path:
        if model_type not in cache:
            cache[model_type] = make_tiny_encoder(tmp_path_factory.mktemp(f"tiny-{model_type}"), model_type)
        return cache[model_type]

    return get


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from edgekit.assets import MINILM

    return MINILM.path()


@pytest.fixture(scope="session")
def minilm_artifact() -> Path:
    """The real MiniLM exported once and cached in ~/.cache/edgekit (keyed by package and edgekit versions)."""
    from edgekit.assets import MINILM
    from edgekit.export.cached import cached_export

    return cached_export(MINILM, "onnx")


@pytest.fixture(scope="session")
def minilm_openvino() -> Path:
    """The real MiniLM as OpenVINO IR, cached like ``minilm_artifact``."""
    from edgekit.assets import MINILM
    from edgekit.export.cached import cached_export

    return cached_export(MINILM, "openvino", target="openvino")


@pytest.fixture(scope="session")
def minilm_android() -> Path:
    """The real MiniLM for Android (.ort and ExecuTorch .pte, planned for batch 8 x 256 tokens), cached like ``minilm_artifact``."""
    from edgekit.assets import MINILM
    from edgekit.export.cached import cached_export

    return cached_export(MINILM, "android-b8s256", target="android", max_batch=8, max_seq=256)


PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat", "camera")
"""Real photos from scikit-image (offline), for image calibration and zero-shot checks."""


def save_photos(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return folder


_FORKSERVER = None
_CHILDREN = threading.Lock()


def _forkserver():
    global _FORKSERVER
    if _FORKSERVER is None:
        import multiprocessing

        from edgekit.cli._child import PRELOAD

        _FORKSERVER = multiprocessing.get_context("forkserver")
        _FORKSERVER.set_forkserver_preload(PRELOAD)
    return _FORKSERVER


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real console entry point, ``edgekit.cli:main``, in a process of its own: forked from
    a server that imported torch and transformers once (edgekit/cli/_child.py), so each command
    skips seconds of imports. Tests of signals and of raw argv bytes start a real interpreter."""
    import multiprocessing.connection
    import os
    import tempfile

    from edgekit.cli import _child

    with tempfile.TemporaryDirectory() as folder:
        out, err = os.path.join(folder, "out"), os.path.join(folder, "err")
        env = dict(os.environ)
        proc = _forkserver().Process(
            target=_child.run, args=(list(args), str(cwd or os.getcwd()), env, out, err)
        )
        # Process.start() polls every other child for its exit status, which a forkserver child
        # reports once through a pipe: a thread joining one of them at that moment could read the
        # pipe empty and take 255 for its exit code. Starting and joining hold one lock; waiting
        # for the child to end (its sentinel) does not read that pipe.
        with _CHILDREN:
            proc.start()
        ended = multiprocessing.connection.wait([proc.sentinel], timeout)
        with _CHILDREN:
            if not ended:
                proc.kill()
            proc.join()
        if not ended:
            raise subprocess.TimeoutExpired(["edgekit", *args], timeout)

        def read(path: str) -> str:
            return Path(path).read_text(encoding="utf-8", errors="replace") if Path(path).exists() else ""

        return subprocess.CompletedProcess(["edgekit", *args], proc.exitcode, read(out), read(err))
