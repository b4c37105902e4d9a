"""Runs malformed-input cases through lblab's real commands in one child process.

The child caps its own address space (RLIMIT_AS) and each case's time (SIGALRM), so a case
that would hang or eat memory ends as a finding, not as a stuck test run. Each case is run the
way its process starts: ``lblab_core.entry.run(command, main, argv)``, with stdout and stderr
captured. Input on stdin and output on stdout are JSON.
"""
import base64
import contextlib
import importlib
import io
import json
import os
import resource
import signal
import sys
import tempfile
import traceback

MEMORY_CAP_BYTES = 2 * 1024 ** 3
CASE_LIMIT_SEC = 10

# command -> (module whose main(argv) runs it, argv before the file path)
COMMANDS = {
    "validate": ("experiments.validate_cmd", []),
    "proxy": ("lb_apps.proxy.server", ["--check", "--config"]),
    "controller": ("controllers.launcher", ["--check", "--config"]),
    "backend": ("lb_apps.backend.server", ["--check", "--config"]),
    "loadgen": ("lb_apps.loadgen.client", ["--check", "--config"]),
    "engine-haproxy": ("lb_apps.engines.proc", ["render", "--engine", "haproxy", "--config"]),
    "engine-nginx": ("lb_apps.engines.proc", ["render", "--engine", "nginx", "--config"]),
}


class _Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hang


def run_case(case, workdir):
    from lblab_core import entry
    module_name, argv = COMMANDS[case["command"]]
    module = importlib.import_module(module_name)
    path = os.path.join(workdir, case["filename"])
    with open(path, "wb") as fp:
        fp.write(base64.b64decode(case["content"]))
    out, err = io.StringIO(), io.StringIO()
    result = {"id": case["id"], "path": path}
    signal.alarm(CASE_LIMIT_SEC)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                result["status"] = entry.run(case["command"], module.main,
                                             argv + [path] + case.get("extra", []))
            except SystemExit as exc:  # argparse
                result["status"] = exc.code
    except _Hang:
        result["status"] = "hang"
    except MemoryError:
        result["status"] = "memory"
    except BaseException:  # noqa: BLE001 - a traceback is the finding
        result["status"] = "traceback"
        err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
    result["stdout"] = out.getvalue()
    result["stderr"] = err.getvalue()
    return result


def main():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))
    signal.signal(signal.SIGALRM, _alarm)
    cases = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as workdir:
        results = [run_case(case, workdir) for case in cases]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()
