/* lblab live view: one frame (docs/live.md, FRAME) into the page's panels and charts. */
"use strict";

(function (LB) {
  const $ = (id) => document.getElementById(id);
  const CHART_WINDOW_S = 60;

  /* The header: run, balancer, repetition, place in the batch, phase, time left. */
  LB.showRun = function (run, frame) {
    const r = (frame && frame.run) || {};
    $("run-name").textContent = r.run || (run && run.run) || "–";
    const b = (run && run.balancer) || {};
    $("run-balancer").textContent = [b.name, b.layer, b.mode || b.engine, b.algorithm]
      .filter(Boolean).join(" · ");
    const rep = r.rep !== undefined ? r.rep : run && run.rep;
    $("run-rep").textContent = rep === undefined || rep === null ? "–" : String(rep);
    const index = r.index !== undefined ? r.index : run && run.index;
    const runs = r.runs !== undefined ? r.runs : run && run.runs;
    $("run-index").textContent = LB.isNum(index) ? (index + 1) + " of " + runs : "–";
    $("run-phase").textContent = r.phase || (run && run.status) || "–";
    $("run-left").textContent = LB.fmtSec(r.time_left_s);
    $("run-elapsed").textContent = frame ? LB.fmtSec(frame.elapsed_s) : "–";
  };

  function row(tbody, key, cells) {
    let tr = tbody.querySelector('tr[data-key="' + CSS.escape(key) + '"]');
    if (!tr) {
      tr = LB.el("tr", { data: { key: key } });
      cells.forEach(() => tr.appendChild(LB.el("td")));
      tbody.appendChild(tr);
    }
    return tr;
  }

  /* Rebuilds a two-column table {name: value} (rows in name order). */
  function keyed(tbody, obj, field, render) {
    LB.clear(tbody);
    for (const k of Object.keys(obj || {}).sort(LB.natural)) {
      const tr = LB.el("tr", { data: { key: k } });
      tr.appendChild(LB.el("td", { text: k }));
      const td = LB.el("td", { data: { field: field, name: k } });
      render(td, obj[k]);
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  LB.showFrame = function (ctx, frame) {
    const backends = ctx.backends;
    // Rates, counts and shares (share of the requests answered so far).
    const tbody = $("rates").querySelector("tbody");
    const fb = frame.backends || {};
    let counted = 0;
    for (const b of backends) counted += (fb[b] && fb[b].requests) || 0;
    backends.forEach((b, i) => {
      const tr = row(tbody, b, [0, 1, 2, 3]);
      tr.dataset.backend = b;
      const [name, rps, req, share] = tr.children;
      if (!name.firstChild) {
        name.append(LB.el("span", { class: "swatch", style: "background:" + LB.colour(i) }),
                    document.createTextNode(b));
      }
      const v = fb[b] || {};
      rps.className = "rps"; req.className = "requests"; share.className = "share";
      rps.id = "rate-" + b;
      LB.setNum(rps, v.rps, LB.fmt(v.rps, 1));
      LB.setNum(req, v.requests, LB.fmtInt(v.requests));
      const sh = counted ? (v.requests || 0) / counted : null;
      LB.setNum(share, sh, LB.fmtPct(sh));
    });
    LB.setNum($("total-rps"), frame.total_rps, LB.fmt(frame.total_rps, 1));
    LB.setNum($("total-requests"), counted, LB.fmtInt(counted));

    const lat = frame.latency_ms || {};
    LB.setNum($("lat-p50"), lat.p50, LB.fmt(lat.p50, 2, "ms"));
    LB.setNum($("lat-p99"), lat.p99, LB.fmt(lat.p99, 2, "ms"));
    $("lat-n").textContent = LB.fmtInt(lat.n);

    const errs = frame.errors || {};
    keyed($("errors").querySelector("tbody"), errs, "errors",
          (td, n) => LB.setNum(td, n, LB.fmtInt(n)));
    $("errors-none").hidden = Object.keys(errs).length > 0;

    const faults = frame.faults || [];
    const ol = LB.clear($("faults"));
    for (const f of faults) {
      const what = f.action + (f.target ? " " + f.target : "")
        + (f.value !== null && f.value !== undefined ? " = " + f.value : "");
      const why = f.failed ? " — failed: " + f.failed : f.skipped ? " — skipped: " + f.skipped : "";
      ol.appendChild(LB.el("li", { class: f.failed ? "failed" : f.skipped ? "skipped" : null,
                                   data: { action: f.action || "", target: f.target || "",
                                           elapsed: String(f.elapsed_s) },
                                   text: LB.fmtSec(f.elapsed_s) + "  " + what + why }));
    }
    $("faults-none").hidden = faults.length > 0;

    const l4 = frame.l4;
    $("l4-panel").hidden = !l4;
    if (l4) {
      LB.setNum($("l4-pin-rate"), l4.packet_in_rate, LB.fmt(l4.packet_in_rate, 1));
      $("l4-pins").textContent = LB.fmtInt(l4.packet_ins);
      keyed($("l4-flows").querySelector("tbody"), l4.flows, "flows",
            (td, n) => LB.setNum(td, n, LB.fmtInt(n)));
      const ct = l4.conntrack || {};
      keyed($("l4-conntrack").querySelector("tbody"),
            Object.keys(ct).length ? ct : { "(not used by this balancer)": null }, "conntrack",
            (td, n) => LB.setNum(td, n, LB.fmtInt(n)));
    }
    const l7 = frame.l7;
    $("l7-panel").hidden = !l7;
    if (l7) {
      /* What each engine offers: the builtin proxy and HAProxy per backend (in flight,
         health; HAProxy also its queue), nginx open source only its connections. */
      $("l7-engine").textContent = l7.engine ? "(" + l7.engine + ")" : "";
      LB.setNum($("l7-request-rate"), l7.request_rate, LB.fmt(l7.request_rate, 1));
      LB.setNum($("l7-clients"), l7.clients, LB.fmtInt(l7.clients));
      LB.setNum($("l7-hit-rate"), l7.cache_hit_rate, LB.fmtPct(l7.cache_hit_rate));
      $("l7-cache").textContent = l7.cache
        ? (l7.cache.hits || 0) + " hits, " + (l7.cache.misses || 0) + " misses" : "no cache";
      const c = l7.connections;
      $("l7-connections").hidden = !c;
      $("l7-connections").textContent = c
        ? "connections: " + c.reading + " reading, " + c.writing + " writing, "
          + c.waiting + " idle keep-alive" : "";
      const queued = l7.queued || null;
      for (const th of document.querySelectorAll(".l7-queued")) th.hidden = !queued;
      const tb = LB.clear($("l7-backends").querySelector("tbody"));
      const perBackend = Object.keys(l7.in_flight || {}).length
        + Object.keys(l7.health || {}).length > 0;
      $("l7-backends").hidden = !perBackend;
      $("l7-none").hidden = perBackend;
      $("l7-none").textContent = l7.engine === "nginx"
        ? "nginx open source reports no per-backend state (stub_status: connections only)"
        : "no per-backend state in this frame";
      const names = perBackend ? new Set(backends.concat(Object.keys(l7.in_flight || {}),
                                                         Object.keys(l7.health || {}))) : [];
      for (const b of Array.from(names).sort(LB.natural)) {
        const inf = (l7.in_flight || {})[b], h = (l7.health || {})[b];
        const hc = h === "up" ? "health-up" : h === "down" ? "health-down" : "health-other";
        const td = LB.el("td", { data: { field: "in_flight", name: b } });
        LB.setNum(td, inf, LB.fmtInt(inf));
        const cells = [LB.el("td", { text: b }), td];
        if (queued) {
          const tq = LB.el("td", { data: { field: "queued", name: b } });
          LB.setNum(tq, queued[b], LB.fmtInt(queued[b]));
          cells.push(tq);
        }
        cells.push(LB.el("td", { class: h ? hc : null, text: h || "–" }));
        tb.appendChild(LB.el("tr", { data: { key: b } }, cells));
      }
    }
  };

  /* The charts from the frames so far (live: the last 60 s; replay: the whole run and a
     cursor at the frame shown). */
  LB.showCharts = function (ctx, frames, shown) {
    if (!frames.length) return;
    const last = frames[frames.length - 1].elapsed_s;
    let x0, x1;
    if (ctx.mode === "replay") {
      x0 = frames[0].elapsed_s; x1 = last;
    } else {
      x1 = Math.max(last, frames[0].elapsed_s + 10); x0 = Math.max(frames[0].elapsed_s, x1 - CHART_WINDOW_S);
    }
    const faults = (shown || frames[frames.length - 1]).faults || [];
    const markers = ((ctx.mode === "replay" ? frames[frames.length - 1].faults : faults) || [])
      .filter((f) => !f.skipped && !f.failed)
      .map((f) => ({ x: f.elapsed_s, label: f.action.replace("_backend", "") + " " + (f.target || "") }));
    const cursor = ctx.mode === "replay" && shown ? shown.elapsed_s : null;
    const series = ctx.backends.map((b, i) => ({
      name: b, colour: LB.colour(i),
      points: frames.map((f) => [f.elapsed_s, f.backends && f.backends[b] ? f.backends[b].rps : null]),
    }));
    series.push({ name: "total", cls: "total", points: frames.map((f) => [f.elapsed_s, f.total_rps]) });
    LB.drawChart($("rates-chart"), { series: series, x0: x0, x1: x1, markers: markers,
                                     cursor: cursor, yUnit: "req/s" });
    const lat = (k) => frames.map((f) => [f.elapsed_s, f.latency_ms ? f.latency_ms[k] : null]);
    LB.drawChart($("latency-chart"), {
      series: [{ name: "p50", colour: "#2f6fdb", points: lat("p50") },
               { name: "p99", colour: "#d12f2f", points: lat("p99") }],
      x0: x0, x1: x1, markers: markers, cursor: cursor, yUnit: "ms" });
  };

  /* The measurement window's numbers (/api/summary): this run, and the configuration's mean
     over its ok repetitions as summary.csv has it. Cells carry data-value (exact). */
  LB.showSummary = function (ctx, summary) {
    const panel = $("summary-panel");
    panel.hidden = !summary;
    if (!summary) return;
    const mean = summary.config_mean || null;
    $("summary-mean-head").hidden = !mean;
    const tbody = LB.clear($("summary").querySelector("tbody"));
    const line = (label, field, get, fmt, extra) => {
      const tr = LB.el("tr", { data: Object.assign({ field: field }, extra || {}) });
      tr.appendChild(LB.el("th", { text: label }));
      for (const [which, src] of [["run", summary], ["mean", mean]]) {
        if (which === "mean" && !mean) continue;
        const v = src ? get(src) : null;
        const td = LB.el("td", { data: { which: which, field: field } });
        LB.setNum(td, v, fmt(v));
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    };
    const section = (label) => tbody.appendChild(
      LB.el("tr", { class: "section" }, [LB.el("th", { colspan: "3", text: label })]));
    section("ok requests answered, by backend, and their share");
    const names = new Set(ctx.backends.concat(Object.keys(summary.requests || {}),
                                              Object.keys((mean && mean.requests) || {})));
    const sorted = Array.from(names).sort(LB.natural);
    const count = (v) => LB.fmt(v, Number.isInteger(v) ? 0 : 2);
    for (const b of sorted) {
      line(b, "requests", (s) => (s.requests || {})[b], count, { backend: b });
    }
    // The run's share as runs.csv's share_<b> (of the requests with a known backend); the
    // mean's as summary.csv's share_<b>_mean (the mean of the runs' shares).
    const runShare = (s, b) => {
      const req = s.requests || {};
      const n = Object.values(req).reduce((a, v) => a + (LB.isNum(v) ? v : 0), 0);
      return n && LB.isNum(req[b]) ? req[b] / n : null;
    };
    for (const b of sorted) {
      line("share " + b, "share", (s) => (s === summary ? runShare(s, b) : (s.share || {})[b]),
           (v) => LB.fmtPct(v, 2), { backend: b });
    }
    line("total ok", "total", (s) => (s.total !== undefined ? s.total : s.ok), count);
    section("throughput and latency");
    line("throughput", "throughput_rps", (s) => s.throughput_rps, (v) => LB.fmt(v, 2, "req/s"));
    line("latency p50", "latency_p50_ms", (s) => (s.latency_ms || {}).p50, (v) => LB.fmt(v, 3, "ms"));
    line("latency p99", "latency_p99_ms", (s) => (s.latency_ms || {}).p99, (v) => LB.fmt(v, 3, "ms"));
    const kinds = new Set(Object.keys(summary.errors || {}).concat(Object.keys((mean && mean.errors) || {})));
    if (kinds.size) section("errors, by kind");
    for (const k of Array.from(kinds).sort()) {
      line(k, "errors", (s) => (s.errors ? s.errors[k] || 0 : null), count,
           { kind: k });
    }
  };
})(window.LB);
