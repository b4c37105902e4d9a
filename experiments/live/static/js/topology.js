/* lblab live view: the topology drawn from /api/topology, links coloured and thickened by the
   frame's rates. Layout is layered and deterministic (no physics): switches by their distance
   from the hosts (edge switches lowest, the core on top), hosts in a row under their switch;
   with a single row of switches, the clients go above it and the servers below. */
"use strict";

(function (LB) {
  const ROW_H = 78, PAD_X = 40, PAD_Y = 30, MIN_GAP = 64, MIN_W = 1000;

  /* {id: {x, y}} for the topology's nodes; also returns width and height. */
  LB.layoutTopology = function (topo) {
    const nodes = topo.nodes, byId = {};
    nodes.forEach((n) => { byId[n.id] = n; });
    const adj = {};
    nodes.forEach((n) => { adj[n.id] = []; });
    topo.links.forEach((l) => {
      if (adj[l.src] && adj[l.dst]) { adj[l.src].push(l.dst); adj[l.dst].push(l.src); }
    });
    const switches = nodes.filter((n) => n.kind === "switch").map((n) => n.id);
    const hosts = nodes.filter((n) => n.kind !== "switch").map((n) => n.id);
    switches.sort(LB.natural); hosts.sort(LB.natural);
    const isSw = (id) => byId[id] && byId[id].kind === "switch";

    // Height of each switch: hops (through switches) to the nearest switch that has a host.
    const height = {};
    let frontier = switches.filter((s) => adj[s].some((m) => !isSw(m)));
    if (frontier.length === 0) frontier = switches.slice(0, 1);
    frontier.forEach((s) => { height[s] = 0; });
    while (frontier.length) {
      const next = [];
      for (const s of frontier) {
        for (const m of adj[s]) {
          if (isSw(m) && height[m] === undefined) { height[m] = height[s] + 1; next.push(m); }
        }
      }
      frontier = next;
    }
    switches.forEach((s) => { if (height[s] === undefined) height[s] = 0; });
    const top = switches.reduce((m, s) => Math.max(m, height[s]), 0);

    const hostSwitch = {};
    hosts.forEach((h) => {
      const sws = adj[h].filter(isSw).sort(LB.natural);
      hostSwitch[h] = sws.length ? sws[0] : null;
    });

    // Rows from the top: switch rows (height top..0), then the hosts' row(s).
    const rows = [];
    const singleRow = top === 0;
    const above = singleRow ? hosts.filter((h) => byId[h].role === "client") : [];
    const below = hosts.filter((h) => above.indexOf(h) < 0);
    if (above.length && below.length) rows.push(above);
    for (let h = top; h >= 0; h--) rows.push(switches.filter((s) => height[s] === h));
    rows.push(above.length && below.length ? below : hosts);

    // Hosts: ordered by (their switch's name, their name), evenly spaced in their row(s).
    // Switches, row by row from height 0 up: above the mean x of their neighbours one row
    // lower (their hosts, or the switches below them), kept at least MIN_GAP apart.
    const swIndex = {};
    switches.forEach((s, i) => { swIndex[s] = i; });
    const hostKey = (h) => (hostSwitch[h] ? swIndex[hostSwitch[h]] : 1e9);
    const widest = rows.reduce((m, r) => Math.max(m, r.length), 1);
    const width = Math.max(MIN_W, PAD_X * 2 + (widest - 1) * MIN_GAP);
    const pos = {};
    const spread = (row, ri) => {
      const n = row.length;
      row.forEach((id, i) => {
        pos[id] = { x: n === 1 ? width / 2 : PAD_X + (i * (width - 2 * PAD_X)) / (n - 1),
                    y: PAD_Y + ri * ROW_H };
      });
    };
    // Keeps a row's x in order, at least MIN_GAP apart and inside the padding (else spread).
    const settle = (row, ri, xs) => {
      for (let i = 1; i < xs.length; i++) xs[i] = Math.max(xs[i], xs[i - 1] + MIN_GAP);
      const over = xs[xs.length - 1] - (width - PAD_X);
      if (over > 0) for (let i = 0; i < xs.length; i++) xs[i] -= over;
      for (let i = xs.length - 2; i >= 0; i--) xs[i] = Math.min(xs[i], xs[i + 1] - MIN_GAP);
      if (xs[0] < PAD_X) { spread(row, ri); return; }
      row.forEach((id, i) => { pos[id] = { x: xs[i], y: PAD_Y + ri * ROW_H }; });
    };
    rows.forEach((row) => {
      if (row.length && !isSw(row[0])) row.sort((a, b) => hostKey(a) - hostKey(b) || LB.natural(a, b));
    });
    if (singleRow) {
      // One row of switches (single, linear, dumbbell, lb_lab): switches evenly spread, each
      // switch's hosts grouped around it, clients above and servers below.
      const ri = rows.findIndex((r) => r.length && isSw(r[0]));
      const seg = (width - 2 * PAD_X) / switches.length;
      rows[ri].forEach((sw, i) => { pos[sw] = { x: PAD_X + (i + 0.5) * seg, y: PAD_Y + ri * ROW_H }; });
      rows.forEach((row, rj) => {
        if (!row.length || isSw(row[0])) return;
        const groups = {};
        row.forEach((hst) => { (groups[hostSwitch[hst]] = groups[hostSwitch[hst]] || []).push(hst); });
        const xs = row.map((hst) => {
          const g = groups[hostSwitch[hst]], k = g.length, i = g.indexOf(hst);
          const gap = Math.min(200, k > 1 ? seg / k : seg);
          return (pos[hostSwitch[hst]] ? pos[hostSwitch[hst]].x : width / 2) + (i - (k - 1) / 2) * gap;
        });
        settle(row, rj, xs);
      });
      return { pos: pos, width: width, height: PAD_Y * 2 + (rows.length - 1) * ROW_H + 14 };
    }
    rows.forEach((row, ri) => { if (row.length && !isSw(row[0])) spread(row, ri); });
    for (let h = 0; h <= top; h++) {
      const ri = rows.findIndex((r) => r.length && isSw(r[0]) && height[r[0]] === h);
      if (ri < 0) continue;
      const row = rows[ri];
      const want = {};
      for (const s of row) {
        const xs = adj[s].filter((m) => pos[m] && (isSw(m) ? height[m] === h - 1 : true))
          .map((m) => pos[m].x);
        want[s] = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
      }
      if (row.some((s) => isNaN(want[s]))) { spread(row, ri); continue; }
      row.sort((a, b) => want[a] - want[b] || LB.natural(a, b));
      settle(row, ri, row.map((s) => want[s]));
    }
    return { pos: pos, width: width, height: PAD_Y * 2 + (rows.length - 1) * ROW_H + 14 };
  };

  /* Draws the topology into ``container``; returns an object whose update(frame) recolours. */
  LB.drawTopology = function (container, topo, backendIndex) {
    const lay = LB.layoutTopology(topo);
    const svg = LB.svg("svg", { viewBox: "0 0 " + lay.width + " " + lay.height,
                                role: "img", "aria-label": "topology",
                                "data-nodes": topo.nodes.length,
                                "data-links": topo.links.length });
    const gLinks = LB.svg("g", { class: "links" });
    const gLabels = LB.svg("g", { class: "linklabels" });
    const gNodes = LB.svg("g", { class: "nodes" });
    svg.append(gLinks, gLabels, gNodes);
    const linkEls = {}, labelEls = {};
    const showLabels = topo.links.length <= 16;
    for (const l of topo.links) {
      const a = lay.pos[l.src], b = lay.pos[l.dst];
      if (!a || !b) continue;
      const title = LB.svg("title");
      title.textContent = l.src + " – " + l.dst;
      const line = LB.svg("line", { class: "link", x1: a.x, y1: a.y, x2: b.x, y2: b.y,
                                    stroke: LB.rampColour(0), "stroke-width": 1.5,
                                    "data-id": l.id, "data-src": l.src, "data-dst": l.dst },
                          [title]);
      gLinks.appendChild(line);
      linkEls[l.id] = { line: line, title: title, link: l };
      if (showLabels) {
        // Nearer the far end than the middle: links fanning out of a switch keep apart there.
        const f = 0.62;
        const t = LB.svg("text", { class: "linklabel", x: a.x + f * (b.x - a.x) + 4,
                                   y: a.y + f * (b.y - a.y) - 5 });
        gLabels.appendChild(t);
        labelEls[l.id] = t;
      }
    }
    const nodeEls = {};
    for (const n of topo.nodes) {
      const p = lay.pos[n.id];
      if (!p) continue;
      const role = n.kind === "switch" ? "switch" : (n.role || "host");
      const g = LB.svg("g", { class: "node " + role, transform: "translate(" + p.x + "," + p.y + ")",
                              "data-id": n.id, "data-kind": n.kind, "data-role": role,
                              "data-backend": n.backend || null });
      const title = LB.svg("title");
      title.textContent = n.id + (n.ip ? " " + n.ip : "") + (n.role ? " (" + n.role + ")" : "")
        + (n.backend ? " backend " + n.backend : "");
      g.appendChild(title);
      if (n.kind === "switch") {
        g.appendChild(LB.svg("rect", { x: -18, y: -11, width: 36, height: 22, rx: 4 }));
        const t = LB.svg("text", { y: 4 }); t.textContent = n.id; g.appendChild(t);
      } else {
        const c = LB.svg("circle", { r: 11 });
        if (n.backend && backendIndex && backendIndex[n.backend] !== undefined) {
          c.style.stroke = LB.colour(backendIndex[n.backend]);
          c.style.strokeWidth = "3";
        }
        g.appendChild(c);
        const t = LB.svg("text", { y: 26 }); t.textContent = n.id; g.appendChild(t);
        const sub = LB.svg("text", { class: "sub", y: 39 });
        sub.textContent = n.backend || (n.role === "lb" ? "lb" : (n.ip || ""));
        g.appendChild(sub);
        const st = LB.svg("text", { class: "state", y: -15 }); g.appendChild(st);
        nodeEls[n.id] = { g: g, state: st, node: n };
      }
      gNodes.appendChild(g);
    }
    LB.clear(container).appendChild(svg);

    return {
      svg: svg,
      /* Colour and thicken each link by its rate: against bw_mbit where the spec gives one,
         else against the busiest link of the frame. Returns the scale's text. */
      update: function (frame) {
        const rates = {};
        for (const r of (frame && frame.links) || []) rates[r.id] = r;
        let peak = 0;
        for (const r of Object.values(rates)) peak = Math.max(peak, r.fwd_bps || 0, r.rev_bps || 0);
        for (const [id, e] of Object.entries(linkEls)) {
          const r = rates[id];
          const bps = r ? Math.max(r.fwd_bps || 0, r.rev_bps || 0) : null;
          const cap = e.link.bw_mbit ? e.link.bw_mbit * 1e6 : peak;
          const u = bps !== null && cap > 0 ? bps / cap : 0;
          e.line.setAttribute("stroke", r ? LB.rampColour(u) : LB.rampColour(0));
          e.line.setAttribute("stroke-width", (1.5 + 8.5 * Math.min(1, u)).toFixed(2));
          e.line.setAttribute("stroke-dasharray", r ? "" : "3 4");
          e.line.dataset.bps = bps === null ? "" : String(bps);
          e.title.textContent = e.link.src + " → " + e.link.dst + ": "
            + (r ? LB.fmtBits(r.fwd_bps) + ", " + e.link.dst + " → " + e.link.src + ": "
              + LB.fmtBits(r.rev_bps) : "not read")
            + (e.link.bw_mbit ? " (link " + e.link.bw_mbit + " Mbit/s)" : "");
          if (labelEls[id]) labelEls[id].textContent = r && bps > 0 ? LB.fmtBits(bps) : "";
        }
        // Backends drained or killed by a fault so far, marked on their hosts.
        const marks = {};
        for (const f of (frame && frame.faults) || []) {
          if (f.skipped || f.failed) continue;
          if (f.action === "drain_backend") marks[f.target] = "drained";
          else if (f.action === "kill_backend") marks[f.target] = "down";
          else if (f.action === "restore_backend") delete marks[f.target];
        }
        for (const e of Object.values(nodeEls)) {
          const m = e.node.backend ? marks[e.node.backend] : undefined;
          e.g.classList.toggle("drained", m === "drained");
          e.g.classList.toggle("down", m === "down");
          e.state.textContent = m || "";
        }
        const bwGiven = topo.links.some((l) => l.bw_mbit);
        return bwGiven ? "colour: share of each link's bandwidth"
          : "colour: against the busiest link (" + LB.fmtBits(peak) + ")";
      },
    };
  };
})(window.LB);
