"""``make bench`` (bench/all.py): the table and JSON assembled from fake bench outputs."""
import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location(
    "bench_all", os.path.join(HERE, "..", "..", "bench", "all.py"))
bench_all = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench_all)
import foreign_cpu  # noqa: E402 - bench/ is on sys.path once all.py is loaded


def l7_output(builtin_rps, haproxy_rps, nginx_close):
    def s(rps, p99=2.0, cpu=0.5):
        return {"rps": rps, "p50_ms": 1.0, "p99_ms": p99, "cpu_s_per_10k": cpu, "errors": 0}
    return {"samples": {
        "keep-alive|builtin": [s(builtin_rps[0], 3.0, 0.6), s(builtin_rps[1], 3.0, 0.6)],
        "keep-alive|haproxy": [s(haproxy_rps), s(haproxy_rps)],
        "close|builtin": [s(1000)], "close|nginx": [s(nginx_close)],
        "keep-alive TLS|builtin": [s(900)], "keep-alive TLS|haproxy": [s(1000)]}}


L4_OUTPUT = {"ratio_to_direct": {"direct": 1.0, "l4": 0.62, "l4_lc": 0.2, "l4_lc_group": 0.91,
                                 "l4_lc_counters": 0.6,
                                 "l2": 0.6, "group_ct": 0.8, "l3": 1.01, "group": 0.9,
                                 "proactive": 0.95},
             "p99_ms": {"150": {"lat_rr": 10.0, "lat_lc": 50.0, "lat_lc_group": 11.0,
                                "lat_lc_counters": 12.5},
                        "1000": {"lat_rr": 20.0, "lat_lc": 30.0, "lat_lc_group": 22.0}}}


def test_l7_figures_are_ratios_of_medians():
    got = bench_all.l7_figures(l7_output((800, 1000), 1000, 2000))
    assert got["l7_ka_rps"] == pytest.approx(0.9)       # median(800, 1000) / 1000
    assert got["l7_ka_p99"] == pytest.approx(1.5)
    assert got["l7_ka_cpu"] == pytest.approx(1.2)
    assert got["l7_close_nginx"] == pytest.approx(0.5)
    assert got["l7_tls_rps"] == pytest.approx(0.9)


def test_l4_figures_take_every_path_and_the_p99_ratios():
    got = bench_all.l4_figures(L4_OUTPUT)
    assert got["l4_l4_lc_group"] == 0.91 and got["l4_proactive"] == 0.95
    assert got["p99_flows_150"] == pytest.approx(5.0)
    assert got["p99_group_1000"] == pytest.approx(1.1)
    assert got["p99_counters_150"] == pytest.approx(1.25) and "p99_counters_1000" not in got


def test_topo_figure_from_the_ratio_line():
    out = "round 1 ...\nmedian build+teardown: mn 20.00 s, lblab 14.00 s, ratio lblab/mn 0.70 " \
          "(goal <= 1.00)\n"
    assert bench_all.topo_figures(out) == {"topo": 0.7}
    assert bench_all.topo_figures("crashed") == {"topo": None}


def test_table_says_met_not_met_not_measured_and_loaded(tmp_path):
    figures = {**bench_all.l7_figures(l7_output((1100, 1100), 1000, 2000)),
               **bench_all.l4_figures(L4_OUTPUT)}
    benches = {"l7_mininet": {"status": 0, "loaded": True, "seconds": 60.0, "load_start": 3.1,
                              "load_end": 2.5, "last_line": "done"},
               "l4_connrate": {"status": 0, "loaded": False, "seconds": 90.0,
                               "load_start": 1.0, "load_end": 1.2, "last_line": "x | y"},
               "live_cost": {"status": None, "reason": "skipped by --quick (slow)"}}
    table = bench_all.assemble(figures, benches)
    by_key = {r["key"]: r for r in table}
    assert by_key["l7_ka_rps"]["met"] is True and by_key["l7_ka_rps"]["loaded"] is True
    assert by_key["l7_close_nginx"]["met"] is False
    assert by_key["l4_l4_lc"]["met"] is False and by_key["l4_l4_lc_group"]["met"] is True
    assert by_key["p99_flows_150"]["met"] is False and by_key["p99_group_150"]["met"] is True
    assert by_key["p99_counters_1000"]["met"] is None
    assert by_key["topo"]["met"] is None and by_key["topo"]["value"] is None
    text = bench_all.format_table(table, benches)
    assert "| L7 builtin ÷ HAProxy, keep-alive req/s (1 worker or thread each) | 1.10 | >= 1.0 " \
           "| met | l7_mininet (loaded machine) |" in text
    assert "| 256-host tree build + teardown ÷ `mn` | — | <= 0.5 | not measured |" in text
    assert "| live_cost | skipped | | | | skipped by --quick (slow) |" in text
    assert "x / y" in text                       # a bench's pipe does not break the table
    # every figure of the table has its row
    assert len(table) == 5 + len(bench_all.L4_PATHS) + 2 * len(bench_all.LATENCY_PATHS) + 1
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"rows": table}))
    assert json.loads(path.read_text())["rows"][0]["goal"] == ">= 1.0"


def test_met_handles_nan_and_both_directions():
    assert bench_all.met(float("nan"), (">=", 0.9)) is None
    assert bench_all.met(0.9, (">=", 0.9)) is True
    assert bench_all.met(1.21, ("<=", 1.2)) is False


def test_every_bench_file_is_run_by_make_bench():
    files = {f[:-3] for f in os.listdir(os.path.join(HERE, "..", "..", "bench"))
             if f.endswith(".py") and f != "all.py" and f[:-3] not in bench_all.TOOLS}
    assert files == set(bench_all.BENCHES)


def proc(pid, ppid, comm="python3", netns="net:[1]", cpu=0.0, new=False):
    return (pid, float(pid)), {"pid": pid, "ppid": ppid, "comm": comm, "netns": netns,
                               "cpu": cpu, "new": new}


def table(*procs):
    return dict(procs)


def test_own_processes_are_the_tree_lab_hosts_ovs_and_kernel_threads():
    sample = table(proc(1, 0, "init"), proc(2, 0, "kthreadd"), proc(9, 2, "ksoftirqd/0"),
                   proc(100, 1, "bash"), proc(200, 100, "python3"),          # the bench
                   proc(201, 200, "mnexec"), proc(202, 201, "wrk"),
                   proc(300, 1, "haproxy", netns="net:[7]"),                 # a lab host's daemon
                   proc(400, 1, "ovs-vswitchd"), proc(500, 100, "pytest"))   # someone else
    own = foreign_cpu.own_keys(sample, 200, "net:[1]")
    pids = sorted(k[0] for k in own)
    assert pids == [2, 9, 200, 201, 202, 300, 400]


def test_foreign_cpu_counts_only_other_work_from_the_first_sample_on():
    first = table(proc(200, 1, cpu=5.0), proc(500, 1, "pytest", cpu=100.0),
                  proc(600, 1, "sshd", cpu=3.0))
    second = table(proc(200, 1, cpu=9.0), proc(500, 1, "pytest", cpu=101.5),
                   proc(600, 1, "sshd", cpu=3.0), proc(201, 200, "wrk", cpu=2.0, new=True),
                   proc(700, 1, "make", cpu=0.25, new=True))
    # the bench's child dies; its orphaned grandchild stays the bench's
    third = table(proc(200, 1, cpu=9.5), proc(500, 1, "pytest", cpu=102.0),
                  proc(202, 1, "backend", cpu=1.0, new=True))
    third[(202, 202.0)]["ppid"] = 1
    second[(202, 202.0)] = {"pid": 202, "ppid": 201, "comm": "backend", "netns": "net:[1]",
                            "cpu": 0.5, "new": True}
    total, by_comm = foreign_cpu.foreign_cpu([first, second, third], 200, "net:[1]")
    assert total == pytest.approx(1.5 + 0.25 + 0.5)
    assert by_comm == {"pytest": pytest.approx(2.0), "make": pytest.approx(0.25)}


def test_the_sampler_reads_this_machine():
    here = foreign_cpu.proc_table()
    mine = [p for p in here.values() if p["pid"] == os.getpid()]
    assert mine and mine[0]["cpu"] > 0 and mine[0]["netns"].startswith("net:[")


def test_a_bench_run_alone_warns_only_when_other_work_took_cpu():
    """bench/foreign_cpu.py's warning, which each lab bench prints when run alone (its own
    load, which the load average counted, no longer makes it warn)."""
    warning = foreign_cpu.warning
    assert warning({"foreign_cores": 0.01, "foreign_top": "python 1 s"}) is None
    assert warning({"foreign_cores": foreign_cpu.FOREIGN_LIMIT, "foreign_top": "x 1 s"}) is None
    line = warning({"foreign_cores": 0.35, "foreign_top": "pytest 70 s, make 2 s"})
    assert line.startswith("WARNING: other work took 35 % of a core") and "pytest 70 s" in line
