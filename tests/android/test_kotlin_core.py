"""The Android app's core (android_demo/core: tokenizer, pooling, note search, generation loop),
compiled with the Kotlin compiler from npm and run on the JVM against the real MiniLM android
artifact (token ids equal Hugging Face tokenizers on 279 real texts, pooling of the recorded
hidden states equals the recorded embeddings) and the real SmolLM2 (byte-level BPE ids and decoded
text equal Hugging Face's, conversations through the app's chat pieces equal apply_chat_template,
and the generation loop replays PyTorch's recorded logits into its greedy tokens)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "android_demo" / "core"
KOTLINC = CORE / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"
TRICKY = [
    "Crème brûlée at the Café Noël, naïve façade.",
    "東京で会いましょう and 北京 too",
    "İstanbul, ΟΔΥΣΣΕΥΣ, Straße, ﬁne",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u2003em space",
    "zero\u200bwidth, soft\u00adhyphen, ctrl\x07bell",
    "emoji 🙂👍🏽 and symbols © ® ™ £ € ¥ ± ≤",
    "https://example.com/a_b-c?d=e&f=g#h email@x.org $3.50 50% 1,000.5",
    "Supercalifragilisticexpialidocious" * 4,
    "<|im_start|>user\nDon't   stop<|im_end|>\n<|im_start|>assistant\n",
    "def f(x):\n    return x**2  # 12345 67.8\n\n\n",
    "   leading spaces, trailing   ",
    "",
]
CHATS = [
    [["user", "What is the capital of France?"]],
    [["system", "Answer in one word."], ["user", "Largest planet?"]],
    [["user", "Hi"], ["assistant", "Hello! How can I help?"], ["user", "Tell me a joke about café owners."]],
]


def _compile() -> Path:
    """core.jar and tests.jar, built once per source hash under ~/.cache/edgekit/kotlin."""
    from edgekit.artifacts import cache_dir

    if shutil.which("java") is None:
        pytest.skip("no JDK on this machine")
    assert KOTLINC.is_file(), (
        "the Kotlin compiler is missing: run scripts/setup.sh (npm install in android_demo/core)"
    )
    sources = sorted(CORE.glob("src/**/*.kt"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    out = cache_dir() / "kotlin" / digest
    if not (out / "tests.jar").is_file():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        lib = KOTLINC.parent.parent / "lib"
        run = lambda *a: subprocess.run([str(KOTLINC), *a], check=True, capture_output=True, text=True)  # noqa: E731
        run(str(CORE / "src" / "main" / "kotlin"), "-d", str(tmp / "core.jar"))
        run(
            "-cp",
            f"{tmp / 'core.jar'}:{lib / 'kotlin-test.jar'}",
            str(CORE / "src" / "test" / "kotlin"),
            "-d",
            str(tmp / "tests.jar"),
        )
        tmp.rename(out)
    return out


def _texts() -> list[str]:
    from edgekit.assets import bbc_news, lee_background, read_latin1_lines

    texts = read_latin1_lines(lee_background())[:150]
    for label in ("tech", "business", "sports"):
        for doc in sorted((bbc_news() / label).glob("*.txt"))[:40]:
            texts.append(doc.read_text(encoding="latin-1").split("\n\n")[0].strip())
    return texts + TRICKY


def _decoder_spec(texts: list[str], tmp_path: Path) -> dict:
    """SmolLM2's tokenizer, ids and decoded text of ``texts``, conversations with their template
    ids, the app's chat pieces and golden greedy tokens recorded from the PyTorch model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgekit.assets import SMOLLM2
    from edgekit.calibration._sample import greedy_prompts
    from edgekit.export.app_bundle import chat_format, decoder_golden

    folder = SMOLLM2.hf_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    eos = [int(model.generation_config.eos_token_id)]
    golden = {"cases": decoder_golden(model, tokenizer, greedy_prompts()[:2], eos)}
    assert any(len(c["greedy_tokens"]) > 8 for c in golden["cases"])
    (tmp_path / "decoder-golden.json").write_text(json.dumps(golden))
    ids = tokenizer(texts)["input_ids"]
    chats = [
        {
            "messages": m,
            "ids": tokenizer.apply_chat_template(
                [{"role": r, "content": c} for r, c in m],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            ),
        }
        for m in CHATS
    ]
    return {
        "tokenizer": str(folder / "tokenizer.json"),
        "texts": [
            {"text": t, "ids": i, "decoded": tokenizer.decode(i, skip_special_tokens=True)}
            for t, i in zip(texts, ids)
        ],
        "chats": chats,
        "chat": chat_format(tokenizer),
        "golden": str(tmp_path / "decoder-golden.json"),
        "eos_token_ids": eos,
        "vocab_size": int(model.config.vocab_size),
    }


def test_kotlin_core_on_the_jvm_matches_hugging_face_and_the_golden_vectors(minilm_android, tmp_path):
    from transformers import AutoTokenizer

    jars = _compile()
    app = json.loads((minilm_android / "edgekit-app.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_android))
    max_length = app["bounds"]["max_seq"]
    texts = _texts()
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    assert any(len(i) == max_length for i in ids)  # truncation is exercised
    spec = {
        "app": str(minilm_android / "edgekit-app.json"),
        "tokenizer": str(minilm_android / "tokenizer.json"),
        "golden": str(minilm_android / "golden.json"),
        "max_length": max_length,
        "texts": [{"text": t, "ids": i} for t, i in zip(texts, ids)],
        "decoder": _decoder_spec(texts, tmp_path),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    lib = KOTLINC.parent.parent / "lib"
    classpath = ":".join(
        str(p)
        for p in (jars / "core.jar", jars / "tests.jar", lib / "kotlin-stdlib.jar", lib / "kotlin-test.jar")
    )
    result = subprocess.run(
        ["java", "-cp", classpath, "dev.edgekit.core.CoreTestsKt", str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS ") == 11 and "0 failed" in result.stdout
