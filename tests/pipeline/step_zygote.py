"""Starts the KFP emulation's step processes from one pre-imported interpreter (a zygote), as a speed-up.

Each step of a KFP run is a new container running `python -m detx.pipeline.kfp_entrypoint ...`.
Here a new interpreter per step spent about 23 s importing TensorFlow, TFX (all of
`tfx.components`) and kfp before the executor ran: 18 steps of the two-run test, 7 minutes.
The zygote imports them once, then forks one child per step. The child is a fresh process
with the step's own argv, environment, stdout and stderr, running the module as `__main__`
as `python -m` does; it never shares state with another step (the zygote itself runs no
TensorFlow op, so the child's runtime starts clean: TensorFlow's thread pools are created
at first use, after the fork).

`kfp_launcher` uses it only for `python -m detx.pipeline.kfp_entrypoint` commands; anything else,
and every step when DETX_TEST_STEP_SUBPROCESS=1 is set, runs in a new interpreter as before.

Protocol on the zygote's stdin/stdout, one JSON object per line: the launcher writes
{"argv": [...], "log": path, "timeout": seconds}; the zygote answers {"exit": code}.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

MODULE = "detx.pipeline.kfp_entrypoint"
# What every step imports before its executor: the entrypoint and TFX's v2 container entrypoint,
# and the executors' heavy libraries (imports only: none of them runs a TensorFlow op on import).
PRELOAD = (
    MODULE,
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    "tensorflow_data_validation",
    "tensorflow_model_analysis",
)
ENV_SWITCH = "DETX_TEST_STEP_SUBPROCESS"


class Zygote:
    """A pre-imported interpreter that forks one child per step, in one environment."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            text=True,
        )

    def run(self, argv: Sequence[str], log_path: str, timeout: float) -> int:
        """Runs `python -m MODULE argv` in a fresh child; its output goes to `log_path`; returns its exit code."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": list(argv), "log": log_path, "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the step zygote died (exit {self.proc.wait()})")
        return int(json.loads(line)["exit"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_ZYGOTES: dict[tuple[tuple[str, str], ...], Zygote] = {}


def zygote_for(env: Mapping[str, str]) -> Zygote | None:
    """The zygote of this environment (started on first use), or None when steps must be new interpreters."""
    if os.environ.get(ENV_SWITCH) == "1":
        return None
    key = tuple(sorted(env.items()))
    zygote = _ZYGOTES.get(key)
    if zygote is None or zygote.proc.poll() is not None:
        zygote = _ZYGOTES[key] = Zygote(env)
    return zygote


@atexit.register
def _close_all() -> None:
    for zygote in _ZYGOTES.values():
        zygote.close()


def _child(argv: list[str], log_path: str) -> None:
    """In the forked child: the step's output to its log, argv as `python -m` sets it, the module as __main__."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdin = open(os.devnull)
    code = 0
    try:
        sys.argv = [MODULE, *argv]
        runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -int(signal.SIGKILL)
        time.sleep(0.05)


def serve() -> None:
    """The zygote's loop: import once, then fork a child per request line."""
    sys.path[0] = os.getcwd()  # as under `python -m`, not this script's folder
    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request["argv"], request["log"])
        code = _wait(pid, float(request["timeout"]))
        sys.stdout.write(json.dumps({"exit": code}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
