"""What a phone app reads beside the model files: ``edgekit-app.json`` (which file each runtime
loads, the inputs and outputs, the tokenizer and its special tokens, the pooling, the bounds the
programs were planned for) and ``golden.json`` (real inputs with the outputs PyTorch gives, so the
app's own tokenizer and pipeline can be checked against them, on the JVM here and on the phone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

APP_FILE = "edgekit-app.json"
GOLDEN_FILE = "golden.json"
APP_SCHEMA = 1
GOLDEN_TEXTS = (
    "Edge devices run small models.",
    "The café's new menu costs £12.50 — isn't that cheap?",
    "A phone can search its owner's notes without a network connection.",
)
"""Short real sentences, one with accents, a symbol and punctuation the tokenizer splits off."""


def tokenizer_section(model_dir: Path, tokenizer: Any) -> dict | None:
    """How the app tokenizes: the model type and settings of ``tokenizer.json``, the special tokens."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return None
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec.get("model", {})
    normalizer = spec.get("normalizer") or {}
    kind = model.get("type")
    section: dict[str, Any] = {"type": kind, "file": "tokenizer.json"}
    if kind == "BPE":
        pre = spec.get("pre_tokenizer") or {}
        steps = pre.get("pretokenizers", [pre]) if pre else []
        section.update(
            byte_level=any(step.get("type") == "ByteLevel" for step in steps),
            pre_tokenizers=[step.get("type") for step in steps],
            byte_fallback=bool(model.get("byte_fallback", False)),
            added_tokens=[t["content"] for t in spec.get("added_tokens", []) if t.get("special")],
        )
    if kind == "WordPiece":
        section.update(
            vocab="vocab.txt" if (model_dir / "vocab.txt").is_file() else None,
            lowercase=bool(normalizer.get("lowercase", False)),
            strip_accents=normalizer.get("strip_accents"),
            handle_chinese_chars=bool(normalizer.get("handle_chinese_chars", True)),
            continuing_subword_prefix=model.get("continuing_subword_prefix", "##"),
            max_input_chars_per_word=model.get("max_input_chars_per_word", 100),
        )
    special = {}
    for role in ("cls_token", "sep_token", "pad_token", "unk_token", "bos_token", "eos_token", "mask_token"):
        token = getattr(tokenizer, role, None)
        if isinstance(token, str):
            special[role.removesuffix("_token")] = {
                "token": token,
                "id": tokenizer.convert_tokens_to_ids(token),
            }
    section["special_tokens"] = special
    return section


def _listed(value: np.ndarray) -> list:
    return np.round(value.astype(np.float64), 6).tolist() if value.dtype.kind == "f" else value.tolist()


def golden_cases(built: Any, reference: Any, fallback: list[tuple[str, dict]]) -> list[dict]:
    """Each golden text on its own (as an app tokenizes one text), or where the graph reads no
    text the kind's first validation case; with the reference's outputs."""
    tokenizer = getattr(built, "tokenizer", None)
    cases: list[tuple[str | None, dict]] = []
    if tokenizer is not None and "input_ids" in built.input_names:
        for text in GOLDEN_TEXTS:
            enc = tokenizer([text], return_tensors="np")
            cases.append((text, {n: np.asarray(enc[n], dtype=np.int64) for n in built.input_names}))
    else:
        cases = [(None, fallback[0][1])]
    golden = []
    for text, feed in cases:
        outputs = reference.run(feed)
        golden.append(
            {
                **({"text": text} if text is not None else {}),
                "inputs": {n: _listed(v) for n, v in feed.items()},
                "outputs": {n: _listed(np.asarray(v)) for n, v in outputs.items()},
            }
        )
    return golden


GOLDEN_STEPS = 16
GOLDEN_TOP = 32
"""A decoder's golden: this many greedy steps, each with the reference's largest logits (the whole
vocabulary per step would make the file megabytes; greedy and top-k sampling need only these)."""


def decoder_golden(model: Any, tokenizer: Any, prompts: list[str], eos: list[int]) -> list[dict]:
    """Each prompt's ids, the greedy tokens transformers generates after it (up to ``GOLDEN_STEPS``,
    or EOS) and, per step, the ``GOLDEN_TOP`` largest logits with their token ids."""
    import torch

    golden = []
    for prompt in prompts:
        ids = [int(t) for t in tokenizer(prompt)["input_ids"]]
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=GOLDEN_STEPS,
                do_sample=False,
                num_beams=1,
                pad_token_id=eos[0] if eos else 0,
                output_logits=True,
                return_dict_in_generate=True,
            )
        steps = []
        for logits in out.logits:
            top = torch.topk(logits[0].float(), GOLDEN_TOP)
            steps.append({"ids": top.indices.tolist(), "logits": _listed(top.values.numpy())})
        golden.append(
            {
                "text": prompt,
                "input_ids": ids,
                "greedy_tokens": out.sequences[0, len(ids) :].tolist(),
                "steps": steps,
            }
        )
    return golden


_HOLE = "\x00{}\x00"


def chat_format(tokenizer: Any) -> dict | None:
    """The chat template as plain pieces an app can join without a Jinja engine: one turn format
    per role (``{content}`` where the text goes), what opens the assistant's answer, and the system
    turn the template writes when the conversation has none. Derived by rendering placeholder
    conversations, and kept only if the pieces give the template's own rendering of a test
    conversation; None when they do not (or there is no template)."""
    if not getattr(tokenizer, "chat_template", None):
        return None

    def render(messages: list[tuple[str, str]], prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(
            [{"role": r, "content": c} for r, c in messages], add_generation_prompt=prompt, tokenize=False
        )

    try:
        system = [("system", _HOLE.format("S"))]
        user, answer = ("user", _HOLE.format("U")), ("assistant", _HOLE.format("A"))
        turns = {"system": render(system)}
        turns["user"] = render([*system, user]).removeprefix(turns["system"])
        turns["assistant"] = render([*system, user, answer]).removeprefix(render([*system, user]))
        opening = render([*system, user], True).removeprefix(render([*system, user]))
        default_system = render([user]).removesuffix(turns["user"])
        pieces = {
            "turns": {
                role: text.replace(_HOLE.format(role[0].upper()), "{content}") for role, text in turns.items()
            },
            "generation_prompt": opening,
            "default_system": default_system,
        }
        test = [("user", "Hi"), ("assistant", "Hello!"), ("user", "Why is the sky blue?")]
        if join_chat(pieces, test) != render(test, True) or "\x00" in json.dumps(pieces):
            return None
        return pieces
    except Exception:  # a template that needs what placeholders do not give (tools, strict roles)
        return None


def join_chat(pieces: dict, messages: list[tuple[str, str]]) -> str:
    """A conversation through ``chat_format``'s pieces, ready for the answer (as the app joins it)."""
    text = "" if messages and messages[0][0] == "system" else pieces["default_system"]
    for role, content in messages:
        text += pieces["turns"][role].replace("{content}", content)
    return text + pieces["generation_prompt"]


def write_decoder_bundle(tmp: Path, model_dir: Path, built: Any, prompts: list[str], app: dict) -> list[str]:
    """A decoder's app JSON (``app``: the runtime files, their inputs and cache layout) and its
    golden greedy tokens with each step's logits, into ``tmp``; returns their names."""
    eos = list(app.get("eos_token_ids") or [])
    document = {
        "schema": APP_SCHEMA,
        **app,
        "tokenizer": tokenizer_section(model_dir, built.tokenizer),
        "chat": chat_format(built.tokenizer),
        "golden": GOLDEN_FILE,
    }
    golden = {
        "reference": "PyTorch fp32 (the source model), greedy",
        "top_logits": GOLDEN_TOP,
        "cases": decoder_golden(built.model, built.tokenizer, prompts, eos),
    }
    return _write(tmp, document, golden)


def write_bundle(tmp: Path, model_dir: Path, built: Any, reference: Any, cases: list, app: dict) -> list[str]:
    """Write the app's JSON and the golden vectors into ``tmp``; returns their names."""
    pooling = getattr(built, "pooling", None)
    tokenizer = (
        tokenizer_section(model_dir, getattr(built, "tokenizer", None))
        if hasattr(built, "tokenizer")
        else None
    )
    document = {
        "schema": APP_SCHEMA,
        **app,
        "tokenizer": tokenizer,
        "pooling": {"mode": pooling.mode, "normalize": pooling.normalize} if pooling else None,
        "golden": GOLDEN_FILE,
    }
    golden = {"reference": "PyTorch fp32 (the source model)", "cases": golden_cases(built, reference, cases)}
    return _write(tmp, document, golden)


def _write(tmp: Path, document: dict, golden: dict) -> list[str]:
    """The app JSON (readable) and the golden vectors (compact) in ``tmp``, both with the schema; their names."""
    (tmp / APP_FILE).write_text(json.dumps(document, indent=2) + "\n")
    (tmp / GOLDEN_FILE).write_text(json.dumps({"schema": APP_SCHEMA, **golden}) + "\n")
    return [APP_FILE, GOLDEN_FILE]


RUNTIME_FILES = {"ort": "model.ort", "executorch": "model.pte"}


def android_sections(ort: dict, pte: dict, app_files: list[str], checks: dict) -> tuple[dict, dict]:
    """The manifest's export section and validation of an android artifact, from each file's own."""
    section = {
        "format": "android",
        "model_file": RUNTIME_FILES["ort"],
        "runtime_files": dict(RUNTIME_FILES),
        "ort": ort,
        "executorch": pte,
        "app_files": app_files,
    }
    return section, {"runtime": "onnxruntime (ORT format) and executorch", "passed": True, **checks}
