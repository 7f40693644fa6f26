"""Run the CLI in a process forked from one that has imported the heavy libraries already (a
multiprocessing forkserver): what the tests use instead of a fresh interpreter per command, which
spends seconds importing torch and transformers. The child runs the real entry point, ``main()``,
with its own argv, working folder, environment, stdout and stderr."""

from __future__ import annotations

import os
import sys

PRELOAD = ["numpy", "torch", "transformers", "onnx", "onnxruntime", "edgekit.cli", "edgekit.export"]


def run(args: list[str], cwd: str, env: dict[str, str], out_path: str, err_path: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out_path), (2, err_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.argv = ["edgekit", *args]
    code = 0
    try:
        from edgekit.cli import main

        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - what an interpreter prints for an uncaught error
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
