// Loads graph models published by weightdrop with the real tfjs-converter
// 4.22 (tf.loadGraphModel over HTTP) and runs each positionally: inputs as
// an array, outputs as an array, both in the order tfjs takes from the key
// order of the model.json's "signature".
//
// Usage: node graph.mjs JOBS.json
//   JOBS.json: [{"id": "...", "url": "http://127.0.0.1:P/m/model.json",
//                "inputs": [[numbers...], ...]}]
//   Output on stdout: {id: {"ok": true, "inputNodes": [...],
//   "outputNodes": [...], "outputs": [[numbers...], ...]}} or
//   {id: {"ok": false, "error": "..."}}.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {loadGraphModel} from '@tensorflow/tfjs-converter';
import {readFileSync} from 'node:fs';

async function runJob(job) {
  try {
    const model = await loadGraphModel(job.url);
    const inputs = job.inputs.map((values) => tf.tensor1d(values, 'float32'));
    let outputs = model.execute(inputs);
    if (!Array.isArray(outputs)) outputs = [outputs];
    const values = [];
    for (const t of outputs) values.push(Array.from(await t.data()));
    tf.dispose([...inputs, ...outputs]);
    model.dispose();
    return {ok: true, inputNodes: model.inputNodes, outputNodes: model.outputNodes, outputs: values};
  } catch (e) {
    return {ok: false, error: String(e && e.stack ? e.stack : e)};
  }
}

async function main() {
  if (process.argv.length !== 3) {
    process.stderr.write('usage: node graph.mjs JOBS.json\n');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const results = {};
  for (const job of jobs) results[job.id] = await runJob(job);
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(`graph.mjs: ${e.stack || e}\n`);
  process.exit(1);
});
