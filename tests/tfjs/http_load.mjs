// Loads one model over HTTP again and again with the real tfjs-core 4.22
// client, as a page would, while weightdrop publishes new versions of it;
// tests/integration/nginx_test.py drives it against nginx.
//
// Usage: node http_load.mjs MODE BASE_URL STOP_FILE [PAUSE_MS]
//   BASE_URL is the model's folder, with a trailing slash
//   (http://127.0.0.1:P/mlp/). MODE is one of
//     loadWeights  fetch BASE_URL + "weights_manifest.json" (the pointer),
//                  then tf.io.loadWeights(manifest, BASE_URL)
//     http         tf.io.http(BASE_URL + "model.json").load() (what
//                  tf.loadGraphModel runs), then tf.io.decodeWeights
//   Loads back to back until STOP_FILE exists (looked at between loads) or
//   600 s have passed. PAUSE_MS (default 0) is a wait between fetching the
//   pointer and fetching the first shard, which makes a publish landing
//   mid-load likely. Prints one JSON line per load on stdout:
//     {"n": 1, "ok": true, "ms": 141, "versions": ["3"], "pointerAfter": "4",
//      "weights": {name: sha256 hex of the decoded values' bytes}}
//     {"n": 2, "ok": false, "error": "...", "requests": [[url, status], ...]}
//   "versions" are the version folders the load's requests named (a load
//   that stays on one version has exactly one); "pointerAfter" is the
//   version the same pointer names when fetched again right after the load
//   (newer: a publish happened during the load). A load fails when it
//   throws or when any of its requests answered other than 200: tfjs itself
//   does not look at a shard's status and would decode a 404 page as weights.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {createHash} from 'node:crypto';
import {existsSync} from 'node:fs';

const MAX_MS = 600e3;

const argc = process.argv.length;
if (argc < 5 || argc > 6 || !['loadWeights', 'http'].includes(process.argv[2])) {
  process.stderr.write(
      'usage: node http_load.mjs loadWeights|http BASE_URL STOP_FILE [PAUSE_MS]\n');
  process.exit(2);
}
const [mode, base, stopFile] = process.argv.slice(2);
const pauseMs = Number(process.argv[5] || 0);
const pointer = base + (mode === 'loadWeights' ? 'weights_manifest.json' : 'model.json');
const basePath = new URL(base).pathname;

// Every request of the current load, as [url, status]. tfjs-core's node
// platform calls globalThis.fetch at each request, so this sees them all.
let requests = [];
let pause = null;  // the current load's wait before its shards, once started
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  if (String(url).endsWith('.bin')) {
    pause ??= new Promise((resolve) => setTimeout(resolve, pauseMs));
    await pause;
  }
  const entry = [String(url), 'no answer'];
  requests.push(entry);
  try {
    const response = await realFetch(url, init);
    entry[1] = response.status;
    return response;
  } catch (e) {
    entry[1] = `fetch failed: ${e.cause || e}`;
    throw e;
  }
};

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function loadOnce() {
  if (mode === 'loadWeights') {
    return tf.io.loadWeights(await fetchJson(pointer), base);
  }
  const artifacts = await tf.io.http(pointer).load();
  if (artifacts.weightSpecs == null) throw new Error('model.json has no weightsManifest');
  return tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
}

// The version folder a request named: "3" for BASE_URL/3/..., else null.
function versionOf(url) {
  const path = new URL(url).pathname;
  if (!path.startsWith(basePath)) return null;
  const parts = path.slice(basePath.length).split('/');
  return parts.length > 1 && /^[0-9]+$/.test(parts[0]) ? parts[0] : null;
}

async function digest(t) {
  const data = await t.data();
  return createHash('sha256')
      .update(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
      .digest('hex');
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const deadline = Date.now() + MAX_MS;
  for (let n = 1; !existsSync(stopFile) && Date.now() < deadline; n++) {
    requests = [];
    pause = null;
    const t0 = performance.now();
    let line;
    try {
      const tensors = await loadOnce();
      const weights = {};
      for (const [name, t] of Object.entries(tensors)) {
        weights[name] = await digest(t);
        t.dispose();
      }
      const versions = [...new Set(requests.map(([url]) => versionOf(url)))]
                           .filter((v) => v !== null)
                           .sort();
      const bad = requests.filter(([, status]) => status !== 200);
      const ms = Math.round(performance.now() - t0);
      const after = await fetchJson(pointer);
      const manifest = mode === 'loadWeights' ? after : after.weightsManifest;
      const pointerAfter = manifest[0].paths[0].split('/')[0];
      line = {n, ok: bad.length === 0, ms, versions, pointerAfter, weights};
      if (bad.length > 0) {
        line.error = `${bad.length} request(s) not answered 200`;
        line.requests = requests;
      }
    } catch (e) {
      line = {n, ok: false, error: String(e && e.stack ? e.stack : e), requests};
    }
    process.stdout.write(JSON.stringify(line) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(`http_load.mjs: ${e.stack || e}\n`);
  process.exit(1);
});
