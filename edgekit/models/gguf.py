"""GGUF files (llama.cpp's format) as a source: converted once to an fp32 Hugging Face folder (the
weights dequantized, the tokenizer rebuilt by transformers), cached by the file's hash. Export
builds and validates its graphs from that folder; ``--precision gguf`` then puts the file's own
quantized blocks back into the ONNX Runtime graph (compress/gguf_blocks.py)."""

from __future__ import annotations

import functools
from pathlib import Path

from edgekit.errors import InputError

SUFFIX = ".gguf"


def find_gguf(path: Path) -> Path | None:
    """The GGUF file ``--model`` names: the file itself, or the one ``.gguf`` in a folder that has
    no config.json (a Hugging Face folder with a GGUF beside it is exported as the folder)."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix.lower() == SUFFIX else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(p for p in path.iterdir() if p.suffix.lower() == SUFFIX and p.is_file())
    if len(found) > 1:
        raise InputError(
            f"'{path}' holds {len(found)} GGUF files ({', '.join(p.name for p in found[:4])})",
            "name the one to export: --model " + str(found[0]),
        )
    return found[0] if found else None


def source_gguf(hf_folder: Path) -> Path | None:
    """The GGUF file an HF folder was converted from (its manifest says so), if it is still there unchanged."""
    import json

    from edgekit.artifacts import MANIFEST

    try:
        manifest = json.loads((Path(hf_folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    source = manifest.get("source", {}) if manifest.get("stage") == "convert-gguf" else {}
    path = Path(source["path"]) if source.get("path") else None
    if path is None or not path.is_file() or file_sha256(path) != source.get("sha256"):
        return None
    return path


def gguf_hf_folder(gguf_file: Path, about: dict | None = None) -> Path:
    """The fp32 Hugging Face folder of ``gguf_file``, converted on first use and cached by its hash
    (``about``: more to record in the folder's manifest, e.g. the package that shipped the file)."""
    from edgekit.artifacts import MANIFEST, cache_dir, cache_lock

    gguf_file = Path(gguf_file).resolve()
    digest = file_sha256(gguf_file)
    out = cache_dir() / "models" / f"gguf-{gguf_file.stem}-{digest[:16]}"
    with cache_lock(out):
        if not ((out / MANIFEST).is_file() and (out / "model.safetensors").is_file()):
            convert_gguf(gguf_file, out, {"sha256": digest, **(about or {})})
    return out


def file_sha256(path: Path) -> str:
    """A GGUF's sha256, hashed once per (path, size, modification time) in this process."""
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    from edgekit.artifacts import sha256_file

    return sha256_file(path)


def convert_gguf(gguf_file: Path, out: Path, source: dict) -> Path:
    """Write the fp32 HF folder of ``gguf_file`` to ``out`` (staged: nothing half-written)."""
    from edgekit.artifacts import MANIFEST, build_manifest, now_iso, staged_output, write_json
    from edgekit.errors import require

    require("gguf", f"reading {gguf_file.name}", "examples")
    require("accelerate", f"reading {gguf_file.name}", "examples")
    started = now_iso()
    with staged_output(out, overwrite=True) as tmp:
        plain, tokenizer = _load(gguf_file)
        plain.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(
            tmp / MANIFEST,
            build_manifest(
                stage="convert-gguf",
                config={"gguf_file": gguf_file.name},
                source={"path": str(gguf_file), **source},  # source_gguf reads path and sha256
                folder=tmp,
                started=started,
            ),
        )
    return out


def _load(gguf_file: Path):
    """transformers' GGUF loader, then a plain model of the same config (a GGUF-loaded model refuses
    save_pretrained)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError) as err:
        raise InputError(
            f"transformers cannot read '{gguf_file}': {str(err).splitlines()[0][:200]}",
            "export a GGUF of an architecture transformers' GGUF loader knows (llama, qwen2, mistral, gemma3, ...)",
        ) from err
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    rope = config_dict.get("rope_parameters") or {}
    if config_dict.get("rope_theta") is None and "rope_theta" in rope:
        config_dict["rope_theta"] = rope["rope_theta"]  # older transformers (peer tools) read this key
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight") or not config.tie_word_embeddings]
    if missing or unexpected:
        raise InputError(
            f"converting {gguf_file.name}: weights did not line up (missing {missing[:3]}, unexpected {unexpected[:3]})",
            "report this with the file's architecture",
        )
    plain.generation_config = loaded.generation_config
    return plain, tokenizer
