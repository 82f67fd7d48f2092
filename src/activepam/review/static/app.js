// activepam review page: listen, label, every answer saved at once (no framework, no CDN).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";
const PRESENT_LABEL = { "1": "present", "0": "absent", unsure: "unsure" };

const S = {
  data: null, annotator: params.get("annotator") || "", batch: params.get("batch") || "",
  list: [], cur: 0, sel: 0, answers: {}, notes: {}, notesDirty: false,
  mode: "target", onlyUnanswered: false, queue: [], sending: false, error: "",
  stopAt: null, lastSaved: 0,
};

// ------------------------------------------------------------------ server calls

function headers(json) {
  const h = { "X-ActivePAM": "1" };
  if (json) h["Content-Type"] = "application/json";
  if (TOKEN) h["X-Review-Token"] = TOKEN;
  return h;
}

async function getJSON(url) {
  const r = await fetch(url, { headers: headers(false), credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function storeKey() { return `activepam-review:${S.data ? S.data.round : ""}:${S.annotator}`; }

function persistQueue() {
  try { localStorage.setItem(storeKey(), JSON.stringify(S.queue)); } catch (e) { /* private mode */ }
}

function enqueue(url, body) {
  S.queue.push({ url, body });
  persistQueue();
  renderStatus();
  pump();
}

// send the queue in order, one request at a time; network errors and 5xx are retried
// (the server may be restarting), 4xx are shown and dropped.
async function pump() {
  if (S.sending) return;
  S.sending = true;
  let delay = 500;
  while (S.queue.length) {
    const item = S.queue[0];
    let r = null;
    try {
      r = await fetch(item.url, { method: "POST", headers: headers(true),
        credentials: "same-origin", body: JSON.stringify(item.body) });
    } catch (e) { r = null; }
    if (r === null || r.status >= 500) {
      S.error = "server unreachable: answers kept in this tab, retrying";
      renderStatus();
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 3000);
      continue;
    }
    delay = 500;
    const body = await r.json().catch(() => ({}));
    S.queue.shift();
    persistQueue();
    if (!r.ok) {
      S.error = `not saved: ${body.error || r.statusText}`;
      if (item.body && item.body.unit_id) await reloadUnit(item.body.unit_id);
    } else {
      S.error = "";
      S.lastSaved = body.events || S.lastSaved;
      const uid = item.body.unit_id;
      if (!S.queue.some((q) => q.body.unit_id === uid)) {
        S.answers[uid] = body.answers || {};
        if (!S.notesDirty || uid !== curUnit().unit_id) S.notes[uid] = body.notes || "";
        if (item.url === "api/notes" && body.pending) {
          $("notes-hint").textContent = "note kept in this tab; it is saved with the clip's first answer";
        }
      }
    }
    render();
  }
  S.sending = false;
  renderStatus();
}

async function reloadUnit(uid) {
  try {
    const st = await getJSON(`api/state?annotator=${encodeURIComponent(S.annotator)}`);
    S.answers[uid] = st.answers[uid] || {};
  } catch (e) { /* keep */ }
}

// ------------------------------------------------------------------ model

function curUnit() { return S.list[S.cur]; }

function rowsOf(u) {
  const a = S.answers[u.unit_id] || {};
  const rows = u.rows.map((r) => ({ species: r.species, confidence: r.confidence, added: false }));
  const known = new Set(rows.map((r) => r.species));
  for (const sp of Object.keys(a)) {
    if (sp !== "" && !known.has(sp)) {
      const s = u.suggestions.find((x) => x.species === sp);
      rows.push({ species: sp, confidence: s ? s.confidence : null, added: true });
      known.add(sp);
    }
  }
  if (!rows.length) rows.push({ species: "", confidence: null, added: false, none: true });
  return rows;
}

function complete(u) {
  const a = S.answers[u.unit_id] || {};
  return rowsOf(u).every((r) => a[r.species] !== undefined);
}

function label(sp) {
  if (sp === "") return ["No species heard", "press 0 to confirm (1, u: add a species with a)"];
  const i = sp.indexOf("_");
  return i < 0 ? [sp, ""] : [sp.slice(i + 1), sp.slice(0, i)];
}

function resolveSpecies(text) {
  const q = text.trim().toLowerCase();
  if (!q) return { match: null, n: 0 };
  const labels = S.data.label_set;
  const exact = labels.find((l) => l.toLowerCase() === q);
  if (exact) return { match: exact, n: 1 };
  const parts = (l) => l.toLowerCase().split("_");
  const whole = labels.filter((l) => parts(l).includes(q));
  if (whole.length === 1) return { match: whole[0], n: 1 };
  const hits = labels.filter((l) => l.toLowerCase().includes(q));
  if (hits.length === 1) return { match: hits[0], n: 1 };
  const starts = hits.filter((l) => parts(l).some((p) => p.startsWith(q)));
  if (starts.length === 1) return { match: starts[0], n: 1 };
  return { match: null, n: hits.length, hits };
}

// ------------------------------------------------------------------ answers

function answer(species, present) {
  const u = curUnit();
  const uid = u.unit_id;
  const a = (S.answers[uid] = S.answers[uid] || {});
  if (species === "" && present !== "0" && present !== "clear") return;
  if (present === "clear") delete a[species]; else a[species] = present;
  if (species !== "" && (present === "1" || present === "unsure")) delete a[""];
  S.notesDirty = false;
  enqueue("api/answer", { annotator: S.annotator, unit_id: uid, species, present,
    notes: S.notes[uid] || "" });
}

function answerSelected(present) {
  const rows = rowsOf(curUnit());
  const r = rows[Math.min(S.sel, rows.length - 1)];
  if (!r) return;
  if (r.none && present !== "0" && present !== "clear") { flash("add the species you heard with a"); return; }
  if (present === "clear" && (S.answers[curUnit().unit_id] || {})[r.species] === undefined) return;
  answer(r.species, present);
  if (present !== "clear" && S.sel < rows.length - 1) S.sel += 1;
  render();
}

function restAbsent() {
  const u = curUnit();
  const a = S.answers[u.unit_id] || {};
  for (const r of rowsOf(u)) if (a[r.species] === undefined) answer(r.species, "0");
  render();
}

function addSpecies() {
  const input = $("add-input");
  const res = resolveSpecies(input.value);
  if (!res.match) { $("add-hint").textContent = res.n ? `${res.n} species match: type more` : "not in the label set"; return; }
  answer(res.match, "1");
  input.value = "";
  $("add-hint").textContent = `added ${label(res.match)[0]} as present`;
  input.blur();
  const rows = rowsOf(curUnit());
  S.sel = Math.max(0, rows.findIndex((r) => r.species === res.match));
  render();
}

function saveNotes() {
  const u = curUnit();
  if (!u || !S.notesDirty) return;
  S.notesDirty = false;
  enqueue("api/notes", { annotator: S.annotator, unit_id: u.unit_id, notes: S.notes[u.unit_id] || "" });
}

// ------------------------------------------------------------------ navigation

function buildList() {
  S.list = S.data.units.filter((u) => u.batch === S.batch);
}

function go(delta) {
  saveNotes();
  let j = S.cur;
  for (;;) {
    j += delta;
    if (j < 0 || j >= S.list.length) { flash(delta > 0 ? "last clip of the batch" : "first clip"); return; }
    if (!S.onlyUnanswered || !complete(S.list[j])) break;
  }
  show(j);
}

function resumeIndex() {
  const ids = S.list.map((u) => u.unit_id);
  const last = ids.indexOf(S.data.last_unit);
  if (last >= 0 && !complete(S.list[last])) return last;
  const start = last >= 0 ? last + 1 : 0;
  for (let k = 0; k < S.list.length; k++) {
    const j = (start + k) % S.list.length;
    if (!complete(S.list[j])) return j;
  }
  return Math.max(0, last);
}

function show(j) {
  S.cur = j;
  S.sel = 0;
  const u = curUnit();
  const rows = rowsOf(u);
  const a = S.answers[u.unit_id] || {};
  const firstOpen = rows.findIndex((r) => a[r.species] === undefined);
  S.sel = firstOpen >= 0 ? firstOpen : 0;
  S.notesDirty = false;
  const audio = $("audio");
  audio.pause();
  audio.src = u.clip + (TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "");
  audio.currentTime = 0;
  S.stopAt = null;
  if (u.spectrogram) {
    $("spec").hidden = false; $("no-spec").hidden = true;
    $("spec").src = u.spectrogram;
  } else {
    $("spec").hidden = true; $("no-spec").hidden = false;
  }
  const next = S.list[j + 1];
  if (next && next.spectrogram) new Image().src = next.spectrogram;
  $("notes-hint").textContent = "";
  $("add-hint").textContent = "";
  render();
}

// ------------------------------------------------------------------ audio

function target() { return curUnit().target; }

function togglePlay() {
  const audio = $("audio");
  if (!audio.paused) { audio.pause(); return; }
  const [b, e] = target();
  if (S.mode === "target") {
    if (audio.currentTime < b || audio.currentTime >= e - 0.05) audio.currentTime = b;
    S.stopAt = e;
  } else {
    if (audio.currentTime >= (curUnit().clip_len || audio.duration) - 0.05) audio.currentTime = 0;
    S.stopAt = null;
  }
  audio.play().catch(() => flash("the browser blocked playback: click play once"));
}

function replayTarget() {
  const audio = $("audio");
  const [b, e] = target();
  audio.currentTime = b;
  S.stopAt = e;
  audio.play().catch(() => flash("the browser blocked playback: click play once"));
}

function tick() {
  const audio = $("audio");
  if (S.stopAt !== null && !audio.paused && audio.currentTime >= S.stopAt) {
    audio.pause();
    audio.currentTime = S.stopAt;
    S.stopAt = null;
  }
  const u = curUnit();
  if (u && S.data) {
    const ax = S.data.axes;
    const len = u.clip_len || audio.duration || 1;
    const ph = $("playhead");
    const t = audio.currentTime || 0;
    ph.style.display = t > 0 ? "block" : "none";
    ph.style.left = `${(ax.left + Math.min(1, t / len) * ax.width) * 100}%`;
    ph.style.top = `${(1 - ax.bottom - ax.height) * 100}%`;
    ph.style.height = `${ax.height * 100}%`;
    $("time").textContent = `${t.toFixed(1)} s / ${len.toFixed(1)} s` +
      (audio.paused ? "" : " ▶");
    $("play").firstChild.textContent = audio.paused ? "▶ play " : "❚❚ pause ";
  }
  requestAnimationFrame(tick);
}

// ------------------------------------------------------------------ rendering

function flash(msg) {
  $("save-status").textContent = msg;
  $("save-status").className = "status busy";
  setTimeout(renderStatus, 1800);
}

function renderStatus() {
  const el = $("save-status");
  if (S.error) { el.textContent = S.error + (S.queue.length ? ` (${S.queue.length} waiting)` : ""); el.className = "status bad"; }
  else if (S.queue.length) { el.textContent = `saving… (${S.queue.length})`; el.className = "status busy"; }
  else { el.textContent = `all answers saved · ${S.data ? S.data.journal : ""}`; el.className = "status ok"; }
  el.dataset.pending = String(S.queue.length);
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

function render() {
  const u = curUnit();
  if (!u) return;
  const a = S.answers[u.unit_id] || {};
  const done = S.list.filter(complete).length;
  $("progress-text").textContent = `${done} of ${S.list.length} answered (batch ${S.batch})`;
  $("progress-fill").style.width = `${S.list.length ? (100 * done) / S.list.length : 0}%`;
  $("clip-pos").textContent = `clip ${S.cur + 1} of ${S.list.length}`;
  $("clip-id").textContent = u.unit_id;
  const m = u.meta || {};
  $("clip-meta").textContent = [m.site, m.habitat, m.time ? m.time.replace("T", " ").slice(0, 19) + " UTC" : "",
    m.stratum ? `stratum ${m.stratum}` : ""].filter(Boolean).join(" · ");
  const isDone = complete(u);
  $("clip-done").textContent = isDone ? "✓ answered" : "unanswered";
  $("clip-done").className = "done " + (isDone ? "yes" : "no");
  $("mode").textContent = S.mode === "target" ? "target alone (c: with context)" : "with context (c: target alone)";
  // rows
  const body = $("rows-body");
  body.replaceChildren();
  rowsOf(u).forEach((r, i) => {
    const [common, sci] = label(r.species);
    const val = a[r.species];
    const btn = (p, text, key) => el("button", {
      class: `${PRESENT_LABEL[p]}${val === p ? " on" : ""}`, title: `${PRESENT_LABEL[p]} (${key})`,
      onclick: () => { S.sel = i; answer(r.species, p); render(); } }, text);
    const conf = r.confidence === null ? el("span", { class: "conf" }, "") : el("span", { class: "conf" },
      el("span", { class: "cbar" }, (() => { const d = el("div"); d.style.width = `${Math.round(r.confidence * 100)}%`; return d; })()),
      r.confidence.toFixed(2));
    const ans = el("td", { class: "ans" });
    if (r.none) ans.append(btn("0", "confirm", "0"));
    else ans.append(btn("1", "present", "1"), btn("0", "absent", "0"), btn("unsure", "unsure", "u"));
    const tr = el("tr", { class: i === S.sel ? "selected" : "", "data-species": r.species,
      "data-answer": val === undefined ? "" : val, onclick: () => { S.sel = i; render(); } },
      el("td", {}, el("span", { class: "sp-common" }, common), sci ? el("span", { class: "sp-sci" }, sci) : null,
        r.added ? el("span", { class: "added" }, "added") : null),
      el("td", {}, conf), ans);
    body.append(tr);
  });
  const others = u.suggestions.filter((s) => !rowsOf(u).some((r) => r.species === s.species));
  $("others").textContent = others.length ? "other model suggestions: " + others.map((s) =>
    `${label(s.species)[0]} ${s.confidence.toFixed(2)}${s.in_label_set ? "" : " (not in the label set)"}`).join(" · ") : "";
  if (document.activeElement !== $("notes")) $("notes").value = S.notes[u.unit_id] || "";
  document.body.dataset.unit = u.unit_id;
  document.body.dataset.index = String(S.cur);
  renderStatus();
}

// ------------------------------------------------------------------ keyboard

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
    if (t.id === "add-input" && ev.key === "Enter") { ev.preventDefault(); addSpecies(); }
    else if (t.id === "notes" && ev.key === "Enter") { ev.preventDefault(); saveNotes(); t.blur(); }
    else if (ev.key === "Escape") { if (t.id === "notes") saveNotes(); if (t.id === "add-input") t.value = ""; t.blur(); }
    return;
  }
  if (!S.data || !curUnit()) return;
  const k = ev.key;
  const rows = rowsOf(curUnit());
  let handled = true;
  if (k === " ") togglePlay();
  else if (k === "r") replayTarget();
  else if (k === "c") { S.mode = S.mode === "target" ? "context" : "target"; render(); }
  else if (k === "n" || k === "ArrowRight") go(1);
  else if (k === "p" || k === "ArrowLeft") go(-1);
  else if (k === "ArrowDown" || k === "j") { S.sel = Math.min(rows.length - 1, S.sel + 1); render(); }
  else if (k === "ArrowUp" || k === "k") { S.sel = Math.max(0, S.sel - 1); render(); }
  else if (k === "1") answerSelected("1");
  else if (k === "0") answerSelected("0");
  else if (k === "u") answerSelected("unsure");
  else if (k === "Backspace" || k === "Delete") answerSelected("clear");
  else if (k === "x") restAbsent();
  else if (k === "a") $("add-input").focus();
  else if (k === "/") $("notes").focus();
  else if (k === "f") { S.onlyUnanswered = !S.onlyUnanswered; $("only-unanswered").checked = S.onlyUnanswered; }
  else handled = false;
  if (handled) ev.preventDefault();
}

// ------------------------------------------------------------------ start

async function start() {
  if (!S.annotator) {  // the server's --annotator, if it was given one
    try { S.annotator = (await getJSON("api/state")).annotator || ""; } catch (e) { /* below */ }
  }
  if (!S.annotator) {
    $("name-form").hidden = false;
    $("save-status").textContent = "who is listening?";
    $("name-input").focus();
    return;
  }
  let data;
  try {
    data = await getJSON(`api/state?annotator=${encodeURIComponent(S.annotator)}`);
  } catch (e) {
    $("save-status").textContent = `cannot load the round: ${e.message}`;
    $("save-status").className = "status bad";
    return;
  }
  S.data = data;
  S.annotator = data.annotator;
  S.answers = data.answers || {};
  S.notes = data.notes || {};
  if (!data.batches.includes(S.batch)) S.batch = data.default_batch;
  $("round-name").textContent = data.round;
  $("annotator").textContent = `annotator ${S.annotator}`;
  const sel = $("batch");
  sel.replaceChildren(...data.batches.map((b) => el("option", { value: b }, b)));
  sel.value = S.batch;
  $("label-list").replaceChildren(...data.label_set.map((l) => el("option", { value: l })));
  // answers given in this tab but not acknowledged before it closed
  try { S.queue = JSON.parse(localStorage.getItem(storeKey()) || "[]"); } catch (e) { S.queue = []; }
  for (const q of S.queue) {
    if (q.url !== "api/answer") continue;
    const a = (S.answers[q.body.unit_id] = S.answers[q.body.unit_id] || {});
    if (q.body.present === "clear") delete a[q.body.species]; else a[q.body.species] = q.body.present;
  }
  buildList();
  $("main").hidden = false;
  show(resumeIndex());
  document.body.dataset.ready = "1";
  pump();
}

function wire() {
  document.addEventListener("keydown", onKey);
  $("name-f").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("name-input").value.trim();
    params.set("annotator", name);
    history.replaceState(null, "", `?${params}`);
    S.annotator = name;
    $("name-form").hidden = true;
    start();
  });
  $("batch").addEventListener("change", (ev) => {
    saveNotes();
    S.batch = ev.target.value;
    params.set("batch", S.batch);
    history.replaceState(null, "", `?${params}`);
    buildList();
    show(resumeIndex());
    ev.target.blur();
  });
  $("only-unanswered").addEventListener("change", (ev) => { S.onlyUnanswered = ev.target.checked; ev.target.blur(); });
  $("notes").addEventListener("input", (ev) => { S.notes[curUnit().unit_id] = ev.target.value; S.notesDirty = true; });
  $("notes").addEventListener("blur", saveNotes);
  $("add-input").addEventListener("input", (ev) => {
    const res = resolveSpecies(ev.target.value);
    $("add-hint").textContent = res.match ? `Enter adds: ${label(res.match)[0]} (${label(res.match)[1]})`
      : ev.target.value ? (res.n ? `${res.n} matches: type more` : "not in the label set") : "";
  });
  $("play").addEventListener("click", togglePlay);
  $("replay").addEventListener("click", replayTarget);
  $("mode").addEventListener("click", () => { S.mode = S.mode === "target" ? "context" : "target"; render(); });
  $("prev").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  $("none").addEventListener("click", restAbsent);
  $("spec").addEventListener("click", (ev) => {
    const rect = ev.target.getBoundingClientRect();
    const ax = S.data.axes;
    const f = ((ev.clientX - rect.left) / rect.width - ax.left) / ax.width;
    if (f >= 0 && f <= 1) { const audio = $("audio"); audio.currentTime = f * (curUnit().clip_len || audio.duration); S.stopAt = null; audio.play().catch(() => {}); }
  });
  window.addEventListener("beforeunload", (ev) => { saveNotes(); if (S.queue.length) { ev.preventDefault(); ev.returnValue = ""; } });
  requestAnimationFrame(tick);
}

wire();
start();
