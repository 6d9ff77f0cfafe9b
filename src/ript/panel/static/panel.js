// The operator panel page: polls /api/state, refreshes camera frames when their sequence number
// changes, draws the success-rate plot, and sends the operator's marks with the access token.
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
    for (const ok of ctx.outcomes.slice(-30)) { const d = document.createElement("span"); d.className = "dot " + (ok ? "ok" : "ko"); dots.appendChild(d); }
    tr.append(name, dots); body.appendChild(tr);
  }
}

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
