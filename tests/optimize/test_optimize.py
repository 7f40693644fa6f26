"""``edgekit optimize`` on a tiny teacher: every cell made and benched in one run, the report and
the best copy written, a rerun reusing every stage, a changed option redoing only what depends on
it, a run killed with SIGKILL mid-distillation resuming to the same student, a failing cell
reported without stopping the others, and bad input in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import add_sentence_transformers_files, make_tiny_encoder, run_cli
from .test_optimize_kinds import every_cell_ok


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from edgekit.calibration._sample import SAMPLE_PARAGRAPHS

    root = tmp_path_factory.mktemp("optimize")
    teacher = add_sentence_transformers_files(make_tiny_encoder(root / "teacher", "bert"))
    data = root / "texts.txt"
    data.write_text("\n".join(SAMPLE_PARAGRAPHS * 4))
    held = root / "held.jsonl"
    held.write_text(
        "\n".join(json.dumps({"text": t, "label": "ab"[i % 2]}) for i, t in enumerate(SAMPLE_PARAGRAPHS * 2))
    )
    return root, teacher, data, held


def _config(root, teacher, data, held, **extra) -> str:
    import yaml

    options = {
        "model": str(teacher),
        "data": str(data),
        "eval_data": str(held),
        "students": "1",
        "backends": ["ort", "openvino"],
        "precisions": ["fp32", "int8"],
        "max_steps": 12,
        "batch_size": 4,
        "seq_len": 32,
        "bench_seq_len": 32,
        "batch": 4,
        "repeat": 6,
        "seed": 3,
        **extra,
    }
    path = root / f"optimize-{len(list(root.glob('optimize-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(options))
    return str(path)


@pytest.fixture(scope="module")
def run(setup):
    root, teacher, data, held = setup
    out = root / "opt"
    result = run_cli("optimize", "--config", _config(root, teacher, data, held), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_every_cell_is_made_benched_and_reported(run):
    from edgekit.artifacts import read_manifest
    from edgekit.runtimes import load_session

    out, result = run
    results = json.loads((out / "results.json").read_text())
    cells = results["cells"]
    # the teacher in PyTorch, then (teacher, L1) x (ort, openvino) x (fp32, int8)
    assert [c["cell"] for c in cells][:2] == ["teacher torch fp32", "teacher ort fp32"] and len(cells) == 9
    assert all(c["state"] == "ok" for c in cells), [c.get("error") for c in cells]
    for c in cells:
        assert c["p50_ms"] > 0 and c["throughput_per_s"] > 0 and c["size_mb"] > 0 and c["peak_rss_mb"] > 0
        assert 0 < c["relative_quality"] <= 1.5 and c["accuracy"] is not None
    assert cells[0]["relative_quality"] == 1.0 and cells[0]["speedup_vs_teacher"] == 1.0
    assert results["pareto"] and set(results["pareto"]) <= {c["cell"] for c in cells}
    for backend in ("ort", "openvino"):
        choice = results["best"][backend]
        chosen = next(c for c in cells if c["cell"] == (choice["cell"] or choice["closest"]))
        assert chosen["backend"] == backend
        if choice["cell"]:  # the fastest of the cells within --max-drop
            within = [c for c in cells if c["backend"] == backend and c["within_max_drop"]]
            assert chosen["p50_ms"] == min(c["p50_ms"] for c in within)
            best = out / f"best-{backend}"
            manifest = read_manifest(best)
            assert manifest["stage"] == "export" and manifest["config"]["target"] == backend
            session = load_session(best, backend)
            assert session is not None
    report = (out / "report.md").read_text()
    assert "| teacher ort int8" in report and "Best per backend" in report
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.replace("http-equiv", "")
    assert (out / "pareto.png").stat().st_size > 1000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "optimize" and manifest["state"] == "finished"
    assert set(manifest["files"]) == {"results.json", "report.md", "report.html", "pareto.png"}
    assert "teacher torch fp32" in result.stdout and "report:" in result.stdout


def test_a_rerun_reuses_every_stage_and_a_changed_option_redoes_only_its_stages(setup, run):
    root, teacher, data, held = setup
    out, _ = run
    bench_before = {p.name for p in (out / "stages").glob("bench-*")}
    again = run_cli("optimize", "--config", _config(root, teacher, data, held), "--out", str(out))
    assert again.returncode != 0 and "--resume" in again.stderr  # an earlier run is not silently redone
    again = run_cli("optimize", "--config", _config(root, teacher, data, held), "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    cells = json.loads((out / "results.json").read_text())["cells"]
    states = {name: s["state"] for c in cells for name, s in c.get("stages", {}).items()}
    assert set(states.values()) == {"reused"}
    assert {p.name for p in (out / "stages").glob("bench-*")} == bench_before  # the bench was reused too
    changed = run_cli(
        "optimize",
        "--config",
        _config(root, teacher, data, held),
        "--out",
        str(out),
        "--resume",
        "--max-steps",
        "8",
    )
    assert changed.returncode == 0, changed.stderr
    cells = json.loads((out / "results.json").read_text())["cells"]
    states = {name: s["state"] for c in cells for name, s in c.get("stages", {}).items()}
    assert all(v == "reused" for k, v in states.items() if "teacher" in k)
    assert all(v == "done" for k, v in states.items() if "L1" in k)
    assert len({p.name for p in (out / "stages").glob("bench-*")}) == 2  # a new bench over the new cells
    other = json.loads((out / "results.json").read_text())["other_stages"]  # kept, and named in the report
    assert len(other) == 7 and {n.split("-")[0] for n in other} == {"distill", "export", "bench"}
    assert (
        not any("teacher" in n for n in other)
        and "from runs with other options" in (out / "report.md").read_text()
    )


def test_sigkill_during_distillation_resumes_to_the_same_student(setup, tmp_path):
    from safetensors.torch import load_file

    root, teacher, data, held = setup
    cfg = _config(
        root,
        teacher,
        data,
        held,
        backends=["ort"],
        precisions=["fp32"],
        max_steps=40,
        distill={"save_every": 4},
    )
    whole = tmp_path / "whole"
    assert run_cli("optimize", "--config", cfg, "--out", str(whole)).returncode == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "optimize", "--config", cfg, "--out", str(cut)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180
    while not list(cut.glob("stages/distill-*.work/checkpoint.pt")) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if list(cut.glob("stages/distill-*/manifest.json")):
        pytest.skip("the distillation finished before it could be killed")
    resumed = run_cli("optimize", "--config", cfg, "--out", str(cut), "--resume", "--verbose")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at step" in resumed.stderr
    (a,), (b,) = (list(f.glob("stages/distill-*/model.safetensors")) for f in (whole, cut))
    assert a.parent.name == b.parent.name  # one key for one config
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_a_failing_cell_is_reported_and_the_others_go_on(setup, tmp_path, monkeypatch):
    from edgekit.errors import ValidationError
    from edgekit.optimize import run as optimize_run
    from edgekit.optimize.config import OptimizeConfig, parse_students

    root, teacher, data, held = setup
    real = optimize_run._run_stage

    def failing(cfg, plan, stage, *args):
        if stage.name == "export-teacher-ort-int8":
            raise ValidationError("INT8 drop 0.3 is over --max-drop", "raise --max-drop")
        return real(cfg, plan, stage, *args)

    monkeypatch.setattr(optimize_run, "_run_stage", failing)
    cfg = OptimizeConfig(
        model=teacher,
        out=tmp_path / "opt",
        data=data,
        eval_data=held,
        students=parse_students("none"),
        backends=("ort",),
        precisions=("fp32", "int8"),
        seq_len=32,
        bench_seq_len=32,
        batch=2,
        repeat=3,
    )
    results = optimize_run.optimize(cfg, quiet=True)
    by_cell = {c["cell"]: c for c in results["cells"]}
    assert by_cell["teacher ort int8"]["state"] == "failed"
    assert "over --max-drop" in by_cell["teacher ort int8"]["error"]
    assert by_cell["teacher ort fp32"]["state"] == "ok" and by_cell["teacher ort fp32"]["p50_ms"] > 0
    assert results["best"]["ort"]["cell"] == "teacher ort fp32"
    assert "failed: INT8 drop 0.3" in (tmp_path / "opt" / "report.md").read_text()


@pytest.mark.parametrize(
    "extra,needle",
    [
        (("--backends", "onnxrt"), "no backend 'onnxrt'"),
        (("--precisions", "int4"), "no precision 'int4'"),
        (("--students", "3x"), "not a layer count, LAYERSxHIDDEN or TEXTvVISION"),
        (("--students", "2v1"), "TEXTvVISION student shapes are for --task image-text"),
        (("--calib-text", "captions.txt"), "--calib-text is for --task image-text"),
        (("--students", "1x16", "--widths", "16"), "--widths needs --students as layer counts"),
        (("--students", "1x12"), "not a multiple of the teacher's head size 8"),
        (("--max-drop", "1.5"), "--max-drop must be in [0, 1)"),
        (("--task", "token-classification"), "does not take --task token-classification"),
        (("--task", "causal-lm", "--precisions", "int4,fp64"), "no precision 'fp64' for causal-lm"),
        (("--students", "9"), "more layers than the teacher's 2"),
        (("--task", "speech-ctc", "--students", "1"), "does not distil speech-ctc students yet"),
        (("--task", "speech-ctc"), "takes a CTC speech model; "),
        (("--task", "speech-ctc", "--precisions", "int8"), "INT8 needs calibration audio"),
    ],
)
def test_bad_input_fails_in_one_line(setup, tmp_path, extra, needle):
    root, teacher, data, held = setup
    args = ["--model", str(teacher), "--data", str(data), "--eval-data", str(held), "--precisions", "fp32"]
    result = run_cli("optimize", *args, "--out", str(tmp_path / "o"), "--max-steps", "2", *extra)
    assert result.returncode != 0 and needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_inputs_are_never_written_and_eval_data_is_required(setup, tmp_path):
    root, teacher, data, held = setup
    common = ("--model", str(teacher), "--precisions", "fp32")
    inside = run_cli("optimize", *common, "--eval-data", str(held), "--out", str(teacher / "opt"))
    assert inside.returncode != 0 and "lies inside the input" in inside.stderr
    assert not (teacher / "opt").exists()
    no_eval = run_cli("optimize", *common, "--out", str(tmp_path / "o"))
    assert no_eval.returncode != 0 and "--eval-data" in no_eval.stderr and not (tmp_path / "o").exists()


def test_pareto_front_and_closest_cell_when_none_keeps_the_quality():
    from edgekit.optimize.config import OptimizeConfig
    from edgekit.optimize.results import best_per_backend, pareto

    def cell(name, backend, p50, quality, max_drop=0.02):
        return {
            "cell": name,
            "artifact": f"stages/{name}",
            "backend": backend,
            "state": "ok",
            "p50_ms": p50,
            "relative_quality": quality,
            "drop": 1 - quality,
            "within_max_drop": 1 - quality <= max_drop,
        }

    cells = [
        cell("a", "ort", 10, 1.0),
        cell("b", "ort", 5, 0.97),
        cell("c", "ort", 6, 0.95),
        cell("d", "ort", 2, 0.9),
    ]
    assert pareto(cells) == ["d", "b", "a"]  # c is slower and worse than b
    cfg = OptimizeConfig(model="m", out="o", backends=("ort",))
    assert best_per_backend(cfg, cells)["ort"]["cell"] == "a"
    best = best_per_backend(cfg, cells[1:])["ort"]
    assert best["cell"] is None and best["closest"] == "b" and abs(best["closest_drop"] - 0.03) < 1e-9


def test_a_decoder_teacher_takes_the_same_command(setup, tmp_path):
    from ..export.test_decoder_families import make_tiny_decoder

    root, _, data, _ = setup
    teacher = make_tiny_decoder(tmp_path / "llama", "llama")
    out = tmp_path / "opt"
    args = ["--model", str(teacher), "--task", "causal-lm", "--data", str(data), "--eval-data", str(data)]
    args += ["--students", "1", "--backends", "ort", "--precisions", "fp32,int4", "--max-steps", "4"]
    args += ["--seq-len", "24", "--new-tokens", "8", "--out", str(out)]
    result = run_cli("optimize", *args)
    assert result.returncode == 0, result.stderr
    results, cells = every_cell_ok(out)
    assert set(cells) == {
        "teacher torch fp32",
        "teacher ort fp32",
        "teacher ort int4",
        "L1 ort fp32",
        "L1 ort int4",
    }
    teacher_row = cells["teacher torch fp32"]
    assert teacher_row["greedy_agreement"] == 1.0 and teacher_row["relative_quality"] == 1.0
    # ORT fp32 runs the teacher's own weights: the same perplexity and greedy tokens as PyTorch
    assert cells["teacher ort fp32"]["perplexity"] == pytest.approx(teacher_row["perplexity"], rel=1e-3)
    assert cells["teacher ort fp32"]["greedy_agreement"] == 1.0
    for c in cells.values():
        assert c["perplexity"] > 1 and 0 <= c["greedy_agreement"] <= 1 and c["throughput_per_s"] > 0
    # the weight-only int4 graph is made from the fp32 ORT graph, not exported again
    assert list(cells["L1 ort int4"]["stages"]) == ["distill-L1", "export-L1-ort-fp32", "export-L1-ort-int4"]
    assert "| perplexity | greedy |" in (out / "report.md").read_text()
    quality_files = sorted(p.name for p in (out / "stages").glob("quality-*.json"))
    assert len(quality_files) == 5
    again = run_cli("optimize", *args, "--resume")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (out / "stages").glob("quality-*.json")) == quality_files


def test_a_grid_of_layers_and_widths_keeps_the_teachers_head_size():
    from edgekit.optimize.config import Shape, fit_shapes, parse_students, student_grid

    teacher = {"hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536}
    grid = fit_shapes(student_grid(parse_students("4,2"), (384, 256)), teacher)
    assert [s.name for s in grid] == ["L4x384", "L4x256", "L2x384", "L2x256"]
    assert grid[1] == Shape(4, 256, 8, 1024) and grid[0].heads == 12
    assert fit_shapes(parse_students("3"), teacher) == (Shape(3),)  # the teacher's width: nothing to fit
    with pytest.raises(Exception, match="not a multiple of the teacher's head size 32"):
        fit_shapes(parse_students("2x200"), teacher)
