// The command line both loaders share: `node SCRIPT JOBS.json` reads a list
// of jobs, runs each with the cpu backend, and prints {id: result} as JSON.
// A job's own failure is its result ({"ok": false, ...}); anything else
// exits 1 with the stack on stderr.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {readFileSync} from 'node:fs';

export function errorResult(e) {
  return {ok: false, error: String(e && e.stack ? e.stack : e)};
}

export function runJobsFromArgv(script, runJob) {
  const main = async () => {
    if (process.argv.length !== 3) {
      process.stderr.write(`usage: node ${script} JOBS.json\n`);
      process.exit(2);
    }
    await tf.setBackend('cpu');
    await tf.ready();
    const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'));
    const results = {};
    for (const job of jobs) results[job.id] = await runJob(job);
    process.stdout.write(JSON.stringify(results));
  };
  main().catch((e) => {
    process.stderr.write(`${script}: ${e.stack || e}\n`);
    process.exit(1);
  });
}
