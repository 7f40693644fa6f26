"""``--target android``: what a phone app loads, for both runtimes an Android app can embed.

- ``model.ort``: the validated graph (fp32, or INT8 as plain Q/DQ from the calibration set) in
  ONNX Runtime Mobile's format, with ``model.required_operators.config`` for a reduced build;
- ``model.pte``: an ExecuTorch program with the XNNPACK delegate (fp32, or INT8 linears with
  static ranges from the same calibration set), planned for ``--max-batch`` x ``--max-seq-len``;
- ``edgekit-app.json`` and ``golden.json`` (export/app_bundle.py), and the tokenizer files.

KV-cache decoders get both files too (export/android_decoder.py): the ``--target ort`` graph as
``.ort``, and a ``.pte`` with a static cache of ``--max-seq-len`` positions (fp32, int8, int4).

Both model files are checked here on their real runtimes against PyTorch: fp32 within the
export's tolerance, INT8 by the quality measure of every INT8 export (``--max-drop`` refuses
a program that loses more).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import InputError, ValidationError
from edgekit.export.app_bundle import RUNTIME_FILES, android_sections
from edgekit.export.targets.onnx import OnnxTarget

ENCODER_MAX_SEQ = 512
"""The default sequence bound of an encoder's program: the model's limit, at most this."""


class AndroidTarget(OnnxTarget):
    name = "android"
    graph_precisions = ("fp32", "int8")
    decoder_precisions = ("fp32", "int8", "int4")
    seq2seq_precisions = ()
    decoder_hint = "decoders for Android take fp32, int8 or int4"
    takes_max_seq = True
    fused_attention = True
    requires_modules = (("executorch", "the android target's ExecuTorch program", "android"),)

    serves_kinds = ("encoder", "vision")
    """The stateless kinds whose app files it writes (image-text towers and CTC speech come later)."""

    def decoder(self, job: Any, case: Any) -> tuple[Any, dict, dict]:
        from edgekit.export.android_decoder import decoder

        return decoder(job, case)

    def graph(self, job: Any, case: Any) -> tuple[dict, dict]:
        if job.kind.name not in self.serves_kinds:
            raise InputError(
                f"--target android does not take {job.kind.name} models yet (text and vision encoders only)",
                "use --target ort: ONNX Runtime Mobile reads its graph",
            )
        bounds = self.bounds(job, case)
        onnx_section, onnx_validation = super().graph(job, case)  # int8: plain Q/DQ, in place
        evalset = None
        if job.cfg.precision == "int8":
            from edgekit.compress.quality import build_eval_set

            with job.steps.step("reference outputs on eval data"):
                evalset = build_eval_set(job.cfg, case.built, case.reference, job.model_dir)
        ort_section, ort_validation = self.ort_format(job, case, evalset)
        pte_section, pte_validation = self.executorch(job, case, bounds, evalset)
        from edgekit.export.app_bundle import write_bundle

        with job.steps.step("app files and golden vectors"):
            app_files = write_bundle(
                job.tmp,
                job.model_dir,
                case.built,
                case.reference,
                case.cases,
                {
                    "task": job.task,
                    "precision": job.cfg.precision,
                    "runtime_files": dict(RUNTIME_FILES),
                    "inputs": case.io["inputs"],
                    "outputs": case.io["outputs"],
                    "bounds": bounds,
                },
            )
        return android_sections(
            {**ort_section, **onnx_section},
            {**pte_section, "bounds": bounds},
            app_files,
            {"ort": ort_validation, "executorch": pte_validation, "onnx": onnx_validation},
        )

    def bounds(self, job: Any, case: Any) -> dict:
        """The largest batch and sequence the programs are planned for."""
        cfg, limit = job.cfg, getattr(case.built, "max_length", None)
        max_seq = cfg.max_seq or (min(limit, ENCODER_MAX_SEQ) if limit else None)
        if limit and max_seq > limit:
            raise InputError(
                f"--max-seq-len {max_seq} is longer than the model's {limit} positions",
                f"pass --max-seq-len {limit} or less",
            )
        if cfg.precision == "int8" and max_seq is not None and max_seq < max(cfg.seq_lens):
            raise InputError(
                f"--max-seq-len {max_seq} is shorter than the calibration length {max(cfg.seq_lens)}",
                f"pass --seq-len {max_seq} too, or a larger --max-seq-len",
            )
        # batch 1 alone as a bound trips torch.export's shape guards: the smallest plan holds 2
        return {"max_batch": max(2, cfg.max_batch), "max_seq": max_seq}

    def ort_format(self, job: Any, case: Any, evalset: Any) -> tuple[dict, dict]:
        from edgekit.export.ort_format import onnx_to_ort
        from edgekit.export.validate import require_pass
        from edgekit.runtimes.ort_backend import OrtSession

        with job.steps.step("convert to the ORT format"):
            section = onnx_to_ort(job.tmp / "model.onnx", job.tmp / "model.ort")
            (job.tmp / "model.onnx").unlink()
        with job.steps.step("validate the ORT format against PyTorch"):
            session = OrtSession(job.tmp / "model.ort")
            if job.cfg.precision == "fp32":
                report = case.validate_ir(session, job.atol)
                require_pass(report)
                return section, {"runtime": "onnxruntime", "format": "ort", **report.as_dict()}
            return section, {
                "runtime": "onnxruntime",
                "format": "ort",
                "quality": quality(job, evalset, session),
            }

    def executorch(self, job: Any, case: Any, bounds: dict, evalset: Any) -> tuple[dict, dict]:
        from edgekit.export.executorch_pte import EXECUTORCH_RUNTIME, positional, write_pte
        from edgekit.export.validate import compare, require_pass
        from edgekit.runtimes.executorch_backend import ExecuTorchSession, specs

        built, names = case.built, case.built.input_names
        example = _example(case.cases[0][1] if len(case.cases) < 4 else case.cases[3][1], names, bounds)
        shapes = _shapes(case.io["inputs"], bounds)
        module, section = positional(built.module, names), {}
        additive = hasattr(built.module, "additive_mask")
        try:
            if additive:
                built.module.additive_mask = True
            if job.cfg.precision == "int8":
                module, section["quantization"], numerics = _int8_program(
                    job, case, module, example, shapes, evalset
                )
            with job.steps.step("ExecuTorch program (XNNPACK)"):
                section.update(write_pte(module, example, shapes, job.tmp / "model.pte"))
        finally:
            if additive:
                built.module.additive_mask = False
        with job.steps.step("validate ExecuTorch against PyTorch"):
            session = ExecuTorchSession(
                job.tmp / "model.pte", specs(case.io["inputs"]), specs(case.io["outputs"])
            )
            section["model_file"] = "model.pte"
            if job.cfg.precision != "fp32":
                final = quality(job, evalset, session)
                return section, {
                    "runtime": EXECUTORCH_RUNTIME,
                    "quality": final,
                    "pytorch_int8_numerics": numerics,
                }
            fits = [c for c in case.cases if _fits(c[1], names, bounds)] or [
                ("example", _numpy(example, names))
            ]
            report = compare(case.reference, session, fits, job.atol)
            require_pass(report)
            return section, {"runtime": EXECUTORCH_RUNTIME, **report.as_dict()}


def quality(job: Any, evalset: Any, session: Any) -> dict:
    """An INT8 file's quality on the eval data (the measure every INT8 export reports); more than
    ``--max-drop`` lost fails the export."""
    from edgekit.compress.quality import measure

    result = measure(evalset, session, job.cfg.seed)
    if job.cfg.max_drop is not None and result["drop"] > job.cfg.max_drop:
        raise ValidationError(
            f"INT8 {session.backend} model loses {result['drop']:.4f} on the eval data, more than --max-drop {job.cfg.max_drop}",
            "export --precision fp32 for Android, or raise --max-drop",
        )
    return result


def _int8_program(job: Any, case: Any, module: Any, example: tuple, shapes: tuple, evalset: Any) -> tuple:
    """The int8 module to lower, its manifest section and its quality (measured in PyTorch with the
    program's int8 numerics): every linear layer int8, and while the drop is over ``--max-drop``,
    the next layer whose outputs one int8 range fits worst kept float (compress/quality.guarded)."""
    from edgekit.compress.quality import build_calibration, guarded
    from edgekit.export.executorch_pte import GraphSession, output_outliers, quantize_linears

    built, names = case.built, case.built.input_names
    with job.steps.step("calibration set for ExecuTorch"):
        calib = build_calibration(job.cfg, job.model_dir, getattr(built, "tokenizer", None), names)
        feeds = [tuple(_torch(f[n]) for n in names) for f in calib.feeds]
    programs: dict[tuple, Any] = {}

    def build(kept: list[str]) -> GraphSession:
        programs[tuple(kept)] = quantize_linears(module, example, shapes, feeds, kept)
        return GraphSession(programs[tuple(kept)], names, built.output_names)

    with job.steps.step("quantize the ExecuTorch program and measure"):
        session, measured, kept, tries = guarded(
            build,
            lambda: output_outliers(module, feeds[:16]),
            evalset,
            job.cfg.max_drop,
            job.cfg.max_float_nodes,
            job.cfg.seed,
            job.steps,
        )
    section = {
        "mode": "static",
        "weights": "int8 symmetric, per output channel",
        "activations": "int8 asymmetric, per tensor, calibrated",
        "ops": "linear layers (PT2E, ExecuTorch's XNNPACKQuantizer)",
        "calibration": calib.manifest(),
        "float_linears": kept,
        "guard": {"max_drop": job.cfg.max_drop, "tries": tries},
    }
    return session.module, section, measured


def _torch(value: Any) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(value))


def _shapes(inputs: list[dict], bounds: dict) -> tuple:
    """torch.export's dynamic shapes (in input order) from the manifest's named axes, up to the bounds."""
    from torch.export import Dim

    sizes = {"batch": bounds["max_batch"], "sequence": bounds["max_seq"]}
    dims = {
        axis: Dim(axis, min=2 if axis == "sequence" else 1, max=most)
        for axis, most in sizes.items()
        if most and most > 1
    }
    return tuple({i: dims[a] for i, a in enumerate(e["shape"]) if a in dims} for e in inputs)


def _example(feed: dict, names: list[str], bounds: dict) -> tuple:
    """A traced example inside the bounds and away from sizes 0 and 1 (which torch.export
    specializes): a case's inputs, sliced or repeated to batch 2 and at most 16 positions."""
    batch = min(2, bounds["max_batch"])
    out = []
    for name in names:
        value = np.asarray(feed[name])
        value = np.concatenate([value] * batch)[:batch] if len(value) < batch else value[:batch]
        if value.ndim == 2 and bounds["max_seq"]:
            value = value[:, : min(16, bounds["max_seq"])]
        out.append(_torch(value))
    return tuple(out)


def _numpy(example: tuple, names: list[str]) -> dict:
    return {n: t.numpy() for n, t in zip(names, example)}


def _fits(feed: dict, names: list[str], bounds: dict) -> bool:
    return not bounds["max_seq"] or all(
        np.ndim(feed[n]) < 2 or np.shape(feed[n])[1] <= bounds["max_seq"] for n in names
    )


TARGET = AndroidTarget()
