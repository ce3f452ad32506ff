"""Helpers for daemon_test.py: run the real `weightdrop run` daemon in a temp
folder, listen on its sd_notify socket, write its config, and wait for
results by polling the file system with bounded timeouts.

An `Env` is one check's sandbox (config, drop folders, serve roots, state
dir); `Env.start()` gives a `Daemon` whose stderr goes to a file that every
failure message quotes the tail of. Run with /usr/bin/python3 (needs NumPy).
"""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import numpy as np

BINARY = None  # set by daemon_test.main()
FAULT_BINARY = None  # wd_fault_daemon (tests/fault_daemon_main.cpp), when given
BASE = None  # one temp root for the whole run (hard links need one file system)
KEEP = False  # --keep: leave every check's folder for inspection
SANITIZER_WORDS = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "terminate called")


def base_dir():
    global BASE
    if BASE is None:
        BASE = tempfile.mkdtemp(prefix="wd_daemon_")
    return BASE


# --- small file helpers -------------------------------------------------------

def remove_base(keep):
    """At the end of a run: removes the run's temp root, or names it (keep)."""
    if BASE and not keep:
        shutil.rmtree(BASE, ignore_errors=True)
    elif BASE:
        print(f"kept {BASE}")


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def write_file(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def listdir(path):
    """Sorted entries of `path`, [] when it does not exist."""
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def tree(root, limit=60):
    """A compact listing of `root` for failure messages."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        shards = [n for n in filenames if n.endswith(".bin")]
        others = sorted(n for n in filenames if not n.endswith(".bin"))
        for n in others:
            p = os.path.join(dirpath, n)
            kind = "@" if os.path.islink(p) else ""
            lines.append(f"{os.path.normpath(os.path.join(rel, n))}{kind}")
        for n in list(dirnames):
            if os.path.islink(os.path.join(dirpath, n)):
                lines.append(f"{os.path.normpath(os.path.join(rel, n))}@")
        if shards:
            lines.append(f"{rel}/ [{len(shards)} .bin shards]")
        if len(lines) > limit:
            lines.append("...")
            break
    return "\n        ".join(lines)


def folder_digest(root):
    """Bundle digest of a folder (docs/formats.md): files sorted bytewise by
    relative path, hidden/temporary names skipped, each hashed as path, NUL,
    size as 8 bytes little-endian, bytes."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not ignored_name(d)]
        for n in filenames:
            if ignored_name(n):
                continue
            p = os.path.join(dirpath, n)
            entries.append((os.path.relpath(p, root).replace(os.sep, "/").encode(), p))
    h = hashlib.sha256()
    for rel, p in sorted(entries):
        with open(p, "rb") as f:
            data = f.read()
        h.update(rel + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def ignored_name(name):
    return name.startswith(".") or name.endswith(
        (".tmp", ".part", ".partial", ".crdownload", "~"))


# --- bundles --------------------------------------------------------------------

def npz_bytes(seed, n=64):
    """A small, distinct np.savez bundle per seed."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, **{"dense/kernel": rng.standard_normal((n, 4)).astype(np.float32),
                     "dense/bias": rng.standard_normal(4).astype(np.float32),
                     "step": np.array([seed], np.int32)})
    return buf.getvalue()


_big = {}


def big_bundle(mib=128):
    """A large float32 .npz written once per run under BASE; its path."""
    if mib not in _big:
        path = os.path.join(base_dir(), f"big{mib}.npz")
        n = mib * 1024 * 1024 // 4 // 2
        a = np.arange(n, dtype=np.float32)
        with open(path, "wb") as f:
            np.savez(f, **{"layer1/w": a, "layer2/w": a[::-1] * 0.5})
        _big[mib] = path
    return _big[mib]


# --- YAML ------------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "~"}


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts / lists of dicts; lists of scalars in flow style."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list):
                lines.append(f"{pad}{k}: [{', '.join(yaml_scalar(x) for x in v)}]")
            else:
                lines.append(f"{pad}{k}: {yaml_scalar(v)}")
    else:
        for item in obj:
            sub = to_yaml(item, indent + 2).splitlines()
            lines.append(f"{pad}- {sub[0].lstrip()}")
            lines.extend(sub[1:])
    return "\n".join(lines)


# --- sd_notify listener -----------------------------------------------------------

class NotifyListener:
    """Binds a SOCK_DGRAM unix socket and collects datagrams in a thread."""

    def __init__(self, path=None, abstract=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.sock.bind("\0" + abstract)
            self.env_value = "@" + abstract
        else:
            self.sock.bind(path)
            os.chmod(path, 0o777)  # a daemon run as another user sends here too
            self.env_value = path
        self.sock.settimeout(0.05)
        self.messages = []  # (monotonic seconds, text)
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def find(self, pred, start=0):
        """Index of the first datagram at or after `start` whose text matches."""
        for i, (_, text) in enumerate(self.snapshot()[start:], start):
            if pred(text):
                return i
        return None

    def count(self, line, start=0):
        return sum(1 for _, t in self.snapshot()[start:] if line in t.split("\n"))

    def close(self):
        self.closed = True
        self.thread.join(timeout=2)
        self.sock.close()


def has_line(line):
    return lambda text: line in text.split("\n")


# --- the daemon -------------------------------------------------------------------

class Daemon:
    """One `weightdrop run --config CFG` process with its notify socket."""

    def __init__(self, env, config, extra_env=None, abstract=False, cwd="/", binary=None):
        env.daemon_count += 1
        n = env.daemon_count
        self.env = env
        self.log_path = os.path.join(env.root, f"daemon{n}.log")
        self.out_path = os.path.join(env.root, f"daemon{n}.out")
        if abstract:
            self.notify = NotifyListener(abstract=f"wd-test-{os.getpid()}-{id(self)}")
        else:
            self.notify = NotifyListener(path=os.path.join(env.root, f"notify{n}.sock"))
        penv = {k: v for k, v in os.environ.items()
                if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                             "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID")}
        penv["NOTIFY_SOCKET"] = self.notify.env_value
        self.log_file = open(self.log_path, "wb")
        if extra_env:
            penv.update({k: (v(self.log_file) if callable(v) else v)
                         for k, v in extra_env.items()})
        self.out_file = open(self.out_path, "wb")
        self.cmd = [binary or BINARY, "run", "--config", config]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.out_file,
                                     stderr=self.log_file, env=penv, cwd=cwd)
        self.pid = self.proc.pid
        self.started_at = time.time()
        self.rc = None
        env.daemons.append(self)

    # -- inspection
    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        return self.log().splitlines()

    def exited(self):
        if self.rc is None:
            self.rc = self.proc.poll()
        return self.rc is not None

    def diag(self, lines=30):
        tail = "\n        ".join(self.log_lines()[-lines:])
        msgs = [t.replace("\n", "\\n")[:120] for _, t in self.notify.snapshot()[-8:]]
        state = f"exited with {self.rc}" if self.exited() else "running"
        return (f"\n      daemon {self.pid} ({state}); last notify messages: {msgs}"
                f"\n      daemon log tail:\n        {tail}"
                f"\n      tree of {self.env.root}:\n        {tree(self.env.root)}")

    def fail(self, msg):
        raise AssertionError(msg + self.diag())

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)

    # -- waiting
    def wait(self, pred, timeout, what, interval=0.02, allow_exit=False):
        """Polls pred() until truthy; fails after `timeout` s or if we exit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                v = pred()
            except (OSError, ValueError, KeyError, TypeError):
                v = None
            if v:
                return v
            if not allow_exit and self.exited():
                self.fail(f"daemon exited (code {self.rc}) while waiting for {what}")
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def wait_notify(self, line, timeout=10, start=0):
        """Index of the first datagram at or after `start` holding `line`."""
        def find():
            i = self.notify.find(has_line(line), start)
            return None if i is None else (i,)
        return self.wait(find, timeout, f"{line!r} on NOTIFY_SOCKET")[0]

    def wait_ready(self, timeout=10):
        return self.wait_notify("READY=1", timeout)

    def wait_log(self, pattern, timeout=10, flags=re.I):
        """Waits for a log line matching the regex; returns the line."""
        rx = re.compile(pattern, flags)

        def find():
            for line in self.log_lines():
                if rx.search(line):
                    return line
            return None
        return self.wait(find, timeout, f"a log line matching /{pattern}/")

    # -- stopping
    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, timeout=20):
        """SIGTERM; asserts exit code 0, STOPPING=1 sent and no sanitizer report."""
        if not self.exited():
            self.signal(signal.SIGTERM)
        try:
            self.rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.rc = self.proc.wait()
            self.fail(f"daemon did not exit within {timeout}s of SIGTERM (killed)")
        self.close_files()
        self.check(self.rc == 0, f"daemon exited with {self.rc} after SIGTERM, expected 0")
        self.check(self.notify.count("STOPPING=1") >= 1, "no STOPPING=1 on NOTIFY_SOCKET")
        self.check_sanitizers()
        return self.rc

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.rc = self.proc.wait(timeout=10)
        self.close_files()

    def wait_exit(self, timeout=20):
        """Waits for the daemon to exit by itself (a crash); returns the code."""
        self.wait(self.exited, timeout, "the daemon to exit", allow_exit=True)
        self.close_files()
        return self.rc

    def check_sanitizers(self):
        text = self.log()
        for bad in SANITIZER_WORDS:
            self.check(bad not in text, f"sanitizer/abort report ({bad!r}) in the daemon log")

    def close_files(self):
        self.log_file.close()
        self.out_file.close()

    def cleanup(self):
        if not self.exited():
            self.proc.kill()
            self.proc.wait()
        if not self.log_file.closed:
            self.close_files()
        self.notify.close()


# --- a check's sandbox ------------------------------------------------------------

class Watch:
    def __init__(self, env, name, drop, serve, opts):
        self.env, self.name, self.drop, self.serve, self.opts = env, name, drop, serve, opts

    def spec(self):
        w = {"drop": self.opts.get("_drop_text") or self.drop,
             "serve": self.opts.get("_serve_text") or self.serve}
        w.update({k: v for k, v in self.opts.items() if not k.startswith("_")})
        return w

    def sub(self, kind, *parts):
        return os.path.join(self.drop, ".weightdrop", kind, *parts)

    def done(self):
        return listdir(self.sub("done"))

    def failed(self):
        return listdir(self.sub("failed"))

    def processing(self):
        return listdir(self.sub("processing"))

    def in_processing(self, name):
        """Path of bundle `name` under processing/ (the contract puts it at
        processing/<name>; a per-claim subfolder processing/*/<name> is
        accepted too), None if absent."""
        direct = self.sub("processing", name)
        if os.path.lexists(direct):
            return direct
        for e in self.processing():
            p = self.sub("processing", e, name)
            if os.path.lexists(p):
                return p
        return None

    def model_dir(self, model):
        return os.path.join(self.serve, model)

    def current(self, model):
        """The `current` link target of serve/<model>, None if absent."""
        try:
            return os.readlink(os.path.join(self.serve, model, "current"))
        except OSError:
            return None

    def versions(self, model):
        d = self.model_dir(model)
        return sorted(int(n) for n in listdir(d)
                      if n.isdigit() and os.path.isdir(os.path.join(d, n)))

    def publish_json(self, model, version):
        return load_json(os.path.join(self.serve, model, str(version), "publish.json"))

    def staging(self):
        return listdir(os.path.join(self.serve, ".staging"))

    def drop_by_rename(self, name, data):
        """Writes `data` outside the drop folder, then renames it in."""
        tmp = os.path.join(self.env.root, "outside", f"{self.env.next_id()}-{name}")
        write_file(tmp, data)
        os.rename(tmp, os.path.join(self.drop, name))
        return os.path.join(self.drop, name)


class Env:
    """tmp/<check>/{config.yaml, state/, <watch>-drop/, serve roots}."""

    def __init__(self, label):
        self.root = tempfile.mkdtemp(prefix=f"{label}-", dir=base_dir())
        self.config_path = os.path.join(self.root, "config.yaml")
        self.state_dir = os.path.join(self.root, "state")
        os.makedirs(self.state_dir)
        self.watches = []
        self.top = {"state_dir": self.state_dir, "log_level": "debug"}
        self.daemons = []
        self.daemon_count = 0
        self.mounts = []
        self._id = 0

    def next_id(self):
        self._id += 1
        return self._id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for d in self.daemons:
            d.cleanup()
        for m in reversed(self.mounts):
            if subprocess.run(["umount", m], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", m], capture_output=True)
        if not KEEP:
            shutil.rmtree(self.root, ignore_errors=True)
        return False

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def watch(self, name="w", serve="serve", **opts):
        """Adds a watch with drop folder <root>/<name>-drop and serve root
        <root>/<serve>; short settle/rescan unless given."""
        drop, serve_path = self.path(f"{name}-drop"), self.path(serve)
        os.makedirs(drop, exist_ok=True)
        os.makedirs(serve_path, exist_ok=True)
        opts.setdefault("settle", "200ms")
        opts.setdefault("rescan", "1s")
        w = Watch(self, name, drop, serve_path, opts)
        self.watches.append(w)
        return w

    def config_text(self, watches=None):
        cfg = dict(self.top)
        cfg["watches"] = [w.spec() for w in (watches if watches is not None else self.watches)]
        return to_yaml(cfg) + "\n"

    def write_config(self, text=None, watches=None):
        write_file(self.config_path, text if text is not None else self.config_text(watches))
        return self.config_path

    def start(self, extra_env=None, ready=True, write=True, **kw):
        if write:
            self.write_config()
        d = Daemon(self, self.config_path, extra_env, **kw)
        if ready:
            d.wait_ready()
        return d

    def status(self):
        return load_json(os.path.join(self.state_dir, "status.json"))

    def crash_log(self):
        """state_dir/crashes (the crash guard's log), "" when absent."""
        try:
            with open(os.path.join(self.state_dir, "crashes")) as f:
                return f.read()
        except FileNotFoundError:
            return ""


def wd(*args, timeout=60):
    """Runs a weightdrop subcommand; (rc, stdout, stderr)."""
    p = subprocess.run([BINARY] + [str(a) for a in args], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def process_gone(pid):
    """True when pid no longer runs (absent, or a zombie nobody reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def is_dir_nonempty(path):
    try:
        return any(True for _ in os.scandir(path))
    except OSError:
        return False


def regular_or_dir(path):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
