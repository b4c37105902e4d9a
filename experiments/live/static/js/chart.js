/* lblab live view: a small time-series chart in plain SVG (x: seconds of the run). */
"use strict";

(function (LB) {
  const M = { l: 42, r: 10, t: 8, b: 34 };

  function niceStep(span, n) {
    const raw = span / Math.max(1, n);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  /* Draws into ``svg`` (cleared):
       opts.series  [{name, colour, cls, points: [[x, y|null], …]}]  (null breaks the line)
       opts.x0, opts.x1   the x range (s); opts.yUnit the y axis' unit text
       opts.markers [{x, label}] vertical fault markers; opts.cursor x of the replay cursor */
  LB.drawChart = function (svg, opts) {
    LB.clear(svg);
    const W = Math.max(200, svg.clientWidth || 400), H = Math.max(120, svg.clientHeight || 170);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    const x0 = opts.x0, x1 = opts.x1 > opts.x0 ? opts.x1 : opts.x0 + 1;
    let ymax = 0;
    for (const s of opts.series) {
      for (const p of s.points) if (LB.isNum(p[1]) && p[0] >= x0 && p[0] <= x1) ymax = Math.max(ymax, p[1]);
    }
    const ystep = niceStep(ymax > 0 ? ymax : 1, 4);
    const ytop = Math.max(ystep, Math.ceil((ymax * 1.05) / ystep) * ystep);
    const X = (x) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
    const Y = (y) => H - M.b - (y / ytop) * (H - M.t - M.b);

    const grid = LB.svg("g", { class: "grid" });
    for (let y = 0; y <= ytop + 1e-9; y += ystep) {
      grid.appendChild(LB.svg("line", { x1: M.l, x2: W - M.r, y1: Y(y), y2: Y(y) }));
      const t = LB.svg("text", { x: M.l - 4, y: Y(y) + 3, "text-anchor": "end" });
      t.textContent = +y.toPrecision(6);
      grid.appendChild(t);
    }
    const xstep = niceStep(x1 - x0, 6);
    for (let x = Math.ceil(x0 / xstep) * xstep; x <= x1 + 1e-9; x += xstep) {
      const t = LB.svg("text", { x: X(x), y: H - M.b + 12, "text-anchor": "middle" });
      t.textContent = +x.toPrecision(6) + "s";
      grid.appendChild(t);
    }
    if (opts.yUnit) {
      const u = LB.svg("text", { x: 2, y: M.t + 2, "dominant-baseline": "hanging" });
      u.textContent = opts.yUnit;
      grid.appendChild(u);
    }
    svg.appendChild(grid);

    for (const m of opts.markers || []) {
      if (m.x < x0 || m.x > x1) continue;
      const g = LB.svg("g", { class: "marker" });
      g.appendChild(LB.svg("line", { x1: X(m.x), x2: X(m.x), y1: M.t, y2: H - M.b }));
      const t = LB.svg("text", { x: X(m.x) + 3, y: M.t + 8 });
      t.textContent = m.label;
      g.appendChild(t);
      svg.appendChild(g);
    }

    for (const s of opts.series) {
      let d = "", pen = false;
      for (const [x, y] of s.points) {
        if (!LB.isNum(y) || x < x0 || x > x1) { pen = false; continue; }
        d += (pen ? "L" : "M") + X(x).toFixed(1) + " " + Y(y).toFixed(1);
        pen = true;
      }
      if (!d) continue;
      svg.appendChild(LB.svg("path", { class: "series " + (s.cls || ""), d: d,
                                       stroke: s.colour || null, "data-name": s.name }));
    }
    if (LB.isNum(opts.cursor)) {
      svg.appendChild(LB.svg("line", { class: "cursor", x1: X(opts.cursor), x2: X(opts.cursor),
                                       y1: M.t, y2: H - M.b }));
    }

    // Key along the bottom.
    const key = LB.svg("g", { class: "key" });
    let kx = M.l;
    for (const s of opts.series) {
      key.appendChild(LB.svg("line", { x1: kx, x2: kx + 14, y1: H - 8, y2: H - 8,
                                       stroke: s.colour || "#1d2430", "stroke-width": 2.5,
                                       "stroke-dasharray": s.cls === "total" ? "5 3" : null }));
      const t = LB.svg("text", { x: kx + 18, y: H - 4 });
      t.textContent = s.name;
      key.appendChild(t);
      kx += 26 + 7 * s.name.length;
    }
    svg.appendChild(key);
  };
})(window.LB);
