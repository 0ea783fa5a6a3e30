// mirrorwatch dashboard: local times, charts and the rule editor's check. No inline script
// (the CSP forbids it), no innerHTML with data: every wire string is set as text.
"use strict";
(function () {
  var lang = document.documentElement.lang || "en";

  // Times: the server writes UTC; show the browser's local time, keep UTC in the tooltip.
  function localTimes(root) {
    root.querySelectorAll("time[data-us]").forEach(function (t) {
      var d = new Date(Number(t.dataset.us) / 1000);
      if (isNaN(d.getTime())) return;
      t.title = t.textContent;
      t.textContent = d.toLocaleString(lang, { year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit" });
    });
  }

  var SVG = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) {
    var a = Math.abs(v);
    var short = function (x) { return String(parseFloat(x.toPrecision(3))); };
    if (a >= 1e9) return short(v / 1e9) + "G";
    if (a >= 1e6) return short(v / 1e6) + "M";
    if (a >= 1e4) return short(v / 1e3) + "k";
    if (a >= 100) return String(Math.round(v));
    return short(v);
  }
  // A round step for about `n` intervals up to `max`: 1, 2 or 5 times a power of ten (at least 1
  // for counts, which are whole numbers).
  function niceStep(max, n, integer) {
    var raw = max / n;
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / p;
    var step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
    return integer ? Math.max(1, Math.round(step)) : step;
  }
  function tickLabel(sec, span) {
    var d = new Date(sec * 1000);
    var hm = d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    if (span <= 86400) return hm;
    return d.toLocaleDateString(lang, { month: "numeric", day: "numeric" }) + " " + hm;
  }

  // Charts: <figure class="chart" data-chart='{"unit","bucket","from","to","series":[{name,points:[[t,v]]}]}'>
  function drawChart(fig) {
    var data;
    try { data = JSON.parse(fig.dataset.chart); } catch (e) { return; }
    var W = 900, H = 236, L = 56, R = 10, T = 26, B = 26;
    var span = Math.max(60, data.to - data.from);
    var bucket = Math.max(60, data.bucket || 60);
    // Buckets without a row had nothing: draw them as zero.
    var series = data.series.map(function (s) {
      var byT = new Map(s.points.map(function (p) { return [p[0], p[1]]; }));
      var pts = [];
      var start = Math.floor(data.from / bucket) * bucket;
      if ((data.to - start) / bucket <= 5000) {
        for (var t = start; t < data.to; t += bucket) pts.push([t, byT.has(t) ? byT.get(t) : 0]);
      } else { pts = s.points; }
      return { name: s.name, dashed: !!s.dashed, points: pts, n: s.points.length };
    });
    var top = 0, integer = true;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] > top) top = p[1]; if (p[1] !== Math.round(p[1])) integer = false; }); });
    // Round ticks: the axis ends at the first round step above the highest value.
    var step = niceStep(top > 0 ? top : 1, 4, integer);
    var max = Math.max(step, Math.ceil(top / step) * step);
    var x = function (t) { return L + (t - data.from) / span * (W - L - R); };
    var y = function (v) { return T + (1 - v / max) * (H - T - B); };
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", preserveAspectRatio: "none" });
    var aria = el("title", {}, svg);
    aria.textContent = (fig.querySelector("figcaption") || {}).textContent || "chart";
    for (var i = 0; i * step <= max + step / 1000; i++) {
      var v = i * step, yy = y(v);
      el("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: i ? "grid" : "axis" }, svg);
      el("text", { x: L - 6, y: yy + 4, "text-anchor": "end" }, svg).textContent = fmt(v);
    }
    // The unit and the interval each point stands for, above the axis.
    var unit = el("text", { x: 4, y: 14, "text-anchor": "start", class: "unit" }, svg);
    unit.textContent = data.unit || "";
    for (var k = 0; k <= 6; k++) {
      var tt = data.from + span * k / 6;
      el("text", { x: x(tt), y: H - 8, "text-anchor": k === 0 ? "start" : (k === 6 ? "end" : "middle") }, svg)
        .textContent = tickLabel(tt, span);
    }
    series.forEach(function (s, idx) {
      if (!s.points.length) return;
      var d = s.points.map(function (p, j) { return (j ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1); }).join("");
      if (idx === 0 && !s.dashed) {
        var first = s.points[0], last = s.points[s.points.length - 1];
        el("path", { d: d + "L" + x(last[0]).toFixed(1) + " " + y(0) + "L" + x(first[0]).toFixed(1) + " " + y(0) + "Z", class: "area0" }, svg);
      }
      el("path", { d: d, class: "line" + (idx % 3) + (s.dashed ? " dashed" : "") }, svg);
    });
    var readout = el("text", { x: W - R, y: T + 12, "text-anchor": "end" }, svg);
    svg.addEventListener("mousemove", function (ev) {
      var box = svg.getBoundingClientRect();
      var t = data.from + ((ev.clientX - box.left) / box.width * W - L) / (W - L - R) * span;
      var parts = series.map(function (s) {
        var best = null;
        s.points.forEach(function (p) { if (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p; });
        return best ? s.name + " " + fmt(best[1]) : "";
      });
      readout.textContent = tickLabel(t, span) + "  " + parts.join("  ");
    });
    fig.insertBefore(svg, fig.firstChild);
    if (series.length > 1) {
      var legend = document.createElement("div");
      legend.className = "legend";
      series.forEach(function (s) { var sp = document.createElement("span"); sp.textContent = (s.dashed ? "- - " : "— ") + s.name; legend.appendChild(sp); });
      fig.appendChild(legend);
    }
    fig.dataset.drawn = String(series.reduce(function (a, s) { return a + s.n; }, 0));
  }

  // Rule editor: errors point into the text; "check" asks the server for errors and a preview.
  function selectAt(area, line, col) {
    var lines = area.value.split("\n");
    var pos = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    pos += Math.max(0, col - 1);
    area.focus();
    area.setSelectionRange(pos, Math.min(area.value.length, pos + 1));
    var lh = area.scrollHeight / Math.max(1, lines.length);
    area.scrollTop = Math.max(0, (line - 3) * lh);
  }
  function showErrors(box, area, errors) {
    box.textContent = "";
    if (!errors.length) return;
    var ul = document.createElement("ul");
    ul.className = "errors";
    errors.forEach(function (e) {
      var li = document.createElement("li");
      li.dataset.line = e.line; li.dataset.col = e.col;
      li.textContent = e.file + ":" + e.line + ":" + e.col + ": " + e.msg;
      ul.appendChild(li);
    });
    box.appendChild(ul);
    var e0 = errors[0];
    var text = area.value.split("\n")[e0.line - 1];
    if (text !== undefined) {
      var pre = document.createElement("pre");
      pre.className = "caret";
      pre.textContent = text + "\n" + " ".repeat(Math.max(0, e0.col - 1)) + "^ " + e0.msg;
      box.appendChild(pre);
    }
    wireErrors(box, area);
  }
  function wireErrors(box, area) {
    box.querySelectorAll("li[data-line]").forEach(function (li) {
      li.addEventListener("click", function () { selectAt(area, Number(li.dataset.line), Number(li.dataset.col)); });
    });
  }
  function showPreview(sec, pv) {
    sec.textContent = "";
    if (!pv) return;
    var p = document.createElement("p");
    p.className = "good";
    p.textContent = sec.dataset.ok;
    sec.appendChild(p);
    var h = document.createElement("h2");
    h.textContent = sec.dataset.label + " " + (pv.sources.join(", ") || "–");
    sec.appendChild(h);
    // Frames checked and the time they cover: a preview over 0 frames says so plainly.
    var cover = document.createElement("p");
    cover.id = "preview-coverage";
    cover.dataset.frames = String(pv.frames);
    var when = function (us) {
      return new Date(us / 1000).toLocaleString(lang, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
    };
    cover.textContent = pv.frames + " " + sec.dataset.frames + (pv.truncated ? " (…)" : "") +
      (pv.from_us ? " · " + when(pv.from_us) + " – " + when(pv.to_us) : "");
    sec.appendChild(cover);
    var table = document.createElement("table");
    table.className = "list";
    pv.counters.forEach(function (c) {
      var tr = document.createElement("tr");
      var a = document.createElement("td"); a.textContent = c.id;
      var b = document.createElement("td"); b.className = "n"; b.textContent = String(c.frames);
      b.dataset.counter = c.id;
      tr.appendChild(a); tr.appendChild(b); table.appendChild(tr);
    });
    sec.appendChild(table);
  }
  function ruleEditor() {
    var area = document.getElementById("rule-text");
    var btn = document.getElementById("rule-check");
    if (!area || !btn) return;
    var box = document.getElementById("rule-errors");
    var sec = document.getElementById("rule-preview");
    var form = document.getElementById("rule-form");
    wireErrors(box, area);
    btn.addEventListener("click", function () {
      btn.disabled = true;
      sec.textContent = "…";
      var csrf = document.querySelector("meta[name=csrf-token]").content;
      fetch("/api/rules/check", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ file: form.elements.file.value, text: area.value,
          over: form.elements.over ? form.elements.over.value : "1h" })
      }).then(function (r) {
        if (!r.ok) return r.text().then(function (t) { throw new Error(t); });
        return r.json();
      }).then(function (j) {
        showErrors(box, area, j.errors);
        showPreview(sec, j.preview);
        if (j.errors.length) { sec.textContent = ""; selectAt(area, j.errors[0].line, j.errors[0].col); }
      }).catch(function (e) { sec.textContent = String(e.message || e); })
        .finally(function () { btn.disabled = false; });
    });
  }

  // Captures: the upload goes as the request body, with the CSRF token in a header.
  function uploader() {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var status = document.getElementById("upload-status");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var file = document.getElementById("upload-file").files[0];
      if (!file) return;
      status.textContent = "…";
      var csrf = document.querySelector("meta[name=csrf-token]").content;
      fetch("/captures/upload?name=" + encodeURIComponent(file.name), {
        method: "POST", credentials: "same-origin", body: file,
        headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf }
      }).then(function (r) {
        return r.text().then(function (t) { if (!r.ok) throw new Error(t); });
      }).then(function () { location.reload(); })
        .catch(function (e) { status.textContent = String(e.message || e); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    uploader();
    localTimes(document);
    document.querySelectorAll("figure.chart[data-chart]").forEach(drawChart);
    ruleEditor();
  });
})();
