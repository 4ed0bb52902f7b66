// sqm board: sparklines, ticking waits and countdowns, the staleness indicator, sound on a new
// critical alert, and rotation between scopes. The figures themselves arrive as server-rendered
// HTML over Server-Sent Events (htmx and its SSE extension swap them in).
(function () {
  "use strict";
  const body = document.body;
  const lang = body.dataset.lang || "en";
  const staleAfter = Number(body.dataset.staleAfter || 30) * 1000;
  let lastUpdate = Date.now();  // the page itself was rendered now; a stream that never connects turns red
  const seenCritical = new Set();
  let firstAlerts = true;

  // Errors (a missing admin key, a conflict) are shown in place of the row that asked.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "[45]..", swap: true, error: true },
  ];

  function duration(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const p = (n) => String(n).padStart(2, "0");
    if (lang === "zh-CN") return h ? `${h}小时${p(m)}分` : m ? `${m}分${p(sec)}秒` : `${sec}秒`;
    return h ? `${h}h ${p(m)}m` : m ? `${m}m ${p(sec)}s` : `${sec}s`;
  }

  function tick() {
    const now = Date.now() / 1000;
    document.querySelectorAll("[data-since]").forEach((el) => {
      const inState = now - Number(el.dataset.since);
      if (el.dataset.agent !== undefined) {  // an agent cell: its time in state, highlighted once long
        const t = el.querySelector(".t");
        if (t) t.textContent = duration(inState);
        if (el.dataset.longAfter) el.classList.toggle("long", inState >= Number(el.dataset.longAfter));
        return;
      }
      el.textContent = duration(inState);
    });
    document.querySelectorAll("[data-due]").forEach((el) => {
      const left = Number(el.dataset.due) - now;
      el.textContent = el.dataset.late ? duration(-left) : left >= 0 ? duration(left) : "−" + duration(-left);
    });
    const up = document.getElementById("updated");
    if (up) {
      const age = Date.now() - lastUpdate;
      const stale = age > staleAfter;
      up.classList.toggle("stale", stale);
      up.textContent = stale
        ? `${body.dataset.i18nStale} ${duration(age / 1000)}`
        : `${body.dataset.i18nUpdated} ${new Date(lastUpdate).toLocaleTimeString(lang)}`;
    }
  }

  // Quarter-hour times arrive as epoch seconds: shown in the screen's own time zone.
  function localTimes(root) {
    root.querySelectorAll("time[data-ts]").forEach((el) => {
      const d = new Date(Number(el.dataset.ts) * 1000);
      el.dateTime = d.toISOString();
      el.textContent = d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", hour12: false });
    });
  }

  function css(name) {
    return getComputedStyle(body).getPropertyValue(name).trim() || "#888";
  }

  function drawSparks(root) {
    root.querySelectorAll(".spark[data-series]").forEach((el) => {
      let ys = JSON.parse(el.dataset.series || "[]");
      let before = JSON.parse(el.dataset.before || "[]");
      el.replaceChildren();
      // minutes before the scope had any figure (today or yesterday) are left out, so that the line
      // spans the tile from its first point instead of filling only its right part
      let first = 0;
      while (first < ys.length && ys[first] === null && (before[first] ?? null) === null) first++;
      ys = ys.slice(first); before = before.slice(first);
      if (ys.filter((v) => v !== null).length < 2) return;
      const xs = ys.map((_, i) => i);
      const prior = xs.map((i) => (i < before.length ? before[i] : null));
      const status = el.dataset.status;
      const stroke = status === "critical" ? css("--critical") : status === "warning" ? css("--warning") : css("--accent");
      const width = el.clientWidth || 180, height = el.clientHeight || 34;
      new uPlot({
        width, height, padding: [4, 2, 2, 2], cursor: { show: false }, legend: { show: false }, select: { show: false },
        scales: { x: { time: false } }, axes: [{ show: false }, { show: false }],
        series: [{}, { stroke, width: 1.5, spanGaps: true, points: { show: false } },
          { stroke: css("--muted"), width: 1, dash: [3, 3], spanGaps: true, points: { show: false } }],
      }, [xs, ys, prior], el);
    });
  }

  let audio = null;
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      audio.resume();  // browsers start audio suspended until a person interacts with the page
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; g.gain.value = 0.15;
      o.connect(g); g.connect(audio.destination);
      o.start(); o.stop(audio.currentTime + 0.35);
    } catch (e) { /* no audio device: the colour and the word still say it */ }
  }

  function soundOn() {
    return body.dataset.sound === "1" || localStorage.getItem("sqm-sound") === "1";
  }

  function checkAlerts() {
    const sound = soundOn();
    let fresh = false;
    document.querySelectorAll('[data-alert-id][data-severity="critical"]').forEach((el) => {
      const id = el.dataset.alertId;
      if (!seenCritical.has(id)) { seenCritical.add(id); fresh = true; }
    });
    if (fresh && sound && !firstAlerts) beep();
    firstAlerts = false;
  }

  // A panel shows whole alerts only: those that do not fit are counted on a last line instead of
  // being cut in half at the panel's edge (critical ones come first, so they are the ones shown).
  // A panel's list shows the rows that fit and says how many more there are, instead of running
  // past the panel's edge (rows wrap to two lines with long names or in a narrow column).
  const FIT = {alerts: "ul.alerts > li[data-alert-id]", tickets: "ol.tickets > li", comments: "ul.comments > li",
    rankings: "ol.ranking:last-of-type > li"};
  function fit(id) {
    const section = document.getElementById(id);
    const items = section ? [...section.querySelectorAll(FIT[id])] : [];
    const list = items.length ? items[0].parentElement : null;
    const panel = list && list.closest(".panel");
    if (!panel) return;
    list.querySelectorAll("li.more").forEach((el) => el.remove());
    items.forEach((el) => { el.hidden = false; });
    const bottom = panel.getBoundingClientRect().bottom - 24;  // room for the "more" line
    let hidden = 0;
    items.forEach((el) => {
      if (hidden || el.getBoundingClientRect().bottom > bottom) { el.hidden = true; hidden++; }
    });
    if (hidden) {
      const more = document.createElement("li");
      more.className = "more";
      more.textContent = id === "alerts" ? `+${hidden} ${body.dataset.i18nMore}` : `+${hidden}`;
      list.appendChild(more);
    }
  }
  function fitAll() { Object.keys(FIT).forEach(fit); }

  document.body.addEventListener("htmx:sseMessage", () => { lastUpdate = Date.now(); tick(); });
  document.body.addEventListener("htmx:afterSwap", (e) => {
    drawSparks(e.target);
    localTimes(e.target);
    if (e.target.id === "alerts") checkAlerts();
    if (e.target.id in FIT) fit(e.target.id);
  });
  window.addEventListener("resize", fitAll);

  // the header's pickers submit their form on change (no inline handlers: the page's CSP forbids them)
  document.querySelectorAll("select[data-autosubmit]").forEach(
    (sel) => sel.addEventListener("change", () => sel.form.submit()));

  const sound = document.getElementById("sound");
  if (sound) {
    sound.checked = soundOn();
    sound.addEventListener("change", () => localStorage.setItem("sqm-sound", sound.checked ? "1" : "0"));
  }

  const rotate = (body.dataset.rotate || "").split(",").filter(Boolean);
  if (rotate.length) {
    const url = new URL(location.href);
    const next = rotate[(rotate.indexOf(url.searchParams.get("scope") || body.dataset.scope) + 1) % rotate.length];
    ["team", "queue", "channel", "tier", "agent"].forEach((k) => url.searchParams.delete(k));
    setTimeout(() => { url.searchParams.set("scope", next); location.replace(url.toString()); },
      Number(body.dataset.every || 30) * 1000);
  }

  drawSparks(document);
  localTimes(document);
  checkAlerts();
  fitAll();
  setInterval(tick, 1000);
})();
