// Paddock studio: makes live pages live. Every page works without it; with
// it, a page that names an event stream (body[data-live]) follows it:
//   html  elements that replace those of the same id
//   log   log lines to append to #log
//   skip  a note that lines were skipped (the log outran the browser)
//   end   nothing more will change
// and the log loads older lines as the reader scrolls up.
(function () {
  "use strict";
  var maxLines = 5000; // log lines kept in the page; older ones load again on scroll

  function parse(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }

  var log = document.getElementById("log");
  var follow = document.getElementById("follow");
  function atEnd() { return !follow || follow.checked; }
  function toEnd() { if (log && atEnd()) { log.scrollTop = log.scrollHeight; } }
  toEnd();

  function setOlder(url) {
    if (!log) { return; }
    log.dataset.older = url || "";
    var more = log.querySelector(":scope > a.more");
    if (!url && more) { more.remove(); }
  }

  function appendLines(frag) {
    var none = document.getElementById("nolog");
    if (none) { none.remove(); }
    log.classList.remove("empty");
    log.appendChild(frag);
    var lines = log.querySelectorAll(":scope > .ln");
    if (lines.length > maxLines) {
      var drop = lines.length - maxLines;
      for (var i = 0; i < drop; i++) { lines[i].remove(); }
      var first = log.querySelector(":scope > .ln");
      var base = (document.body.dataset.live || "").replace(/\/events.*$/, "/log?before=");
      if (first) { setOlder(base + first.dataset.seq); }
    }
    toEnd();
  }

  var loading = false;
  function loadOlder() {
    var url = log && log.dataset.older;
    if (!url || loading) { return; }
    loading = true;
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(r.status); }
      return r.text();
    }).then(function (html) {
      var frag = parse(html);
      var wrap = frag.firstElementChild;
      var before = log.scrollHeight;
      var anchor = log.querySelector(":scope > .ln, :scope > .gap");
      var more = log.querySelector(":scope > a.more");
      Array.prototype.slice.call(wrap.childNodes).forEach(function (n) { log.insertBefore(n, anchor); });
      setOlder(wrap.dataset.older);
      if (more && wrap.dataset.older) { log.insertBefore(more, log.firstChild); }
      log.scrollTop += log.scrollHeight - before;
    }).catch(function () {}).then(function () { loading = false; });
  }

  if (log) {
    log.addEventListener("scroll", function () {
      if (log.scrollTop < 40) { loadOlder(); }
      if (follow) { follow.checked = log.scrollHeight - log.scrollTop - log.clientHeight < 30; }
    });
    var more = log.querySelector(":scope > a.more");
    if (more) {
      more.addEventListener("click", function (e) { e.preventDefault(); loadOlder(); });
    }
    if (follow) { follow.addEventListener("change", toEnd); }
  }

  var url = document.body.dataset.live;
  if (!url || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var es = new EventSource(url);
  es.addEventListener("open", function () { if (state) { state.textContent = "live"; } });
  es.addEventListener("error", function () { if (state) { state.textContent = "reconnecting…"; } });
  es.addEventListener("html", function (e) {
    var frag = parse(e.data);
    Array.prototype.slice.call(frag.children).forEach(function (el) {
      var old = el.id && document.getElementById(el.id);
      if (old) { old.replaceWith(el); }
    });
  });
  es.addEventListener("log", function (e) { if (log) { appendLines(parse(e.data)); } });
  es.addEventListener("skip", function (e) {
    if (!log) { return; }
    var d = document.createElement("div");
    d.className = "gap";
    d.textContent = "… " + e.data;
    appendLines(d);
  });
  es.addEventListener("end", function () {
    es.close();
    if (state) { state.textContent = ""; }
  });
})();
