// Runs inside page.html: loads models published by weightdrop with the
// browser build of @tensorflow/tfjs (the global `tf` from tf.min.js) on the
// cpu backend and dumps every decoded tensor as exact bytes, so
// tests/integration/browser_test.py can compare them with NumPy bit for bit.
//
// window.wd.ready    resolves once tfjs runs on the cpu backend.
// window.wd.runJobs(jobs) -> {id: result}, a job being one of
//   {"id", "mode": "graph", "url": ".../model.json", "inputs": [input]}
//       tf.loadGraphModel(url); the model's weights (model.weights), then
//       model.predict() on the inputs (one tensor, or a list in inputNodes
//       order); outputs named by model.outputNodes.
//   {"id", "mode": "layers", "url": ".../model.json", "inputs": [input]}
//       tf.loadLayersModel(url); weights by their original names
//       ("dense1/kernel"), then model.predict() on the one input.
//   {"id", "mode": "loadWeights", "manifest": URL, "prefix": URL}
//       tf.io.loadWeights(<manifest fetched from URL>, prefix).
//   {"id", "mode": "decodeWeights", "manifest": URL, "prefix": URL}
//       fetches the manifest and every group's shards, then
//       tf.io.decodeWeights(shards, specs): what loadGraphModel does with
//       the shards, and the one entry point that reads string weights.
//   input = {"shape": [...], "values": [...]} (float32).
//   A result is {"ok": true, "weights": {name: dump}, "outputs": [[name,
//   dump]], "inputNodes", "outputNodes"} or {"ok": false, "error": "..."};
//   dump = {"dtype", "shape", "hex"}: the little-endian bytes of the values
//   (complex64 as interleaved real/imag float32, bool as 1 byte), or
//   "strings" (hex of each element's bytes) for a string tensor.
// window.wd.showVerdict({id: [problem, ...]}) colours the table with the
//   test's verdict, so the screenshot shows what failed.
/* global tf */

const HEX = Array.from({length: 256}, (_, i) => i.toString(16).padStart(2, '0'));

function hexOf(typed) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  const parts = new Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) parts[i] = HEX[bytes[i]];
  return parts.join('');
}

async function dumpTensor(t) {
  const out = {dtype: t.dtype, shape: t.shape};
  if (t.dtype === 'string') {
    out.strings = (await t.bytes()).map((b) => hexOf(b));
  } else if (t.dtype === 'complex64') {
    const re = await tf.real(t).data();
    const im = await tf.imag(t).data();
    const both = new Float32Array(re.length * 2);
    for (let i = 0; i < re.length; i++) {
      both[2 * i] = re[i];
      both[2 * i + 1] = im[i];
    }
    out.hex = hexOf(both);
  } else {
    out.hex = hexOf(await t.data());
  }
  return out;
}

async function fetchOk(url, as) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return as === 'json' ? response.json() : response.arrayBuffer();
}

function inputTensors(job) {
  return (job.inputs || []).map((i) => tf.tensor(i.values, i.shape, 'float32'));
}

async function dumpOutputs(names, outputs) {
  const list = Array.isArray(outputs) ? outputs : [outputs];
  const dumped = [];
  for (let i = 0; i < list.length; i++) dumped.push([names[i], await dumpTensor(list[i])]);
  tf.dispose(list);
  return dumped;
}

async function runGraph(job) {
  const model = await tf.loadGraphModel(job.url);
  try {
    const weights = {};
    for (const [name, tensors] of Object.entries(model.weights)) {
      weights[name] = await dumpTensor(tensors[0]);
    }
    const inputs = inputTensors(job);
    const outputs = model.predict(inputs.length === 1 ? inputs[0] : inputs);
    tf.dispose(inputs);
    return {weights, inputNodes: model.inputNodes, outputNodes: model.outputNodes,
            outputs: await dumpOutputs(model.outputNodes, outputs)};
  } finally {
    model.dispose();
  }
}

async function runLayers(job) {
  const model = await tf.loadLayersModel(job.url);
  try {
    const weights = {};
    for (const v of model.weights) weights[v.originalName] = await dumpTensor(v.read());
    const inputs = inputTensors(job);
    const outputs = model.predict(inputs.length === 1 ? inputs[0] : inputs);
    tf.dispose(inputs);
    return {weights, outputs: await dumpOutputs(model.outputNames, outputs)};
  } finally {
    model.dispose();
  }
}

async function dumpMap(tensorMap) {
  const weights = {};
  for (const [name, t] of Object.entries(tensorMap)) {
    weights[name] = await dumpTensor(t);
    t.dispose();
  }
  return weights;
}

async function runLoadWeights(job) {
  const manifest = await fetchOk(job.manifest, 'json');
  return {weights: await dumpMap(await tf.io.loadWeights(manifest, job.prefix))};
}

async function runDecodeWeights(job) {
  const manifest = await fetchOk(job.manifest, 'json');
  const paths = manifest.flatMap((group) => group.paths);
  const shards = await Promise.all(paths.map((p) => fetchOk(job.prefix + p, 'buffer')));
  const specs = manifest.flatMap((group) => group.weights);
  return {weights: await dumpMap(tf.io.decodeWeights(shards, specs))};
}

const RUNNERS = {graph: runGraph, layers: runLayers, loadWeights: runLoadWeights,
                 decodeWeights: runDecodeWeights};

function row(id) {
  let tr = document.getElementById('job-' + id);
  if (tr == null) {
    tr = document.createElement('tr');
    tr.id = 'job-' + id;
    for (let i = 0; i < 3; i++) tr.appendChild(document.createElement('td'));
    tr.cells[0].textContent = id;
    document.getElementById('jobs').appendChild(tr);
  }
  return tr;
}

function setCell(tr, index, text) {
  const pre = document.createElement('pre');
  pre.textContent = text;
  tr.cells[index].replaceChildren(pre);
}

async function runJob(job) {
  const tr = row(job.id);
  try {
    if (!(job.mode in RUNNERS)) throw new Error(`unknown mode ${job.mode}`);
    const result = {ok: true, ...await RUNNERS[job.mode](job)};
    const n = Object.keys(result.weights).length;
    setCell(tr, 1, `${n} weights` + (result.outputs ? `, ${result.outputs.length} outputs` : ''));
    tr.className = 'ran';
    return result;
  } catch (e) {
    const error = String(e && e.stack ? e.stack : e);
    console.error(`job ${job.id}: ${error}`);
    setCell(tr, 1, 'error: ' + error);
    tr.className = 'fail';
    return {ok: false, error};
  }
}

async function runJobs(jobs) {
  const status = document.getElementById('status');
  const results = {};
  for (const [i, job] of jobs.entries()) {
    status.textContent = `job ${i + 1} of ${jobs.length}: ${job.id}`;
    results[job.id] = await runJob(job);
  }
  status.textContent = `${jobs.length} jobs run; waiting for the verdict`;
  return results;
}

function showVerdict(verdict) {
  let failed = 0;
  for (const [id, problems] of Object.entries(verdict)) {
    const tr = row(id);
    setCell(tr, 2, problems.length ? problems.join('\n') : 'pass');
    tr.className = problems.length ? 'fail' : 'pass';
    failed += problems.length ? 1 : 0;
  }
  const total = Object.keys(verdict).length;
  document.getElementById('status').textContent =
      `${total - failed} passed, ${failed} failed (backend ${tf.getBackend()})`;
}

async function start() {
  document.getElementById('version').textContent = tf.version.tfjs;
  if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") failed');
  await tf.ready();
  document.getElementById('status').textContent = `tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`;
  return {tfjs: tf.version.tfjs, backend: tf.getBackend()};
}

window.wd = {ready: start(), runJobs, showVerdict};
