// Loads weights published by weightdrop with the real tfjs-core 4.22 client
// and dumps every decoded tensor as exact bytes, so tests/integration/
// tfjs_test.py can compare them with NumPy bit for bit.
//
// Usage: node load.mjs JOBS.json
//   JOBS.json is a list of jobs; each job is one of
//     {"id": "...", "mode": "http", "url": "http://127.0.0.1:P/m/model.json"}
//       tf.io.http(url).load() (what tf.loadGraphModel runs), then
//       tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs)
//       (what GraphModel does with the artifacts). The shard paths in the
//       manifest resolve against the directory of `url`.
//     {"id": "...", "mode": "loadWeights", "manifest": URL, "prefix": URL}
//       tf.io.loadWeights(<manifest fetched from URL>, prefix).
//   Output on stdout: one JSON object {id: result}; a result is
//     {"ok": true, "weights": {name: {"dtype", "shape", "hex"}}} or
//     {"ok": false, "error": "..."}.
//   "hex" is the little-endian bytes of the decoded values: float32 and
//   int32 as 4-byte elements, bool as 1 byte, complex64 as interleaved
//   real/imag float32. For string tensors "strings" is a list of hex strings
//   (the raw bytes tfjs decoded for each element) instead of "hex".
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {errorResult, runJobsFromArgv} from './jobs.mjs';

function hexOf(typedArray) {
  return Buffer
      .from(typedArray.buffer, typedArray.byteOffset, typedArray.byteLength)
      .toString('hex');
}

async function dumpTensor(t) {
  const out = {dtype: t.dtype, shape: t.shape};
  if (t.dtype === 'string') {
    out.strings = (await t.bytes()).map((b) => Buffer.from(b).toString('hex'));
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

async function dumpMap(tensorMap) {
  const weights = {};
  for (const [name, t] of Object.entries(tensorMap)) {
    weights[name] = await dumpTensor(t);
    t.dispose();
  }
  return weights;
}

async function loadViaHttp(job) {
  const artifacts = await tf.io.http(job.url).load();
  if (artifacts.weightSpecs == null) {
    throw new Error(`${job.url}: no weightsManifest in the model JSON`);
  }
  return tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
}

async function loadViaLoadWeights(job) {
  const response = await fetch(job.manifest);
  if (!response.ok) {
    throw new Error(`${job.manifest}: HTTP ${response.status}`);
  }
  return tf.io.loadWeights(await response.json(), job.prefix);
}

async function runJob(job) {
  try {
    const loader = {http: loadViaHttp, loadWeights: loadViaLoadWeights};
    if (!(job.mode in loader)) throw new Error(`unknown mode ${job.mode}`);
    return {ok: true, weights: await dumpMap(await loader[job.mode](job))};
  } catch (e) {
    return errorResult(e);
  }
}

runJobsFromArgv('load.mjs', runJob);
