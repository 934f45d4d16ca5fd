// The side-by-side sample explorer. Its data is the JSON blob #explorer-data (evalkit.explorer/1); every string
// from it reaches the page through textContent or a text node, never as markup. The state (the two models, the
// filter, the slice, the search and the open sample) lives in the URL hash, so a view can be linked:
// #a=MODEL&b=MODEL&show=all|changed|regressions|improvements|errors&slice=NAME&q=TEXT&open=ID~REPEAT
(function () {
  var app = document.getElementById("explorer-app"), blob = document.getElementById("explorer-data");
  if (!app || !blob) return;
  var data = JSON.parse(blob.textContent);
  var PAGE = 200;
  var FILTERS = [["all", "all samples"], ["changed", "changed only"], ["regressions", "regressions"],
                 ["improvements", "improvements"], ["errors", "errors"]];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function fmt(v, digits) { return v === null || v === undefined ? "—" : Number(v).toFixed(digits); }
  function ms(v) { return v === null || v === undefined ? "—" : Math.round(v).toLocaleString("en-US") + " ms"; }
  function key(s) { return s.id + "~" + s.repeat; }

  // -- state in the hash ----------------------------------------------------------------------------------
  function readHash() {
    var out = {};
    window.location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) {
        try { out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1)); } catch (e) { /* ignore */ }
      }
    });
    return out;
  }
  var asked = readHash();
  var models = data.models;
  function pick(name, fallback) { return models.indexOf(name) >= 0 ? name : fallback; }
  var state = {
    a: pick(asked.a, pick(data.baseline, models[0])),
    b: pick(asked.b, pick(data.candidate, models[Math.min(1, models.length - 1)])),
    show: FILTERS.some(function (f) { return f[0] === asked.show; }) ? asked.show : "all",
    slice: asked.slice || "", q: asked.q || "", open: asked.open || "", page: 1
  };
  function writeHash() {
    var keep = readHash(), mine = {a: state.a, b: state.b, show: state.show, slice: state.slice, q: state.q, open: state.open};
    Object.keys(mine).forEach(function (k) { if (mine[k]) keep[k] = mine[k]; else delete keep[k]; });
    var text = Object.keys(keep).map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(keep[k]); }).join("&");
    if (window.history && window.history.replaceState) window.history.replaceState(null, "", "#" + text);
  }

  // -- what a row is, for the chosen pair --------------------------------------------------------------------
  function had(x) { return x === true; }
  function lost(a, b) {  // a had it, b lost it (correct, then schema-valid, then feasible)
    return (had(a.correct) && !had(b.correct)) || (had(a.schema_valid) && !had(b.schema_valid)) ||
           (had(a.feasible) && !had(b.feasible));
  }
  function failed(x) { return x && (x.status !== "ok" || x.parse_error || x.score_error); }
  function kind(s) {
    var a = s.answers[state.a], b = s.answers[state.b];
    if (!a || !b) return "one side";
    if (lost(a, b)) return "regression";
    if (lost(b, a)) return "improvement";
    if ((a.output || "") !== (b.output || "") || a.correct !== b.correct) return "changed";
    return "same";
  }
  function haystack(s) {
    var parts = [s.id, s.slice || "", s.target || ""];
    s.messages.forEach(function (m) { parts.push(data.strings[m[1]]); });
    [state.a, state.b].forEach(function (name) {
      var x = s.answers[name];
      if (x) parts.push(x.output || "", x.parsed || "", x.error || "", (x.violations || []).join(" "));
    });
    return parts.join("\n").toLowerCase();
  }
  function matches(s) {
    var k = kind(s), a = s.answers[state.a], b = s.answers[state.b];
    if (state.show === "changed" && (k === "same" || k === "one side")) return false;
    if (state.show === "regressions" && k !== "regression") return false;
    if (state.show === "improvements" && k !== "improvement") return false;
    if (state.show === "errors" && !failed(a) && !failed(b)) return false;
    if (state.slice && (s.slice || "") !== state.slice) return false;
    if (state.q && haystack(s).indexOf(state.q.toLowerCase()) < 0) return false;
    return true;
  }

  // -- controls ------------------------------------------------------------------------------------------------
  function select(id, label, options, value, onchange) {
    var s = el("select", {id: id});
    options.forEach(function (o) {
      var opt = el("option", {value: o[0], text: o[1]});
      if (o[0] === value) opt.selected = true;
      s.appendChild(opt);
    });
    s.addEventListener("change", function () { onchange(s.value); });
    return el("label", {}, [label + " ", s]);
  }
  var slices = [];
  data.samples.forEach(function (s) { if (s.slice && slices.indexOf(s.slice) < 0) slices.push(s.slice); });
  slices.sort();
  var modelOptions = models.map(function (m) { return [m, m]; });
  var search = el("input", {type: "search", id: "explorer-q", placeholder: "id, prompt, answer…"});
  search.value = state.q;
  search.addEventListener("input", function () { state.q = search.value; state.page = 1; render(); });
  var controls = el("div", {className: "explorer-controls no-print"}, [
    select("explorer-a", "A", modelOptions, state.a, function (v) { state.a = v; state.page = 1; render(); }),
    select("explorer-b", "B", modelOptions, state.b, function (v) { state.b = v; state.page = 1; render(); }),
    select("explorer-show", "Show", FILTERS, state.show, function (v) { state.show = v; state.page = 1; render(); }),
    select("explorer-slice", "Slice", [["", "every slice"]].concat(slices.map(function (s) { return [s, s]; })),
           state.slice, function (v) { state.slice = v; state.page = 1; render(); }),
    el("label", {}, ["Search ", search])
  ]);
  var count = el("p", {className: "sub", id: "explorer-count"});
  var table = el("table", {id: "explorer-table"});
  var more = el("button", {type: "button", id: "explorer-more", className: "no-print"});
  more.addEventListener("click", function () { state.page += 1; render(); });
  app.appendChild(controls);
  app.appendChild(count);
  app.appendChild(table);
  app.appendChild(more);

  function answerCell(x) {
    if (!x) return el("td", {className: "muted", text: "no answer"});
    var mark = x.status !== "ok" ? "error" : x.correct ? "right" : "wrong";
    var text = x.status !== "ok" ? "[" + (x.error_kind || "error") + "] " + (x.error || "") : (x.output || "");
    return el("td", {"data-answer": mark}, [el("span", {className: "pill " + (mark === "right" ? "pass" : "fail"), text: mark}),
                                            el("div", {className: "out clip", text: text})]);
  }
  function drill(s) {
    var box = el("div", {className: "drill", "data-drill": key(s)});
    box.appendChild(el("h4", {text: "Sample " + s.id + (data.repeats ? " · repeat " + s.repeat : "") +
                                    (s.slice ? " · slice " + s.slice : "") + " · in the file as: " + s.why}));
    var msgs = el("div", {className: "messages"});
    s.messages.forEach(function (m) {
      msgs.appendChild(el("div", {className: "msg"}, [el("span", {className: "role", text: m[0]}),
                                                     el("pre", {className: "out", text: data.strings[m[1]]})]));
    });
    box.appendChild(el("details", {open: "open"}, [el("summary", {text: "Rendered messages (" + s.messages.length + ")"}), msgs]));
    box.appendChild(el("p", {}, [el("strong", {text: "Expected: "}), el("span", {className: "out", text: s.target === null ? "—" : s.target})]));
    var sides = el("div", {className: "sides"});
    [state.a, state.b].forEach(function (name, i) {
      var x = s.answers[name], side = el("div", {className: "side", "data-side": i ? "b" : "a"});
      side.appendChild(el("h5", {text: (i ? "B: " : "A: ") + name}));
      if (!x) { side.appendChild(el("p", {text: "no answer for this sample"})); sides.appendChild(side); return; }
      var rows = [
        ["status", x.status + (x.error_kind ? " (" + x.error_kind + ")" : "")],
        ["correct", x.correct === null ? "—" : x.correct ? "yes" : "no"], ["quality", fmt(x.quality, 3)],
        ["confidence", fmt(x.confidence, 3)],
        ["schema-valid", x.schema_valid === null ? "—" : x.schema_valid ? "yes" : "no"],
        ["feasible", x.feasible === null ? "—" : x.feasible ? "yes" : "no"],
        ["latency", ms(x.latency_ms)], ["time to first token", ms(x.ttft_ms)],
        ["tokens (prompt / completion)", (x.prompt_tokens === null ? "—" : x.prompt_tokens) + " / " +
                                          (x.completion_tokens === null ? "—" : x.completion_tokens)],
        ["cost", x.cost_usd === null ? "—" : "$" + String(Number(Number(x.cost_usd).toPrecision(3)))],
        ["finish reason", x.finish_reason || "—"]];
      var t = el("table", {className: "kv"});
      rows.forEach(function (r) { t.appendChild(el("tr", {}, [el("th", {text: r[0]}), el("td", {text: r[1]})])); });
      side.appendChild(t);
      var block = function (label, text) {
        if (text === null || text === undefined || text === "") return;
        side.appendChild(el("div", {className: "k", text: label}));
        side.appendChild(el("pre", {className: "out", text: text}));
      };
      block("Raw output", x.output);
      block("Parsed answer", x.parsed);
      block("Parse error", x.parse_error);
      block("Error", x.error);
      block("Score error", x.score_error);
      if ((x.violations || []).length) block("Violations", x.violations.map(function (v) { return "• " + v; }).join("\n"));
      if ((x.schema_errors || []).length) block("Schema errors", x.schema_errors.map(function (v) { return "• " + v; }).join("\n"));
      sides.appendChild(side);
    });
    box.appendChild(sides);
    return box;
  }

  function render() {
    var shown = data.samples.filter(matches);
    var limit = state.page * PAGE;
    count.textContent = "";
    var n = el("span", {"data-value": String(shown.length), id: "explorer-matching", text: shown.length.toLocaleString("en-US")});
    count.appendChild(n);
    count.appendChild(document.createTextNode(" of " + data.samples.length.toLocaleString("en-US") +
      " samples in the file match" + (shown.length > limit ? " (first " + limit.toLocaleString("en-US") + " listed)" : "") +
      " · A = " + state.a + ", B = " + state.b));
    table.textContent = "";
    table.appendChild(el("thead", {}, [el("tr", {}, [el("th", {text: "Sample"}), el("th", {text: "Expected"}),
      el("th", {text: "A: " + state.a}), el("th", {text: "B: " + state.b}), el("th", {text: "A → B"}),
      el("th", {text: "Confidence A / B"})])]));
    var body = el("tbody");
    shown.slice(0, limit).forEach(function (s) {
      var a = s.answers[state.a], b = s.answers[state.b], k = kind(s);
      var tr = el("tr", {"data-explorer-row": key(s), "data-kind": k, tabindex: "0", className: "clickable"}, [
        el("td", {}, [el("span", {text: s.id}), el("span", {className: "ci", text: (s.slice || "") + (data.repeats ? " · repeat " + s.repeat : "")})]),
        el("td", {}, [el("div", {className: "out clip", text: s.target === null ? "—" : s.target})]),
        answerCell(a), answerCell(b),
        el("td", {className: k === "regression" ? "bad" : k === "improvement" ? "good" : "", text: k}),
        el("td", {className: "num", text: fmt(a && a.confidence, 2) + " / " + fmt(b && b.confidence, 2)})]);
      var toggle = function () { state.open = state.open === key(s) ? "" : key(s); render(); };
      tr.addEventListener("click", toggle);
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") toggle(); });
      body.appendChild(tr);
      if (state.open === key(s)) body.appendChild(el("tr", {className: "drill-row"}, [el("td", {colspan: "6"}, [drill(s)])]));
    });
    table.appendChild(body);
    more.hidden = shown.length <= limit;
    more.textContent = "show " + Math.min(PAGE, shown.length - limit).toLocaleString("en-US") + " more";
    writeHash();
  }
  // an open sample listed past the first page: list up to it
  if (state.open) {
    var at = data.samples.filter(matches).map(key).indexOf(state.open);
    if (at >= 0) state.page = Math.floor(at / PAGE) + 1;
  }
  render();
  // #view=explorer: the explorer alone (the rest of the report hidden); otherwise a link to a view lands on it
  var alone = function () { document.body.classList.toggle("explorer-only", readHash().view === "explorer"); };
  window.addEventListener("hashchange", alone);
  alone();
  if (asked.view !== "explorer" && ["a", "b", "show", "slice", "q", "open"].some(function (k) { return k in asked; })) {
    var target = state.open ? table.querySelector(".drill") : app;
    (target || app).scrollIntoView();
  }
  // when the page was laid out with the explorer built (ms since navigation; read by the 100k-sample test)
  void document.body.offsetHeight;
  app.setAttribute("data-ready-ms", String(Math.round(window.performance.now())));
})();
