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
var volume = document.getElementById("volume");
if (volume) {
  volume.addEventListener("input", function () {
    var v = parseFloat(volume.value) || 0, days = parseFloat(volume.dataset.daysPerMonth);  // evalkit.analysis.costs
    document.querySelectorAll("[data-cost-per-1k]").forEach(function (cell) {
      var c = parseFloat(cell.dataset.costPer1k);
      cell.textContent = isNaN(c) ? "—" : "$" + (c / 1000 * v * days).toLocaleString(undefined, {maximumFractionDigits: 2});
    });
  });
}
