// The operator panel page: polls /api/state, refreshes camera frames when their sequence number
// changes, draws the success-rate plot, sends the operator's marks with the access token, and
// replays a stored trial (a dot of the per-context history) as a flip-book of its frames.
"use strict";

const token = (() => {
  // The token comes in the URL fragment (never sent to the server in a request line or log).
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("ript-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  return sessionStorage.getItem("ript-token") || "";
})();
const $ = (id) => document.getElementById(id);
let current = null;
const seen = {};

function feedback(text, error) { const el = $("feedback"); el.textContent = text; el.className = error ? "error" : ""; }

const auth = { "Authorization": "Bearer " + token };
// Every read needs the token too (the scene and the robot's state are not public): frames are
// fetched with it and shown through blob URLs, since an <img src> cannot carry a header.
const get = (path) => fetch(path, { headers: auth });
async function showFrame(img, name, seq) {
  const r = await get(`/api/camera/${name}.jpg?seq=${seq}`);
  if (!r.ok) return;
  const previous = img.src, url = URL.createObjectURL(await r.blob());
  img.onload = () => { if (previous.startsWith("blob:")) URL.revokeObjectURL(previous); };
  img.src = url; img.dataset.seq = seq;
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", ...auth },
                                body: JSON.stringify(body || {}) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { feedback(`${r.status} ${data.error || ""}: ${JSON.stringify(data.detail)}`, true); return null; }
  return data;
}

const trialId = () => (current && current.trial ? current.trial.trial_id : "");
const actions = {
  success: async () => { const m = await post("/api/mark", { trial_id: trialId(), outcome: "success" }); if (m) feedback(`marked ${m.trial_id}: success (${m.status})`); },
  failure: async () => { const m = await post("/api/mark", { trial_id: trialId(), outcome: "failure" }); if (m) feedback(`marked ${m.trial_id}: failure (${m.status})`); },
  abort: async () => { const a = await post("/api/abort", { trial_id: trialId(), reason: "operator: unsafe" }); if (a) feedback(`aborted ${a.trial_id} (discarded)`); },
  accept: async () => { const m = await post("/api/accept_suggestion", { trial_id: trialId() }); if (m) feedback(`accepted suggestion for ${m.trial_id}: ${m.success ? "success" : "failure"}`); },
  undo: async () => { const m = await post("/api/undo"); if (m) feedback(`undone: ${m.trial_id}`); },
  next: async () => { const a = await post("/api/start_next"); if (a) feedback(`started ${a.trial_id}`); },
  // robot: the e-stop acts at once; release and home move the robot again, so they ask first
  estop: async () => { const a = await post("/api/robot/estop"); if (a) feedback(a.message, true); },
  release: async () => { if (!confirm("Release the e-stop? The robot follows the policy again.")) return;
                         const a = await post("/api/robot/release"); if (a) feedback(a.message); },
  home: async () => { if (!confirm("Move the robot to its home pose?")) return;
                      const a = await post("/api/robot/home"); if (a) feedback(a.message); },
  // the report opens through a one-visit link (a navigation cannot carry the token's header); the
  // tab is opened during the click so no popup blocker stops it, and pointed at the link once known
  report: async () => { const tab = window.open("about:blank", "_blank"); const r = await post("/api/report");
                        if (r && tab) tab.location = r.url; else if (tab) tab.close(); },
};
for (const [name, fn] of Object.entries(actions)) $("btn-" + name).addEventListener("click", fn);
const keys = { s: "success", f: "failure", a: "abort", y: "accept", u: "undo", n: "next", e: "estop" };
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  if (e.key === "Escape" && !$("replay").hidden) { closeReplay(); return; }
  const name = keys[e.key.toLowerCase()];
  if (name) { e.preventDefault(); actions[name](); }
});

function render(s) {
  current = s;
  const t = s.trainer || {};
  $("trainer-state").textContent = t.state || "unknown";
  $("trainer-state").className = "badge " + (t.state || "");
  $("trainer-message").textContent = t.message || "";
  const trial = s.trial;
  $("progress").textContent = trial ? `iteration ${trial.iteration} · context ${trial.context_id} · trial ${trial.trial_index + 1} of ${trial.group_size}` +
    (t.batch_target ? ` · ${t.trials_collected}/${t.batch_target} collected` : "") : "";
  $("instruction").textContent = trial ? trial.instruction : "no trial yet";
  $("trial").textContent = trial ? `trial ${trial.trial_id}` + (s.trial_closed ? ` — ${s.trial_closed}` : "") : "";
  const sure = s.suggestion_source === "classifier" ? ` (confidence ${s.suggestion_confidence.toFixed(2)})` : "";
  $("suggestion").textContent = s.suggestion === null ? "" : `${s.suggestion_source} suggests: ${s.suggestion ? "success" : "failure"}${sure}` + (s.auto_accept && s.suggestion_source === "simulator" ? " (auto-accept on)" : "");
  const open = trial && !s.trial_closed;
  for (const b of ["success", "failure", "abort"]) $("btn-" + b).disabled = !open;
  $("btn-accept").disabled = !open || s.suggestion === null;
  $("btn-undo").disabled = !(s.undo_left_s > 0);
  if (s.last_mark && s.undo_left_s > 0) $("btn-undo").textContent = `Undo (${s.undo_left_s.toFixed(1)} s) U`;
  else $("btn-undo").innerHTML = "Undo <kbd>U</kbd>";
  for (const img of document.querySelectorAll("img[data-camera]")) {
    const name = img.dataset.camera, seq = s.cameras[name];
    if (seq && seq !== seen[name]) { seen[name] = seq; showFrame(img, name, seq); }
  }
}

function plot(h) {
  const c = $("plot"), g = c.getContext("2d"), W = c.width, H = c.height, pad = 30;
  g.clearRect(0, 0, W, H); g.strokeStyle = "#999"; g.fillStyle = "#444"; g.font = "11px sans-serif";
  g.beginPath(); g.moveTo(pad, 10); g.lineTo(pad, H - pad); g.lineTo(W - 10, H - pad); g.stroke();
  g.fillText("1.0", 4, 14); g.fillText("0.0", 4, H - pad); g.fillText("iteration", W - 60, H - 8);
  const pts = h.iterations;
  if (!pts.length) { g.fillText("no marked trials yet", pad + 20, H / 2); return; }
  const xs = (i) => pad + (pts.length === 1 ? (W - pad - 10) / 2 : i * (W - pad - 20) / (pts.length - 1));
  const ys = (r) => H - pad - r * (H - pad - 10);
  g.strokeStyle = "#2563eb"; g.lineWidth = 2; g.beginPath();
  pts.forEach((p, i) => (i ? g.lineTo(xs(i), ys(p.success_rate)) : g.moveTo(xs(i), ys(p.success_rate)))); g.stroke();
  pts.forEach((p, i) => { g.fillStyle = "#2563eb"; g.beginPath(); g.arc(xs(i), ys(p.success_rate), 3, 0, 7); g.fill();
                          g.fillStyle = "#444"; g.fillText(String(p.iteration), xs(i) - 3, H - pad + 14); });
  const body = document.querySelector("#contexts tbody"); body.replaceChildren();
  for (const ctx of h.contexts) {
    const tr = document.createElement("tr"), name = document.createElement("td"), dots = document.createElement("td");
    name.textContent = ctx.context_id;
    ctx.outcomes.forEach((ok, i) => {
      if (i < ctx.outcomes.length - 30) return;  // the newest 30
      const d = document.createElement("button"), id = ctx.trial_ids[i];
      d.className = "dot " + (ok ? "ok" : "ko"); d.dataset.trialId = id;
      d.title = `${id}: ${ok ? "success" : "failure"} (click to replay)`; dots.appendChild(d);
    });
    tr.append(name, dots); body.appendChild(tr);
  }
}

// ---- trial replay -----------------------------------------------------------------------------
// Frames come one request each, with the token (as camera frames do), kept as blob URLs while the
// trial is open. `run` changes whenever what is shown changes, so a stale fetch or play loop stops.
const REPLAY_FPS = 8;
const replay = { trial: null, camera: "", frames: new Map(), run: 0 };
function forgetFrames() { for (const url of replay.frames.values()) URL.revokeObjectURL(url); replay.frames.clear(); }
function stopPlaying() { replay.run++; $("replay-play").textContent = "Play"; }

async function showReplayFrame(index, run) {
  const trial = replay.trial, key = `${replay.camera}/${index}`;
  let url = replay.frames.get(key);
  if (!url) {
    const r = await get(`/api/trials/${encodeURIComponent(trial.trial_id)}/frames/${index}.jpg?camera=${encodeURIComponent(replay.camera)}`);
    if (replay.run !== run) return false;
    if (!r.ok) { $("replay-note").textContent = `frame ${index}: ${r.status} ${(await r.json().catch(() => ({}))).detail || ""}`; return false; }
    url = URL.createObjectURL(await r.blob());
    if (replay.run !== run) { URL.revokeObjectURL(url); return false; }
    replay.frames.set(key, url);
  }
  $("replay-frame").src = url; $("replay-slider").value = index;
  $("replay-position").textContent = `frame ${index + 1} of ${trial.frames}`;
  return true;
}

async function openReplay(trialId) {
  stopPlaying(); forgetFrames(); replay.trial = null;
  const run = replay.run;
  $("replay").hidden = false; $("replay-player").hidden = true; $("replay-trial").textContent = trialId;
  for (const id of ["replay-info", "replay-reward", "replay-judge"]) $(id).textContent = "";
  $("replay-note").textContent = "loading…";
  const r = await get(`/api/trials/${encodeURIComponent(trialId)}`);
  const trial = await r.json().catch(() => ({}));
  if (replay.run !== run) return;
  if (!r.ok) { $("replay-note").textContent = `${r.status} ${trial.error || ""}: ${trial.detail || ""}`; return; }
  replay.trial = trial; replay.camera = trial.cameras[0] || "";
  $("replay-info").textContent = `iteration ${trial.iteration} · context ${trial.context_id} · ${trial.num_steps} steps · weights version ${trial.weights_version}`;
  $("replay-reward").textContent = `reward ${trial.reward} (${trial.reward > 0.5 ? "success" : "failure"})`;
  $("replay-judge").textContent = trial.reward_source || "unknown";
  if (!trial.frames) { $("replay-note").textContent = "no camera frames were stored for this trial (a state-only run)"; return; }
  $("replay-note").textContent = "";
  $("replay-camera").replaceChildren(...trial.cameras.map((name) => new Option(name, name)));
  $("replay-camera").hidden = trial.cameras.length < 2;
  $("replay-slider").max = trial.frames - 1; $("replay-player").hidden = false;
  await showReplayFrame(0, run);
}

function closeReplay() { stopPlaying(); forgetFrames(); replay.trial = null; $("replay").hidden = true; }

async function togglePlay() {
  const trial = replay.trial;
  if (!trial || !trial.frames) return;
  if ($("replay-play").textContent === "Pause") { stopPlaying(); return; }
  const run = ++replay.run;
  $("replay-play").textContent = "Pause";
  let index = Number($("replay-slider").value);
  if (index >= trial.frames - 1) index = 0;  // at the end: play from the start
  for (; index < trial.frames && replay.run === run; index++) {
    if (!(await showReplayFrame(index, run))) break;
    await new Promise((done) => setTimeout(done, 1000 / REPLAY_FPS));
  }
  if (replay.run === run) stopPlaying();
}

// the history table is redrawn every poll: one listener on the table serves every dot
$("contexts").addEventListener("click", (e) => { const dot = e.target.closest(".dot[data-trial-id]"); if (dot) openReplay(dot.dataset.trialId); });
$("replay-close").addEventListener("click", closeReplay);
$("replay-play").addEventListener("click", togglePlay);
$("replay-slider").addEventListener("input", () => { stopPlaying(); showReplayFrame(Number($("replay-slider").value), replay.run); });
$("replay-camera").addEventListener("change", () => {
  stopPlaying(); replay.camera = $("replay-camera").value; showReplayFrame(Number($("replay-slider").value), replay.run);
});

async function poll() {
  try { const r = await get("/api/state"); if (r.ok) render(await r.json()); } catch (e) { feedback("panel unreachable", true); }
  setTimeout(poll, 250);
}
async function pollHistory() {
  try { const r = await get("/api/history"); if (r.ok) plot(await r.json()); } catch (e) { /* next round */ }
  setTimeout(pollHistory, 2000);
}
if (!token) feedback("no access token: open the URL the panel printed at start (…/#token=…)", true);
poll(); pollHistory();
