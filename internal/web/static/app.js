// Live parts of Slipway's pages: server-rendered fragments pushed over
// Server-Sent Events replace their section, and run logs stream in.
"use strict";

function applyWidths(root) {
  root.querySelectorAll("[data-width]").forEach(function (el) {
    el.style.width = el.getAttribute("data-width") + "%";
  });
}

// stackTables labels every cell with its column's header so that, at a
// phone's width, the stylesheet can show each row as a card of labelled
// values instead of hiding columns behind a sideways scroll. The roles
// keep the table's meaning for screen readers once the rows are blocks.
function stackTables(root) {
  root.querySelectorAll("main table").forEach(function (table) {
    var heads = Array.from(table.querySelectorAll("thead th")).map(function (th) { return th.textContent.trim(); });
    if (!heads.length) return;
    table.classList.add("stacked");
    table.setAttribute("role", "table");
    table.querySelectorAll("tr").forEach(function (tr) { tr.setAttribute("role", "row"); });
    table.querySelectorAll("thead th").forEach(function (th) { th.setAttribute("role", "columnheader"); });
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      var col = 0;
      Array.from(tr.children).forEach(function (cell) {
        cell.setAttribute("role", cell.tagName === "TH" ? "rowheader" : "cell");
        cell.setAttribute("data-label", cell.colSpan > 1 ? "" : heads[col] || "");
        col += cell.colSpan;
      });
    });
  });
}

// fillActionNames labels log lines that arrived before their action's name.
function fillActionNames() {
  var el = document.getElementById("action-names");
  if (!el) return;
  var names = JSON.parse(el.getAttribute("data-actions") || "{}");
  document.querySelectorAll("#logs .src[data-aid]").forEach(function (tag) {
    var n = names[tag.getAttribute("data-aid")];
    if (n) { tag.textContent = n + " | "; tag.removeAttribute("data-aid"); }
  });
}

// stream opens an event stream that closes when the page is left: a
// browser holds few connections per server, and streams of pages left
// behind would keep the next page's requests waiting.
function stream(url) {
  var src = new EventSource(url);
  window.addEventListener("pagehide", function () { src.close(); });
  src.addEventListener("end", function () { src.close(); });
  return src;
}

// A page brought back from the back/forward cache had its streams closed:
// load it afresh so its live parts follow again.
window.addEventListener("pageshow", function (ev) {
  if (ev.persisted && document.querySelector("[data-sse], [data-logs]")) location.reload();
});

function live(section) {
  var src = stream(section.getAttribute("data-sse"));
  src.addEventListener("update", function (ev) {
    var msg = JSON.parse(ev.data);
    // Keep keyboard focus where it was when the fragment is swapped.
    var focused = document.activeElement && section.contains(document.activeElement) ? document.activeElement.id : "";
    section.innerHTML = msg.html;
    relativeTimes(section, false);
    applyWidths(section);
    stackTables(section);
    fillActionNames();
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    if (msg.panelKey !== undefined) {
      var panel = document.getElementById("approval-panel");
      // Only a change of the pending approval replaces the panel, so a
      // comment being typed is never wiped by an update.
      if (panel && panel.getAttribute("data-key") !== msg.panelKey) {
        panel.setAttribute("data-key", msg.panelKey);
        panel.innerHTML = msg.panel || "";
      }
    }
    document.body.setAttribute("data-live", String(Number(document.body.getAttribute("data-live") || 0) + 1));
  });
}

function logs(pre) {
  // Action names come with the live diagram: a run that has not started
  // yet has no actions when the page loads.
  function actionName(id) {
    var el = document.getElementById("action-names");
    var names = el ? JSON.parse(el.getAttribute("data-actions") || "{}") : {};
    return names[id] || "";
  }
  var src = stream(pre.getAttribute("data-logs"));
  src.addEventListener("line", function (ev) {
    var l = JSON.parse(ev.data);
    var line = document.createElement("span");
    line.className = "logline";
    var tag = document.createElement("span");
    tag.className = "src";
    tag.setAttribute("data-aid", l.action_id);
    tag.textContent = actionName(l.action_id) + " | ";
    line.appendChild(tag);
    line.appendChild(document.createTextNode(l.line + "\n"));
    var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.appendChild(line);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  });
}

// relativeTimes shows each <time data-rel> as a time relative to now ("3
// min ago"); its title keeps the absolute time for a hover. Times inside a
// live region are set when it is drawn and not ticked after: the region
// must announce changes of state, not of a clock.
function relativeTimes(root, ticking) {
  var now = Date.now();
  root.querySelectorAll("time[data-rel]").forEach(function (el) {
    if (ticking && el.closest("[aria-live]")) return;
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) return;
    var s = Math.round((now - at) / 1000), ago = s >= 0, n = Math.abs(s), text;
    if (n < 10) text = "just now";
    else if (n < 60) text = n + " s";
    else if (n < 3600) text = Math.round(n / 60) + " min";
    else if (n < 86400) text = Math.round(n / 3600) + " h";
    else text = Math.round(n / 86400) + " d";
    if (text !== "just now") text = ago ? text + " ago" : "in " + text;
    el.textContent = text;
  });
}

// Forms that stop, roll back, replace or revoke ask first, as the ECS and
// Argo consoles do; the question says what will happen. Listening on the
// document covers forms that live fragments draw later.
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
}, true);

document.addEventListener("DOMContentLoaded", function () {
  relativeTimes(document, false);
  setInterval(function () { relativeTimes(document, true); }, 30000);
  applyWidths(document);
  stackTables(document);
  document.querySelectorAll("[data-sse]").forEach(live);
  document.querySelectorAll("pre[data-logs]").forEach(logs);
});
