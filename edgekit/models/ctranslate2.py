"""Read a CTranslate2 model folder (``model.bin`` + ``config.json`` + ``tokenizer.json``) and write
the Hugging Face folder the exporter takes. Only Whisper (``WhisperSpec``) is converted.

CTranslate2's ``model.bin`` (binary version 6) is little-endian::

    u32 version | str spec_name | u32 revision | u32 n
    n x ( str name | u8 rank | u32 dims[rank] | u8 dtype | u32 nbytes | data )
    u32 n_aliases | n_aliases x ( str alias | str target )

where ``str`` is a u16 length (including a trailing NUL) and the bytes. CTranslate2 fuses what
transformers keeps apart, so the conversion splits it again:

    self_attention/linear_0  [3d, d]  ->  q_proj | k_proj | v_proj   (k_proj has no bias: its slice is 0)
    attention/linear_0       [d, d]   ->  encoder_attn.q_proj
    attention/linear_1       [2d, d]  ->  encoder_attn.k_proj | v_proj
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_SUPPORTED_VERSIONS = (5, 6)


class CT2Model:
    """The variables of a CTranslate2 ``model.bin`` as numpy arrays (views on the file's bytes)."""

    def __init__(self, spec: str, revision: int, variables: dict[str, np.ndarray], aliases: dict[str, str]):
        self.spec, self.revision, self.variables, self.aliases = spec, revision, variables, aliases

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int:
        return int(self[name].reshape(()))


def read_ct2(path: Path) -> CT2Model:
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def text() -> str:
        nonlocal offset
        size = take("H")
        value = data[offset : offset + size - 1].decode("utf-8")
        offset += size
        return value

    try:
        version = take("I")
        if version not in _SUPPORTED_VERSIONS:
            raise InputError(
                f"'{path}' is CTranslate2 binary version {version}; edgekit reads versions {_SUPPORTED_VERSIONS}",
                "convert the model again with a CTranslate2 release that writes version 6",
            )
        spec, revision, count = text(), take("I"), take("I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = text()
            dims = [take("I") for _ in range(take("B"))]
            dtype_id, nbytes = take("B"), take("I")
            if dtype_id not in _DTYPES:
                raise InputError(
                    f"'{path}': variable '{name}' has CTranslate2 dtype {dtype_id} (int8/bfloat16 quantized weights)",
                    "use a float16 or float32 CTranslate2 model",
                )
            dtype = np.dtype(_DTYPES[dtype_id])
            variables[name] = np.frombuffer(data, dtype, nbytes // dtype.itemsize, offset).reshape(dims)
            offset += nbytes
        aliases = {text(): text() for _ in range(take("I"))}
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            f"'{path}' ends early: it is not a complete CTranslate2 model.bin",
            "check that every part of the file was joined",
        ) from exc
    return CT2Model(spec, revision, variables, aliases)


def is_ct2_folder(folder: Path) -> bool:
    """A folder holding a CTranslate2 ``model.bin`` (and no Hugging Face ``model_type``)."""
    folder = Path(folder)
    if not (folder / "model.bin").is_file():
        return False
    try:
        return "model_type" not in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return True


def _token_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: int(t["id"]) for t in tokenizer_json.get("added_tokens", [])}


def _sizes(ct2: CT2Model, d: int, encoder_layers: int, decoder_layers: int, tied: bool) -> dict[str, Any]:
    """The WhisperConfig sizes read off the CTranslate2 variables."""
    return {
        "d_model": d,
        "encoder_layers": encoder_layers,
        "decoder_layers": decoder_layers,
        "encoder_attention_heads": ct2.scalar("encoder/num_heads"),
        "decoder_attention_heads": ct2.scalar("decoder/num_heads"),
        "encoder_ffn_dim": int(ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "num_mel_bins": int(ct2["encoder/conv1/weight"].shape[1]),
        "max_source_positions": int(ct2["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(ct2["decoder/position_encodings/encodings"].shape[0]),
        "vocab_size": int(ct2["decoder/embeddings/weight"].shape[0]),
        "tie_word_embeddings": tied,
    }


def whisper_state_dict(ct2: CT2Model) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """transformers ``WhisperForConditionalGeneration`` weights (fp32) and config sizes from a WhisperSpec."""
    if ct2.spec != "WhisperSpec":
        raise InputError(
            f"the CTranslate2 model is a '{ct2.spec}'; edgekit converts only WhisperSpec models",
            "convert the original Hugging Face model instead",
        )
    for flag, expected in (("decoder/pre_norm", 1), ("decoder/scale_embeddings", 0), ("decoder/alibi", 0)):
        if flag in ct2 and ct2.scalar(flag) != expected:
            raise InputError(
                f"the CTranslate2 Whisper model has {flag}={ct2.scalar(flag)}, which Whisper never has",
                "check that the model is an unmodified Whisper conversion",
            )

    def f32(name: str) -> np.ndarray:
        return np.ascontiguousarray(ct2[name], dtype=np.float32)

    def layers(side: str) -> int:
        return len({k.split("/")[1] for k in ct2.variables if re.match(rf"{side}/layer_\d+/", k)})

    d = int(ct2["encoder/conv1/weight"].shape[0])
    out: dict[str, np.ndarray] = {}

    def norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = f32(f"{src}/gamma"), f32(f"{src}/beta")

    def linear(dst: str, src: str, bias: bool = True) -> None:
        out[f"{dst}.weight"] = f32(f"{src}/weight")
        if bias:
            out[f"{dst}.bias"] = f32(f"{src}/bias")

    def split(dst: str, src: str, names: tuple[str, ...]) -> None:
        weight, bias = f32(f"{src}/weight"), f32(f"{src}/bias")
        if weight.shape[0] != d * len(names):
            raise InputError(
                f"'{src}/weight' has {weight.shape[0]} rows, expected {d * len(names)}",
                "the model does not look like a CTranslate2 Whisper conversion",
            )
        for i, name in enumerate(names):
            out[f"{dst}.{name}.weight"] = np.ascontiguousarray(weight[i * d : (i + 1) * d])
            if name != "k_proj":  # Whisper's key projections have no bias (CTranslate2 stores zeros)
                out[f"{dst}.{name}.bias"] = np.ascontiguousarray(bias[i * d : (i + 1) * d])

    def block(dst: str, src: str) -> None:
        """Self-attention and feed-forward of one layer (both sides have them)."""
        split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    for i in (1, 2):
        linear(f"model.encoder.conv{i}", f"encoder/conv{i}")
    out["model.encoder.embed_positions.weight"] = f32("encoder/position_encodings/encodings")
    for i in range(layers("encoder")):
        block(f"model.encoder.layers.{i}", f"encoder/layer_{i}")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    out["model.decoder.embed_tokens.weight"] = f32("decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = f32("decoder/position_encodings/encodings")
    for i in range(layers("decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        block(dst, src)
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    tied = (
        ct2.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight"
        or "decoder/projection/weight" not in ct2
    )
    if not tied:
        out["proj_out.weight"] = f32("decoder/projection/weight")
    sizes = _sizes(ct2, d, layers("encoder"), layers("decoder"), tied)
    return out, sizes


def _write_tokenizer(dest: Path, tokenizer_json: dict, max_length: int) -> None:
    """tokenizer.json as CTranslate2 ships it, and the config that makes transformers read it."""
    (dest / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    special = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")


def convert_ct2_whisper(src: Path, dest: Path) -> dict[str, Any]:
    """Write a Hugging Face Whisper folder (config, fp32 safetensors, generation config, tokenizer,
    feature-extractor config) into the existing folder ``dest``; returns what it recorded."""
    import torch
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor

    src = Path(src)
    for name in ("model.bin", "tokenizer.json"):
        if not (src / name).is_file():
            raise InputError(
                f"the CTranslate2 folder '{src}' has no {name}",
                "pass the folder that holds model.bin, config.json and tokenizer.json",
            )
    ct2 = read_ct2(src / "model.bin")
    weights, sizes = whisper_state_dict(ct2)
    ct2_config = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else {}
    tokenizer_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    ids = _token_ids(tokenizer_json)
    missing = [
        t
        for t in (
            "<|endoftext|>",
            "<|startoftranscript|>",
            "<|transcribe|>",
            "<|translate|>",
            "<|notimestamps|>",
        )
        if t not in ids
    ]
    if missing:
        raise InputError(
            f"'{src / 'tokenizer.json'}' lacks the Whisper special tokens {missing}",
            "use the tokenizer.json that came with the model",
        )
    eos, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    lang_ids = [int(i) for i in ct2_config.get("lang_ids", [])]
    by_id = {v: k for k, v in ids.items()}
    languages = {by_id[i]: i for i in lang_ids if i in by_id}
    config = WhisperConfig(
        **sizes,
        pad_token_id=eos,
        bos_token_id=eos,
        eos_token_id=eos,
        decoder_start_token_id=sot,
        suppress_tokens=[int(i) for i in ct2_config.get("suppress_ids", [])],
        begin_suppress_tokens=[int(i) for i in ct2_config.get("suppress_ids_begin", [eos])],
        architectures=["WhisperForConditionalGeneration"],
    )
    config.save_pretrained(str(dest))
    tensors = {k: torch.from_numpy(v) for k, v in weights.items()}
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    generation = {
        "decoder_start_token_id": sot,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "bos_token_id": eos,
        "max_length": sizes["max_target_positions"],
        "suppress_tokens": config.suppress_tokens,
        "begin_suppress_tokens": config.begin_suppress_tokens,
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "is_multilingual": bool(languages),
        "lang_to_id": languages,
        "task_to_id": {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        "alignment_heads": ct2_config.get("alignment_heads", []),
    }
    (dest / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    _write_tokenizer(dest, tokenizer_json, sizes["max_target_positions"])
    WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]).save_pretrained(str(dest))
    return {
        "ctranslate2_spec": ct2.spec,
        "ctranslate2_revision": ct2.revision,
        "variables": len(ct2.variables),
        "languages": len(languages),
        **sizes,
    }


def ct2_hf_folder(src: Path) -> Path:
    """The Hugging Face folder converted from the CTranslate2 folder ``src``, made once and cached
    under the cache folder, keyed by the hash of ``src``'s files."""
    from edgekit.artifacts import MANIFEST, cache_dir, cache_lock, hash_folder

    src = Path(src)
    digest = hash_folder(src)
    out = cache_dir() / "models" / f"ct2-{src.name}-{digest[:16]}"
    with cache_lock(out):
        if not ((out / MANIFEST).is_file() and (out / "model.safetensors").is_file()):
            _convert_cached(src, out, digest)
    return out


def _convert_cached(src: Path, out: Path, digest: str) -> None:
    from edgekit.artifacts import MANIFEST, build_manifest, now_iso, staged_output, write_json

    started = now_iso()
    with staged_output(out, overwrite=True) as tmp:
        recorded = convert_ct2_whisper(src, tmp)
        write_json(
            tmp / MANIFEST,
            build_manifest(
                stage="convert-ctranslate2",
                config=recorded,
                source={"path": str(src), "sha256": digest},
                folder=tmp,
                started=started,
            ),
        )
