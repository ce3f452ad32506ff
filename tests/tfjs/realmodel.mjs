// Real tfjs graph models, original versus republished by weightdrop
// (tests/integration/real_models_test.py drives it). Two modes:
//
//   node realmodel.mjs export JOBS.json
//     JOBS.json: [{"name": "...", "modelJson": "/path/models/x.json",
//                  "out": "/path/bundles/x"}]
//     Reads each model.json's weightsManifest and shard files from disk (all
//     groups' shards concatenated into one ArrayBuffer, in manifest order),
//     decodes them with tf.io.decodeWeights (uint8/uint16 affine and float16
//     dequantized to float32, exactly as tf.loadGraphModel does at load) and
//     writes every weight as an .npy v1.0 file at <out>/<name>.npy, a '/' in
//     the name making subfolders. Prints one JSON object {name: result}:
//     {"ok": true, "weights": N, "bytes": B} or {"ok": false, "skip": true,
//     "reason": "..."} (layers model, string weights, names weightdrop
//     refuses) or {"ok": false, "error": "..."}.
//
//   node realmodel.mjs run JOB.json
//     JOB.json: {"name": "...", "orig": URL, "pub": URL, "dynSize": 64}
//     tf.loadGraphModel both URLs, builds inputs from the original's
//     model.inputs (unknown batch dim -> 1, other unknown dims -> dynSize,
//     unknown rank -> a scalar; float values deterministic pseudo-random in
//     [0, 1), int32 in [0, 256)), runs `executeAsync(inputs)` positionally on
//     both with the same tensors and compares inputNodes, outputNodes and
//     every output's dtype, shape and bytes. Prints one JSON object:
//     {"status": "ok" | "fail" | "skip", "problems": [...], "reason": "...",
//      "inputs": [...], "outputs": [...], "ms": {...}}.
//     "skip": the ORIGINAL does not load or run with tfjs-backend-cpu.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {loadGraphModel} from '@tensorflow/tfjs-converter';
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {dirname, join} from 'node:path';

// ------------------------------------------------------------------ export

const NPY_DESCR = {float32: '<f4', int32: '<i4', bool: '|b1'};

// What weightdrop skips or refuses in a folder bundle (docs/formats.md,
// "Bundle"): hidden components, temporary suffixes, control characters, and
// names that cannot be a path below the bundle root.
function refusedName(name) {
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'control character';
  for (const part of name.split('/')) {
    if (part === '') return 'empty path component';
    if (part.startsWith('.')) return `hidden component '${part}'`;
    if (/(\.tmp|\.part|\.partial|\.crdownload|~)$/.test(part)) {
      return `temporary-file suffix on '${part}'`;
    }
  }
  return null;
}

function npyBytes(dtype, shape, typedArray) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${NPY_DESCR[dtype]}', 'fortran_order': False, ` +
      `'shape': (${dims}), }`;
  // magic (6) + version (2) + header length (2) + header + '\n' % 64 == 0
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header + ' '.repeat(total - 10 - header.length - 1) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  // tfjs typed arrays are little-endian on every platform node runs on.
  const data = dtype === 'bool' ?
      Buffer.from(Uint8Array.from(typedArray, (v) => (v ? 1 : 0))) :
      Buffer.from(typedArray.buffer, typedArray.byteOffset, typedArray.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
}

async function exportModel(job) {
  const model = JSON.parse(readFileSync(job.modelJson, 'utf8'));
  if (model.format !== 'graph-model') {
    return {ok: false, skip: true, reason: `format ${JSON.stringify(model.format)}, not a graph model`};
  }
  const specs = [];
  const buffers = [];
  for (const group of model.weightsManifest || []) {
    specs.push(...group.weights);
    for (const p of group.paths) buffers.push(readFileSync(join(dirname(job.modelJson), p)));
  }
  const strings = specs.filter((s) => s.dtype === 'string').map((s) => s.name);
  if (strings.length) {
    return {ok: false, skip: true, reason: `string weights (${strings.slice(0, 3).join(', ')})`};
  }
  const refused = specs.map((s) => [s.name, refusedName(s.name)]).filter(([, r]) => r);
  if (refused.length) {
    return {ok: false, skip: true, reason: 'weight names weightdrop refuses: ' +
        refused.slice(0, 5).map(([n, r]) => `${JSON.stringify(n)} (${r})`).join(', ')};
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const tensors = tf.io.decodeWeights(weightData, specs);
  let bytes = 0;
  for (const spec of specs) {
    const t = tensors[spec.name];
    if (!(t.dtype in NPY_DESCR)) throw new Error(`${spec.name}: dtype ${t.dtype}`);
    const file = join(job.out, ...spec.name.split('/')) + '.npy';
    mkdirSync(dirname(file), {recursive: true});
    const npy = npyBytes(t.dtype, t.shape, t.dataSync());
    writeFileSync(file, npy);
    bytes += npy.length;
  }
  tf.dispose(Object.values(tensors));
  return {ok: true, weights: specs.length, bytes};
}

// --------------------------------------------------------------------- run

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeInputs(model, dynSize) {
  const random = mulberry32(12345);
  return model.inputs.map((input) => {
    const shape = input.shape == null ? [] :
        input.shape.map((d, i) => (d == null || d < 0 ? (i === 0 ? 1 : dynSize) : d));
    const size = shape.reduce((a, b) => a * b, 1);
    const dtype = input.dtype || 'float32';
    if (dtype === 'int32') {
      return tf.tensor(Int32Array.from({length: size}, () => Math.floor(random() * 256)), shape, dtype);
    }
    if (dtype === 'bool') {
      return tf.tensor(Uint8Array.from({length: size}, () => (random() < 0.5 ? 1 : 0)), shape, dtype);
    }
    if (dtype !== 'float32') throw new Error(`input ${input.name}: dtype ${dtype}`);
    return tf.tensor(Float32Array.from({length: size}, random), shape, dtype);
  });
}

async function execute(model, inputs) {
  const out = await model.executeAsync(inputs);
  return Array.isArray(out) ? out : [out];
}

async function describe(outputs) {
  const result = [];
  for (const t of outputs) {
    const data = await t.data();
    const bytes = t.dtype === 'string' ?
        Buffer.from(JSON.stringify(data.map((b) => Buffer.from(b).toString('hex')))) :
        Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    result.push({dtype: t.dtype, shape: t.shape, data, bytes});
  }
  return result;
}

function compareOutput(i, a, b) {
  const where = `output ${i}`;
  if (a.dtype !== b.dtype) return `${where}: dtype ${b.dtype}, original ${a.dtype}`;
  if (JSON.stringify(a.shape) !== JSON.stringify(b.shape)) {
    return `${where}: shape [${b.shape}], original [${a.shape}]`;
  }
  if (a.bytes.equals(b.bytes)) return null;
  if (a.dtype === 'string') return `${where}: string values differ`;
  let differ = 0;
  let first = -1;
  let maxAbs = 0;
  for (let k = 0; k < a.data.length; k++) {
    if (Object.is(a.data[k], b.data[k])) continue;
    differ++;
    if (first < 0) first = k;
    const d = Math.abs(a.data[k] - b.data[k]);
    if (!(d <= maxAbs)) maxAbs = d;
  }
  return `${where}: ${differ} of ${a.data.length} values differ (first at flat index ` +
      `${first}: ${b.data[first]}, original ${a.data[first]}; max |diff| ${maxAbs})`;
}

function shortError(e) {
  return String(e && e.message ? e.message : e).split('\n')[0].slice(0, 300);
}

async function runModel(job) {
  const ms = {};
  const result = {status: 'ok', problems: [], ms};
  let t = Date.now();
  let orig;
  let inputs;
  let want;
  try {
    orig = await loadGraphModel(job.orig);
    ms.load = Date.now() - t;
    inputs = makeInputs(orig, job.dynSize);
    result.inputs = orig.inputs.map((inp, k) => ({name: inp.name, dtype: inputs[k].dtype, shape: inputs[k].shape}));
    t = Date.now();
    want = await describe(await execute(orig, inputs));
    ms.original = Date.now() - t;
  } catch (e) {
    return {status: 'skip', reason: `original does not run on tfjs-backend-cpu: ${shortError(e)}`, ms};
  }
  result.outputs = want.map((o) => ({dtype: o.dtype, shape: o.shape}));
  t = Date.now();
  let pub;
  try {
    pub = await loadGraphModel(job.pub);
  } catch (e) {
    return {...result, status: 'fail', problems: [`republished model does not load: ${shortError(e)}`]};
  }
  const order = (what) => {
    if (JSON.stringify(orig[what]) !== JSON.stringify(pub[what])) {
      result.problems.push(`${what} ${JSON.stringify(pub[what])}, original ${JSON.stringify(orig[what])}`);
    }
  };
  order('inputNodes');
  order('outputNodes');
  let got;
  try {
    got = await describe(await execute(pub, inputs));
  } catch (e) {
    result.problems.push(`republished model fails on the original's inputs: ${shortError(e)}`);
  }
  ms.republished = Date.now() - t;
  if (got) {
    if (got.length !== want.length) {
      result.problems.push(`${got.length} outputs, original ${want.length}`);
    }
    for (let i = 0; i < Math.min(got.length, want.length); i++) {
      const p = compareOutput(i, want[i], got[i]);
      if (p) result.problems.push(p);
    }
  }
  if (result.problems.length) result.status = 'fail';
  return result;
}

async function main() {
  const [mode, file] = process.argv.slice(2);
  if (process.argv.length !== 4 || !['export', 'run'].includes(mode)) {
    process.stderr.write('usage: node realmodel.mjs export JOBS.json | run JOB.json\n');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const jobs = JSON.parse(readFileSync(file, 'utf8'));
  if (mode === 'run') {
    process.stdout.write(JSON.stringify(await runModel(jobs)));
    return;
  }
  const results = {};
  for (const job of jobs) {
    try {
      results[job.name] = await exportModel(job);
    } catch (e) {
      results[job.name] = {ok: false, error: String(e && e.stack ? e.stack : e)};
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(`realmodel.mjs: ${e.stack || e}\n`);
  process.exit(1);
});
