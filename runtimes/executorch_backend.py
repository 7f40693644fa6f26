"""ExecuTorch backend: the ``.pte`` program of an android artifact, run on this host through
``executorch.runtime`` (XNNPACK delegate, the same kernels the phone runs, built for this CPU).

A program is planned for a largest batch and sequence (``export.executorch.bounds``): a longer
sequence is refused; a larger batch is run in slices of the planned batch, as an app would.
A decoder's program holds its KV cache (``ExecuTorchDecoderSession``): one sequence, up to the
cache length it was exported with."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.errors import InputError
from edgekit.runtimes.base import SessionBase, SessionOptions, TensorSpec, check_inputs, unreadable_model

_DTYPES = {"int64": np.int64, "int32": np.int32, "float32": np.float32}


def quiet_executorch() -> None:
    """Keep what ExecuTorch and torchao say on import and while lowering out of a user's terminal:
    torchao's CUDA kernels that cannot load on a CPU machine, torch's notes on deprecated pytree
    calls, and ExecuTorch's 'experimental API' warnings for its own Python bindings."""
    import logging
    import warnings

    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message="This API is experimental")
    warnings.filterwarnings("ignore", message="_check_is_size will be removed")
    warnings.filterwarnings("ignore", message="While compiling, we found certain side effects")
    # a decoder's KV cache is a mutated buffer whose initial values are not stored: positions not
    # written yet are never read (custom_sdpa) or masked (StaticCache; Module zero-fills memory)
    warnings.filterwarnings("ignore", message="Mutation on a buffer in the model is detected")


class ExecuTorchSession(SessionBase):
    backend = "executorch"

    def __init__(
        self,
        path: Path,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        options: SessionOptions = SessionOptions(),
    ):
        self.path = Path(path)
        self._program, self._method = _load_method(self.path, options)
        self._inputs, self._outputs = list(inputs), list(outputs)
        meta = self._method.metadata
        self.bounds = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        self.max_batch = self.bounds[0][0]

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def _check_bounds(self, inputs: Mapping[str, Any]) -> None:
        for spec, bound in zip(self._inputs, self.bounds):
            shape = np.shape(inputs[spec.name])
            for axis, (size, most) in enumerate(zip(shape[1:], bound[1:]), 1):
                if size > most:
                    raise InputError(
                        f"input '{spec.name}' has {size} along axis {axis}; '{self.path.name}' was planned for at most {most}",
                        "shorten the input, or re-export with a larger --max-seq-len",
                    )

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        import torch

        check_inputs(self, inputs)
        self._check_bounds(inputs)
        arrays = [np.ascontiguousarray(inputs[s.name], dtype=_DTYPES[s.dtype]) for s in self._inputs]
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(arrays[0]), self.max_batch):
            values = self._method.execute(
                [torch.from_numpy(a[start : start + self.max_batch]) for a in arrays]
            )
            parts.append([v.numpy() for v in values])
        names = [s.name for s in self._outputs]
        outputs = {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}
        return {n: outputs[n] for n in (output_names or names)}

    def model_bytes(self) -> int:
        return self.path.stat().st_size


def _load_method(path: Path, options: SessionOptions) -> tuple[Any, Any]:
    """The program at ``path`` and its loaded ``forward``, on ``options.threads`` threads."""
    quiet_executorch()
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (a decoder's cache ops)
    import executorch.kernels.quantized  # noqa: F401  (registers embedding_byte: int8 embeddings)
    from executorch.runtime import Runtime

    if not path.is_file():
        raise InputError(f"ExecuTorch program '{path}' does not exist", "re-run 'edgekit export'")
    if options.threads:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(options.threads)
    try:
        with _native_stderr_quiet():
            program = Runtime.get().load_program(path)
            return program, program.load_method("forward")
    except Exception as exc:  # the runtime raises plain RuntimeError/ValueError on a bad file
        raise unreadable_model(path, "ExecuTorch", exc) from exc


@contextlib.contextmanager
def _native_stderr_quiet():
    """The runtime's C++ log lines (its CPU probe's notes on files an x86 host lacks) kept off the
    terminal while a program loads; what fails still reaches the user as the exception's text.
    With ``--verbose`` (debug logging) they pass through."""
    import logging
    import os
    import sys

    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class ExecuTorchDecoderSession(SessionBase):
    """A decoder's program (export/executorch_llm.py) as a stateful session: the KV cache lives in
    the program, so a run feeds the new tokens only; the session keeps the position. One sequence
    (batch 1, no padding), at most ``max_positions`` positions; ``logits`` is the last position's."""

    backend = "executorch"
    stateful = True

    def __init__(self, path: Path, max_seq: int, vocab: int, position_ids: bool, options: SessionOptions):
        self.path, self.max_positions = Path(path), int(max_seq)
        self._program, self._method = _load_method(self.path, options)
        names = ["input_ids", "attention_mask", *(["position_ids"] if position_ids else [])]
        self._inputs = [TensorSpec(n, (1, "sequence"), "int64") for n in names]
        self._outputs = [TensorSpec("logits", (1, 1, int(vocab)), "float32")]
        self.position = 0

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def reset(self, batch: int = 1) -> None:
        if batch != 1:
            raise InputError(
                f"the ExecuTorch decoder program '{self.path.name}' holds one sequence, not {batch}",
                "use --num-beams 1 with --backend executorch, or --backend ort for beam search",
            )
        self.position = 0

    def select_rows(self, rows: Any) -> None:
        if list(np.asarray(rows).reshape(-1)) != [0]:
            self.reset(len(np.asarray(rows).reshape(-1)))

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        import torch

        check_inputs(self, inputs)
        ids = np.ascontiguousarray(inputs["input_ids"], dtype=np.int64)
        if ids.shape[0] != 1 or not np.all(np.asarray(inputs["attention_mask"]) == 1):
            raise InputError(
                "the ExecuTorch decoder program runs one unpadded sequence at a time",
                "generate one prompt at a time with --backend executorch",
            )
        n = ids.shape[1]
        if self.position + n > self.max_positions:
            raise InputError(
                f"the sequence reaches {self.position + n} positions; '{self.path.name}' holds a cache of {self.max_positions}",
                "shorten the prompt or --max-new-tokens, or re-export with a larger --max-seq-len",
            )
        positions = torch.arange(self.position, self.position + n, dtype=torch.long)
        logits = self._method.execute([torch.from_numpy(ids), positions])[0]
        self.position += n
        return {"logits": logits.numpy()[:, None, :]}

    def model_bytes(self) -> int:
        return self.path.stat().st_size


def specs(entries: list[dict]) -> list[TensorSpec]:
    """TensorSpecs from a manifest's ``inputs``/``outputs``."""
    return [TensorSpec(e["name"], tuple(e["shape"]), e["dtype"]) for e in entries]


class ExecuTorchBackend:
    name = "executorch"

    @classmethod
    def load(
        cls,
        artifact: Path,
        manifest: Mapping[str, Any],
        options: SessionOptions,
        model_file: str | None = None,
    ) -> ExecuTorchSession:
        export = manifest.get("export", {})
        model_file = model_file or export.get("runtime_files", {}).get("executorch")
        if not model_file or not model_file.endswith(".pte"):
            raise InputError(
                f"artifact '{artifact}' holds no ExecuTorch program",
                "export it with 'edgekit export --target android'",
            )
        if export.get("task") == "text-generation":
            pte = export["executorch"]
            return ExecuTorchDecoderSession(
                Path(artifact) / model_file,
                pte["max_seq"],
                pte["outputs"][0]["shape"][-1],
                export.get("cache", {}).get("uses_position_ids", False),
                options,
            )
        return ExecuTorchSession(
            Path(artifact) / model_file, specs(export["inputs"]), specs(export["outputs"]), options
        )
