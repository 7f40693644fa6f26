"""PyTorch backend: the reference. It runs the artifact's source model, wrapped exactly as exported,
with the attention transformers picks by default (SDPA where the family has it): the PyTorch a
user would run. Export traces eager attention for fidelity; the two agree to float rounding.

The module comes from the artifact's model kind (``edgekit.models.kinds``): this file never names one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from edgekit.errors import InputError
from edgekit.models.kinds import ReferenceIO, kind_for_task
from edgekit.runtimes.base import SessionBase, SessionOptions, TensorSpec, check_inputs


class TorchSession(SessionBase):
    backend = "torch"

    def __init__(self, ref: ReferenceIO, weight_bytes: int, options: SessionOptions = SessionOptions()):
        import torch

        if options.threads:
            torch.set_num_threads(options.threads)
        self.module = ref.module.eval()
        self._ref = ref
        self._input_names = list(ref.input_names)
        self._output_names = list(ref.output_names)
        self._weight_bytes = weight_bytes
        self._past_names = list(ref.past_names)

    def input_specs(self) -> list[TensorSpec]:
        if self._ref.input_specs:
            return [TensorSpec(n, *self._ref.input_specs[n]) for n in self._input_names]
        if self._ref.image_inputs:
            return [TensorSpec(n, ("batch", None, None, None), "float32") for n in self._input_names]
        return [
            TensorSpec(n, ("batch", None, "past_sequence", None), "float32")
            if n in self._past_names
            else TensorSpec(n, ("batch", "sequence"), "int64")
            for n in self._input_names
        ]

    def output_specs(self) -> list[TensorSpec]:
        sequence = ("last_hidden_state", "logits")
        return [
            TensorSpec(n, ("batch", "sequence", None) if n in sequence else ("batch", None), "float32")
            for n in self._output_names
        ]

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        import torch

        check_inputs(self, inputs)
        first, renamed = self._input_names[0], self._ref.first_input_as
        kwargs = {
            (renamed if renamed and k == first else k): torch.from_numpy(v)
            for k, v in inputs.items()
            if k not in self._past_names
        }
        if self._past_names:
            kwargs["past"] = [torch.from_numpy(inputs[name]) for name in self._past_names]
        with torch.inference_mode():
            outputs = self.module(**kwargs)
        result = {name: out.numpy() for name, out in zip(self._output_names, outputs)}
        return {n: result[n] for n in (output_names or self._output_names)}

    def model_bytes(self) -> int:
        return self._weight_bytes


class TorchBackend:
    name = "torch"

    @classmethod
    def load(
        cls,
        artifact: Path,
        manifest: Mapping[str, Any],
        options: SessionOptions,
        model_file: str | None = None,
    ) -> TorchSession:
        from edgekit.artifacts import hash_folder
        from edgekit.models.source import weight_bytes

        source = manifest.get("source", {})
        model_dir = Path(source.get("path", ""))
        if not (model_dir / "config.json").is_file():
            raise InputError(
                f"the PyTorch reference needs the source model of '{artifact}', but '{model_dir}' is gone",
                "restore the source folder or re-export from where it is now",
            )
        if source.get("sha256") and hash_folder(model_dir) != source["sha256"]:
            raise InputError(
                f"source model '{model_dir}' changed since '{artifact}' was exported",
                "re-export it so the reference matches",
            )
        task = manifest["export"]["task"]
        kind = kind_for_task(task).module()
        # transformers' default attention instead of the eager one export traces
        spec = dataclasses.replace(kind.spec_for(source.get("model_type")), attn_implementation=None)
        built = kind.build(model_dir, spec, task)
        return TorchSession(kind.reference_io(built, model_file), weight_bytes(model_dir), options)
