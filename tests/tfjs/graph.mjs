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
import {errorResult, runJobsFromArgv} from './jobs.mjs';

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
    return errorResult(e);
  }
}

runJobsFromArgv('graph.mjs', runJob);
