"""Long fuzz run of lblab's L7 proxy request path (issue 9 section 2): the seed attacks and
seeded mutations of ``tests/unit/test_proxy_fuzz.py``, many more of them, against ``lblab proxy``
running as its own process, with strict h11 backends and the fuzz clients in this process.
Everything is on 127.0.0.1.

Prints requests sent, smuggled requests (at a backend without the proxy's Via, spliced from two
requests, or answered to the wrong client request), crashes (the proxy process died or stopped
answering a plain GET; it is restarted and the run goes on), backend parse errors, every other
finding by kind, and the proxy process's RSS at the start, after 100,000 requests and at the
end. Exit status 1 when anything was found.

Usage: .venv/bin/python bench/fuzz_proxy.py --requests 1000000 [--seed 92] [--concurrency 64]
"""
import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from tests.fuzzkit import cases  # noqa: E402
from tests.fuzzkit.net import Fuzzer, Recorder, start_backends  # noqa: E402

PY = sys.executable
START_TIMEOUT_SEC = 15.0
SUPERVISE_EVERY_SEC = 2.0
RSS_MARK_REQUESTS = 100_000
PROGRESS_EVERY_REQUESTS = 100_000
FIRST_MUTATION_CASE = 1000
SMUGGLING_KINDS = ("no_via", "spliced", "wrong_response", "victim")
MIB = 1024 * 1024


class ProxyProcess:
    """``python -m lb_apps.proxy.server`` on an ephemeral port, its stdout/stderr in files."""

    def __init__(self, config_path, workdir):
        self.config_path = config_path
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.starts = 0

    def start(self):
        self.starts += 1
        out = open(os.path.join(self.workdir, f"proxy-{self.starts}.out"), "w+b")
        self.err_path = os.path.join(self.workdir, f"proxy-{self.starts}.err")
        err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([PY, "-m", "lb_apps.proxy.server", "--config", self.config_path],
                                     cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while time.monotonic() < deadline:
            out.seek(0)
            m = re.search(rb"listening on http://[\d.]+:(\d+)", out.read())
            if m:
                self.port = int(m.group(1))
                return self.port
            if self.proc.poll() is not None:
                raise SystemExit(f"lblab proxy exited with {self.proc.returncode} before "
                                 f"listening; see {self.err_path}")
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"lblab proxy did not listen within {START_TIMEOUT_SEC} s")

    def rss(self):
        """Resident set size in bytes (None if the process is gone)."""
        try:
            return psutil.Process(self.proc.pid).memory_info().rss
        except psutil.Error:
            return None

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stderr_problems(self):
        """The exceptions the proxy reported on stderr: one text block per traceback."""
        blocks = []
        for n in range(1, self.starts + 1):
            with open(os.path.join(self.workdir, f"proxy-{n}.err"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            for i, line in enumerate(lines):
                if line.startswith("Traceback"):
                    end = next((j for j in range(i + 1, len(lines))
                                if lines[j] and not lines[j][0].isspace()), len(lines) - 1)
                    blocks.append("\n".join(lines[max(0, i - 3):end + 1]))
        return blocks


def fmt_mib(value):
    return "n/a" if value is None else f"{value / MIB:.1f} MiB"


async def run(args, workdir):
    rec = Recorder()
    backends = await start_backends(rec)
    data = {"listen": {"host": "127.0.0.1", "port": 0},
            "backends": [{"name": "b1", "address": "127.0.0.1", "port": backends["b1"].port}]}
    data.update(cases.lab_groups_and_routes({n: b.port for n, b in backends.items()}))
    config_path = os.path.join(workdir, "fuzz-proxy.json")
    with open(config_path, "w") as f:
        json.dump(data, f, sort_keys=True)
    proxy = ProxyProcess(config_path, workdir)
    loop = asyncio.get_running_loop()
    port = await loop.run_in_executor(None, proxy.start)
    rss = {"start": proxy.rss()}
    crashes = {"died": 0, "stopped answering": 0}
    fuzzer = Fuzzer(port, rec)
    t0 = time.monotonic()
    stop = asyncio.Event()
    print(f"fuzz_proxy: seed {args.seed}, {args.requests:,} requests, concurrency "
          f"{args.concurrency}, proxy pid {proxy.proc.pid} on 127.0.0.1:{port}", flush=True)

    async def restart(why):
        crashes[why] += 1
        print(f"  proxy {why} after {rec.requests_sent:,} requests: restarting", flush=True)
        await loop.run_in_executor(None, proxy.stop)
        fuzzer.port = await loop.run_in_executor(None, proxy.start)

    async def supervise():
        next_progress = PROGRESS_EVERY_REQUESTS
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), SUPERVISE_EVERY_SEC)
            except asyncio.TimeoutError:
                pass
            if "after_100k" not in rss and rec.requests_sent >= RSS_MARK_REQUESTS:
                rss["after_100k"] = proxy.rss()
            if rec.requests_sent >= next_progress:
                next_progress += PROGRESS_EVERY_REQUESTS
                rate = rec.requests_sent / (time.monotonic() - t0)
                print(f"  {rec.requests_sent:,} requests, {rec.cases:,} cases, "
                      f"{sum(rec.counts.values())} findings, proxy RSS {fmt_mib(proxy.rss())}, "
                      f"{rate:,.0f} requests/s", flush=True)
            if stop.is_set():
                break
            if not proxy.alive():
                await restart("died")
            elif not await fuzzer.probe():
                await restart("stopped answering")

    def case_stream():
        yield from cases.seed_cases()
        no = FIRST_MUTATION_CASE
        while rec.requests_sent < args.requests:
            yield cases.mutated_case(args.seed, no)
            no += 1

    supervisor = asyncio.ensure_future(supervise())
    try:
        await fuzzer.run_concurrent(case_stream(), args.concurrency, probe_every=10 ** 9)
        if not await fuzzer.probe():
            crashes["stopped answering"] += 1
        await asyncio.sleep(0.5)  # whatever is still in flight reaches the backends
    finally:
        stop.set()
        await supervisor
        rss["end"] = proxy.rss()
        elapsed = time.monotonic() - t0
        await loop.run_in_executor(None, proxy.stop)
        for b in backends.values():
            b.close()
    smuggled = sum(rec.counts[k] for k in SMUGGLING_KINDS)
    crashed = sum(crashes.values())
    errors = proxy.stderr_problems()
    print(f"requests sent: {rec.requests_sent:,} ({rec.cases:,} cases; "
          f"{rec.backend_requests:,} requests reached the backends)")
    print(f"smuggled: {smuggled} (" + ", ".join(f"{k} {rec.counts[k]}" for k in SMUGGLING_KINDS)
          + ")")
    print(f"crashes: {crashed} (died {crashes['died']}, stopped answering "
          f"{crashes['stopped answering']})")
    print(f"backend parse errors: {rec.counts['backend_parse_error']}")
    others = [(k, n) for k, n in rec.counts.most_common()
              if k not in SMUGGLING_KINDS + ("backend_parse_error", "no_answer")]
    print("other findings: " + (", ".join(f"{k} {n}" for k, n in others) or "none"))
    print(f"proxy RSS: start {fmt_mib(rss['start'])}, after {RSS_MARK_REQUESTS:,} requests "
          f"{fmt_mib(rss.get('after_100k'))}, end {fmt_mib(rss['end'])}")
    print(f"proxy exceptions on stderr: {len(errors)}")
    print(f"elapsed: {elapsed:.0f} s ({rec.requests_sent / elapsed:,.0f} requests/s)")
    if rec.counts:
        print("details:")
        for line in rec.report():
            print("  " + line)
    for block in errors[:2]:
        print("proxy stderr:\n" + block)
    return 1 if rec.counts or crashed or errors else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/fuzz_proxy.py", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, required=True, metavar="N",
                        help="stop after sending this many requests (victims and probes count)")
    parser.add_argument("--seed", type=int, default=92, metavar="S",
                        help="mutation seed (default 92, the unit test's)")
    parser.add_argument("--concurrency", type=int, default=64, metavar="C",
                        help="client connections running cases at once (default 64)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error(f"--requests and --concurrency must be >= 1, got {args.requests} and "
                     f"{args.concurrency}")
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    with tempfile.TemporaryDirectory(prefix="lblab-fuzz-") as workdir:
        return runner(run(args, workdir))


if __name__ == "__main__":
    sys.exit(main())
