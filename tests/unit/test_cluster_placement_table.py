"""The report's placement table (experiments/placement_table.py): where each node ran, each
server's measured clock offset, SSH round trip and rate, CPU, and the cluster's warnings."""
import json

from experiments import placement_table as T


def _meta(run, offset_s=0.000012, rate=135.5, warnings=(), controller=None):
    cluster = {
        "servers": ["localhost", "server2"],
        "placement": {"h1": "localhost", "h2": "localhost", "s1": "localhost",
                      "h3": "server2", "h4": "server2", "h10": "server2", "s2": "server2"},
        "setup_s": 5.9,
        "server_info": {"server2": {"clock_offset_s": offset_s, "ssh_rtt_s": 0.00012,
                                    "ssh_rate_mbit": rate}},
        "cross_links": [{"link": "s1-s2", "servers": ["localhost", "server2"], "bw_mbit": None}],
        "cpu": {"server2": {"mean": 38.8, "max": 70.0, "n": 20}},
    }
    if controller:
        cluster["controller"] = controller
    return {"run": run, "clients": ["h1", "h2"], "lb": "h3",
            "backends": [{"name": "b1", "host": "h4"}, {"name": "b2", "host": "h10"}],
            "fidelity": {"cpu_mean": 41.3, "warnings": list(warnings)}, "cluster": cluster}


def test_no_cluster_run_gives_no_section_and_no_html():
    assert T.placement([{"run": "a-r1", "fidelity": {"warnings": []}}]) is None
    assert T.render(None) == ""


def test_each_server_lists_its_hosts_with_their_roles_and_its_switches_in_node_order():
    section = T.placement([_meta("x-r2"), _meta("x-r1")])
    (only,) = section["placements"]          # the same placement in both runs: one table
    assert only["runs"] == ["x-r1", "x-r2"]
    assert only["servers"] == [
        {"server": "localhost", "hosts": "h1 (client), h2 (client)", "switches": "s1"},
        {"server": "server2", "hosts": "h3 (lb), h4 (backend b1), h10 (backend b2)",
         "switches": "s2"}]
    assert [l["link"] for l in section["cross_links"]] == ["s1-s2"]


def test_measurements_per_run_and_server_come_from_meta_in_ms():
    meta = _meta("x-r1", offset_s=-0.0025, rate=88.0,
                 controller={"listen": "10.0.0.5", "port": 6653,
                             "by_server": {"server2": "10.0.0.5"}})
    rows = T.placement([meta])["measured"]
    here, there = rows
    assert here == {"run": "x-r1", "server": "localhost", "clock_offset_ms": 0.0,
                    "ssh_rtt_ms": None, "ssh_rate_mbit": None, "cpu_mean": 41.3,
                    "setup_s": 5.9, "controller": "10.0.0.5"}
    assert there["clock_offset_ms"] == -2.5 and there["ssh_rtt_ms"] == 0.12
    assert there["ssh_rate_mbit"] == 88.0 and there["cpu_mean"] == 38.8
    assert there["controller"] == "10.0.0.5"


def test_only_the_cluster_warnings_are_repeated_once_each():
    clock = "the clock of server2 is +40.0 ms off this machine's, more than 1% of ..."
    link = "link s1-s2 crosses servers (localhost - server2) and is unshaped, faster ..."
    other = "host CPU was saturated (mean 95% ...)"
    section = T.placement([_meta("x-r1", warnings=[clock, other]),
                           _meta("x-r2", warnings=[clock, link])])
    assert section["warnings"] == [clock, link]


def test_different_placements_get_their_own_tables():
    moved = _meta("x-r2")
    moved["cluster"]["placement"]["h4"] = "localhost"
    section = T.placement([_meta("x-r1"), moved])
    assert [p["runs"] for p in section["placements"]] == [["x-r1"], ["x-r2"]]


def test_the_html_shows_the_tables_escaped_and_reads_the_results_folder(tmp_path):
    meta = _meta("x-r1", warnings=["server <b>2</b>'s CPU was saturated"])
    run = tmp_path / "raw" / "x-r1"
    run.mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "raw" / "broken").mkdir()
    (tmp_path / "raw" / "broken" / "meta.json").write_text("{")
    html = T.html(str(tmp_path))
    assert 'id="placement"' in html
    assert "<td>server2</td><td>h3 (lb), h4 (backend b1), h10 (backend b2)</td><td>s2</td>" \
        in html
    assert "<td>135</td>" in html or "<td>136</td>" in html      # the SSH rate, 3 digits
    assert "&lt;b&gt;2&lt;/b&gt;" in html and "<b>2</b>" not in html
    assert "s1-s2 (localhost – server2, unshaped)" in html


def test_the_report_page_carries_the_section(tmp_path):
    from experiments import html_report
    run = tmp_path / "raw" / "x-r1"
    run.mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps(_meta("x-r1")))
    summary = {"configs": [], "runs": []}
    path = html_report.render_html(str(tmp_path), summary, [], [], {"spec": {"name": "c"}})
    with open(path, encoding="utf-8") as fp:
        page = fp.read()
    assert 'id="placement"' in page and "h10 (backend b2)" in page


def test_an_offset_that_rounds_to_nothing_is_shown_as_0_not_minus_0():
    (_, there) = T.placement([_meta("x-r1", offset_s=-4e-7)])["measured"]
    assert str(there["clock_offset_ms"]) == "0.0"
