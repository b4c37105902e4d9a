"""The live view in a real browser (issue 14; docs/live.md): Debian's chromium, headless, driven by
selenium through Debian's chromedriver (``/usr/bin/chromedriver``: nothing is downloaded at run
time), against the real server of ``lblab run SPEC --live`` and ``lblab view RESULTS_DIR``.

* Live, during a short emulation run (L7 builtin proxy, three backends, ``drain_backend`` b1
  2 s into a 5 s measurement): the topology is drawn with every host of the spec's graph; every
  backend's rate on the page becomes non-zero, and the L7 panel shows the proxy's own request
  rate, its client connections and every backend; after the drain the page shows the fault and
  b1's rate at zero while the others still serve.
* Replay of the committed fixture ``tests/unit/fixtures/run_tiny``: for every run the page's
  measurement window shows runs.csv's numbers (requests per backend, throughput, p50, p99) and
  the configuration's means as summary.csv has them (shares, throughput, p50, p99) — both the
  exact value (``data-value``) and the text a person reads.

The test waits for conditions (``wait_for``), never for a fixed time. On a failure the browser's
screenshot and the page's console are saved in the test's ``tmp_path`` (the failure names it).
Run by hand under the emulation lock::

    flock /tmp/lblab-emulation.lock .venv/bin/python -m pytest tests/emulation/test_live_browser.py -q
"""
import contextlib
import csv
import glob
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest

from lblab_core.netutil import free_port
from tests.conftest import wait_for
from topologies import graphs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LBLAB = [sys.executable, "-m", "experiments.cli"]
FIXTURE = os.path.join(REPO, "tests", "unit", "fixtures", "run_tiny")
FIXTURE_RUNS = os.path.join(REPO, "tests", "unit", "fixtures", "run_tiny_runs.csv")
FIXTURE_SUMMARY = os.path.join(REPO, "tests", "unit", "fixtures", "run_tiny_summary.csv")

TOPOLOGY = {"name": "lb_lab", "params": {"clients": 2, "backends": 3}}
SPEC = f"""\
name: live_browser
seed: 5
topology: {json.dumps(TOPOLOGY)}
backends:
  - {{name: b1, service: {{dist: fixed, mean_ms: 2}}}}
  - {{name: b2, service: {{dist: fixed, mean_ms: 2}}}}
  - {{name: b3, service: {{dist: fixed, mean_ms: 2}}}}
balancers:
  - {{name: px, layer: l7, engine: builtin, algorithm: round_robin}}
workload: {{type: http, mode: closed, users: 4, think_ms: 20, keepalive: true}}
repetitions: 1
warmup_s: 1
duration_s: 5
faults:
  - {{at_s: 2, action: drain_backend, target: b1}}
"""
BACKENDS = ["b1", "b2", "b3"]
DRAINED = "b1"


def _first(*paths):
    for p in paths:
        if p and os.path.exists(p):
            return p
    return None


CHROMIUM = _first(shutil.which("chromium"), shutil.which("chromium-browser"))
CHROMEDRIVER = _first("/usr/bin/chromedriver", shutil.which("chromedriver"))


def browser_missing():
    """Return why the browser test cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "python3-selenium is not installed (run make setup)"
    if CHROMIUM is None:
        return "chromium is not installed (run make setup)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (run make setup: chromium-driver)"
    return None


@pytest.fixture
def browser():
    """A headless chromium (``--no-sandbox``: root) driven through the system's chromedriver."""
    reason = browser_missing()
    if reason:
        if os.environ.get("LBLAB_REQUIRE_EMULATION") == "1":
            pytest.fail(f"LBLAB_REQUIRE_EMULATION=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1500", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium's driver manager is never asked to download one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def screenshot_on_failure(driver, tmp_path, name):
    """On an exception, save the page's screenshot and console into ``tmp_path`` and say where."""
    try:
        yield
    except BaseException as exc:
        shot = tmp_path / f"{name}.png"
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(shot))
        with contextlib.suppress(Exception):
            (tmp_path / f"{name}-console.txt").write_text(
                "\n".join(str(e) for e in driver.get_log("browser")), encoding="utf-8")
        raise AssertionError(f"{exc} (screenshot: {shot})") from exc


def answers(url):
    """True when the server answers ``url`` with 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def lblab(args, tmp_path, name):
    """``lblab ARGS`` as a child process, stopped with SIGINT (Ctrl-C) if still running."""
    log = open(tmp_path / f"{name}.log", "wb")
    proc = subprocess.Popen(LBLAB + args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def page_state(driver):
    """The frame the page shows: its time, every backend's rate, the faults listed."""
    return driver.execute_script("""
        const rates = {};
        for (const td of document.querySelectorAll('#rates td.rps'))
            rates[td.closest('tr').dataset.backend] =
                td.dataset.value === '' ? null : Number(td.dataset.value);
        const faults = Array.from(document.querySelectorAll('#faults li')).map(
            (li) => ({action: li.dataset.action, target: li.dataset.target,
                      elapsed: Number(li.dataset.elapsed)}));
        return {state: document.body.dataset.state, mode: document.body.dataset.mode,
                elapsed: document.body.dataset.elapsed === undefined ||
                         document.body.dataset.elapsed === '' ? null
                         : Number(document.body.dataset.elapsed),
                rates: rates, faults: faults,
                total: Number(document.getElementById('total-rps').dataset.value || 'NaN')};
    """)


def drawn_hosts(driver):
    return set(driver.execute_script(
        "return Array.from(document.querySelectorAll('#topology g.node[data-kind=host]'))"
        ".map((g) => g.dataset.id)"))


def test_live_page_during_a_run_with_a_drain(browser, tmp_path):
    spec = tmp_path / "live_browser.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    hosts = {n for n, d in graphs.build(TOPOLOGY["name"], TOPOLOGY["params"]).nodes(data=True)
             if d.get("kind") != "switch"}
    args = ["run", str(spec), "--out", str(tmp_path / "results"), "--no-calibration",
            "--quiet", "--live", f"127.0.0.1:{port}"]
    with lblab(args, tmp_path, "lblab-run") as proc, \
            screenshot_on_failure(browser, tmp_path, "live"):
        wait_for(lambda: answers(url + "api/run") or proc.poll() is not None,
                 "the live server answering", timeout_sec=30)
        assert proc.poll() is None, f"lblab run ended early: see {tmp_path / 'lblab-run.log'}"
        browser.get(url)
        # The topology, once the run's lab is up: every host of the spec's graph is drawn.
        wait_for(lambda: drawn_hosts(browser) == hosts, f"every host drawn: {sorted(hosts)}",
                 timeout_sec=30)
        roles = dict(browser.execute_script(
            "return Array.from(document.querySelectorAll('#topology g.node[data-backend]'))"
            ".map((g) => [g.dataset.backend, g.dataset.role])"))
        assert roles == {b: "backend" for b in BACKENDS}
        # Before the drain: every backend serves, on the page.
        before = wait_for(
            lambda: (lambda s: s if all((s["rates"].get(b) or 0) > 0 for b in BACKENDS)
                     else None)(page_state(browser)),
            "every backend's rate non-zero on the page", timeout_sec=20)
        assert not any(f["action"] == "drain_backend" for f in before["faults"]), before
        # The L7 panel: the proxy's own counters (its stats ports), per backend and in all.
        l7 = wait_for(lambda: browser.execute_script("""
            const v = (id) => document.getElementById(id).dataset.value;
            const rate = Number(v('l7-request-rate') || 'NaN');
            const rows = Array.from(document.querySelectorAll('#l7-backends tbody tr'))
                .map((tr) => tr.dataset.key);
            return rate > 0 ? {engine: document.getElementById('l7-engine').textContent,
                               rows: rows, clients: Number(v('l7-clients'))} : null;"""),
            "the proxy's own request rate non-zero on the page", timeout_sec=20)
        assert l7["engine"] == "(builtin)" and l7["rows"] == BACKENDS, l7
        assert l7["clients"] >= 1, l7
        # The drain: the fault is listed, then b1's rate is 0 while the others still serve.
        fault = wait_for(
            lambda: next((f for f in page_state(browser)["faults"]
                          if f["action"] == "drain_backend" and f["target"] == DRAINED), None),
            "the drain_backend fault shown on the page", timeout_sec=20)
        after = wait_for(
            lambda: (lambda s: s if (s["elapsed"] is not None and s["elapsed"] > fault["elapsed"]
                                     and s["rates"].get(DRAINED) == 0
                                     and all(s["rates"][b] > 0 for b in BACKENDS
                                             if b != DRAINED)) else None)(page_state(browser)),
            f"{DRAINED}'s rate at 0 on the page while the others serve", timeout_sec=15)
        assert after["total"] > 0
        assert browser.find_element("id", "rate-" + DRAINED).text == "0.0"
        assert proc.wait(60) == 0, f"lblab run failed: see {tmp_path / 'lblab-run.log'}"


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as fp:
        return list(csv.DictReader(fp))


def summary_cells(driver):
    """{(which, field, backend-or-None): (data-value, text)} of the page's summary table."""
    return {(c[0], c[1], c[2]): (c[3], c[4]) for c in driver.execute_script("""
        return Array.from(document.querySelectorAll('#summary td[data-which]')).map((td) => {
            const tr = td.closest('tr');
            return [td.dataset.which, td.dataset.field, tr.dataset.backend || null,
                    td.dataset.value === '' ? null : Number(td.dataset.value), td.textContent];
        });""")}


def test_replay_shows_the_numbers_of_runs_csv_and_summary_csv(browser, tmp_path):
    runs = _csv_rows(FIXTURE_RUNS)
    means = {r["config"]: r for r in _csv_rows(FIXTURE_SUMMARY)}
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with lblab(["view", FIXTURE, "--live", f"127.0.0.1:{port}"], tmp_path, "lblab-view") as proc, \
            screenshot_on_failure(browser, tmp_path, "replay"):
        wait_for(lambda: answers(url + "api/run") or proc.poll() is not None,
                 "lblab view answering", timeout_sec=30)
        assert proc.poll() is None, f"lblab view ended: see {tmp_path / 'lblab-view.log'}"
        checked = 0
        for row in runs:
            run = row["run"]
            browser.get(url + "#run=" + run)
            wait_for(lambda: browser.execute_script(
                "return document.body.dataset.state === 'replay' && "
                "document.body.dataset.run === arguments[0] && "
                "!document.getElementById('summary-panel').hidden", run),
                f"the replay of {run} with its summary", timeout_sec=30)
            cells = summary_cells(browser)
            mean = means[row["config"]]
            backends = [k[len("requests_"):] for k in row if k.startswith("requests_")]
            assert backends, row.keys()
            expected = {("run", "throughput_rps", None): (row["throughput_rps"], "{:.2f} req/s"),
                        ("run", "latency_p50_ms", None): (row["latency_p50_ms"], "{:.3f} ms"),
                        ("run", "latency_p99_ms", None): (row["latency_p99_ms"], "{:.3f} ms"),
                        ("mean", "throughput_rps", None): (mean["throughput_rps_mean"],
                                                           "{:.2f} req/s"),
                        ("mean", "latency_p50_ms", None): (mean["latency_p50_ms_mean"],
                                                           "{:.3f} ms"),
                        ("mean", "latency_p99_ms", None): (mean["latency_p99_ms_mean"],
                                                           "{:.3f} ms")}
            for b in backends:
                expected[("run", "requests", b)] = (row[f"requests_{b}"], "{:.0f}")
                expected[("mean", "share", b)] = (mean[f"share_{b}_mean"], "pct")
            for key, (text_value, fmt) in expected.items():
                assert key in cells, f"{run}: {key} not on the page ({sorted(cells)})"
                value, text = cells[key]
                want = float(text_value)
                assert value == pytest.approx(want, rel=1e-9, abs=1e-9), (run, key, value, want)
                shown = f"{want * 100:.2f} %" if fmt == "pct" else fmt.format(want)
                assert text == shown, (run, key, text, shown)
                checked += 1
        assert checked >= len(runs) * 8
        # Offline: every script, style and call of the page went to lblab's own server.
        loaded = browser.execute_script(
            "return [location.href].concat(performance.getEntriesByType('resource')"
            ".map((e) => e.name))")
        assert any("/static/js/app.js" in u for u in loaded), loaded
        assert [u for u in loaded if not u.startswith(url)] == [], loaded


def take_readme_screenshots(img_dir, work_dir):
    """The README's pictures from real runs: the live page during the quickstart (its L4
    weighted round robin run, mid-measurement) and the replay of that results folder.

        flock /tmp/lblab-emulation.lock .venv/bin/python -m tests.emulation.test_live_browser \\
            docs/img
    """
    import tempfile
    reason = browser_missing()
    if reason:
        raise SystemExit(reason)
    gen = browser.__wrapped__()
    driver = next(gen)
    driver.set_window_size(1400, 1080)      # the page's panels, without the empty bottom
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="lblab-shots-", dir=work_dir))
    out = str(tmp / "quickstart")
    spec = os.path.join(REPO, "experiments", "specs", "quickstart.yaml")
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        args = ["run", spec, "--repetitions", "1", "--no-calibration", "--quiet", "--out", out,
                "--live", f"127.0.0.1:{port}"]
        with lblab(args, tmp, "quickstart") as proc:
            wait_for(lambda: answers(url + "api/run") or proc.poll() is not None,
                     "the live server", timeout_sec=60)
            driver.get(url)
            wait_for(lambda: driver.execute_script(
                "const r = document.getElementById('run-name').textContent;"
                "return r === 'l4_wrr-r1' && Number(document.body.dataset.elapsed) >= 3"),
                "the quickstart's l4_wrr run 3 s into its measurement", timeout_sec=240)
            driver.save_screenshot(os.path.join(img_dir, "live.png"))
            assert proc.wait(300) == 0, f"the quickstart failed: {tmp / 'quickstart.log'}"
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        [folder] = glob.glob(os.path.join(out, "quickstart-*"))   # --out DIR: DIR/<name>-<time>
        with lblab(["view", folder, "--live", f"127.0.0.1:{port}"], tmp, "view") as proc:
            wait_for(lambda: answers(url + "api/run") or proc.poll() is not None,
                     "lblab view", timeout_sec=30)
            driver.set_window_size(1400, 1420)  # with the measurement window's table
            driver.get(url + "#run=l7_lc-r1&t=3")
            wait_for(lambda: driver.execute_script(
                "return document.body.dataset.run === 'l7_lc-r1'"), "the replay", timeout_sec=30)
            driver.save_screenshot(os.path.join(img_dir, "live_replay.png"))
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)
    print(f"{img_dir}/live.png, {img_dir}/live_replay.png (results: {folder})")


if __name__ == "__main__":
    take_readme_screenshots(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "docs/img"),
                            os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "/tmp"))
