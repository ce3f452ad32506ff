#!/usr/bin/python3
"""The documentation runs as written: every command block of README.md and
docs/*.md is run, in order per file, against the real binary.

Usage: /usr/bin/python3 tests/integration/docs_test.py --binary build/weightdrop
           [--filter SUBSTR] [--keep] [-v]

Which blocks run. A fenced block is taken by the first word of its info
string (GitHub highlights by that word and ignores the rest):
  sh, bash, shell, console   run with `bash -e -o pipefail -c` (console: only
                             the lines that start with "$ ", without it)
  js, javascript, mjs        saved as an .mjs file and run with node, which
                             finds the pinned tfjs of tests/tfjs
  yaml, yml, json            checked with `weightdrop check-config`: they must
                             be complete configs
  anything else              not run: listings, grammars, other programs'
                             files (nginx, ini)
A block that fails fails the test.

Marking a block: HTML comments (invisible on GitHub) on the lines right
before its fence, blank lines allowed in between:
  <!-- docs-test: skip REASON -->      not run; REASON is printed. For
      system-level steps (apt, sudo, systemctl, useradd), a remote host, the
      installed system's files, long runs CI does as stages of their own,
      partial config examples. Skipping is a visible decision, never a default.
  <!-- docs-test: background READY --> a daemon or server the reader leaves
      running: started, then READY awaited (file:PATH, a path that appears;
      port:N, a port that accepts), left running until the end of its file,
      then sent SIGINT (Ctrl-C). It fails if it exits before that, or with a
      non-zero status after it.
  <!-- docs-test: file PATH -->        a file the reader saves: written to
      PATH, not run (a later block runs it).
  <!-- docs-test: after file:PATH -->  wait (up to 60 s) until PATH exists
      before running the block: what a reader waits for in a log.
A directive not followed by a block, or one the test does not know, fails.

The scratch environment, one per Markdown file:
- a copy of the checkout's files (`git ls-files`, as they are in the working
  tree) is the working folder of every block; `build/weightdrop` there and
  `weightdrop` first on PATH are the binary under test, and
  tests/tfjs/node_modules is the pinned tfjs install;
- `bash scripts/run.sh` gets WEIGHTDROP=<the binary>, so it starts the daemon
  the README describes without installing packages or building (ctest has
  built the binary; scripts/run.sh documents WEIGHTDROP);
- port 8080, the docs' HTTP server, becomes a free port in every block;
- TMPDIR is private; npm prefers its cache (npm_config_prefer_offline).

Checks beyond the blocks: docs/operations.md's install and uninstall lines
against a prefix in the scratch folder (an edited config survives the
uninstall, everything else installed is gone, the binary is stripped), and
the section-sign citation of the old, untracked spec appears nowhere in the
tracked tree.

Each check prints PASS/FAIL/SKIP; then every block's verdict, skipped ones
with their reason; the last line is "N passed, M failed" (exit 1 if M > 0).
"""

import argparse
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import Skip, check, note  # noqa: E402
import checks  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TFJS_MODULES = os.path.join(REPO, "tests", "tfjs", "node_modules")
BINARY = None
KEEP = False
VERBOSE = False

SHELL_LANGS = {"sh", "bash", "shell", "console"}
JS_LANGS = {"js", "javascript", "mjs"}
CONFIG_LANGS = {"yaml", "yml", "json"}
DOCS_PORT = "8080"
BLOCK_TIMEOUT = 300  # s; npm install and cmake --install are the slow ones
WAIT_TIMEOUT = 60    # s; background READY and `after`
STOP_TIMEOUT = 40    # s; SIGINT to exit (the daemon's shutdown_timeout is 30 s)

FENCE = re.compile(r"^( *)(`{3,}|~{3,})(.*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
VERDICTS = []  # (where, verdict, detail) of every block, for the summary


# --- reading the Markdown ------------------------------------------------------

class Block:
    def __init__(self, doc, line, lang, text, directives):
        self.doc, self.line, self.lang, self.text = doc, line, lang, text
        self.directives = directives  # {kind: argument}

    @property
    def where(self):
        return f"{self.doc}:{self.line}"


def parse_directive(text, where):
    kind, _, arg = text.partition(" ")
    arg = arg.strip()
    if kind == "skip" and arg:
        return kind, arg
    if kind in ("background", "after") and re.fullmatch(r"file:\S+|port:\d+", arg):
        return kind, arg
    if kind == "file" and re.fullmatch(r"[^\s/][^\s]*", arg):
        return kind, arg
    raise AssertionError(f"{where}: unknown or malformed directive <!-- docs-test: {text} -->"
                         " (skip REASON | background file:PATH|port:N | file PATH |"
                         " after file:PATH)")


def parse_blocks(doc):
    """The fenced blocks of REPO/doc, each with the directives before it."""
    with open(os.path.join(REPO, doc), encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, pending, i = [], {}, 0
    while i < len(lines):
        d = DIRECTIVE.match(lines[i])
        m = FENCE.match(lines[i])
        if d:
            kind, arg = parse_directive(d.group(1), f"{doc}:{i + 1}")
            assert kind not in pending, f"{doc}:{i + 1}: a second '{kind}' for one block"
            pending[kind] = arg
        elif m:
            indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
            end = i + 1
            while end < len(lines) and not re.fullmatch(
                    r" *" + re.escape(fence[0]) + "{%d,} *" % len(fence), lines[end]):
                end += 1
            body = [ln[indent:] if ln[:indent].strip() == "" else ln.lstrip()
                    for ln in lines[i + 1:end]]
            lang = info.split()[0].lower() if info else ""
            if "skip" in pending:
                assert len(pending) == 1, f"{doc}:{i + 1}: skip together with {pending}"
            blocks.append(Block(doc, i + 1, lang, "\n".join(body) + "\n", pending))
            pending, i = {}, end
        elif lines[i].strip() and pending:
            raise AssertionError(f"{doc}:{i + 1}: docs-test directive {pending} is not "
                                 "followed by a fenced block")
        i += 1
    assert not pending, f"{doc}: docs-test directive {pending} at the end, with no block"
    return blocks


def doc_files():
    return ["README.md"] + sorted(os.path.relpath(p, REPO)
                                  for p in glob.glob(os.path.join(REPO, "docs", "*.md")))


# --- the scratch environment ------------------------------------------------------

def tracked_files():
    """The checkout's files (tracked, plus new ones not ignored), relative."""
    out = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=True).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def make_checkout(scratch):
    """A copy of the checkout as a reader has it after a clone and a build."""
    checkout = os.path.join(scratch, "checkout")
    for rel in tracked_files():
        src = os.path.join(REPO, rel)
        if not os.path.isfile(src) or os.path.islink(src):
            continue  # deleted in the working tree, or a link
        dst = os.path.join(checkout, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
    os.makedirs(os.path.join(checkout, "build"), exist_ok=True)
    os.symlink(BINARY, os.path.join(checkout, "build", "weightdrop"))
    if os.path.isdir(TFJS_MODULES):
        os.symlink(TFJS_MODULES, os.path.join(checkout, "tests", "tfjs", "node_modules"))
    return checkout


def make_env(scratch):
    bindir = os.path.join(scratch, "bin")
    os.makedirs(bindir)
    os.symlink(BINARY, os.path.join(bindir, "weightdrop"))
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(tmp)
    env = dict(os.environ)
    env.update({
        "PATH": bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        "TMPDIR": tmp,
        "WEIGHTDROP": BINARY,
        "PYTHONDONTWRITEBYTECODE": "1",
        "npm_config_prefer_offline": "true",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    })
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(text, n=40):
    lines = text.rstrip("\n").split("\n")
    return "\n".join("        | " + ln for ln in lines[-n:])


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# --- running one file's blocks ------------------------------------------------------

class Background:
    def __init__(self, block, proc, log):
        self.block, self.proc, self.log = block, proc, log

    def describe(self):
        return f"background {self.block.where} (log):\n{tail(read_text(self.log), 25)}"


class DocRun:
    """One Markdown file's blocks in one scratch environment."""

    def __init__(self, doc):
        self.doc = doc
        self.scratch = tempfile.mkdtemp(prefix="wd_docs_")
        self.checkout = make_checkout(self.scratch)
        self.env = make_env(self.scratch)
        self.port = str(free_port())
        self.backgrounds = []
        self.failures = []

    def record(self, block, verdict, detail=""):
        VERDICTS.append((block.where, block.lang or "-", verdict, detail))
        if VERBOSE or verdict == "FAIL":
            print(f"    {verdict:<7} {block.where} [{block.lang or '-'}] {detail}", flush=True)

    def fail(self, block, why):
        msg = f"{block.where} [{block.lang}]: {why}"
        for bg in self.backgrounds:
            msg += "\n      " + bg.describe()
        self.failures.append(msg)
        self.record(block, "FAIL", why.split("\n")[0])

    def text_of(self, block):
        text = block.text.replace(DOCS_PORT, self.port)
        if block.lang == "console":
            text = "\n".join(ln[2:] for ln in text.split("\n") if ln.startswith("$ ")) + "\n"
        return text

    def wait_for(self, cond, deadline_s):
        """Waits for file:PATH or port:N; returns None or why it failed."""
        kind, _, arg = cond.partition(":")
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if kind == "file" and os.path.lexists(os.path.join(self.checkout, arg)):
                return None
            if kind == "port":
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", int(arg.replace(DOCS_PORT, self.port)))) == 0:
                        return None
            for bg in self.backgrounds:
                if bg.proc.poll() is not None:
                    return f"background {bg.block.where} exited ({bg.proc.returncode})"
            time.sleep(0.1)
        return f"{cond} not there after {deadline_s} s"

    def run_process(self, block, argv, what):
        t = time.monotonic()
        try:
            p = subprocess.run(argv, cwd=self.checkout, env=self.env, capture_output=True,
                               timeout=BLOCK_TIMEOUT, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"") + (e.stderr or b"")
            return self.fail(block, f"{what}: timed out after {BLOCK_TIMEOUT} s\n"
                                    f"{tail(out.decode('utf-8', 'replace'))}")
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        if p.returncode != 0:
            return self.fail(block, f"{what}: exit {p.returncode}\n{tail(out)}")
        if VERBOSE and out.strip():
            print(tail(out, 15))
        self.record(block, "ran", f"{what} ({time.monotonic() - t:.1f}s)")

    def run_block(self, block):
        d = block.directives
        if "skip" in d:
            return self.record(block, "skipped", d["skip"])
        if "file" in d:
            path = os.path.join(self.checkout, d["file"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.text_of(block))
            return self.record(block, "saved", f"as {d['file']}")
        runnable = SHELL_LANGS | JS_LANGS | CONFIG_LANGS
        if block.lang not in runnable:
            assert not d, f"{block.where}: directive {d} on a [{block.lang}] block, which never runs"
            return self.record(block, "listing", "not a language the test runs")
        if "after" in d:
            why = self.wait_for(d["after"], WAIT_TIMEOUT)
            if why:
                return self.fail(block, f"waiting for {d['after']}: {why}")
        for bg in self.backgrounds:
            if bg.proc.poll() is not None:
                return self.fail(block, f"background {bg.block.where} exited early "
                                        f"({bg.proc.returncode})")
        if "background" in d:
            return self.start_background(block, d["background"])
        if block.lang in SHELL_LANGS:
            return self.run_process(block, ["bash", "-e", "-o", "pipefail", "-c",
                                            self.text_of(block)], "bash")
        if block.lang in JS_LANGS:
            # Next to a link to the pinned tfjs, so its imports resolve.
            jsdir = os.path.join(self.scratch, "js")
            if not os.path.isdir(jsdir):
                os.makedirs(jsdir)
                os.symlink(TFJS_MODULES, os.path.join(jsdir, "node_modules"))
            path = os.path.join(jsdir, f"block-{block.line}.mjs")
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.text_of(block))
            return self.run_process(block, ["node", path], "node")
        path = os.path.join(self.scratch, "configs",
                            f"{block.doc.replace('/', '_')}-{block.line}.{block.lang}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(block.text)
        return self.run_process(block, [BINARY, "check-config", path], "check-config")

    def start_background(self, block, ready):
        log = os.path.join(self.scratch, f"background-{block.line}.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", self.text_of(block)],
                                    cwd=self.checkout, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        bg = Background(block, proc, log)
        self.backgrounds.append(bg)
        t = time.monotonic()
        why = self.wait_for(ready, WAIT_TIMEOUT)
        if why:
            return self.fail(block, f"not ready ({ready}): {why}")
        self.record(block, "started", f"background, ready ({ready}) in "
                                      f"{time.monotonic() - t:.1f}s")

    def stop_backgrounds(self):
        """SIGINT, as Ctrl-C in the terminal would, newest first."""
        for bg in reversed(self.backgrounds):
            if bg.proc.poll() is not None:
                self.failures.append(f"{bg.block.where}: background exited before the end of "
                                     f"{self.doc} ({bg.proc.returncode})\n      {bg.describe()}")
                continue
            os.killpg(bg.proc.pid, signal.SIGINT)
            try:
                rc = bg.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(bg.proc.pid, signal.SIGKILL)
                bg.proc.wait()
                self.failures.append(f"{bg.block.where}: still running {STOP_TIMEOUT} s after "
                                     f"SIGINT\n      {bg.describe()}")
                continue
            if rc != 0:
                self.failures.append(f"{bg.block.where}: exit {rc} on SIGINT\n      "
                                     f"{bg.describe()}")

    def run(self):
        blocks = parse_blocks(self.doc)
        if any(DOCS_PORT in b.text for b in blocks):
            note(f"{self.doc}: port {DOCS_PORT} is {self.port} in this run")
        try:
            for block in blocks:
                self.run_block(block)
        finally:
            self.stop_backgrounds()
            if KEEP:
                note(f"{self.doc}: scratch folder kept: {self.scratch}")
            else:
                shutil.rmtree(self.scratch, ignore_errors=True)
        assert not self.failures, "\n      ".join(self.failures)


def register_doc_checks():
    """One check per Markdown file, ahead of the checks registered below."""
    checks.CHECKS[:0] = [(f"{doc} runs as written", lambda doc=doc: DocRun(doc).run())
                         for doc in doc_files()]


# --- install and uninstall --------------------------------------------------------------

def doc_line(doc, needle):
    """The one command line of doc's blocks that contains needle."""
    hits = [ln.split("#")[0].strip() for b in parse_blocks(doc) if b.lang in SHELL_LANGS
            for ln in b.text.split("\n") if needle in ln]
    assert len(hits) == 1, f"{doc}: expected one command line with {needle!r}, found {hits}"
    return hits[0]


def elf_sections(path):
    out = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True,
                         check=True).stdout
    return set(re.findall(r"\]\s+(\.\S+)", out))


@check("docs/operations.md: install --strip, edit the config, uninstall, install again, "
       "uninstall: the edited config stays, nothing else does")
def install_uninstall():
    build = os.path.dirname(BINARY)
    if not os.path.isfile(os.path.join(build, "cmake_install.cmake")):
        raise Skip(f"{build} is not a CMake build folder")
    install = doc_line("docs/operations.md", "cmake --install build")
    uninstall = doc_line("docs/operations.md", "install_manifest.txt").replace("sudo ", "")
    assert "--strip" in install, f"the documented install does not strip: {install!r}"
    # As documented, with the prefix moved under the scratch folder
    # (docs/operations.md: `cmake --install build --prefix /opt/wd`).
    scratch = tempfile.mkdtemp(prefix="wd_docs_install_")
    prefix = os.path.join(scratch, "prefix")
    install = install.replace("sudo ", "") + f" --prefix {prefix}"
    conf = os.path.join(prefix, "etc", "weightdrop", "weightdrop.yaml")
    binary = os.path.join(prefix, "bin", "weightdrop")

    def sh(cmd):
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd], cwd=scratch,
                           capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
        out = p.stdout + p.stderr
        assert p.returncode == 0, f"$ {cmd}\n      exit {p.returncode}\n{tail(out)}"
        return out

    def manifest():
        return read_text(os.path.join(build, "install_manifest.txt")).split()

    def uninstall_keeps(edited, installed):
        out = sh(uninstall)
        assert read_text(conf) == edited, f"$ {uninstall} removed or changed {conf}:\n{tail(out)}"
        left = [p for p in installed if os.path.lexists(p)]
        assert not left, f"$ {uninstall} left installed files: {left}"

    try:
        os.symlink(build, os.path.join(scratch, "build"))
        out = sh(install)
        assert os.path.isfile(conf), f"no config at {conf}:\n{tail(out)}"
        debug = {s for s in elf_sections(binary) if s.startswith(".debug") or s == ".symtab"}
        assert not debug, f"{binary} is not stripped: {sorted(debug)}"
        first = manifest()
        assert conf not in first, f"{conf} is in install_manifest.txt: uninstalling deletes it"
        with open(conf, "a") as f:
            f.write("# edited by the operator\n")
        edited = read_text(conf)
        uninstall_keeps(edited, first)
        # An upgrade over the edited config: it stays, the shipped one lands
        # next to it, and uninstalling removes only that.
        out = sh(install)
        assert read_text(conf) == edited, f"installing again changed the edited config:\n{tail(out)}"
        second = manifest()
        assert conf + ".new" in second, f"no weightdrop.yaml.new installed:\n{tail(out)}"
        uninstall_keeps(edited, second)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- no citations of a document the reader does not have ------------------------------

SPEC_CITATION = "SPEC \u00a7"  # spelled so that this file does not contain it


@check("the tracked tree cites no section of the spec (it is not in the repository)")
def no_spec_citations():
    out = subprocess.run(["git", "-C", REPO, "ls-files", "-z"], capture_output=True,
                         check=True).stdout
    hits = []
    for rel in filter(None, out.decode().split("\0")):
        path = os.path.join(REPO, rel)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            for n, line in enumerate(f.read().split(b"\n"), 1):
                if SPEC_CITATION.encode() in line:
                    hits.append(f"{rel}:{n}: {line.decode('utf-8', 'replace').strip()[:100]}")
    assert not hits, (f"{len(hits)} citation(s) of '{SPEC_CITATION}N'; point at docs/formats.md, "
                      "docs/configuration.md or docs/operations.md instead:\n      " +
                      "\n      ".join(hits))


# --- main ------------------------------------------------------------------------------------

def print_summary():
    if not VERDICTS:
        return
    counts = {}
    for _, _, verdict, _ in VERDICTS:
        counts[verdict] = counts.get(verdict, 0) + 1
    print("blocks: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    for where, lang, verdict, detail in VERDICTS:
        if verdict in ("skipped", "FAIL"):
            print(f"  {verdict:<7} {where} [{lang}] {detail}")


def main():
    global BINARY, KEEP, VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every block's verdict")
    args = ap.parse_args()
    BINARY, KEEP, VERBOSE = os.path.abspath(args.binary), args.keep, args.verbose
    if not os.access(BINARY, os.X_OK):
        print(f"no executable at {BINARY}", file=sys.stderr)
        return 2
    register_doc_checks()
    passed, failed, skipped = checks.run(args.filter)
    print_summary()
    checks.print_notes()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
