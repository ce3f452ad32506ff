// Drives page.html in Debian's headless Chromium (/usr/bin/chromium) with
// puppeteer-core, which downloads no browser.
//
// Usage: node run.mjs --page URL --jobs JOBS.json --out DIR [--timeout SECONDS]
//   Opens URL (page.html on a loopback origin), runs the jobs of JOBS.json
//   (page.mjs says what a job is) and prints {id: result} as one line on
//   stdout. Then reads one line from stdin, the test's verdict
//   {id: [problem, ...]}, shows it on the page, and saves DIR/page.png (a
//   full-page screenshot) and DIR/console.log (the page's console, page
//   errors, failed requests and HTTP errors). Chromium's profile is a fresh
//   DIR/chromium-profile-*, removed at the end; DIR/chromium.pid holds the
//   browser's pid (the leader of its process group) while it runs, so the
//   caller can kill it if this process dies.
//   Exit 0 when the jobs ran (whatever their results), 1 when the page could
//   not be driven (the log and, if possible, a screenshot are saved then too).
import {appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {createInterface} from 'node:readline';
import {parseArgs} from 'node:util';
import puppeteer from 'puppeteer-core';

const CHROMIUM = '/usr/bin/chromium';

function chromiumArgs(userDataDir) {
  // This machine's network is closed: without the background, component,
  // sync and QUIC switches Chromium waits on refused connections.
  return ['--no-sandbox',  // as root, Chromium refuses to start without it
          '--headless=new', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update',
          '--disable-sync', `--user-data-dir=${userDataDir}`];
}

function logTo(file) {
  writeFileSync(file, '');
  return (line) => appendFileSync(file, `${new Date().toISOString()} ${line}\n`);
}

function watchPage(page, log) {
  page.on('console', (m) => {
    const where = m.location() && m.location().url ? ` (${m.location().url})` : '';
    log(`console.${m.type()}: ${m.text()}${where}`);
  });
  page.on('pageerror', (e) => log(`pageerror: ${e && e.stack ? e.stack : e}`));
  page.on('requestfailed', (r) => log(`requestfailed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) log(`http ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
}

async function readLine() {
  const lines = createInterface({input: process.stdin});
  for await (const line of lines) {
    lines.close();
    return line;
  }
  return '';
}

// Chromium's helpers may still be writing to the profile as it exits.
function removeProfile(dir, log) {
  try {
    rmSync(dir, {recursive: true, force: true, maxRetries: 10, retryDelay: 100});
  } catch (e) {
    log(`could not remove ${dir}: ${e}`);
  }
}

async function screenshot(page, file, log) {
  try {
    await page.screenshot({path: file, fullPage: true});
  } catch (e) {
    log(`screenshot failed: ${e}`);
  }
}

async function main() {
  const {values: opt} = parseArgs({options: {
    page: {type: 'string'}, jobs: {type: 'string'}, out: {type: 'string'},
    timeout: {type: 'string', default: '240'},
  }});
  if (!opt.page || !opt.jobs || !opt.out) {
    process.stderr.write('usage: node run.mjs --page URL --jobs JOBS.json --out DIR [--timeout S]\n');
    process.exit(2);
  }
  mkdirSync(opt.out, {recursive: true});
  const log = logTo(join(opt.out, 'console.log'));
  const jobs = JSON.parse(readFileSync(opt.jobs, 'utf8'));
  // A fresh profile inside DIR: if Chromium outlives us, the caller's
  // cleanup of DIR still removes it.
  const userDataDir = mkdtempSync(join(opt.out, 'chromium-profile-'));
  let browser = null;
  let page = null;
  let timedOut = false;
  const deadline = setTimeout(async () => {
    timedOut = true;
    log(`run.mjs: no result after ${opt.timeout} s; giving up`);
    process.stderr.write(`run.mjs: no result after ${opt.timeout} s; see ${opt.out}/console.log\n`);
    if (page) await screenshot(page, join(opt.out, 'page.png'), log);
    if (browser) await browser.close().catch(() => {});
    removeProfile(userDataDir, log);
    process.exit(1);
  }, Number(opt.timeout) * 1000);
  try {
    browser = await puppeteer.launch({
      // With --user-data-dir in args puppeteer makes no profile of its own.
      executablePath: CHROMIUM, headless: true, args: chromiumArgs(userDataDir),
    });
    writeFileSync(join(opt.out, 'chromium.pid'), `${browser.process().pid}\n`);
    log(`browser: ${await browser.version()}`);
    page = await browser.newPage();
    watchPage(page, log);
    await page.setViewport({width: 1200, height: 800});
    const response = await page.goto(opt.page, {waitUntil: 'load'});
    if (!response || !response.ok()) throw new Error(`${opt.page}: HTTP ${response && response.status()}`);
    const ready = await page.evaluate(() => window.wd.ready);
    log(`page ready: ${JSON.stringify(ready)}`);
    const results = await page.evaluate((j) => window.wd.runJobs(j), jobs);
    process.stdout.write(JSON.stringify(results) + '\n');
    const verdict = await readLine();
    if (verdict) await page.evaluate((v) => window.wd.showVerdict(v), JSON.parse(verdict));
    await screenshot(page, join(opt.out, 'page.png'), log);
  } catch (e) {
    if (timedOut) return;  // the deadline closed the browser under us
    log(`run.mjs: ${e && e.stack ? e.stack : e}`);
    process.stderr.write(`run.mjs: ${e && e.stack ? e.stack : e}\n`);
    if (page) await screenshot(page, join(opt.out, 'page.png'), log);
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    if (browser) await browser.close().catch(() => {});
    rmSync(join(opt.out, 'chromium.pid'), {force: true});
    removeProfile(userDataDir, log);
  }
}

main();
