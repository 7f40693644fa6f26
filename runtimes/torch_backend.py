"""PyTorch backend: the reference. It runs the artifact's source model, wrapped exactly as exported,
with the attention transformers picks by default (SDPA where the family has it): the PyTorch a
user would run. Export traces eager attention for fidelity; the two agree to float rounding."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgekit.errors import InputError
from edgekit.runtimes.base import SessionOptions, TensorSpec, check_inputs


class TorchSession:
    backend = "torch"

    def __init__(
        self, module, input_names: list[str], output_names: list[str], weight_bytes: int, options: SessionOptions = SessionOptions(), past_names: list[str] | None = None, image_inputs: bool = False
    ):
        import torch

        if options.threads:
            torch.set_num_threads(options.threads)
        self.module = module.eval()
        self._input_names = list(input_names)
        self._output_names = list(output_names)
        self._weight_bytes = weight_bytes
        self._past_names = list(past_names or [])
        """Inputs the module takes as one list argument ``past`` (a KV cache), in this order."""
        self._image_inputs = image_inputs

    def input_specs(self) -> list[TensorSpec]:
        if self._image_inputs:
            return [TensorSpec(n, ("batch", None, None, None), "float32") for n in self._input_names]
        return [TensorSpec(n, ("batch", None, "past_sequence", None), "float32") if n in self._past_names else TensorSpec(n, ("batch", "sequence"), "int64") for n in self._input_names]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, ("batch", "sequence", None) if n in ("last_hidden_state", "logits") else ("batch", None), "float32") for n in self._output_names]

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        import torch

        check_inputs(self, inputs)
        kwargs = {k: torch.from_numpy(v) for k, v in inputs.items() if k not in self._past_names}
        if self._past_names:
            kwargs["past"] = [torch.from_numpy(inputs[name]) for name in self._past_names]
        with torch.inference_mode():
            outputs = self.module(**kwargs)
        result = {name: out.numpy() for name, out in zip(self._output_names, outputs)}
        return {n: result[n] for n in (output_names or self._output_names)}

    def model_bytes(self) -> int:
        return self._weight_bytes


def weight_files(model_dir: Path) -> list[Path]:
    return [p for p in Path(model_dir).iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth")]


class TorchBackend:
    name = "torch"

    @classmethod
    def load(cls, artifact: Path, manifest: Mapping[str, Any], options: SessionOptions, model_file: str | None = None) -> TorchSession:
        from edgekit.artifacts import hash_folder
        from edgekit.export.encoder import build_encoder
        from edgekit.export.specs import spec_for

        source = manifest.get("source", {})
        model_dir = Path(source.get("path", ""))
        if not (model_dir / "config.json").is_file():
            raise InputError(
                f"the PyTorch reference needs the source model of '{artifact}', but '{model_dir}' is gone",
                "restore the source folder or re-export from where it is now",
            )
        if source.get("sha256") and hash_folder(model_dir) != source["sha256"]:
            raise InputError(f"source model '{model_dir}' changed since '{artifact}' was exported", "re-export it so the reference matches")
        export = manifest["export"]
        weight_bytes = sum(p.stat().st_size for p in weight_files(model_dir))
        if export["task"] == "text-generation":
            from edgekit.export.decoder import build_decoder
            from edgekit.export.specs import decoder_spec_for

            dec = build_decoder(model_dir, _default_attention(decoder_spec_for(source.get("model_type"))))
            return TorchSession(dec.module, dec.input_names, dec.output_names, weight_bytes, options, past_names=dec.layout.past_names())
        if export["task"] == "seq2seq":
            from edgekit.export.seq2seq import build_seq2seq
            from edgekit.export.specs import seq2seq_spec_for

            s2s = build_seq2seq(model_dir, _default_attention(seq2seq_spec_for(source.get("model_type"))))
            return seq2seq_torch_session(s2s, "encoder" if "encoder" in (model_file or "") else "decoder", weight_bytes, options)
        if export["task"] == "image-feature-extraction":
            from edgekit.export.vision import build_vision, vision_spec_for

            vis = build_vision(model_dir, _default_attention(vision_spec_for(source.get("model_type"))))
            return TorchSession(vis.module, vis.input_names, vis.output_names, weight_bytes, options, image_inputs=True)
        built = build_encoder(model_dir, _default_attention(spec_for(source.get("model_type"))), export["task"])
        return TorchSession(built.module, built.input_names, built.output_names, weight_bytes, options)


def _default_attention(spec):
    """``spec`` loading the model with transformers' default attention instead of the eager one export traces."""
    import dataclasses

    return dataclasses.replace(spec, attn_implementation=None)


def seq2seq_torch_session(built, part: str, weight_bytes: int, options: SessionOptions = SessionOptions()) -> TorchSession:
    """The PyTorch reference for the encoder or the decoder graph of an encoder-decoder."""
    if part == "encoder":
        inputs, outputs = built.encoder_names()
        return _RenamedFirstInput(built.encoder, inputs, outputs, weight_bytes, options, image_inputs=not built.spec.text_encoder)
    inputs, outputs = built.decoder_names()
    return TorchSession(built.decoder, inputs, outputs, weight_bytes, options, past_names=built.io.past_names())


class _RenamedFirstInput(TorchSession):
    """The encoder module takes its first input as ``features`` (token ids or audio features)."""

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        import torch

        check_inputs(self, inputs)
        first = self._input_names[0]
        kwargs = {("features" if k == first else k): torch.from_numpy(v) for k, v in inputs.items()}
        with torch.inference_mode():
            outputs = self.module(**kwargs)
        result = {name: out.numpy() for name, out in zip(self._output_names, outputs)}
        return {n: result[n] for n in (output_names or self._output_names)}
