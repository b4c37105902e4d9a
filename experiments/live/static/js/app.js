/* lblab live view: the page's life. Live: /api/run, /api/topology, /api/frames (the run so far),
   then one frame a second from /events (SSE). Replay (lblab view): a run picker and a time
   slider over /api/frames, and /api/summary's measurement window. Contract: docs/live.md. */
"use strict";

(function (LB) {
  const $ = (id) => document.getElementById(id);
  const MAX_FRAMES = 3600;
  const ctx = { mode: null, run: null, runs: [], topo: null, drawn: null, backends: [],
                frames: [], shown: null, summary: null, playing: null, pending: false };
  LB.ctx = ctx;

  function setState(s, why) {
    document.body.dataset.state = s;
    const c = $("conn");
    c.className = "conn " + (s === "streaming" || s === "replay" ? "up" : s === "error" ? "down" : "");
    c.textContent = why || s;
  }

  function backendsOf(topo) {
    return topo.nodes.filter((n) => n.backend).map((n) => n.backend).sort(LB.natural);
  }

  async function loadTopology(name) {
    const topo = await LB.getJSON("api/topology?run=" + encodeURIComponent(name));
    if (!ctx.run || ctx.run.run !== name) return;       // a newer run came meanwhile
    ctx.topo = topo;
    ctx.backends = backendsOf(topo);
    const index = {};
    ctx.backends.forEach((b, i) => { index[b] = i; });
    ctx.drawn = LB.drawTopology($("topology"), topo, index);
    LB.clear($("rates").querySelector("tbody"));
    if (ctx.mode === "live") document.body.dataset.run = name;
  }

  /* Render at most once per animation frame (SSE can burst after a stall). */
  function render() {
    if (ctx.pending) return;
    ctx.pending = true;
    requestAnimationFrame(() => {
      ctx.pending = false;
      const f = ctx.shown;
      LB.showRun(ctx.run, f);
      if (f) {
        LB.showFrame(ctx, f);
        $("topo-scale").textContent = ctx.drawn ? ctx.drawn.update(f) : "";
      }
      LB.showCharts(ctx, ctx.frames, f);
      document.body.dataset.frames = String(ctx.frames.length);
      document.body.dataset.elapsed = f ? String(f.elapsed_s) : "";
    });
  }

  // --- live -----------------------------------------------------------------------------
  // The stream starts with the current run ("event: run") and all its frames so far, and
  // sends each new run the same way: the page needs no other history. A frame already shown
  // (same t, after a reconnect) is skipped.
  function newLiveRun(info) {
    const same = ctx.run && ctx.run.run === info.run && (ctx.topo || ctx.loading === info.run);
    ctx.run = info;
    ctx.loading = info.run;
    if (same) return;
    ctx.frames = [];
    ctx.shown = null;
    ctx.drawn = null;
    loadTopology(info.run).then(render).catch(fail);
  }

  function startLive() {
    render();
    const es = new EventSource("events");
    es.onopen = () => setState("streaming", "live");
    es.onerror = () => {                  // EventSource retries by itself
      const r = ctx.shown && ctx.shown.run;
      const ended = r && r.index + 1 >= r.runs && (r.phase === "done" || r.phase === "drain"
                                                    || r.time_left_s <= 0);
      setState("reconnecting", ended ? "the batch has ended" : "reconnecting…");
    };
    es.addEventListener("run", (ev) => newLiveRun(JSON.parse(ev.data)));
    es.addEventListener("frame", (ev) => {
      const f = JSON.parse(ev.data);
      if (!ctx.run || (f.run && f.run.run !== ctx.run.run)) return;
      const last = ctx.frames[ctx.frames.length - 1];
      if (last && f.t <= last.t) return;
      ctx.frames.push(f);
      if (ctx.frames.length > MAX_FRAMES) ctx.frames.splice(0, ctx.frames.length - MAX_FRAMES);
      ctx.shown = f;
      render();
    });
  }

  // --- replay ---------------------------------------------------------------------------
  function frameAt(t) {
    // The last frame whose elapsed_s <= t (frames are in time order).
    let lo = 0, hi = ctx.frames.length - 1, best = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ctx.frames[mid].elapsed_s <= t + 1e-9) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return ctx.frames[best] || null;
  }

  function setSlider() {
    const s = $("replay-slider");
    if (!ctx.frames.length) { s.min = 0; s.max = 0; s.value = 0; s.disabled = true; return; }
    s.disabled = false;
    s.min = Math.floor(ctx.frames[0].elapsed_s);
    s.max = Math.ceil(ctx.frames[ctx.frames.length - 1].elapsed_s);
    s.step = 1;
  }

  function seek(t) {
    const s = $("replay-slider");
    s.value = t;
    ctx.shown = frameAt(Number(s.value));
    $("replay-time").textContent = ctx.shown
      ? LB.fmtSec(ctx.shown.elapsed_s) + " of " + LB.fmtSec(ctx.frames[ctx.frames.length - 1].elapsed_s)
      : "no frames";
    const h = "#run=" + encodeURIComponent(ctx.run ? ctx.run.run : "") + "&t=" + s.value;
    if (location.hash !== h) history.replaceState(null, "", h);
    render();
  }

  function stop() {
    if (ctx.playing) { clearInterval(ctx.playing); ctx.playing = null; }
    $("replay-play").textContent = "▶";
  }

  function play() {
    const s = $("replay-slider");
    if (ctx.playing) { stop(); return; }
    if (Number(s.value) >= Number(s.max)) seek(s.min);
    $("replay-play").textContent = "❚❚";
    ctx.playing = setInterval(() => {
      if (Number(s.value) >= Number(s.max)) { stop(); return; }
      seek(Number(s.value) + 1);
    }, 1000);
  }

  async function selectReplayRun(name, t) {
    stop();
    setState("loading", "loading…");
    delete document.body.dataset.run;
    ctx.run = ctx.runs.find((r) => r.run === name) || ctx.runs[0] || null;
    if (!ctx.run) { setState("error", "this folder has no runs"); return; }
    $("replay-run").value = ctx.run.run;
    const token = ctx.selecting = (ctx.selecting || 0) + 1;   // a newer pick wins
    const q = "?run=" + encodeURIComponent(ctx.run.run);
    await loadTopology(ctx.run.run);
    const got = await LB.getJSON("api/frames" + q);
    let summary = null;
    try { summary = await LB.getJSON("api/summary" + q); } catch (e) { summary = null; }
    if (token !== ctx.selecting) return;
    ctx.frames = (got && got.frames) || [];
    ctx.summary = summary;
    LB.showSummary(ctx, ctx.summary);
    setSlider();
    const s = $("replay-slider");
    seek(t !== undefined && t !== null && isFinite(t) ? t : s.max);
    document.body.dataset.run = ctx.run.run;     // everything of this run is on the page
    setState("replay", "replay");
  }

  function hashParams() {
    const out = {};
    for (const kv of location.hash.replace(/^#/, "").split("&")) {
      const i = kv.indexOf("=");
      if (i > 0) out[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
    }
    return out;
  }

  async function startReplay() {
    $("replay").hidden = false;
    const sel = $("replay-run");
    LB.clear(sel);
    for (const r of ctx.runs) {
      sel.appendChild(LB.el("option", { value: r.run,
                                        text: r.run + (r.status && r.status !== "ok" ? " (" + r.status + ")" : "") }));
    }
    sel.addEventListener("change", () => selectReplayRun(sel.value).catch(fail));
    $("replay-slider").addEventListener("input", (e) => { stop(); seek(Number(e.target.value)); });
    $("replay-play").addEventListener("click", play);
    document.addEventListener("keydown", (e) => {
      if (e.key === " " && !["SELECT", "BUTTON"].includes(e.target.tagName)) { e.preventDefault(); play(); }
    });
    // A link to #run=NAME&t=S (typed, or followed) selects that run and time.
    window.addEventListener("hashchange", () => {
      const p = hashParams();
      const t = p.t !== undefined ? Number(p.t) : null;
      if (p.run && (!ctx.run || p.run !== ctx.run.run)) selectReplayRun(p.run, t).catch(fail);
      else if (t !== null && isFinite(t)) { stop(); seek(t); }
    });
    const h = hashParams();
    await selectReplayRun(h.run || (ctx.run && ctx.run.run), h.t !== undefined ? Number(h.t) : null);
  }

  function fail(e) {
    setState("error", String((e && e.message) || e));
    console.error(e);
  }

  async function boot() {
    const info = await LB.getJSON("api/run");
    ctx.mode = info.mode;
    ctx.run = info.run || null;
    ctx.runs = info.runs || [];
    document.body.dataset.mode = ctx.mode;
    $("mode-badge").textContent = ctx.mode;
    $("footer-mode").textContent = ctx.mode === "replay" ? "replay of a results folder (lblab view)"
      : "live (lblab run --live)";
    document.title = "lblab " + ctx.mode;
    window.addEventListener("resize", render);
    if (ctx.mode === "replay") {
      await startReplay();
    } else {
      if (ctx.run) newLiveRun(ctx.run);
      setState("connecting", "connecting…");
      startLive();
    }
  }

  boot().catch(fail);
})(window.LB);
