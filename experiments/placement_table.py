"""Where each node ran, for the report of a run across servers (docs/scale.md).

``placement(metas)`` (pure) turns the ``cluster`` entries of the runs' ``meta.json`` into the
report's tables: per placement, which nodes each server ran (with their roles); per run and
server, the measured clock offset, the SSH round trip and channel rate (what a cross-server
link's tunnel rides), the CPU mean, the set-up time and where the L4 controller was reached;
and the cluster's warnings of those runs (a clock offset that matters, a link faster than its
tunnel, a saturated server). ``read_metas(run_dir)`` reads the metas; ``render(section)`` gives
the HTML fragment that ``experiments.html_report`` puts under "The setup".
"""
import glob
import json
import os

import jinja2

from topologies import graphs

# the warnings of experiments.cluster_run.stopped (and topologies.cluster.servers) start so
CLUSTER_WARNINGS = ("the clock of ", "link ", "server ")


def _node_key(name):
    return graphs._node_key(name)


def _roles(meta):
    """``{host: role}`` from a meta (clients, the lb host, backends by name)."""
    roles = {c: "client" for c in meta.get("clients") or []}
    if meta.get("lb"):
        roles[meta["lb"]] = "lb"
    for b in meta.get("backends") or []:
        roles[b["host"]] = f"backend {b['name']}"
    return roles


def _ms(value):
    return None if value is None else round(value * 1000.0, 3) + 0.0    # never -0


def placement(metas):
    """The report's placement section from the runs' metas, or None when no run was a cluster run.

    Args:
        metas (list[dict]): ``meta.json`` of each run (any order).
    Returns:
        dict|None: ``{"placements": [{"runs", "servers": [{"server", "hosts", "switches"}]}],
        "measured": [{"run", "server", "clock_offset_ms", "ssh_rtt_ms", "ssh_rate_mbit",
        "cpu_mean", "setup_s", "controller"}], "cross_links": [...], "warnings": [...]}``.
    """
    cluster_runs = sorted((m for m in metas if m.get("cluster")), key=lambda m: m["run"])
    if not cluster_runs:
        return None
    placements, measured, warnings, cross = [], [], [], {}
    for meta in cluster_runs:
        c = meta["cluster"]
        roles = _roles(meta)
        by_server = {s: {"hosts": [], "switches": []} for s in c["servers"]}
        for node, server in sorted(c["placement"].items(), key=lambda kv: _node_key(kv[0])):
            entry = by_server.setdefault(server, {"hosts": [], "switches": []})
            if node.startswith("h"):        # topologies.graphs: hosts h<N>, switches s<N>
                entry["hosts"].append(f"{node} ({roles[node]})" if node in roles else node)
            else:
                entry["switches"].append(node)
        rows = [{"server": s, "hosts": ", ".join(v["hosts"]) or "–",
                 "switches": ", ".join(v["switches"]) or "–"} for s, v in by_server.items()]
        same = next((p for p in placements if p["servers"] == rows), None)
        if same:
            same["runs"].append(meta["run"])
        else:
            placements.append({"runs": [meta["run"]], "servers": rows})
        ctl = c.get("controller") or {}
        info = c.get("server_info") or {}
        for server in c["servers"]:
            facts = info.get(server) or {}
            cpu = (c.get("cpu") or {}).get(server) or {}
            local = server not in info
            mean = (meta.get("fidelity") or {}).get("cpu_mean") if local else cpu.get("mean")
            measured.append({
                "run": meta["run"], "server": server,
                "clock_offset_ms": 0.0 if local else _ms(facts.get("clock_offset_s")),
                "ssh_rtt_ms": None if local else _ms(facts.get("ssh_rtt_s")),
                "ssh_rate_mbit": None if local else facts.get("ssh_rate_mbit"),
                "cpu_mean": mean, "setup_s": c.get("setup_s"),
                "controller": ((ctl.get("by_server") or {}).get(server) or ctl.get("listen"))
                if ctl else None})
        for link in c.get("cross_links") or []:
            cross.setdefault(link["link"], link)
        for w in (meta.get("fidelity") or {}).get("warnings") or []:
            if w.startswith(CLUSTER_WARNINGS) and w not in warnings:
                warnings.append(w)
    return {"placements": placements, "measured": measured,
            "cross_links": [cross[k] for k in sorted(cross)], "warnings": warnings}


def read_metas(run_dir):
    """Every run's ``meta.json`` under ``run_dir/raw`` (unreadable ones skipped)."""
    metas = []
    for path in sorted(glob.glob(os.path.join(run_dir, "raw", "*", "meta.json"))):
        try:
            with open(path, encoding="utf-8") as fp:
                metas.append(json.load(fp))
        except (OSError, ValueError):
            continue
    return metas


_TEMPLATE = """\
<h3 id="placement">Where each node ran</h3>
{% for p in section.placements %}
<table><caption>Placement of {{ p.runs|length }} run{{ 's' if p.runs|length != 1 }}: {{ p.runs|join(', ') }}</caption>
<tr><th>server</th><th>hosts</th><th>switches</th></tr>
{% for r in p.servers %}<tr><td>{{ r.server }}</td><td>{{ r.hosts }}</td><td>{{ r.switches }}</td></tr>
{% endfor %}</table>
{% endfor %}
{% if section.cross_links %}<p>Links across servers (SSH Ethernet tunnels): {% for l in section.cross_links %}{{ l.link }} ({{ l.servers|join(' – ') }}, {{ '%g Mbit/s' % l.bw_mbit if l.bw_mbit is not none else 'unshaped' }}){{ ', ' if not loop.last }}{% endfor %}.</p>{% endif %}
<table><caption>Measured at each run's start: clock offset against this machine, the SSH channel's round trip and rate (a tunnel's traffic rides it), CPU mean during the run, the cluster's set-up time, where the switches reached the L4 controller</caption>
<tr><th>run</th><th>server</th><th>clock offset ms</th><th>SSH RTT ms</th><th>SSH Mbit/s</th><th>CPU mean %</th><th>set-up s</th><th>controller at</th></tr>
{% for m in section.measured %}<tr><td>{{ m.run }}</td><td>{{ m.server }}</td><td>{{ fmt(m.clock_offset_ms) }}</td><td>{{ fmt(m.ssh_rtt_ms) }}</td><td>{{ fmt(m.ssh_rate_mbit) }}</td><td>{{ fmt(m.cpu_mean) }}</td><td>{{ fmt(m.setup_s) }}</td><td>{{ m.controller or '–' }}</td></tr>
{% endfor %}</table>
{% if section.warnings %}<div class="warn"><ul>{% for w in section.warnings %}<li>{{ w }}</li>{% endfor %}</ul></div>
{% else %}<p class="note">No cluster warning: every clock offset below 1 % of the shortest interval, no cross-server link faster than its tunnel, no server saturated.</p>{% endif %}
"""


def _fmt(value):
    if value is None:
        return "–"
    return f"{value:.3g}" if isinstance(value, float) and abs(value) < 1000 else f"{value:g}"


def render(section):
    """The HTML fragment of a ``placement`` section ("" for None), autoescaped."""
    if not section:
        return ""
    env = jinja2.Environment(autoescape=True)
    return env.from_string(_TEMPLATE).render(section=section, fmt=_fmt)


def html(run_dir):
    """``render(placement(read_metas(run_dir)))``: what the report shows ("" without a cluster)."""
    return render(placement(read_metas(run_dir)))
