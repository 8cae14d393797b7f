/* minichart: a small canvas charting library for the board dashboard (no CDN: the
 * board has no internet). LineChart keeps the last `capacity` points of one series and
 * redraws at most once per animation frame; BarChart shows one value per bar. */
(function (global) {
  "use strict";

  function niceRange(lo, hi) {
    if (!isFinite(lo) || !isFinite(hi)) { return [0, 1]; }
    if (hi - lo < 1e-9) { const d = Math.abs(hi) * 0.1 || 1; return [lo - d, hi + d]; }
    const pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a >= 100) { return v.toFixed(0); }
    if (a >= 10) { return v.toFixed(1); }
    return v.toFixed(2);
  }

  function setup(canvas) {
    const ratio = global.devicePixelRatio || 1;
    const w = canvas.clientWidth || 400, h = canvas.clientHeight || 200;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx: ctx, w: w, h: h };
  }

  function axes(ctx, w, h, m, lo, hi, unit) {
    ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#666"; ctx.lineWidth = 1;
    ctx.font = "11px sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4;
      const y = h - m.b - (h - m.t - m.b) * i / 4;
      ctx.beginPath(); ctx.moveTo(m.l, y); ctx.lineTo(w - m.r, y); ctx.stroke();
      ctx.fillText(fmt(v), m.l - 4, y);
    }
    if (unit) { ctx.textAlign = "left"; ctx.fillText(unit, m.l + 4, m.t + 6); }
  }

  function LineChart(canvas, opts) {
    opts = opts || {};
    this.canvas = canvas;
    this.capacity = opts.capacity || 300;
    this.color = opts.color || "#2a6fdb";
    this.unit = opts.unit || "";
    this.xs = []; this.ys = [];
    this.drawn = 0;          // points drawn by the last redraw (tests read it)
    this._pending = false;
  }
  LineChart.prototype.push = function (x, y) {
    if (!isFinite(y)) { return; }
    this.xs.push(x); this.ys.push(y);
    if (this.xs.length > this.capacity) { this.xs.shift(); this.ys.shift(); }
    this.schedule();
  };
  LineChart.prototype.schedule = function () {
    if (this._pending) { return; }
    this._pending = true;
    const self = this;
    const raf = global.requestAnimationFrame || function (f) { return setTimeout(f, 16); };
    raf(function () { self._pending = false; self.draw(); });
  };
  LineChart.prototype.draw = function () {
    const s = setup(this.canvas), ctx = s.ctx, w = s.w, h = s.h;
    const m = { l: 44, r: 8, t: 8, b: 18 };
    const n = this.ys.length;
    const r = niceRange(Math.min.apply(null, this.ys.length ? this.ys : [0]),
                        Math.max.apply(null, this.ys.length ? this.ys : [1]));
    axes(ctx, w, h, m, r[0], r[1], this.unit);
    if (n === 0) { this.drawn = 0; return; }
    const x0 = this.xs[0], x1 = this.xs[n - 1] === x0 ? x0 + 1 : this.xs[n - 1];
    const px = (x) => m.l + (w - m.l - m.r) * (x - x0) / (x1 - x0);
    const py = (y) => h - m.b - (h - m.t - m.b) * (y - r[0]) / (r[1] - r[0]);
    ctx.strokeStyle = this.color; ctx.lineWidth = 1.5; ctx.beginPath();
    for (let i = 0; i < n; i++) {
      const X = px(this.xs[i]), Y = py(this.ys[i]);
      if (i === 0) { ctx.moveTo(X, Y); } else { ctx.lineTo(X, Y); }
    }
    ctx.stroke();
    ctx.fillStyle = this.color;
    for (let i = 0; i < n; i++) { ctx.fillRect(px(this.xs[i]) - 1.5, py(this.ys[i]) - 1.5, 3, 3); }
    this.drawn = n;
  };

  function BarChart(canvas, opts) {
    opts = opts || {};
    this.canvas = canvas; this.color = opts.color || "#d9822b"; this.unit = opts.unit || "";
    this.values = []; this.labels = []; this.drawn = 0;
  }
  BarChart.prototype.set = function (values, labels) {
    this.values = values.slice(); this.labels = (labels || []).slice(); this.draw();
  };
  BarChart.prototype.draw = function () {
    const s = setup(this.canvas), ctx = s.ctx, w = s.w, h = s.h;
    const m = { l: 44, r: 8, t: 8, b: 18 };
    const hi = Math.max.apply(null, this.values.concat([1e-9])) * 1.1;
    axes(ctx, w, h, m, 0, hi, this.unit);
    const n = this.values.length;
    const bw = (w - m.l - m.r) / Math.max(n, 1);
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (let i = 0; i < n; i++) {
      const bh = (h - m.t - m.b) * this.values[i] / hi;
      ctx.fillStyle = this.color;
      ctx.fillRect(m.l + i * bw + bw * 0.15, h - m.b - bh, bw * 0.7, bh);
      ctx.fillStyle = "#444";
      ctx.fillText(this.labels[i] || String(i), m.l + (i + 0.5) * bw, h - m.b + 2);
    }
    this.drawn = n;
  };

  global.minichart = { LineChart: LineChart, BarChart: BarChart };
})(window);
