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
    if (n) { tag.textContent = n; tag.removeAttribute("data-aid"); }
  });
}

// swapKeyed replaces a region (a run's buttons, the approval panel) only
// when its key changed, so a form being used is not redrawn under it.
function swapKeyed(id, key, html) {
  var el = document.getElementById(id);
  if (!el || key === undefined || el.getAttribute("data-key") === key) return false;
  el.setAttribute("data-key", key);
  el.innerHTML = html || "";
  return true;
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
  if (ev.persisted && document.querySelector("[data-sse], [data-logs], [data-stream]")) location.reload();
});

function live(section) {
  var src = stream(section.getAttribute("data-sse"));
  var shown = null; // the fragment last drawn: the same one is not drawn again
  src.addEventListener("update", function (ev) {
    var msg = JSON.parse(ev.data);
    if (msg.html !== shown) {
      shown = msg.html;
      // Keep keyboard focus where it was when the fragment is swapped.
      var focused = document.activeElement && section.contains(document.activeElement) ? document.activeElement.id : "";
      // Sections a reader opened or closed (a failed action's last lines)
      // stay so when the fragment is redrawn.
      var opened = {};
      section.querySelectorAll("details[id]").forEach(function (d) { opened[d.id] = d.open; });
      section.innerHTML = msg.html;
      section.querySelectorAll("details[id]").forEach(function (d) {
        if (Object.prototype.hasOwnProperty.call(opened, d.id)) d.open = opened[d.id];
      });
      relativeTimes(section, false);
      countdowns(section);
      applyWidths(section);
      stackTables(section);
      fillActionNames();
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    }
    // Only a change of the pending approval replaces the panel, so a
    // comment being typed is never wiped by an update.
    swapKeyed("approval-panel", msg.panelKey, msg.panel);
    swapKeyed("run-controls", msg.controlsKey, msg.controls);
    // Regions outside the live one, which a change there must not read
    // out: plots, a deployment's timeline.
    swapKeyed("charts", msg.chartsKey, msg.charts);
    var timeline = document.getElementById("timeline");
    if (swapKeyed("timeline", msg.timelineKey, msg.timeline)) relativeTimes(timeline, false);
    document.body.setAttribute("data-live", String(Number(document.body.getAttribute("data-live") || 0) + 1));
  });
}

// logs shows a run's whole output as it comes, each line tagged with its
// action and linking to that line on the action's page. The server sends
// each line's text already escaped, its colours as classed spans.
function logs(pre) {
  // Action names come with the live diagram: a run that has not started
  // yet has no actions when the page loads.
  function actionName(id) {
    var el = document.getElementById("action-names");
    var names = el ? JSON.parse(el.getAttribute("data-actions") || "{}") : {};
    return names[id] || "";
  }
  var run = pre.getAttribute("data-run");
  var src = stream(pre.getAttribute("data-logs"));
  src.addEventListener("line", function (ev) {
    var l = JSON.parse(ev.data);
    var line = document.createElement("span");
    line.className = "logline" + (l.class ? " l-" + l.class : "") + (l.kind === "group" ? " l-group" : "");
    var tag = document.createElement("a");
    tag.className = "src";
    tag.href = "/runs/" + run + "/actions/" + l.action_id + "#L" + l.n;
    var name = actionName(l.action_id);
    if (name) tag.textContent = name;
    else { tag.textContent = "action " + l.action_id; tag.setAttribute("data-aid", l.action_id); }
    var text = document.createElement("span");
    text.className = "lt";
    text.innerHTML = l.html; // escaped by the server
    line.appendChild(tag);
    line.appendChild(document.createTextNode(" | "));
    line.appendChild(text);
    line.appendChild(document.createTextNode("\n"));
    var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.appendChild(line);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  });
}

// maxGroupDepth is the server's bound on nested sections (LogHTML).
var maxGroupDepth = 8;

// actionLog runs an action's page: the line a link names is shown (its
// sections opened), timestamps on demand, a search that keeps only the
// matching lines and marks the matches, and, while the action runs, new
// lines appended as they come with the page following the end until the
// reader scrolls up (and again once they are back at the bottom).
function actionLog(view) {
  var search = document.getElementById("log-search");
  var matches = document.getElementById("log-matches");
  var ts = document.getElementById("log-ts");
  var followNote = document.getElementById("log-follow");
  var endButton = document.getElementById("log-end");
  var empty = document.getElementById("log-empty");

  // Timestamps, remembered across pages.
  function showTimes() { view.classList.toggle("show-ts", !!(ts && ts.checked)); }
  if (ts) {
    try { ts.checked = localStorage.getItem("slipway.log.timestamps") === "1"; } catch (e) { /* storage off */ }
    ts.addEventListener("change", function () {
      try { localStorage.setItem("slipway.log.timestamps", ts.checked ? "1" : "0"); } catch (e) { /* storage off */ }
      showTimes();
    });
    showTimes();
  }

  // A link to a line (#L42) opens the sections around it.
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (!/^L[0-9]+$/.test(id)) return false;
    var el = document.getElementById(id);
    if (!el || !view.contains(el)) return false;
    for (var d = el.parentElement; d && d !== view; d = d.parentElement) {
      if (d.tagName === "DETAILS") d.open = true;
    }
    el.scrollIntoView({ block: "center" });
    return true;
  }
  // A section the reader opened or closed is left as they set it.
  view.addEventListener("click", function (ev) {
    var sum = ev.target.closest && ev.target.closest("summary");
    if (sum && view.contains(sum) && !ev.target.closest("a")) sum.parentElement.setAttribute("data-user", "1");
  });

  // Search: only the matching lines are shown, the matches marked; Enter
  // goes to the next one, Escape clears.
  var query = "", current = -1;
  function unmark() {
    view.querySelectorAll("mark.hit").forEach(function (m) {
      var p = m.parentNode;
      p.replaceChild(document.createTextNode(m.textContent), m);
      p.normalize();
    });
    view.querySelectorAll(".ll.match").forEach(function (l) { l.classList.remove("match", "current"); });
    view.querySelectorAll("details.has-match").forEach(function (d) {
      d.classList.remove("has-match");
      if (d.hasAttribute("data-before")) { d.open = d.getAttribute("data-before") === "1"; d.removeAttribute("data-before"); }
    });
  }
  function markLine(line) {
    var text = line.querySelector(".lt");
    if (!query || !text || text.textContent.toLowerCase().indexOf(query) < 0) return false;
    line.classList.add("match");
    var walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT), nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach(function (node) {
      var i = node.nodeValue.toLowerCase().indexOf(query);
      while (i >= 0 && node.nodeValue.length === node.nodeValue.toLowerCase().length) {
        var hit = node.splitText(i);
        node = hit.splitText(query.length);
        var mark = document.createElement("mark");
        mark.className = "hit";
        hit.parentNode.replaceChild(mark, hit);
        mark.appendChild(hit);
        i = node.nodeValue.toLowerCase().indexOf(query);
      }
    });
    for (var d = line.parentElement; d && d !== view; d = d.parentElement) {
      if (d.tagName !== "DETAILS") continue;
      d.classList.add("has-match");
      if (!d.hasAttribute("data-before")) { d.setAttribute("data-before", d.open ? "1" : "0"); d.open = true; }
    }
    return true;
  }
  function count() {
    var n = view.querySelectorAll(".ll.match").length;
    matches.textContent = query ? (n === 1 ? "1 matching line" : n + " matching lines") : "";
  }
  function applySearch() {
    unmark();
    query = search.value.trim().toLowerCase();
    current = -1;
    view.classList.toggle("filtering", query !== "");
    if (query) view.querySelectorAll(".ll").forEach(markLine);
    count();
  }
  if (search) {
    var timer = 0;
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(applySearch, 120); });
    search.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") { search.value = ""; applySearch(); return; }
      if (ev.key !== "Enter") return;
      ev.preventDefault();
      clearTimeout(timer);
      if (search.value.trim().toLowerCase() !== query) applySearch();
      var hits = view.querySelectorAll(".ll.match");
      if (!hits.length) return;
      if (hits[current]) hits[current].classList.remove("current");
      current = (current + 1) % hits.length;
      hits[current].classList.add("current");
      hits[current].scrollIntoView({ block: "center" });
      follow = false;
      showFollow();
    });
  }

  // Following the end of a running action's log.
  var live = view.hasAttribute("data-stream");
  var follow = live && !location.hash, ended = !live, lastY = window.scrollY, pending = false;
  function atBottom() { return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 24; }
  function toEnd() {
    window.scrollTo(0, document.documentElement.scrollHeight);
    lastY = window.scrollY;
  }
  function showFollow() {
    if (ended) follow = false;
    view.setAttribute("data-follow", String(follow));
    if (!followNote) return;
    followNote.textContent = ended ? "" : follow ? "Following the end of the log" : "Scrolled up: not following";
    endButton.hidden = follow || ended;
  }
  if (live) {
    window.addEventListener("scroll", function () {
      var y = window.scrollY;
      if (y < lastY - 2) follow = false;
      else if (atBottom()) follow = true;
      lastY = y;
      showFollow();
    }, { passive: true });
    endButton.addEventListener("click", function () { follow = true; toEnd(); showFollow(); });
  }

  // The open sections, innermost last: where the next line goes.
  var stack = [];
  for (var c = view; ;) {
    var last = c.lastElementChild;
    if (!last || last.tagName !== "DETAILS" || !last.hasAttribute("data-unclosed")) break;
    stack.push(last);
    c = last.querySelector(":scope > .lgb");
  }
  function container() { return stack.length ? stack[stack.length - 1].querySelector(":scope > .lgb") : view; }
  function endGroup() {
    var d = stack.pop();
    if (!d) return;
    d.removeAttribute("data-unclosed");
    // A finished step folds, unless it failed or the reader chose.
    if (!d.hasAttribute("data-user") && !d.querySelector(".l-error") && !d.hasAttribute("data-before")) d.open = false;
  }
  function addLine(l) {
    if (l.kind === "endgroup") { endGroup(); return; }
    var line;
    if (l.kind === "group") {
      if (stack.length >= maxGroupDepth) endGroup();
      var d = document.createElement("details");
      d.className = "lg";
      d.open = true;
      d.setAttribute("data-unclosed", "");
      var sum = document.createElement("summary");
      sum.innerHTML = l.html; // rendered and escaped by the server
      var body = document.createElement("div");
      body.className = "lgb";
      d.appendChild(sum);
      d.appendChild(body);
      container().appendChild(d);
      stack.push(d);
      line = sum.firstElementChild;
    } else {
      var into = container();
      into.insertAdjacentHTML("beforeend", l.html); // rendered and escaped by the server
      line = into.lastElementChild;
      if (l.class === "error") {
        stack.forEach(function (g) { g.open = true; });
        var prev = line.previousElementSibling;
        if (prev && prev.tagName === "DETAILS") prev.open = true;
      }
    }
    if (empty) empty.hidden = true;
    if (markLine(line)) count();
  }

  if (live) {
    var src = stream(view.getAttribute("data-stream"));
    src.addEventListener("line", function (ev) {
      addLine(JSON.parse(ev.data));
      if (follow && !pending) {
        pending = true;
        requestAnimationFrame(function () { pending = false; if (follow) toEnd(); });
      }
    });
    src.addEventListener("head", function (ev) {
      var msg = JSON.parse(ev.data);
      var head = document.getElementById("action-head"), nav = document.getElementById("action-nav");
      if (head) { head.innerHTML = msg.head; relativeTimes(head, false); }
      if (nav) nav.innerHTML = msg.nav;
      swapKeyed("run-controls", msg.controlsKey, msg.controls);
    });
    src.addEventListener("end", function () {
      view.setAttribute("data-ended", "");
      ended = true;
      showFollow();
    });
  }
  // A long log opens at its end; earlier lines are loaded on demand, above
  // those shown, keeping the reader's place. A link to a line not shown
  // yet loads back to it.
  var earlier = document.getElementById("log-earlier");
  function loadEarlier(done) {
    if (!earlier || earlier.disabled) return;
    var note = document.getElementById("log-omitted-text");
    earlier.disabled = true;
    fetch(earlier.getAttribute("data-src") + "?before=" + encodeURIComponent(earlier.getAttribute("data-before")),
      { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) {
        if (!res.ok) throw new Error("the server answered " + res.status);
        return res.json();
      })
      .then(function (d) {
        // The first line shown stays where it is on the screen (measured,
        // as the browser's own scroll anchoring may already keep it).
        var anchor = view.querySelector(".ll"), top0 = anchor ? anchor.getBoundingClientRect().top : 0;
        var tmp = document.createElement("div");
        tmp.innerHTML = d.html; // rendered and escaped by the server
        // Sections open at this piece's end close in the lines below it.
        tmp.querySelectorAll("details[data-unclosed]").forEach(function (g) { g.removeAttribute("data-unclosed"); });
        var frag = document.createDocumentFragment();
        while (tmp.firstChild) frag.appendChild(tmp.firstChild);
        if (query) frag.querySelectorAll(".ll").forEach(markLine);
        view.insertBefore(frag, view.firstChild);
        if (query) count();
        earlier.setAttribute("data-before", String(d.before));
        if (d.omitted > 0) {
          note.textContent = "The first " + d.omitted + " of " + earlier.getAttribute("data-count") + " lines are not shown here; search looks only at those shown.";
          earlier.disabled = false;
        } else {
          document.getElementById("log-omitted").hidden = true;
          earlier = null;
        }
        if (anchor) window.scrollBy(0, anchor.getBoundingClientRect().top - top0);
        lastY = window.scrollY;
        if (done) done();
      })
      .catch(function (err) {
        note.textContent = "Earlier lines could not be loaded (" + err.message + ").";
        earlier.disabled = false;
      });
  }
  function revealOrLoad() {
    if (reveal()) return true;
    var m = /^#L([0-9]+)$/.exec(location.hash), first = view.querySelector(".ll[id]");
    if (!m || !earlier || !first || +m[1] >= +first.id.slice(1)) return false;
    loadEarlier(revealOrLoad);
    return true;
  }
  if (earlier) earlier.addEventListener("click", function () { loadEarlier(null); });
  window.addEventListener("hashchange", revealOrLoad);
  if (!revealOrLoad() && follow) toEnd();
  showFollow();
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

// countdowns show the time left until each <time data-countdown> ("in 2
// min 5 s"), ticking every second. They sit in an aria-live="off" span, so
// the ticking is not read out; the absolute time stays in the title.
function countdowns(root) {
  var now = Date.now();
  root.querySelectorAll("time[data-countdown]").forEach(function (el) {
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) return;
    var s = Math.ceil((at - now) / 1000), text;
    if (s <= 0) text = "due now";
    else if (s < 60) text = "in " + s + " s";
    else if (s < 3600) text = "in " + Math.floor(s / 60) + " min" + (s % 60 ? " " + (s % 60) + " s" : "");
    else text = "in " + Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    el.textContent = text;
  });
}

// Forms that stop, roll back, replace, cancel or revoke ask first, as the ECS and
// Argo consoles do; the question says what will happen. Listening on the
// document covers forms that live fragments draw later.
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) ev.preventDefault();
}, true);

document.addEventListener("DOMContentLoaded", function () {
  relativeTimes(document, false);
  setInterval(function () { relativeTimes(document, true); }, 30000);
  countdowns(document);
  setInterval(function () { countdowns(document); }, 1000);
  applyWidths(document);
  stackTables(document);
  document.querySelectorAll("[data-sse]").forEach(live);
  document.querySelectorAll("pre[data-logs]").forEach(logs);
  var view = document.getElementById("action-log");
  if (view) actionLog(view);
});
