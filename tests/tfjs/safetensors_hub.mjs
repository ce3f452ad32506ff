// Reads safetensors files with an implementation that is not ours: the
// Hugging Face Hub client's parseSafetensorsMetadata (npm @huggingface/hub,
// pinned in package.json), so tests/integration/safetensors_test.py can
// cross-check its own writer against it. The client reads a repo over HTTP
// range requests; a fetch shim answers them from local files, so nothing
// leaves the machine.
//
// Usage: node safetensors_hub.mjs JOBS.json
//   JOBS.json is a list of {"id", "root", "path"}: `path` (a .safetensors
//   file or a model.safetensors.index.json) relative to the folder `root`.
//   Output on stdout: one JSON object {id: result}; a result is
//     {"ok": true, "sharded": false, "header": {...}, "parameterCount": {...}}
//     {"ok": true, "sharded": true, "index": {...}, "headers": {file: {...}},
//      "parameterCount": {...}}
//     or {"ok": false, "error": "..."} (the client refused the file).
import {parseSafetensorsMetadata} from '@huggingface/hub';
import {closeSync, existsSync, openSync, readFileSync, readSync, statSync} from 'node:fs';
import path from 'node:path';

const HUB = 'http://hub.invalid';
const REPO = 'local/model';
const PREFIX = `${HUB}/${REPO}/resolve/main/`;

function readRange(file, start, end) {  // [start, end) clamped to the file
  const size = statSync(file).size;
  end = Math.min(end, size);
  const buf = Buffer.alloc(Math.max(0, end - start));
  const fd = openSync(file, 'r');
  try {
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, start + done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

// What the Hub's /resolve/ endpoint answers: 206 with Content-Range for a
// Range request, an ETag, 404 + X-Error-Code for a missing file.
function localFetch(root) {
  return async (url, init = {}) => {
    const u = String(url);
    if (!u.startsWith(PREFIX)) {
      return new Response('not here', {status: 404});
    }
    const rel = decodeURIComponent(u.slice(PREFIX.length).split('?')[0]);
    const file = path.join(root, rel);
    if (!existsSync(file)) {
      return new Response('missing', {status: 404, headers: {'X-Error-Code': 'EntryNotFound'}});
    }
    const size = statSync(file).size;
    const headers = new Headers(init.headers || {});
    const range = headers.get('Range');
    const common = {'ETag': `"${size}"`, 'Content-Type': 'application/octet-stream'};
    if (!range) {
      return new Response(readRange(file, 0, size), {status: 200, headers: common});
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(range);
    if (!m) return new Response('bad range', {status: 416});
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]) + 1, size);
    return new Response(readRange(file, start, end), {
      status: 206,
      headers: {...common, 'Content-Range': `bytes ${start}-${end - 1}/${size}`},
    });
  };
}

async function runJob(job) {
  try {
    const r = await parseSafetensorsMetadata({
      repo: REPO, path: job.path, hubUrl: HUB, fetch: localFetch(job.root),
      computeParametersCount: false,
    });
    return {ok: true, ...r};
  } catch (e) {
    return {ok: false, error: String(e && e.message ? e.message : e)};
  }
}

const main = async () => {
  if (process.argv.length !== 3) {
    process.stderr.write('usage: node safetensors_hub.mjs JOBS.json\n');
    process.exit(2);
  }
  const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const results = {};
  for (const job of jobs) results[job.id] = await runJob(job);
  process.stdout.write(JSON.stringify(results));
};
main().catch((e) => {
  process.stderr.write(`safetensors_hub.mjs: ${e.stack || e}\n`);
  process.exit(1);
});
