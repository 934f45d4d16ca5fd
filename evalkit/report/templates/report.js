// Sort any table by clicking its header; recompute monthly cost from the volume box. Both optional:
// every number is already in the page without JavaScript.
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.dir !== "asc";
    th.dataset.dir = asc ? "asc" : "desc";
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.sort || a.cells[col].textContent, y = b.cells[col].dataset.sort || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
// The cost model of evalkit.analysis.costs / capacity, with the same constants (data-* on the volume box):
// self-hosted = max(min_replicas, ceil(volume / seconds_per_day / rps)) replicas x $/h x hours_per_month;
// API = cost per call x volume x days_per_month; in routing, a side that serves nothing costs nothing.
var volume = document.getElementById("volume");
if (volume) {
  var days = parseFloat(volume.dataset.daysPerMonth), hours = parseFloat(volume.dataset.hoursPerMonth);
  var secondsPerDay = parseFloat(volume.dataset.secondsPerDay);
  var replicas = function (p, v) {
    if (v <= 0) return p.min_replicas;
    return Math.max(p.min_replicas, Math.ceil(v / secondsPerDay / p.rps - 1e-12));
  };
  var monthly = function (p, v) {
    if (p.basis === "always-on") return p.rps ? replicas(p, v) * p.gpu * hours : null;
    return p.cost_per_call === null ? null : p.cost_per_call * v * days;
  };
  var served = function (p, v) { return v <= 0 ? 0 : monthly(p, v); };
  var usd = function (x) {
    return x === null ? "—" : "$" + x.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  };
  var show = function (cell, value, text) {
    cell.dataset.value = value === null ? "" : String(value);
    var note = cell.querySelector(".ci");
    cell.textContent = text;
    if (note) cell.appendChild(note);
  };
  var update = function () {
    var v = Math.max(0, parseFloat(volume.value) || 0);
    document.querySelectorAll(".volume-shown").forEach(function (el) {
      el.textContent = v.toLocaleString("en-US", {maximumFractionDigits: 0});
    });
    document.querySelectorAll("[data-cost-cell=monthly]").forEach(function (cell) {
      var p = JSON.parse(cell.dataset.costParams), m = monthly(p, v);
      show(cell, m, usd(m));
      var rep = document.querySelector('[data-cost-cell=replicas][data-model="' + cell.dataset.model + '"]');
      if (rep && p.basis === "always-on" && p.rps) { var r = replicas(p, v); show(rep, r, String(r)); }
    });
    var table = document.getElementById("routing-table");
    if (table) {
      var small = JSON.parse(table.dataset.smallParams), large = JSON.parse(table.dataset.largeParams);
      table.querySelectorAll("[data-routing-monthly]").forEach(function (cell) {
        var share = parseFloat(cell.dataset.share);
        var smallVolume = cell.dataset.routingMonthly === "cascade" ? v : v * (1 - share);
        var a = served(small, smallVolume), b = served(large, v * share);
        var m = (a === null || b === null) ? null : a + b;
        show(cell, m, usd(m));
      });
    }
  };
  volume.addEventListener("input", update);
  var asked = /(?:^#|&)volume=([0-9.]+)/.exec(window.location.hash);
  if (asked) { volume.value = asked[1]; update(); }
}
