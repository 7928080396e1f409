// The page of `disgen serve`: asks /api/info what the run offers and shows those panels.
// No framework and nothing from the network, so it works offline.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let z = null; // the latent vector of the shown sample; the sliders edit its first dimensions
let latest = 0; // only the newest image request's answer is shown (strokes can overlap)

async function api(path, body, type) {
  let res;
  try {
    res = await fetch(path, { method: "POST", headers: { "Content-Type": type }, body });
  } catch (err) {
    throw new Error("the server did not answer: is `disgen serve` still running?");
  }
  let data = null;
  try {
    data = await res.json();
  } catch (err) {
    throw new Error(`the server answered ${res.status} ${res.statusText}`);
  }
  if (!res.ok) throw new Error(data.error || `the server answered ${res.status}`);
  return data;
}

function showError(message) {
  $("error").textContent = message ? "Error: " + message : "";
  $("error").hidden = !message;
}

// -- drawing and uploads -------------------------------------------------------------------------
function setupInput() {
  const f = info.features;
  $("input-panel").hidden = false;
  $("predict-panel").hidden = !f.predict;
  $("reconstruct-panel").hidden = !f.reconstruct;
  if (f.draw) {
    setupCanvas();
  } else {
    $("input-panel").querySelector("h2").textContent = "Drop an image";
    $("drop-hint").textContent = "Drop an image file here, or upload one.";
    $("clear").hidden = true;
  }
  $("file").addEventListener("change", () => {
    if ($("file").files.length) analyseFile($("file").files[0]);
    $("file").value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) analyseFile(e.dataTransfer.files[0]);
  });
}

function setupCanvas() {
  const c = $("canvas");
  const ctx = c.getContext("2d");
  c.hidden = false;
  let last = null;
  const clear = () => {
    ctx.fillStyle = "#000"; // MNIST's polarity: white ink on black, opaque so nothing is transparent
    ctx.fillRect(0, 0, c.width, c.height);
    for (const id of ["prediction", "probs"]) $(id).textContent = "";
    for (const id of ["model-input", "recon-input", "reconstruction"]) $(id).removeAttribute("src");
  };
  const at = (e) => {
    const r = c.getBoundingClientRect();
    return [(e.clientX - r.left) * c.width / r.width, (e.clientY - r.top) * c.height / r.height];
  };
  const line = (a, b) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
  };
  c.addEventListener("pointerdown", (e) => {
    c.setPointerCapture(e.pointerId);
    $("upload-preview").hidden = true;
    last = at(e);
    line(last, last);
  });
  c.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = at(e);
    line(last, p);
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    analyse(pngOf(c), "image/png");
  };
  c.addEventListener("pointerup", end);
  c.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", clear);
  clear();
}

// The canvas as PNG bytes. toDataURL, not toBlob: Chromium may defer toBlob's encoding to idle
// time, a second's lag after each stroke.
function pngOf(canvas) {
  const b64 = canvas.toDataURL("image/png").split(",")[1];
  return new Blob([Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))], { type: "image/png" });
}

function analyseFile(file) {
  const limit = info.max_upload_bytes;
  if (file.size > limit) {
    const size = (n) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MB` : `${Math.ceil(n / 1024)} KB`);
    showError(`${file.name} is ${size(file.size)}; the limit is ${size(limit)}: choose a smaller image`);
    return;
  }
  if (!info.features.draw) {
    $("upload-preview").src = URL.createObjectURL(file);
    $("upload-preview").hidden = false;
  }
  analyse(file, file.type || "application/octet-stream");
}

async function analyse(blob, type) {
  const mine = ++latest;
  try {
    const f = info.features;
    const pred = f.predict ? await api("/api/predict", blob, type) : null;
    const recon = f.reconstruct ? await api("/api/reconstruct", blob, type) : null;
    if (mine !== latest) return;
    showError("");
    if (pred) showPrediction(pred);
    if (recon) {
      $("recon-input").src = recon.input;
      $("reconstruction").src = recon.reconstruction;
    }
  } catch (err) {
    if (mine === latest) showError(err.message);
  }
}

function showPrediction(d) {
  $("model-input").src = d.input;
  const probs = $("probs");
  probs.textContent = "";
  d.classes.forEach((name, i) => {
    const row = document.createElement("div");
    row.className = "prob" + (name === d.label ? " top" : "");
    row.dataset.class = name;
    const pct = (100 * d.probabilities[i]).toFixed(1);
    row.innerHTML = '<span class="name"></span><span class="bar"><span></span></span><span class="pct"></span>';
    row.querySelector(".name").textContent = name;
    row.querySelector(".bar span").style.width = pct + "%";
    row.querySelector(".pct").textContent = pct + "%";
    probs.appendChild(row);
  });
  $("prediction").textContent = d.label; // last: tests wait for this text
}

// -- generators ----------------------------------------------------------------------------------
function setupGenerator() {
  const f = info.features;
  $("sample-panel").hidden = false;
  if (f.labels) {
    $("label-field").hidden = false;
    info.classes.forEach((name, i) => $("label").add(new Option(name, i)));
    $("label").addEventListener("change", () => (z ? decode() : showSeed()));
  }
  $("sample").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 2147483647);
    showSeed();
  });
  $("seed").addEventListener("change", showSeed);
  if (f.sample === "points") {
    $("scatter").hidden = false;
    showSeed();
    return;
  }
  $("sample-image").hidden = false;
  $("interpolate-panel").hidden = false;
  $("interpolate").addEventListener("click", interpolate);
  makeSliders(f.sliders, f.noise_std);
  showSeed();
}

function chosenLabel() {
  return info.features.labels ? Number($("label").value) : null;
}

async function request(path, body) {
  try {
    const d = await api(path, JSON.stringify(body), "application/json");
    showError("");
    return d;
  } catch (err) {
    showError(err.message);
    return null;
  }
}

async function showSeed() {
  const seed = Number($("seed").value);
  const d = await request("/api/sample", { seed, label: chosenLabel() });
  if (!d) return;
  if (d.points) return drawPoints(d.points);
  $("sample-image").src = d.image;
  z = d.z;
  for (const s of document.querySelectorAll("#sliders input")) {
    s.value = z[Number(s.dataset.dim)];
    s.previousElementSibling.textContent = `z${Number(s.dataset.dim) + 1} ${Number(s.value).toFixed(2)}`;
  }
}

let decoding = false;
let again = false;
async function decode() {
  if (decoding) { again = true; return; } // slider moves faster than the model: keep the newest
  decoding = true;
  const d = await request("/api/sample", { z, label: chosenLabel() });
  if (d) $("sample-image").src = d.image;
  decoding = false;
  if (again) { again = false; decode(); }
}

function makeSliders(n, std) {
  const box = $("sliders");
  for (let i = 0; i < n; i++) {
    const row = document.createElement("label");
    row.className = "slider";
    row.innerHTML = `<span>z${i + 1}</span><input type="range" min="${-3 * std}" max="${3 * std}" step="${std / 50}">`;
    const s = row.querySelector("input");
    s.dataset.dim = i;
    s.addEventListener("input", () => {
      if (!z) return;
      z[i] = Number(s.value);
      row.querySelector("span").textContent = `z${i + 1} ${z[i].toFixed(2)}`;
      decode();
    });
    box.appendChild(row);
  }
  if (n) {
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = `the first ${n} of ${info.features.latent_dim} latent dimensions`;
    box.appendChild(note);
  }
}

async function interpolate() {
  const body = { seed_a: Number($("seed-a").value), seed_b: Number($("seed-b").value),
                 steps: Number($("steps").value), label: chosenLabel() };
  const d = await request("/api/interpolate", body);
  if (!d) return;
  const strip = $("interpolation");
  strip.textContent = "";
  for (const src of d.images) {
    const img = new Image();
    img.className = "pixels";
    img.src = src;
    strip.appendChild(img);
  }
}

function drawPoints(points) {
  const c = $("scatter");
  const ctx = c.getContext("2d");
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const lo = Math.min(...xs, ...ys);
  const hi = Math.max(...xs, ...ys);
  const scale = (c.width - 20) / (hi - lo || 1);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.fillStyle = "rgba(40, 90, 200, 0.6)";
  for (const [x, y] of points) {
    ctx.beginPath();
    ctx.arc(10 + (x - lo) * scale, c.height - 10 - (y - lo) * scale, 2, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.fillStyle = "#69718a"; // the axes' common range, so the spread can be read
  ctx.font = "12px sans-serif";
  ctx.fillText(`x, y from ${lo.toFixed(2)} to ${hi.toFixed(2)}`, 14, 18);
  c.dataset.points = points.length;
}

// -- start ---------------------------------------------------------------------------------------
async function start() {
  try {
    const res = await fetch("/api/info");
    info = await res.json();
  } catch (err) {
    showError("the server did not answer: is `disgen serve` still running?");
    return;
  }
  const f = info.features;
  $("model").textContent = info.model;
  $("summary").textContent = `${info.run}: ${info.objective}${f.mode ? ` (${f.mode})` : ""} on ` +
    `${info.dataset}, ${info.epochs} epochs, ${info.checkpoint} checkpoint` + (info.scores ? `; ${info.scores}` : "");
  if (f.upload) setupInput();
  if (f.sample) setupGenerator();
  if (!f.predict && !f.reconstruct && !f.sample) {
    showError(`this ${info.model} run offers nothing to explore here`);
  }
  document.body.dataset.ready = "1"; // tests wait for this
}

start();
