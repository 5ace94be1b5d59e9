"use strict";
// bnnames' name sampler for one exported model: the folded eval-mode network (BatchNorm already
// folded into the Linear before it) run in plain JavaScript, in float64 over float32 weights.
//
// A draw follows the model's distribution conditioned on the form's constraints (starts with,
// ends with, shortest, longest), as rejection sampling would give: temperature is applied to
// each next-character distribution first, and the longest length conditions, it never cuts (a
// name that reaches it without the end token is not a name). When every context fits a table
// (vocab ** block_size <= TABLE_MAX_CONTEXTS) the page is exact without rejecting: a backward
// dynamic program over (context, how much of the suffix is matched (KMP), length) gives the
// probability V of finishing validly from each state, and each next character is drawn with
// weight P(x | context) * V(next state). Otherwise (the wavenet's 8 characters) it rejects,
// early, within REJECTION_TRIES_PER_NAME tries a name, and says so when they run out.
//
// Random numbers: mulberry32 (Tommy Ettinger's 32-bit generator), seeded with the seed mod 2**32:
// the same link gives the same names in this page (not the same as `bnnames sample`'s).

const TABLE_MAX_CONTEXTS = 65536;
const REJECTION_TRIES_PER_NAME = 1000;
const MAX_COUNT = 1000;
const MAX_LENGTH = 64;

function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function decodeFloats(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function loadNetwork(json) {
  const net = JSON.parse(json);
  for (const step of net.steps) {
    for (const key of Object.keys(step.arrays)) step[key] = decodeFloats(step.arrays[key]);
  }
  net.V = net.tokens.length;
  net.ids = new Map(net.tokens.map((ch, i) => [ch, i]));
  return net;
}

// E @ W_k for each part k of the first Linear after the embedding and a merge of n: (V, fan_out)
// each, so that Linear is a sum of n looked-up rows per position (bnnames/inference.py's
// _merged_linear): for the default model's table 12 M additions instead of 118 M products
function mergedParts(net) {
  const [gather, merge, affine] = net.steps;
  if (net.parts !== undefined) return net.parts;
  net.parts = null;
  if (gather.kind === "gather" && merge?.kind === "merge" && affine?.kind === "affine") {
    const [V, C] = gather.shape, H = affine.shape[1];
    net.parts = [];
    for (let k = 0; k < merge.size; k++) {
      const part = new Float64Array(V * H);
      for (let v = 0; v < V; v++) {
        for (let j = 0; j < C; j++) {
          const e = gather.weight[v * C + j], row = (k * C + j) * H;
          for (let o = 0; o < H; o++) part[v * H + o] += e * affine.weight[row + o];
        }
      }
      net.parts.push(part);
    }
  }
  return net.parts;
}

function transpose(W, rows, cols) {
  const T = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) T[j * rows + i] = W[i * cols + j];
  return T;
}

// logits (n * V, float64) of n contexts, ids (n * block_size) oldest first
function forward(net, ids, n) {
  let x = null;
  let positions = net.block_size;
  let width = 0;
  let first = 0;
  const parts = mergedParts(net);
  if (parts) { // the first three steps at once
    const size = parts.length, H = net.steps[2].shape[1], b = net.steps[2].bias, P = positions;
    positions /= size;
    width = H;
    x = new Float64Array(n * positions * H);
    for (let g = 0; g < n * positions; g++) {
      const out = g * H;
      for (let o = 0; o < H; o++) x[out + o] = b[o];
      for (let k = 0; k < size; k++) {
        const part = parts[k], from = ids[Math.floor(g / positions) * P + (g % positions) * size + k] * H;
        for (let o = 0; o < H; o++) x[out + o] += part[from + o];
      }
    }
    first = 3;
  }
  for (const step of net.steps.slice(first)) {
    if (step.kind === "gather") {
      width = step.shape[1];
      x = new Float64Array(n * positions * width);
      for (let r = 0; r < n * positions; r++) {
        const from = ids[r] * width;
        for (let j = 0; j < width; j++) x[r * width + j] = step.weight[from + j];
      }
    } else if (step.kind === "merge") {
      positions /= step.size; // row-major (n, P, C) -> (n, P / size, C * size) is the same memory
      width *= step.size;
    } else if (step.kind === "affine") {
      const rows = n * positions, fanIn = width, fanOut = step.shape[1], b = step.bias;
      step.transposed ??= transpose(step.weight, fanIn, fanOut); // (fan_out, fan_in): dot products of rows
      const WT = step.transposed, y = new Float64Array(rows * fanOut);
      for (let r = 0; r < rows; r++) {
        const from = r * fanIn;
        for (let o = 0; o < fanOut; o++) {
          let sum = b[o];
          const row = o * fanIn;
          for (let i = 0; i < fanIn; i++) sum += x[from + i] * WT[row + i];
          y[r * fanOut + o] = sum;
        }
      }
      x = y;
      width = fanOut;
    } else if (step.kind === "tanh") {
      for (let i = 0; i < x.length; i++) x[i] = Math.tanh(x[i]);
    } else if (step.kind === "layer_norm") {
      for (let r = 0; r < n * positions; r++) {
        let mean = 0, varSum = 0;
        for (let j = 0; j < width; j++) mean += x[r * width + j];
        mean /= width;
        for (let j = 0; j < width; j++) varSum += (x[r * width + j] - mean) ** 2;
        const s = Math.sqrt(varSum / width + step.eps);
        for (let j = 0; j < width; j++) x[r * width + j] = (step.weight[j] * (x[r * width + j] - mean)) / s + step.bias[j];
      }
    } else {
      throw new Error("unknown step " + step.kind);
    }
  }
  return x;
}

// softmax(logits / temperature) of each row, in place
function softmaxRows(logits, V, temperature) {
  for (let r = 0; r < logits.length / V; r++) {
    let top = -Infinity, sum = 0;
    for (let j = 0; j < V; j++) top = Math.max(top, logits[r * V + j] / temperature);
    for (let j = 0; j < V; j++) sum += logits[r * V + j] = Math.exp(logits[r * V + j] / temperature - top);
    for (let j = 0; j < V; j++) logits[r * V + j] /= sum;
  }
  return logits;
}

function nextProbabilities(net, contexts, temperature) {
  const flat = Int32Array.from(contexts.flat());
  return softmaxRows(forward(net, flat, contexts.length), net.V, temperature);
}

// KMP automaton over the suffix: delta[k * V + x] = how much of it is matched after x, k matched before
function suffixAutomaton(suffix, V) {
  const m = suffix.length, fail = new Int32Array(m + 1), delta = new Int32Array((m + 1) * V);
  for (let k = 1, j = 0; k < m; k++) {
    while (j > 0 && suffix[k] !== suffix[j]) j = fail[j];
    if (suffix[k] === suffix[j]) j++;
    fail[k + 1] = j;
  }
  for (let k = 0; k <= m; k++) {
    for (let x = 1; x < V; x++) {
      if (k < m && suffix[k] === x) delta[k * V + x] = k + 1;
      else delta[k * V + x] = k === 0 ? 0 : delta[fail[k] * V + x];
    }
  }
  return delta;
}

// everything a draw needs to know of the form, or a message saying what is wrong with it
function constraints(net, form) {
  const encode = (text, what) => {
    const ids = Array.from(text).map((ch) => net.ids.get(ch));
    const missing = Array.from(text).filter((ch, i) => !ids[i]);
    if (missing.length) throw new Error(`"${what}" has characters this model never saw: ${missing.join("")}`);
    return ids;
  };
  const c = {
    prefix: encode(form.prefix, "starts with"),
    suffix: encode(form.suffix, "ends with"),
    min: Math.max(1, form.min),
    max: Math.min(MAX_LENGTH, form.max),
    temperature: form.temperature,
  };
  if (!(c.temperature > 0)) throw new Error("temperature must be above 0");
  if (c.min > c.max) throw new Error("shortest is longer than longest");
  if (c.prefix.length > c.max) throw new Error("“starts with” is longer than the longest name");
  c.delta = suffixAutomaton(c.suffix, net.V);
  c.start = Array(net.block_size).fill(0).concat(c.prefix).slice(-net.block_size); // the context after the prefix
  c.k0 = c.prefix.reduce((k, x) => c.delta[k * net.V + x], 0);
  return c;
}

function canEnd(c, k, length) {
  return k === c.suffix.length && length >= c.min && length <= c.max;
}

// exact: every context's distribution in a table, and V[length][context * (m + 1) + k]
function exactSampler(net, c) {
  const V = net.V, K = V ** net.block_size, m1 = c.suffix.length + 1, powers = [];
  for (let t = net.block_size - 1; t >= 0; t--) powers.push(V ** t);
  net.tables ??= new Map(); // one table a temperature: the next "generate" reuses it
  if (!net.tables.has(c.temperature)) {
    const table = new Float64Array(K * V);
    for (let from = 0; from < K; from += 2048) {
      const contexts = [];
      for (let key = from; key < Math.min(K, from + 2048); key++) contexts.push(powers.map((p) => Math.floor(key / p) % V));
      table.set(nextProbabilities(net, contexts, c.temperature), from * V);
    }
    net.tables.set(c.temperature, table);
  }
  const table = net.tables.get(c.temperature);
  const L0 = c.prefix.length, W = [];
  for (let L = c.max; L >= L0; L--) {
    const here = new Float64Array(K * m1), next = W[L + 1];
    for (let ctx = 0; ctx < K; ctx++) {
      const shifted = (ctx % (K / V)) * V; // the context after x is shifted + x
      for (let k = 0; k < m1; k++) {
        let v = canEnd(c, k, L) ? table[ctx * V] : 0;
        if (next) for (let x = 1; x < V; x++) v += table[ctx * V + x] * next[(shifted + x) * m1 + c.delta[k * V + x]];
        here[ctx * m1 + k] = v;
      }
    }
    W[L] = here;
  }
  const startKey = c.start.reduce((key, x) => key * V + x, 0);
  return {
    method: "exact",
    possible: W[L0][startKey * m1 + c.k0] > 0,
    draw(random) {
      let ctx = startKey, k = c.k0, ids = [];
      for (let L = L0; ; L++) {
        const next = W[L + 1];
        let u = random() * W[L][ctx * m1 + k], pick = -1, acc = 0;
        for (let x = 0; x < V && pick < 0; x++) {
          const w = x === 0 ? (canEnd(c, k, L) ? table[ctx * V] : 0) : next ? table[ctx * V + x] * next[((ctx * V + x) % K) * m1 + c.delta[k * V + x]] : 0;
          acc += w;
          if (w > 0 && u < acc) pick = x;
        }
        if (pick < 0) return null; // rounding at the very end of the cdf: never in practice
        if (pick === 0) return ids;
        ids.push(pick);
        k = c.delta[k * V + pick];
        ctx = (ctx * V + pick) % K;
      }
    },
  };
}

// rejection: draw as the model does, give up on a draw as soon as it cannot be valid
function rejectionSampler(net, c) {
  const cache = new Map(), V = net.V, m = c.suffix.length;
  const probs = (context) => {
    const key = context.join(",");
    if (!cache.has(key)) cache.set(key, nextProbabilities(net, [context], c.temperature));
    return cache.get(key);
  };
  return {
    method: "rejection",
    possible: c.prefix.length + m - c.k0 <= c.max,
    draw(random) {
      let context = c.start.slice(), k = c.k0, ids = [];
      for (let L = c.prefix.length; ; L++) {
        const p = probs(context);
        let u = random(), x = 0;
        while (x < V - 1 && u >= p[x]) u -= p[x++];
        if (x === 0) return canEnd(c, k, L) ? ids : null;
        k = c.delta[k * V + x];
        if (L + 1 + (m - k) > c.max) return null; // reaches the longest length before the suffix can end it
        ids.push(x);
        context = context.slice(1).concat([x]);
      }
    },
  };
}

function sampleNames(net, form, random, method) {
  const c = constraints(net, form);
  const fits = net.V ** net.block_size <= TABLE_MAX_CONTEXTS;
  const sampler = method === "rejection" || !fits ? rejectionSampler(net, c) : exactSampler(net, c);
  const names = [], prefix = form.prefix;
  if (!sampler.possible) return { names, method: sampler.method, ranOut: false, impossible: true };
  const tries = sampler.method === "exact" ? Infinity : REJECTION_TRIES_PER_NAME * form.n;
  let tried = 0;
  while (names.length < form.n && tried < tries) {
    tried++;
    const ids = sampler.draw(random);
    if (ids) names.push(prefix + ids.map((x) => net.tokens[x]).join(""));
  }
  return { names, method: sampler.method, ranOut: names.length < form.n, impossible: false, tried };
}

// the next-character probabilities along each name (its n + 1 predictions), at temperature 1
function probe(net, names) {
  const out = {};
  for (const name of names) {
    const ids = Array.from(name).map((ch) => net.ids.get(ch)).concat([0]);
    const padded = Array(net.block_size).fill(0).concat(ids);
    const contexts = ids.map((_, i) => padded.slice(i, i + net.block_size));
    const p = nextProbabilities(net, contexts, 1);
    out[name] = contexts.map((_, i) => Array.from(p.subarray(i * net.V, (i + 1) * net.V)));
  }
  return out;
}

function readForm(form) {
  const v = (name) => form.elements[name].value;
  const int = (name, fallback) => (v(name).trim() === "" || !Number.isFinite(+v(name)) ? fallback : Math.floor(+v(name)));
  return {
    n: Math.min(MAX_COUNT, Math.max(1, int("n", 20))),
    seed: v("seed").trim() === "" ? null : int("seed", null),
    temperature: +v("temperature") || 1,
    prefix: v("prefix"),
    suffix: v("suffix"),
    min: int("min", 1),
    max: int("max", 30),
  };
}

function show(names, status, warning) {
  const list = document.getElementById("names");
  list.replaceChildren(
    ...names.map((name) => {
      const li = document.createElement("li"), button = document.createElement("button");
      button.className = "name";
      button.type = "button";
      button.textContent = name;
      button.title = "copy";
      button.addEventListener("click", () => copy(name, button));
      li.append(button);
      return li;
    }),
  );
  const line = document.getElementById("status");
  line.textContent = status;
  line.classList.toggle("warning", warning);
}

function copy(text, button) {
  const done = () => {
    if (!button) return;
    button.classList.add("copied");
    setTimeout(() => button.classList.remove("copied"), 800);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text) && done());
  } else if (fallbackCopy(text)) done();
}

function fallbackCopy(text) {
  const area = document.createElement("textarea");
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok;
}

function generate(net, formElement, method) {
  const form = readForm(formElement);
  const seed = form.seed ?? Math.floor(Math.random() * 4294967296);
  const status = document.getElementById("status");
  const started = performance.now();
  let result;
  try {
    result = sampleNames(net, form, mulberry32(seed), method);
  } catch (err) {
    show([], err.message, true);
    return;
  }
  const ms = performance.now() - started;
  Object.assign(status.dataset, {
    method: result.method, asked: form.n, drawn: result.names.length, seed, ms: ms.toFixed(1), ranOut: result.ranOut,
  });
  if (result.impossible) show([], "no name can meet these constraints", true);
  else if (result.ranOut) {
    show(result.names, `only ${result.names.length} of ${form.n} names met the constraints within ` +
      `${REJECTION_TRIES_PER_NAME} tries a name (this model draws by rejection): loosen them`, true);
  } else show(result.names, `${result.names.length} names · seed ${seed}`, false);
}

function main() {
  const net = loadNetwork(document.getElementById("model").textContent);
  const formElement = document.getElementById("form");
  const query = new URLSearchParams(location.search);
  for (const name of ["n", "seed", "temperature", "prefix", "suffix", "min", "max"]) {
    if (query.has(name)) formElement.elements[name].value = query.get(name);
  }
  if (!query.has("max")) formElement.elements.max.value = Math.min(MAX_LENGTH, 30);
  const method = query.get("method"); // "rejection": force the rejection sampler (for tests)
  if (query.has("probe")) {
    document.getElementById("probe").textContent = JSON.stringify(probe(net, query.get("probe").split(",")));
  }
  formElement.addEventListener("submit", (event) => {
    event.preventDefault();
    generate(net, formElement, method);
    const params = new URLSearchParams();
    for (const el of formElement.elements) if (el.name && el.value !== "") params.set(el.name, el.value);
    try {
      history.replaceState(null, "", "?" + params);
    } catch (err) {
      /* some browsers refuse it on file:// */
    }
  });
  document.getElementById("copy").addEventListener("click", (event) => {
    const names = Array.from(document.querySelectorAll(".name"), (el) => el.textContent);
    copy(names.join("\n"), event.currentTarget);
  });
  generate(net, formElement, method);
}

main();
