/* lblab live view: shared helpers (no dependencies; everything hangs off window.LB). */
"use strict";
window.LB = window.LB || {};

(function (LB) {
  const SVG_NS = "http://www.w3.org/2000/svg";

  /* An SVG element with attributes; children appended in order. */
  LB.svg = function (tag, attrs, children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, v);
    }
    for (const c of children || []) node.appendChild(c);
    return node;
  };

  /* An HTML element with attributes (``text`` sets textContent, ``data`` a dataset). */
  LB.el = function (tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") node.textContent = v;
      else if (k === "data") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.appendChild(c);
    return node;
  };

  LB.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  /* GET a JSON endpoint; an error answer throws its one-line "error". */
  LB.getJSON = async function (url) {
    const resp = await fetch(url, { cache: "no-store" });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const why = body && body.error ? body.error : resp.status + " " + resp.statusText;
      throw new Error(url + ": " + why);
    }
    return body;
  };

  /* "s10" < "s9" is wrong: compare names by their text and number parts. */
  LB.natural = function (a, b) {
    const re = /(\d+)|(\D+)/g;
    const pa = String(a).match(re) || [], pb = String(b).match(re) || [];
    for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
      const x = pa[i], y = pb[i];
      const nx = /^\d/.test(x), ny = /^\d/.test(y);
      if (nx && ny && +x !== +y) return +x - +y;
      if (x !== y) return x < y ? -1 : 1;
    }
    return pa.length - pb.length;
  };

  const isNum = (v) => typeof v === "number" && isFinite(v);
  LB.isNum = isNum;

  /* Fixed-point with a unit; "–" for a number the run cannot give (null). */
  LB.fmt = function (v, digits, unit) {
    if (!isNum(v)) return "–";
    return v.toFixed(digits) + (unit ? " " + unit : "");
  };
  LB.fmtInt = function (v) { return isNum(v) ? String(Math.round(v)) : "–"; };
  LB.fmtPct = function (v, digits) {
    return isNum(v) ? (v * 100).toFixed(digits === undefined ? 1 : digits) + " %" : "–";
  };
  LB.fmtBits = function (bps) {
    if (!isNum(bps)) return "–";
    if (bps >= 1e9) return (bps / 1e9).toFixed(2) + " Gbit/s";
    if (bps >= 1e6) return (bps / 1e6).toFixed(2) + " Mbit/s";
    if (bps >= 1e3) return (bps / 1e3).toFixed(1) + " kbit/s";
    return bps.toFixed(0) + " bit/s";
  };
  LB.fmtSec = function (s) {
    if (!isNum(s)) return "–";
    return (s < 0 ? "−" : "") + Math.abs(s).toFixed(1) + " s";
  };

  /* Sets a cell's text and its exact value (data-value: what the browser test reads). */
  LB.setNum = function (node, value, text) {
    node.textContent = text;
    node.dataset.value = isNum(value) ? String(value) : "";
  };

  /* Backend colours: stable by the backend's place in the spec (tab10-like, colour-blind safe
     enough for up to 10; then they repeat). */
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                   "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  LB.colour = function (i) { return PALETTE[i % PALETTE.length]; };

  /* Link colour by utilisation 0..1: idle grey, then blue → purple → orange → red (no muddy
     middle: every step is a distinct hue on white and on a projector). */
  const STOPS = [[0, [196, 202, 211]], [0.02, [59, 111, 214]], [0.35, [142, 68, 173]],
                 [0.7, [232, 89, 12]], [1, [201, 42, 42]]];
  LB.rampColour = function (u) {
    u = Math.max(0, Math.min(1, isNum(u) ? u : 0));
    for (let i = 1; i < STOPS.length; i++) {
      const [u1, c1] = STOPS[i], [u0, c0] = STOPS[i - 1];
      if (u <= u1) {
        const f = (u - u0) / (u1 - u0);
        const c = c0.map((x, k) => Math.round(x + f * (c1[k] - x)));
        return "rgb(" + c.join(",") + ")";
      }
    }
    return "rgb(201,42,42)";
  };
})(window.LB);
