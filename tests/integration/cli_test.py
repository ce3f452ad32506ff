#!/usr/bin/python3
"""Integration tests: the real weightdrop binary on real folders.

Usage: /usr/bin/python3 cli_test.py --binary PATH [--filter SUBSTR] [-v]

Each check is a function; a failed assertion prints FAIL with the reason
(including the command, exit code and output). The last line is exactly
"N passed, M failed"; the exit status is 1 when M > 0.
"""

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile as H  # noqa: E402
from checks import check, note  # noqa: E402
import checks  # noqa: E402

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_DIR = os.path.join(TESTS_DIR, "golden")
HAZARD_CASE = "10-tfjs-uniform-shard-hazard"
BINARY = None
VERBOSE = False




# --- running the binary -----------------------------------------------------

class Run:
    def __init__(self, cmd, rc, out, err, seconds):
        self.cmd, self.rc, self.out, self.err, self.seconds = cmd, rc, out, err, seconds

    def __str__(self):
        return (f"$ {' '.join(self.cmd)}\n      exit {self.rc} ({self.seconds:.2f}s)\n"
                f"      stdout: {self.out[:1500]!r}\n      stderr: {self.err[:1500]!r}")


def wd(*args, cwd=None, timeout=30):
    cmd = [BINARY] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"timed out after {timeout}s: {' '.join(cmd)}")
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    r = Run(cmd, p.returncode, out, err, time.monotonic() - t0)
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "terminate called"):
        assert bad not in err, f"sanitizer/abort report in stderr:\n      {r}"
    assert r.rc >= 0, f"killed by signal {-r.rc}:\n      {r}"
    return r


def expect_ok(r, what="command"):
    assert r.rc == 0, f"{what} should exit 0:\n      {r}"
    return r


# --- file helpers -------------------------------------------------------------

def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def load_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def norm_numbers(x):
    """JSON value with every number as a float (manifests compare as doubles)."""
    if isinstance(x, bool):
        return x
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, list):
        return [norm_numbers(v) for v in x]
    if isinstance(x, dict):
        return {k: norm_numbers(v) for k, v in x.items()}
    return x


def snapshot(root):
    """{relpath: description} of a tree: file digests, dirs, symlink targets."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", sha256_file(p))
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def snapshot_diff(before, after):
    lines = []
    for k in sorted(set(before) | set(after)):
        if k not in after:
            lines.append(f"removed {k}")
        elif k not in before:
            lines.append(f"added {k} {after[k]}")
        elif before[k] != after[k]:
            lines.append(f"changed {k}: {before[k]} -> {after[k]}")
    return lines


def rmtree(path):
    def onerror(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o755)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o755)
        func(p)
    shutil.rmtree(path, onerror=onerror)


class Sandbox:
    """tmp/outer/inner/{serve,in}: room above the serve root to see escapes."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="wd_cli_")
        self.inner = os.path.join(self.tmp, "outer", "inner")
        self.S = os.path.join(self.inner, "serve")
        self.inp = os.path.join(self.inner, "in")
        os.makedirs(self.inp)

    def close(self):
        rmtree(self.tmp)

    def path(self, *parts):
        return os.path.join(self.inp, *parts)

    def write(self, name, data):
        return H.write(self.path(name), data)

    def npz(self, name, **arrays):
        return self.write(name, H.npz_of_arrays(**arrays))

    def publish(self, bundle, *args, model="m"):
        margs = ["--model", model] if model is not None else []
        return wd("publish", bundle, "--to", self.S, *margs, *args, cwd=self.inp)

    def publish_good(self, seed=0, name="good.npz"):
        rng = np.random.default_rng(seed)
        b = self.npz(name, **{"dense/kernel": rng.standard_normal((3, 4)).astype(np.float32),
                              "dense/bias": rng.standard_normal(4).astype(np.float32)})
        r = expect_ok(self.publish(b), "publishing a good bundle")
        return b, r

    def model_dir(self, model="m"):
        return os.path.join(self.S, model)

    def versions(self, model="m"):
        d = self.model_dir(model)
        return sorted(int(n) for n in os.listdir(d)
                      if n.isdigit() and os.path.isdir(os.path.join(d, n)))


def with_sandbox(fn):
    def run():
        sb = Sandbox()
        try:
            fn(sb)
        finally:
            sb.close()
    run.__name__ = fn.__name__
    return run


def version_from_stdout(r, serve, model, cwd=None):
    lines = r.out.strip().splitlines()
    assert len(lines) == 1, f"publish should print one line (the version folder):\n      {r}"
    p = lines[0].strip()
    if not os.path.isabs(p) and cwd:
        p = os.path.join(cwd, p)
    base = os.path.basename(p.rstrip("/"))
    assert base.isdigit(), f"printed path does not end in a version number: {p!r}\n      {r}"
    assert os.path.realpath(os.path.dirname(p.rstrip("/"))) == os.path.realpath(
        os.path.join(serve, model)), f"printed path {p!r} is not under {serve}/{model}"
    return int(base)


def flat_shard_sizes(version_dir, manifest):
    return [os.path.getsize(os.path.join(version_dir, p))
            for g in manifest for p in g["paths"]]


def has_tfjs_uniform_hazard(sizes):
    """tfjs-core 4.22 CompositeArrayBuffer: all but the last shard equal to the
    first makes it index shards by byte/first_size, wrong when last > first."""
    if len(sizes) < 2:
        return False
    return all(s == sizes[0] for s in sizes[:-1]) and sizes[-1] > sizes[0]


def check_pointers(S, model, v):
    """current -> "v" (relative), pointer manifest == version manifest with "v/" paths."""
    mdir = os.path.join(S, model)
    cur = os.path.join(mdir, "current")
    assert os.path.islink(cur), f"{cur} is not a symlink"
    target = os.readlink(cur)
    assert target == str(v), f"current -> {target!r}, expected relative {str(v)!r}"
    vman = load_json(os.path.join(mdir, str(v), "weights_manifest.json"))
    pman = load_json(os.path.join(mdir, "weights_manifest.json"))
    assert len(pman) == len(vman), f"pointer manifest has {len(pman)} groups, version {len(vman)}"
    for i, (pg, vg) in enumerate(zip(pman, vman)):
        assert norm_numbers(pg["weights"]) == norm_numbers(vg["weights"]), \
            f"group {i + 1}: pointer manifest weights differ from version {v}'s"
        want = [f"{v}/{p}" for p in vg["paths"]]
        assert pg["paths"] == want, f"group {i + 1}: pointer paths {pg['paths']} != {want}"


# --- 1. golden ----------------------------------------------------------------

_golden_cache = {}


def golden_publish(case):
    """Publishes a golden case once into its own serve root; cached."""
    if case not in _golden_cache:
        sb = Sandbox()
        cdir = os.path.join(GOLDEN_DIR, case)
        r = wd("publish", "bundle.npz", "--to", sb.S, "--model", "m", "--config",
               "config.yaml", cwd=cdir)
        _golden_cache[case] = (sb, r)
    sb, r = _golden_cache[case]
    assert r.rc == 0, f"publish failed:\n      {r}"
    v = version_from_stdout(r, sb.S, "m", cwd=os.path.join(GOLDEN_DIR, case))
    return sb, v


def golden_cases():
    return sorted(d for d in os.listdir(GOLDEN_DIR)
                  if os.path.isdir(os.path.join(GOLDEN_DIR, d)))


def golden_manifest_and_shards(case):
    sb, v = golden_publish(case)
    vdir = os.path.join(sb.S, "m", str(v))
    edir = os.path.join(GOLDEN_DIR, case, "expected")
    got_text = read_bytes(os.path.join(vdir, "weights_manifest.json"))
    exp_text = read_bytes(os.path.join(edir, "weights_manifest.json"))
    got, exp = json.loads(got_text), json.loads(exp_text)
    listed = {p for g in got for p in g["paths"]}
    files = set(os.listdir(vdir))
    want_files = listed | {"weights_manifest.json", "publish.json"}
    assert files == want_files, \
        f"version folder holds {sorted(files)}, manifest implies {sorted(want_files)}"
    if case == HAZARD_CASE:
        assert len(got) == len(exp), f"{len(got)} groups, expected {len(exp)}"
        for i, (gg, eg) in enumerate(zip(got, exp)):
            assert norm_numbers(gg["weights"]) == norm_numbers(eg["weights"]), \
                f"group {i + 1} weights {gg['weights']} != expected {eg['weights']}"
            gb = b"".join(read_bytes(os.path.join(vdir, p)) for p in gg["paths"])
            eb = b"".join(read_bytes(os.path.join(edir, p)) for p in eg["paths"])
            assert gb == eb, (f"group {i + 1} bytes differ ({len(gb)} vs {len(eb)} bytes, "
                              f"first difference at {first_diff(gb, eb)})")
        note(f"golden {case}: shard cut {[g['paths'] for g in got]} sizes "
             f"{flat_shard_sizes(vdir, got)}")
    else:
        assert norm_numbers(got) == norm_numbers(exp), \
            f"manifest differs:\n      got      {got_text[:800]!r}\n      expected {exp_text[:800]!r}"
        exp_files = set(os.listdir(edir)) | {"publish.json"}
        assert files == exp_files, f"files {sorted(files)} != expected {sorted(exp_files)}"
        for name in sorted(listed):
            gb, eb = read_bytes(os.path.join(vdir, name)), read_bytes(os.path.join(edir, name))
            assert gb == eb, (f"shard {name} differs ({len(gb)} vs {len(eb)} bytes, first "
                              f"difference at byte {first_diff(gb, eb)})")
    if got_text == exp_text:
        note(f"golden {case}: manifest text byte-identical to the reference")
    elif case != HAZARD_CASE:
        note(f"golden {case}: manifest JSON-equal but text differs: "
             f"{got_text[:120]!r} vs {exp_text[:120]!r}")


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def golden_pointers_and_provenance(case):
    sb, v = golden_publish(case)
    check_pointers(sb.S, "m", v)
    vdir = os.path.join(sb.S, "m", str(v))
    pj = load_json(os.path.join(vdir, "publish.json"))
    assert pj.get("model") == "m", f"publish.json model = {pj.get('model')!r}: {pj}"
    assert str(pj.get("version")) == str(v), f"publish.json version = {pj.get('version')!r}"
    shards = pj.get("shards")
    assert isinstance(shards, list), f"publish.json has no 'shards' list: {pj}"
    vman = load_json(os.path.join(vdir, "weights_manifest.json"))
    listed = [p for g in vman for p in g["paths"]]
    seen = []
    for s in shards:
        name = s.get("name", s.get("path", s.get("file")))
        size = s.get("bytes", s.get("size"))
        digest = s.get("sha256")
        assert name and size is not None and digest, f"publish.json shard entry incomplete: {s}"
        p = os.path.join(vdir, name)
        assert os.path.isfile(p), f"publish.json names {name!r}, not in {vdir}"
        assert digest == sha256_file(p), f"publish.json sha256 of {name} is wrong"
        assert int(size) == os.path.getsize(p), f"publish.json bytes of {name}: {size}"
        seen.append(name)
    assert sorted(seen) == sorted(listed), f"publish.json shards {seen} != manifest {listed}"
    # A .npz bundle's digest is its file's plain sha256 (docs/formats.md),
    # whether the reader fed it (stored members) or it was read on its own.
    bundle_sha = sha256_file(os.path.join(GOLDEN_DIR, case, "bundle.npz"))
    assert pj["source"]["sha256"] == bundle_sha, \
        f"publish.json source.sha256 {pj['source']['sha256']} is not the bundle's {bundle_sha}"


def register_golden():
    for case in golden_cases():
        check(f"golden {case}: manifest and shards")(
            (lambda c: lambda: golden_manifest_and_shards(c))(case))
        check(f"golden {case}: pointers and publish.json")(
            (lambda c: lambda: golden_pointers_and_provenance(c))(case))


@check("golden 10: published layout avoids the tfjs-core 4.22 uniform-shard hazard")
def golden_hazard_avoided():
    sb, v = golden_publish(HAZARD_CASE)
    vdir = os.path.join(sb.S, "m", str(v))
    for where, man, base in (
            ("version manifest", load_json(os.path.join(vdir, "weights_manifest.json")), vdir),
            ("pointer manifest", load_json(os.path.join(sb.S, "m", "weights_manifest.json")),
             os.path.join(sb.S, "m"))):
        sizes = flat_shard_sizes(base, man)
        assert not has_tfjs_uniform_hazard(sizes), \
            f"{where} shard sizes {sizes}: all but last equal the first and the last is larger"


# --- 2. bad input -------------------------------------------------------------

def f32(*vals):
    return np.array(vals, dtype=np.float32)


def in_npz(sb, fname, member, npy):
    """An npz with a good member first, then `member` holding raw `npy` bytes."""
    return sb.write(fname, H.npz_bytes([("ok_first.npy", H.npy_bytes(f32(1, 2))),
                                        (member + ".npy", npy)]))


def cfg(sb, name, text):
    return write_text(sb.path(name), text)


BAD_INPUTS = []


def bad(name, files_any, weight=None, keywords=(), contains=(), rcs=(1,)):
    """Registers a bad-input case; the decorated fn(sb) returns publish args."""
    def register(fn):
        BAD_INPUTS.append(dict(name=name, build=fn, files_any=files_any, weight=weight,
                               keywords=keywords, contains=contains, rcs=rcs))
        return fn
    return register


TRUNC_WORDS = ("truncat", "end of file", "eof", "short", "incomplete", "unexpected end",
               "holds", "declares", "expected")


@bad("truncated .npy (inside the header)", ["trunc_hdr.npy"], "trunc_hdr", TRUNC_WORDS)
def _(sb):
    return [sb.write("trunc_hdr.npy", H.truncated_npy_in_header(f32(*range(20))))]


@bad("truncated .npy (inside the data)", ["trunc_data.npy"], "trunc_data", TRUNC_WORDS,
     contains=("80",))
def _(sb):
    arr = np.arange(20, dtype=np.float32).reshape(4, 5)  # 80 bytes
    return [sb.write("trunc_data.npy", H.truncated_npy_in_data(arr, 3))]


@bad("truncated .npz (no central directory)", ["nocd.npz"], None,
     ("central directory", "not a zip", "zip archive", "truncat", "end of central", "eocd"))
def _(sb):
    return [sb.write("nocd.npz", H.npz_without_central_directory(
        w=np.arange(100, dtype=np.float32)))]


@bad("bad CRC in a stored member", ["badcrc.npz"], "dense_kernel", ("crc", "checksum"))
def _(sb):
    return [sb.write("badcrc.npz", H.npz_with_bad_crc(
        "dense_kernel.npy", np.arange(16, dtype=np.float32)))]


@bad("wrong CRC-32 recorded for a deflated member", ["badcrc_z.npz"], "dense_bias",
     ("crc", "checksum"))
def _(sb):
    return [sb.write("badcrc_z.npz", H.npz_with_wrong_crc_field(
        "dense_bias.npy", np.arange(64, dtype=np.float32)))]


SIZE_WORDS = ("declares", "holds", "expected", "trailing", "extra", "longer", "shorter",
              "mismatch", "truncat", "short")


@bad("member data longer than its header declares", ["long.npz"], "w_long", SIZE_WORDS,
     contains=("16",))
def _(sb):
    return [in_npz(sb, "long.npz", "w_long", H.declared_vs_actual_npy(4, 20))]


@bad("member data shorter than its header declares", ["short.npz"], "w_short", SIZE_WORDS,
     contains=("16",))
def _(sb):
    return [in_npz(sb, "short.npz", "w_short", H.declared_vs_actual_npy(4, 12))]


@bad("bad .npy magic", ["magic.npz"], "w_magic",
     ("magic", "not a npy", "not an npy", "not a .npy", "not a numpy"))
def _(sb):
    return [in_npz(sb, "magic.npz", "w_magic", H.bad_magic_npy(f32(1, 2, 3)))]


for _dname, _gen, _words in [
        ("object", H.object_npy, ("object", "'O'", "|O", "pickle")),
        ("structured", H.structured_npy, ("structured", "record", "field")),
        ("datetime64", H.datetime_npy, ("datetime", "M8")),
        ("timedelta64", H.timedelta_npy, ("timedelta", "m8")),
        ("void", H.void_npy, ("void", "V4")),
        ("float128", H.float128_npy, ("f16", "float128", "longdouble"))]:
    bad(f"{_dname} dtype refused", [f"dt_{_dname}.npz"], f"w_{_dname}", _words)(
        (lambda n, g: lambda sb: [in_npz(sb, f"dt_{n}.npz", f"w_{n}", g())])(_dname, _gen))


@bad("absurd shape (2**40, 2**40) in a hand-written header", ["huge.npz"], "w_huge",
     ("shape", "overflow", "too large", "declares", "holds", "exceed", "size"))
def _(sb):
    return [in_npz(sb, "huge.npz", "w_huge", H.absurd_shape_npy())]


@bad("int64 value 2**40 does not fit int32", ["i64.npz"], "w_i64", ("int32",),
     contains=("1099511627776",))
def _(sb):
    return [in_npz(sb, "i64.npz", "w_i64", H.npy_bytes(np.array([1, 2 ** 40, 3], np.int64)))]


@bad("uint64 value too big for int32", ["u64.npz"], "w_u64", ("int32",),
     contains=("9223372036854775813",))
def _(sb):
    return [in_npz(sb, "u64.npz", "w_u64",
                   H.npy_bytes(np.array([1, 2 ** 63 + 5], np.uint64)))]


@bad("NaN under uint8 quantization", ["nan.npz"], "w_nan", ("nan",), contains=("uint8",))
def _(sb):
    b = in_npz(sb, "nan.npz", "w_nan", H.npy_bytes(f32(0.5, np.nan, 1.0)))
    return [b, "--config", cfg(sb, "q8.yaml", "quantize:\n  uint8: true\n")]


@bad("Inf under uint16 quantization", ["inf.npz"], "w_inf", ("inf",), contains=("uint16",))
def _(sb):
    b = in_npz(sb, "inf.npz", "w_inf", H.npy_bytes(f32(1.0, np.inf, 2.0)))
    return [b, "--config", cfg(sb, "q16.yaml", "quantize:\n  uint16: [\"w_*\"]\n")]


@bad("float16 overflow (70000.0) under float16 quantization", ["f16big.npz"], "w_f16big",
     ("70000", "overflow", "inf", "range", "65504", "65520"), contains=("float16",))
def _(sb):
    b = in_npz(sb, "f16big.npz", "w_f16big", H.npy_bytes(f32(1.0, 70000.0)))
    return [b, "--quantize", "float16=w_f16big"]


@bad("member name with invalid UTF-8", ["badname.npz"], None, ("utf-8", "utf8"))
def _(sb):
    return [sb.write("badname.npz", H.npz_with_invalid_utf8_name(f32(1, 2)))]


@bad("231-byte zip64 .npz whose deflated member declares 2^50 bytes", ["bomb.npz"], "w.npy",
     ("deflate",), contains=("1125899906842624",))
def _(sb):
    return [sb.write("bomb.npz", H.zip64_bomb_npz(1 << 50))]


@bad("zip64 .npz whose stored member declares 2^50 bytes", ["bomb_stored.npz"], "w.npy",
     ("stored",), contains=("1125899906842624",))
def _(sb):
    return [sb.write("bomb_stored.npz", H.zip64_bomb_npz(1 << 50, stored=True))]


@bad("model.json of 2 MB of nested arrays", ["model.json"], None, ("nested",))
def _(sb):
    root = sb.path("deepdir")
    H.write(os.path.join(root, "w.npy"), H.npy_bytes(f32(1, 2)))
    H.write(os.path.join(root, "model.json"), b'{"x": ' + b"[" * 1000000 + b"]" * 1000000 + b"}")
    return [root]


@bad("shard_size 1 on a 120 KB weight (more than 100000 shard files)", ["many.npz"], None,
     ("shard_size",), contains=("100000",))
def _(sb):
    return [sb.npz("many.npz", w=np.zeros(30000, np.float32)), "--shard-size", "1"]


@bad("duplicate weight names (dupw.npy and x.npz member 'dupw')",
     ["x.npz", "dupw.npy", "dupdir"], "dupw", ("duplicate",))
def _(sb):
    return [H.duplicate_name_folder(sb.path("dupdir"))]


@bad("symlink inside a folder bundle is refused, never followed", ["evil.npy"], None,
     ("symlink", "symbolic"))
def _(sb):
    secret = os.path.join(sb.tmp, "secret.npy")
    H.write(secret, H.npy_bytes(np.full(5, 1234.5, np.float32)))
    root = sb.path("linkdir")
    H.write(os.path.join(root, "real.npy"), H.npy_bytes(f32(1, 2)))
    os.symlink(secret, os.path.join(root, "evil.npy"))
    return [root]


@bad("bundle path that is itself a symlink", ["alias.npz"], None, ("symlink", "symbolic"))
def _(sb):
    target = sb.npz("target.npz", w=np.arange(7, dtype=np.float32))
    os.symlink(target, sb.path("alias.npz"))
    return [sb.path("alias.npz")]


@bad("bad YAML syntax", ["broken.yaml"], None, ())
def _(sb):
    c = cfg(sb, "broken.yaml", "shard_size: 16\ngroups: [unclosed\nquantize:\n  uint8: true\n")
    return [sb.npz("ok.npz", w=f32(1, 2)), "--config", c]


@bad("one-byte config ',' (yaml-cpp 0.7's LoadAll loops on it)", ["comma.yaml:1:1"], None,
     ("not valid yaml",))
def _(sb):
    c = cfg(sb, "comma.yaml", ",")
    return [sb.npz("ok.npz", w=f32(1, 2)), "--config", c]


@bad("config with a quantize pattern that is not UTF-8", ["notutf8.yaml:2:14"], None,
     ("utf-8",))
def _(sb):
    path = sb.path("notutf8.yaml")
    H.write(path, b'quantize:\n  float16: ["\xc3*"]\n')
    return [sb.npz("ok.npz", w=f32(1, 2)), "--config", path]


@bad("--quantize pattern that is not UTF-8", ["--quantize", "quantize"], None, ("utf-8",))
def _(sb):
    return [sb.npz("ok.npz", w=f32(1, 2)), "--quantize", "float16=" + os.fsdecode(b"\xc3*")]


@bad("unknown config key", ["unknown.yaml:2:1"], None, ("shard_sise",))
def _(sb):
    c = cfg(sb, "unknown.yaml", "groups: single\nshard_sise: 5\n")
    return [sb.npz("ok.npz", w=f32(1, 2)), "--config", c]


@bad("wrong config type", ["wrongtype.yaml:1:"], None, ("shard_size",))
def _(sb):
    c = cfg(sb, "wrongtype.yaml", "shard_size: [1, 2]\n")
    return [sb.npz("ok.npz", w=f32(1, 2)), "--config", c]


@bad("two fallthroughs in quantize", ["twofall.yaml:"], None, ("true", "fallthrough"),
     contains=("uint8", "float16"))
def _(sb):
    c = cfg(sb, "twofall.yaml", "quantize:\n  uint8: true\n  float16: true\n")
    return [sb.npz("ok.npz", w=f32(1, 2)), "--config", c]


@bad("conflicting quantize patterns matching one weight", ["conflict.yaml", "conflict.npz"],
     "attn_b", (), contains=("uint8", "float16"))
def _(sb):
    c = cfg(sb, "conflict.yaml", "quantize:\n  uint8: [\"a*\"]\n  float16: [\"*b\"]\n")
    return [sb.npz("conflict.npz", attn_b=f32(1, 2), zz=f32(3)), "--config", c]


@bad("unmatched: error with an unmatched weight", ["unmatched.yaml", "unm.npz"], "stray/w",
     ("unmatched", "no group", "matches no", "not match", "did not match"))
def _(sb):
    c = cfg(sb, "unmatched.yaml",
            "groups:\n  - match: [\"enc/*\"]\nunmatched: error\n")
    return [sb.npz("unm.npz", **{"enc/w": f32(1), "stray/w": f32(2)}), "--config", c]


for _model in ("../evil", ".x", "a/b"):
    bad(f"hostile model name {_model!r}", [_model], None, ("model",), rcs=(1, 2))(
        (lambda m: lambda sb: [sb.npz("ok.npz", w=f32(1, 2)), "@model", m])(_model))


@bad("empty .npz (no members)", ["empty.npz"], None,
     ("empty", "no weights", "no members", "nothing"))
def _(sb):
    return [sb.write("empty.npz", H.empty_npz())]


@bad("folder bundle without .npy/.npz", ["emptydir"], None,
     ("empty", "no weights", "no .npy", "nothing", "no bundle"))
def _(sb):
    return [H.empty_folder(sb.path("emptydir"))]


def run_bad_input(case):
    sb = Sandbox()
    try:
        sb.publish_good()
        args = case["build"](sb)
        model = "m"
        if "@model" in args:
            i = args.index("@model")
            model = args[i + 1]
            args = args[:i] + args[i + 2:]
        before = snapshot(sb.tmp)
        r = sb.publish(*args, model=model)
        after = snapshot(sb.tmp)
        diff = snapshot_diff(before, after)
        assert r.rc in case["rcs"], f"exit {r.rc}, expected {case['rcs']}:\n      {r}"
        err = r.err
        low = err.lower()
        assert "weightdrop: error:" in err, f"no 'weightdrop: error:' prefix:\n      {r}"
        assert any(f in err for f in case["files_any"]), \
            f"message names none of {case['files_any']}:\n      {r}"
        if case["weight"]:
            assert case["weight"] in err, f"message does not name weight {case['weight']!r}:\n      {r}"
        if case["keywords"]:
            assert any(k.lower() in low for k in case["keywords"]), \
                f"message has none of {list(case['keywords'])}:\n      {r}"
        for c in case["contains"]:
            assert c.lower() in low, f"message lacks {c!r}:\n      {r}"
        if case["name"] == "bad YAML syntax":
            assert re.search(r"broken\.yaml:\d+:\d+", err), f"no broken.yaml:line:col:\n      {r}"
        assert not diff, "tree changed by a failed publish:\n      " + "\n      ".join(diff[:20])
        if VERBOSE:
            note(f"{case['name']}: exit {r.rc}: {err.strip()}")
    finally:
        sb.close()


def register_bad_inputs():
    for case in BAD_INPUTS:
        check(f"bad input: {case['name']}")((lambda c: lambda: run_bad_input(c))(case))


@check("bad input: npz member '../../etc/passwd.npy' cannot escape the serve root")
@with_sandbox
def hostile_member_path(sb):
    sb.publish_good()
    b = sb.write("passwd.npz", H.npz_with_hostile_member_name(
        "../../etc/passwd.npy", np.arange(3, dtype=np.float32)))
    before = snapshot(sb.tmp)
    r = sb.publish(b)
    after = snapshot(sb.tmp)
    added = [k for k in after if k not in before]
    outside = [k for k in added
               if not os.path.join(sb.tmp, k).startswith(sb.S + os.sep)]
    assert not outside, f"paths created outside the serve root: {outside}\n      {r}"
    assert not any("passwd" in os.path.basename(k) or os.path.basename(k) == "etc"
                   for k in added), f"a file/dir named after the member was created: {added}"
    if r.rc == 0:
        v = version_from_stdout(r, sb.S, "m")
        man = load_json(os.path.join(sb.S, "m", str(v), "weights_manifest.json"))
        names = [w["name"] for g in man for w in g["weights"]]
        assert names == ["../../etc/passwd"], f"published weights {names}"
        note("hostile member '../../etc/passwd.npy': published as weight '../../etc/passwd'")
    else:
        assert r.rc == 1, f"exit {r.rc}:\n      {r}"
        assert "passwd" in r.err, f"refusal does not name the member:\n      {r}"
        assert not snapshot_diff(before, after), "refused publish changed the tree"
        note(f"hostile member '../../etc/passwd.npy': refused: {r.err.strip()[:200]!r}")


@check("bad input: a newline in a file name is \\x0a in the one-line error, not a second line")
@with_sandbox
def newline_in_name(sb):
    folder = sb.path("nl")
    os.makedirs(os.path.join(folder, "a\nb"))
    np.save(os.path.join(folder, "a\nb", "w.npy"), np.arange(3, dtype=np.float32))
    r = sb.publish(folder)
    assert r.rc == 1, f"exit {r.rc}:\n      {r}"
    lines = r.err.rstrip("\n").split("\n")
    assert len(lines) == 1 and "a\\x0ab" in lines[0], f"stderr {r.err!r}"


# --- 3. usage -----------------------------------------------------------------

# The CLI contract's commands; the daemon adds `run` and `status`.
CONTRACT_COMMANDS = ["publish", "check-config", "inspect", "verify", "rollback"]
# `run` and `status` arrive with the daemon; add them here then.
SPEC_ONLY_COMMANDS = []


@check("usage: no arguments exits 2")
def usage_no_args():
    r = wd()
    assert r.rc == 2, f"expected exit 2:\n      {r}"
    assert r.err.strip() or r.out.strip(), "no usage text printed"


@check("usage: unknown command exits 2")
def usage_unknown():
    r = wd("frobnicate")
    assert r.rc == 2, f"expected exit 2:\n      {r}"
    assert r.err.strip(), f"nothing on stderr:\n      {r}"


@check("usage: publish without --to exits 2")
def usage_publish_no_to():
    with tempfile.TemporaryDirectory() as d:
        b = H.write(os.path.join(d, "b.npz"), H.npz_of_arrays(w=f32(1)))
        r = wd("publish", b, cwd=d)
        assert r.rc == 2, f"expected exit 2:\n      {r}"
        assert "--to" in r.err, f"stderr does not mention --to:\n      {r}"
        assert sorted(os.listdir(d)) == ["b.npz"], f"wrote files: {os.listdir(d)}"


@check("usage: status --model without --to exits 2 (it was ignored, showing every model)")
def usage_status_model_alone():
    r = wd("status", "--model", "m")
    assert r.rc == 2 and "--to" in r.err, f"expected exit 2 naming --to:\n      {r}"


for _cmd in CONTRACT_COMMANDS + SPEC_ONLY_COMMANDS:
    def _help(cmd=_cmd):
        r = wd(cmd, "--help")
        assert r.rc == 0, f"expected exit 0:\n      {r}"
        assert "usage" in r.out.lower() and cmd in r.out, \
            f"stdout has no usage line naming {cmd!r}:\n      {r}"
    check(f"usage: {_cmd} --help" +
          (" (SPEC section 6; not in the CLI contract)" if _cmd in SPEC_ONLY_COMMANDS else ""))(_help)


@check("usage: top-level --help and --version")
def usage_version():
    r = expect_ok(wd("--help"), "--help")
    for cmd in CONTRACT_COMMANDS:
        assert cmd in r.out, f"--help does not list {cmd!r}:\n      {r}"
    r = expect_ok(wd("--version"), "--version")
    assert re.search(r"\d+\.\d+", r.out), f"--version prints no version number:\n      {r}"


# --- 4. lifecycle -------------------------------------------------------------

def distinct_bundle(sb, i):
    rng = np.random.default_rng(100 + i)
    return sb.npz(f"b{i}.npz", **{"layer/kernel": rng.standard_normal((4, 3)).astype(np.float32),
                                  "layer/bias": np.full(3, float(i), np.float32)})


@check("lifecycle: two publishes give versions 1 and 2, pointers at 2")
@with_sandbox
def lifecycle_two(sb):
    for i in (1, 2):
        r = expect_ok(sb.publish(distinct_bundle(sb, i)), f"publish #{i}")
        assert version_from_stdout(r, sb.S, "m") == i, f"publish #{i} gave {r.out!r}"
    assert sb.versions() == [1, 2], f"versions {sb.versions()}"
    check_pointers(sb.S, "m", 2)


@check("lifecycle: identical bundle and settings publish nothing ('unchanged')")
@with_sandbox
def lifecycle_unchanged(sb):
    b1, b2 = distinct_bundle(sb, 1), distinct_bundle(sb, 2)
    expect_ok(sb.publish(b1))
    expect_ok(sb.publish(b2))
    before = snapshot(sb.S)
    r = expect_ok(sb.publish(b2), "re-publish")
    assert "unchanged" in r.err.lower(), f"stderr does not say unchanged:\n      {r}"
    assert version_from_stdout(r, sb.S, "m") == 2, f"should print version 2:\n      {r}"
    assert sb.versions() == [1, 2], f"versions {sb.versions()}"
    diff = snapshot_diff(before, snapshot(sb.S))
    assert not diff, "unchanged publish modified the serve root: " + "; ".join(diff[:10])


@check("lifecycle: same bundle with different settings is a new version")
@with_sandbox
def lifecycle_settings_change(sb):
    b = distinct_bundle(sb, 1)
    expect_ok(sb.publish(b))
    r = expect_ok(sb.publish(b, "--shard-size", "8"), "publish with --shard-size 8")
    assert version_from_stdout(r, sb.S, "m") == 2, f"expected version 2:\n      {r}"
    man = load_json(os.path.join(sb.S, "m", "2", "weights_manifest.json"))
    sizes = flat_shard_sizes(os.path.join(sb.S, "m", "2"), man)
    assert sizes and max(sizes) <= 8 and sum(sizes) == 60, f"shard sizes {sizes}"
    check_pointers(sb.S, "m", 2)


@check("lifecycle: --keep-versions 2 over 4 publishes keeps 3 and 4")
@with_sandbox
def lifecycle_retention(sb):
    for i in range(1, 5):
        expect_ok(sb.publish(distinct_bundle(sb, i), "--keep-versions", "2"), f"publish #{i}")
    assert sb.versions() == [3, 4], f"versions left: {sb.versions()}"
    check_pointers(sb.S, "m", 4)


@check("lifecycle: rollback moves current and the pointer manifest to the previous version")
@with_sandbox
def lifecycle_rollback(sb):
    for i in (1, 2, 3):
        expect_ok(sb.publish(distinct_bundle(sb, i)))
    r = expect_ok(wd("rollback", sb.model_dir()), "rollback")
    assert re.search(r"(^|[/\s])2\s*$", r.out), f"rollback should print version 2:\n      {r}"
    check_pointers(sb.S, "m", 2)
    r = expect_ok(wd("rollback", sb.model_dir(), "--to", "1"), "rollback --to 1")
    assert re.search(r"(^|[/\s])1\s*$", r.out), f"rollback --to 1 should print 1:\n      {r}"
    check_pointers(sb.S, "m", 1)
    assert sb.versions() == [1, 2, 3], f"rollback removed versions: {sb.versions()}"


@check("lifecycle: rollback --to 99 exits 1 with a message")
@with_sandbox
def lifecycle_rollback_missing(sb):
    for i in (1, 2):
        expect_ok(sb.publish(distinct_bundle(sb, i)))
    before = snapshot(sb.S)
    r = wd("rollback", sb.model_dir(), "--to", "99")
    assert r.rc == 1, f"expected exit 1:\n      {r}"
    assert "99" in r.err, f"message does not name version 99:\n      {r}"
    assert not snapshot_diff(before, snapshot(sb.S)), "failed rollback changed the serve root"


@check("lifecycle: rollback with no older version exits 1 and changes nothing")
@with_sandbox
def lifecycle_rollback_none_older(sb):
    expect_ok(sb.publish(distinct_bundle(sb, 1)))
    before = snapshot(sb.S)
    r = wd("rollback", sb.model_dir())
    assert r.rc == 1, f"expected exit 1:\n      {r}"
    assert "weightdrop: error:" in r.err, f"no error message:\n      {r}"
    assert not snapshot_diff(before, snapshot(sb.S)), "failed rollback changed the serve root"


@check("lifecycle: concurrent publishes to one model never share or corrupt a version")
@with_sandbox
def lifecycle_concurrent(sb):
    bundles = [distinct_bundle(sb, i) for i in range(1, 7)]
    procs = [subprocess.Popen([BINARY, "publish", b, "--to", sb.S, "--model", "m",
                               "--keep-versions", "10"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for b in bundles]
    results = []
    for b, p in zip(bundles, procs):
        out, err = p.communicate(timeout=60)
        results.append((b, p.returncode, out.decode(), err.decode()))
    won = {}
    for b, rc, out, err in results:
        assert rc in (0, 1), f"{os.path.basename(b)}: exit {rc}: {err!r}"
        if rc == 1:
            assert "weightdrop: error:" in err, f"{os.path.basename(b)} failed silently: {err!r}"
            continue
        v = int(os.path.basename(out.strip()))
        assert v not in won, f"{os.path.basename(b)} and {won.get(v)} both got version {v}"
        won[v] = os.path.basename(b)
        r = wd("verify", os.path.join(sb.model_dir(), str(v)), "--against", b)
        assert r.rc == 0, f"version {v} does not hold {os.path.basename(b)}:\n      {r}"
    assert won, f"every concurrent publish failed: {[(r[1], r[3]) for r in results]}"
    assert sorted(won) == sb.versions(), f"printed {sorted(won)}, on disk {sb.versions()}"
    cur = int(os.readlink(os.path.join(sb.model_dir(), "current")))
    check_pointers(sb.S, "m", cur)
    left = os.listdir(os.path.join(sb.S, ".staging")) if os.path.isdir(
        os.path.join(sb.S, ".staging")) else []
    assert not left, f"staging left behind: {left}"
    note(f"concurrent publishes: {len(won)} of {len(results)} succeeded, current {cur}")


@check("lifecycle: verify passes on a good publish, fails naming a corrupted shard")
@with_sandbox
def lifecycle_verify_corrupt(sb):
    b = sb.npz("v.npz", w=np.arange(50, dtype=np.float32))
    expect_ok(sb.publish(b, "--shard-size", "64"))
    expect_ok(wd("verify", sb.model_dir()), "verify of a fresh publish")
    expect_ok(wd("verify", os.path.join(sb.model_dir(), "1")), "verify S/m/1")
    shard = os.path.join(sb.model_dir(), "1", "group1-shard2of4.bin")
    assert os.path.isfile(shard), f"expected {shard}: {os.listdir(os.path.dirname(shard))}"
    os.chmod(shard, 0o644)
    data = bytearray(read_bytes(shard))
    data[5] ^= 0x01
    with open(shard, "wb") as f:
        f.write(data)
    r = wd("verify", sb.model_dir())
    assert r.rc == 1, f"verify should fail after corrupting a byte:\n      {r}"
    assert "group1-shard2of4.bin" in r.err, f"message does not name the shard:\n      {r}"


@check("lifecycle: verify --against the right bundle passes, a different one fails")
@with_sandbox
def lifecycle_verify_against(sb):
    b1, b2 = distinct_bundle(sb, 1), distinct_bundle(sb, 2)
    expect_ok(sb.publish(b1))
    expect_ok(wd("verify", sb.model_dir(), "--against", b1), "verify --against the source")
    r = wd("verify", sb.model_dir(), "--against", b2)
    assert r.rc == 1, f"verify --against a different bundle should exit 1:\n      {r}"
    assert r.err.strip(), f"no message:\n      {r}"


@check("lifecycle: verify warns about the tfjs uniform-shard hazard in a foreign layout")
@with_sandbox
def lifecycle_verify_hazard(sb):
    S2 = os.path.join(sb.inner, "serve2")
    vdir = os.path.join(S2, "x", "1")
    shutil.copytree(os.path.join(GOLDEN_DIR, HAZARD_CASE, "expected"), vdir)
    man = load_json(os.path.join(vdir, "weights_manifest.json"))
    for g in man:
        g["paths"] = ["1/" + p for p in g["paths"]]
    write_text(os.path.join(S2, "x", "weights_manifest.json"), json.dumps(man))
    os.symlink("1", os.path.join(S2, "x", "current"))
    r = wd("verify", os.path.join(S2, "x"))
    both = (r.out + r.err).lower()
    assert any(k in both for k in ("hazard", "uniform", "4.22")), \
        f"no warning about the uniform-shard hazard:\n      {r}"
    assert r.rc in (0, 1), f"exit {r.rc}:\n      {r}"
    note(f"verify of the foreign hazard layout exits {r.rc}: {r.err.strip()[:300]!r}")


@check("lifecycle: default model name is the bundle stem")
@with_sandbox
def lifecycle_default_model(sb):
    b = sb.npz("my-model.npz", w=f32(1, 2, 3))
    r = expect_ok(sb.publish(b, model=None))
    assert version_from_stdout(r, sb.S, "my-model") == 1, f"{r}"
    check_pointers(sb.S, "my-model", 1)


@check("lifecycle: folder bundle with model.json publishes both model.json files")
@with_sandbox
def lifecycle_model_json(sb):
    root = sb.path("net")
    H.write(os.path.join(root, "dense", "kernel.npy"), H.npy_bytes(np.ones((2, 3), np.float32)))
    H.write(os.path.join(root, "dense", "bias.npy"), H.npy_bytes(np.zeros(3, np.float32)))
    topo = {"format": "graph-model", "generatedBy": "test", "convertedBy": "test",
            "modelTopology": {"node": [{"name": "x", "op": "Placeholder"}]}}
    write_text(os.path.join(root, "model.json"), json.dumps(topo))
    r = expect_ok(sb.publish(root, model=None))
    v = version_from_stdout(r, sb.S, "net")
    check_pointers(sb.S, "net", v)
    vman = load_json(os.path.join(sb.S, "net", str(v), "weights_manifest.json"))
    names = [w["name"] for g in vman for w in g["weights"]]
    assert names == ["dense/bias", "dense/kernel"], f"weights in bytewise path order: {names}"
    top = load_json(os.path.join(sb.S, "net", "model.json"))
    inner = load_json(os.path.join(sb.S, "net", str(v), "model.json"))
    assert top["modelTopology"] == topo["modelTopology"], "topology not preserved"
    assert inner["weightsManifest"] == vman, f"inner weightsManifest {inner.get('weightsManifest')}"
    want = [dict(g, paths=[f"{v}/{p}" for p in g["paths"]]) for g in vman]
    assert top["weightsManifest"] == want, f"top weightsManifest {top.get('weightsManifest')}"


# --- 5. staging ---------------------------------------------------------------

@check("staging: a leftover S/.staging/junk-123/ is removed by the next publish")
@with_sandbox
def staging_leftover(sb):
    expect_ok(sb.publish(distinct_bundle(sb, 1)))
    junk = os.path.join(sb.S, ".staging", "junk-123")
    H.write(os.path.join(junk, "group1-shard1of1.bin"), b"half written")
    expect_ok(sb.publish(distinct_bundle(sb, 2)))
    assert not os.path.exists(junk), f"{junk} still exists: {os.listdir(junk)}"
    left = os.listdir(os.path.join(sb.S, ".staging")) if os.path.isdir(
        os.path.join(sb.S, ".staging")) else []
    assert not left, f"staging not empty after publish: {left}"


# --- 6. inspect ---------------------------------------------------------------

FLOAT_RE = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def affine_uint8_errors(x):
    x = x.astype(np.float32)
    mn, mx = float(x.min()), float(x.max())
    scale = (mx - mn) / 255.0
    if mn <= 0 <= mx:
        zp = np.round(-mn / scale)
        nmin = -zp * scale
        nmax = 255 * scale + nmin
    else:
        nmin, nmax = mn, mx
    fmin, fmax, fs = np.float32(nmin), np.float32(nmax), np.float32(scale)
    q = np.round((np.clip(x, fmin, fmax) - fmin) / fs)
    deq = q.astype(np.float64) * scale + nmin
    e = np.abs(deq - x.astype(np.float64))
    return float(e.max()), float(math.sqrt(np.mean(e * e)))


def float16_errors(x):
    e = np.abs(x.astype(np.float16).astype(np.float64) - x.astype(np.float64))
    return float(e.max()), float(math.sqrt(np.mean(e * e)))


def row_for(out, name):
    rows = [ln for ln in out.splitlines() if re.search(r"(^|[\s|])" + re.escape(name) + r"([\s|]|$)", ln)]
    assert len(rows) == 1, f"expected one table row for {name!r}, found {rows}:\n{out}"
    return rows[0]


def printed_tolerance(tok):
    """Half a unit in the last printed digit of `tok`."""
    mant, _, exp = tok.lower().partition("e")
    decimals = len(mant.partition(".")[2])
    return 0.5 * 10.0 ** (int(exp or 0) - decimals)


def has_number_near(row, want):
    """Some non-zero number in `row` equals `want` to 2% or its printed precision."""
    toks = FLOAT_RE.findall(row)
    ok = any(float(t) != 0 and abs(float(t) - want) <= max(0.02 * want, printed_tolerance(t))
             for t in toks)
    return ok, toks


@check("inspect: table names, dtypes, shapes, bytes, groups, quantization and errors")
@with_sandbox
def inspect_table(sb):
    rng = np.random.default_rng(7)
    kernel = rng.standard_normal((4, 8)).astype(np.float32)
    bias = (rng.standard_normal(8) * 3).astype(np.float32)
    table = rng.standard_normal((3, 5))
    ids = np.arange(6, dtype=np.int8)
    b = sb.npz("insp.npz", **{"enc/kernel": kernel, "enc/bias": bias, "dec/table": table,
                              "ids": ids})
    c = cfg(sb, "insp.yaml", "groups:\n  - name: encoder\n    match: [\"enc/*\"]\n"
                             "quantize:\n  uint8: [\"*/kernel\"]\n  float16: [\"*/bias\"]\n")
    r = expect_ok(wd("inspect", b, "--config", c), "inspect")
    out = r.out
    specs = [("enc/kernel", ("float32", "<f4", "f4"), (4, 8), (128, 32), ("encoder", "1"), "uint8"),
             ("enc/bias", ("float32", "<f4", "f4"), (8,), (32, 16), ("encoder", "1"), "float16"),
             ("dec/table", ("float64", "<f8", "f8"), (3, 5), (120, 60), ("2",), None),
             ("ids", ("int8", "|i1", "i1"), (6,), (6, 24), ("2",), None)]
    for name, dtypes, shape, nbytes, groups, quant in specs:
        row = row_for(out, name)
        toks = set(re.split(r"[\s|]+", row))
        assert any(d in toks for d in dtypes), f"{name}: no source dtype {dtypes} in {row!r}"
        dims = ",".join(map(str, shape))
        shape_forms = [f"({dims})", f"({dims},)", f"[{dims}]", dims.replace(",", "x"),
                       dims.replace(",", "×")]
        squeezed = row.replace(" ", "")
        assert any(s in squeezed for s in shape_forms), f"{name}: shape {shape} not in {row!r}"
        assert any(str(n) in toks for n in nbytes), f"{name}: bytes {nbytes} not in {row!r}"
        assert any(re.search(r"(^|[\s|:])" + g + r"([\s|:]|$)", row) for g in groups), \
            f"{name}: group {groups} not in {row!r}"
        if quant:
            assert quant in row, f"{name}: quantization {quant} not in {row!r}"
    for name, x, errs in (("enc/kernel", kernel, affine_uint8_errors(kernel)),
                          ("enc/bias", bias, float16_errors(bias))):
        row = row_for(out, name)
        for label, want in zip(("max-abs", "RMS"), errs):
            ok, nums = has_number_near(row, want)
            assert ok, f"{name}: no {label} error ~{want:.6g} among numbers {nums} in {row!r}"


# --- 7. check-config ----------------------------------------------------------

@check("check-config: every golden config.yaml is valid")
def check_config_golden():
    bad_ones = []
    for case in golden_cases():
        r = wd("check-config", os.path.join(GOLDEN_DIR, case, "config.yaml"))
        if r.rc != 0:
            bad_ones.append(str(r))
    assert not bad_ones, "\n      ".join(bad_ones)


@check("check-config: broken YAML exits 1 with file:line:col")
@with_sandbox
def check_config_broken(sb):
    c = cfg(sb, "broken.yaml", "shard_size: 16\ngroups: [unclosed\nquantize:\n  uint8: true\n")
    r = wd("check-config", c)
    assert r.rc == 1, f"expected exit 1:\n      {r}"
    assert re.search(r"broken\.yaml:\d+:\d+", r.err), f"no broken.yaml:line:col:\n      {r}"


@check("check-config: unknown key reported at its line and column")
@with_sandbox
def check_config_unknown(sb):
    c = cfg(sb, "unknown.yaml", "shard_size: 4MiB\ngroups: single\nquantise:\n  uint8: true\n")
    r = wd("check-config", c)
    assert r.rc == 1, f"expected exit 1:\n      {r}"
    assert "unknown.yaml:3:1" in r.err and "quantise" in r.err, \
        f"expected 'unknown.yaml:3:1' naming 'quantise':\n      {r}"


def daemon_yaml(sb, name, watches_key="watches", extra=""):
    drop, serve = os.path.join(sb.inner, "drop"), os.path.join(sb.inner, "serve")
    return cfg(sb, name, f"state_dir: {sb.inner}/state\n{extra}{watches_key}:\n"
                         f"  - drop: {drop}\n    serve: {serve}\n")


@check("check-config: a daemon config with a typo is still read as one, and the typo named")
@with_sandbox
def check_config_daemon_typo(sb):
    c = daemon_yaml(sb, "typo.yaml", watches_key="watch")
    r = wd("check-config", c)
    assert r.rc == 1, f"expected exit 1:\n      {r}"
    want = f"weightdrop: error: {c}:2:1: unknown key 'watch' in daemon config; " \
           "did you mean 'watches'?\n"
    assert r.err == want, f"expected {want!r}:\n      {r}"
    # Forced the other way, the same file is pipeline settings with a stray key.
    r = wd("check-config", "--pipeline", c)
    assert r.rc == 1 and f"{c}:1:1: unknown key 'state_dir' in pipeline settings" in r.err, \
        f"expected state_dir refused as a pipeline key:\n      {r}"


@check("check-config: the kind and the watch count are said; --daemon and --pipeline force it")
@with_sandbox
def check_config_kinds(sb):
    c = daemon_yaml(sb, "one.yaml")
    r = expect_ok(wd("check-config", c), "check-config on a daemon config")
    assert r.out == f"{c}: ok (daemon config, 1 watch)\n", f"unexpected output:\n      {r}"
    p = cfg(sb, "p.yaml", "shard_size: 4MiB\n")
    r = expect_ok(wd("check-config", p), "check-config on pipeline settings")
    assert r.out == f"{p}: ok (pipeline settings)\n", f"unexpected output:\n      {r}"
    r = wd("check-config", "--daemon", p)
    assert r.rc == 1 and "pipeline settings go under `defaults`" in r.err, \
        f"expected a daemon config error:\n      {r}"
    r = wd("check-config", "--daemon", "--pipeline", p)
    assert r.rc == 2, f"--daemon with --pipeline should be a usage error:\n      {r}"


@check("check-config: quantize patterns that can only conflict are refused at load")
@with_sandbox
def check_config_covered_pattern(sb):
    c = cfg(sb, "cover.yaml", "quantize:\n  uint8: [\"*/kernel\"]\n  float16: \"*\"\n")
    r = wd("check-config", c)
    assert r.rc == 1, f"expected exit 1:\n      {r}"
    for want in (f"{c}:2:11: quantize: uint8 pattern '*/kernel' can never apply: float16 "
                 "pattern '*'", "`float16: true`", "--quantize-rest float16"):
        assert want in r.err, f"message lacks {want!r}:\n      {r}"
    # The same in a daemon's defaults: refused before the daemon starts.
    d = daemon_yaml(sb, "d.yaml", extra="defaults:\n  quantize: {uint8: ['*/kernel'], "
                                         "float16: '*'}\n")
    r = wd("check-config", d)
    assert r.rc == 1 and f"{d}:3:22: quantize: uint8 pattern '*/kernel'" in r.err, \
        f"expected the defaults' pattern refused:\n      {r}"
    r = wd("run", "--config", d, timeout=10)
    assert r.rc == 1 and "can never apply" in r.err, f"the daemon should refuse it:\n      {r}"


@check("check-config: patterns of two dtypes that share names are a warning with an example")
@with_sandbox
def check_config_overlap_warning(sb):
    c = cfg(sb, "overlap.yaml", "quantize:\n  uint8: [\"*/kernel\"]\n  float16: \"dense*\"\n")
    r = expect_ok(wd("check-config", c), "check-config with overlapping patterns")
    want = (f"weightdrop: warning: {c}:3:12: quantize: uint8 '*/kernel' and float16 'dense*' "
            "both match names such as 'dense/kernel'; a weight named so would be refused\n")
    assert r.err == want, f"expected {want!r}:\n      {r}"


@check("check-config: an unquoted pattern starting with * is told to be quoted, in each form")
@with_sandbox
def check_config_unquoted_star(sb):
    forms = (("quantize: {uint8: [*/kernel]}\n", "1:20", '"*/kernel"'),
             ("quantize:\n  uint8: */kernel\n", "2:10", '"*/kernel"'),
             ("quantize:\n  uint8:\n    - */kernel\n", "3:7", '"*/kernel"'),
             ("groups:\n  - match: *foo\n", "2:12", '"*foo"'),
             ("quantize: {uint8: *}\n", "1:19", '"*"'))
    for i, (text, where, quoted) in enumerate(forms):
        c = cfg(sb, f"star{i}.yaml", text)
        r = wd("check-config", c)
        want = f"weightdrop: error: {c}:{where}: patterns that start with * must be quoted: " \
               f"write {quoted}\n"
        assert r.rc == 1 and r.err == want, f"expected {want!r}:\n      {r}"


# --- 8. progress and the publish summary (issue 10) ---------------------------

SUMMARY_RE = re.compile(r"^published (\S+) version (\d+): (\d+) weights?, [\d.]+ (B|KiB|MiB|GiB) "
                        r"in [\d.]+ (ms|s)\S* \([\d.]+ (B|KiB|MiB|GiB)/s\), (\d+) shards?$")


def sixteen_weights(sb, name="mlp.npz"):
    rng = np.random.default_rng(16)
    return sb.npz(name, **{f"layer{i:02d}/kernel": rng.standard_normal((64, 64)).astype(np.float32)
                           for i in range(16)})


def wd_on_tty(*args, cwd=None, timeout=60):
    """Runs the binary with stderr on a pseudo-terminal and stdout on a pipe;
    returns (rc, stdout, what the terminal received)."""
    import pty  # noqa: F401 (os.openpty needs the pty support it checks for)
    master, slave = os.openpty()
    p = subprocess.Popen([BINARY] + [str(a) for a in args], cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    tty = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    out = p.stdout.read().decode("utf-8", "replace")
    rc = p.wait(timeout=10)
    return rc, out, tty.decode("utf-8", "replace")


def check_lines_start_clean(tty, what):
    """Every message on the terminal starts on a line of its own: right after
    a newline or after the status line was cleared."""
    clear = "\r\033[K"
    for m in re.finditer(r"weightdrop:|published |\S+ unchanged:", tty):
        before = tty[:m.start()]
        assert before == "" or before.endswith("\n") or before.endswith(clear), \
            f"{what}: {m.group(0)!r} glued to the progress line: {tty[max(0, m.start() - 80):m.end() + 40]!r}"


@check("progress: off a terminal, publish prints no progress and ends with a one-line summary")
@with_sandbox
def progress_summary_off_tty(sb):
    b = sixteen_weights(sb)
    r = expect_ok(sb.publish(b, "--shard-size", "4KiB", model="mlp"))
    assert "\r" not in r.err and "\033" not in r.err, f"progress noise off a terminal:\n      {r}"
    last = r.err.strip().splitlines()[-1]
    m = SUMMARY_RE.match(last)
    assert m, f"last stderr line is not the summary:\n      {r}"
    assert m.group(1) == "mlp" and m.group(2) == "1" and m.group(3) == "16", last
    man = load_json(os.path.join(sb.S, "mlp", "1", "weights_manifest.json"))
    assert int(m.group(7)) == sum(len(g["paths"]) for g in man), f"shard count in {last!r}"
    assert version_from_stdout(r, sb.S, "mlp") == 1
    r = expect_ok(sb.publish(b, "--shard-size", "4KiB", model="mlp"), "re-publish")
    want = (f"mlp unchanged: {b} is identical to version 1 (same bundle sha256 and settings): "
            "nothing published; --force publishes anew")
    assert r.err.strip().splitlines()[-1] == want, f"expected {want!r}:\n      {r}"


@check("progress: on a terminal, one redrawn line reaching 16/16, cleared before any message")
@with_sandbox
def progress_on_tty(sb):
    b = sixteen_weights(sb)
    rc, out, tty = wd_on_tty("publish", b, "--to", sb.S, "--model", "mlp", "--shard-size", "4KiB")
    assert rc == 0, f"exit {rc}: {tty!r}"
    assert out.strip().endswith(os.path.join("mlp", "1")), f"stdout {out!r}"
    assert "16/16 weights" in tty, f"the final state was never drawn: {tty!r}"
    assert re.search(r"\r\033\[K  \d+/16 weights, [\d.]+/[\d.]+ MiB", tty), f"no progress line: {tty!r}"
    assert "\r\033[Kpublished mlp version 1: 16 weights" in tty, \
        f"the summary does not follow a cleared line: {tty!r}"
    check_lines_start_clean(tty, "publish")
    # The unchanged note, and a note printed after publishing (golden case
    # 10's tfjs hazard split), also start on a cleared line.
    rc, out, tty = wd_on_tty("publish", b, "--to", sb.S, "--model", "mlp", "--shard-size", "4KiB")
    assert rc == 0 and "mlp unchanged:" in tty, f"exit {rc}: {tty!r}"
    check_lines_start_clean(tty, "unchanged publish")
    cdir = os.path.join(GOLDEN_DIR, HAZARD_CASE)
    rc, out, tty = wd_on_tty("publish", "bundle.npz", "--to", sb.S, "--model", "hz", "--config",
                             "config.yaml", cwd=cdir)
    assert rc == 0 and "weightdrop: note:" in tty, f"exit {rc}: {tty!r}"
    check_lines_start_clean(tty, "publish with a note")


@check("progress: a long publish redraws at most ~10 times a second, with MiB/s and an ETA")
@with_sandbox
def progress_rate_and_eta(sb):
    rng = np.random.default_rng(7)
    b = sb.npz("big.npz", **{f"layer{i:02d}/kernel": rng.standard_normal((1024, 2048), np.float32)
                             for i in range(16)})  # 128 MiB
    start = time.monotonic()
    rc, out, tty = wd_on_tty("publish", b, "--to", sb.S, "--model", "big", "--shard-size", "64KiB")
    took = time.monotonic() - start
    assert rc == 0, f"exit {rc}: {tty!r}"
    draws = tty.count("\r\033[K  ")
    assert draws <= 10 * took + 2, f"{draws} redraws in {took:.2f}s: more than ~10 a second"
    with_rate = re.findall(r"\d+/16 weights, [\d.]+/[\d.]+ MiB, [\d.]+ \S+/s, ETA \S+", tty)
    if took >= 0.6:  # a draw at >= 0.2 s that is not the last one must carry both
        assert with_rate, f"no line with a rate and an ETA in {took:.2f}s: {tty!r}"
    else:
        note(f"publish took {took:.2f}s: too quick to require a rate and ETA line")


# --- 9. retry, rollback of a version folder, inspect with a daemon config ------

def daemon_config(sb, text):
    return write_text(os.path.join(sb.inner, "daemon.yaml"), text)


def fail_by_hand(drop, name, original, data=b"bundle"):
    """What the daemon leaves in failed/ (daemon/drop_folder.cpp, QuarantineBundle)."""
    failed = os.path.join(drop, ".weightdrop", "failed")
    os.makedirs(failed, exist_ok=True)
    H.write(os.path.join(failed, name), data)
    write_text(os.path.join(failed, name + ".error.txt"),
               f"bundle: {drop}/{original}\nfailed: 2026-01-01T00:00:00Z\nerror: bad\n")
    time.sleep(0.02)  # failed/ is read in order of ctime, which ticks coarsely


@check("retry: failed bundles move back under their dropped names; nothing is overwritten")
@with_sandbox
def retry_moves_back(sb):
    drop, other = os.path.join(sb.inner, "drop"), os.path.join(sb.inner, "other")
    c = daemon_config(sb, f"state_dir: state\nwatches:\n  - drop: {drop}\n    serve: {sb.S}\n"
                          f"  - drop: {other}\n    serve: {sb.S}\n")
    failed = os.path.join(drop, ".weightdrop", "failed")
    fail_by_hand(drop, "x.npz", "x.npz", b"first")
    fail_by_hand(drop, "x.npz.2", "x.npz", b"second")  # the same name failed twice
    fail_by_hand(drop, "y.npz", "y.npz")
    fail_by_hand(other, "z.npz", "z.npz")

    r = wd("retry", "--config", c, "--watch", "drop")
    assert r.rc == 1, f"the second x.npz cannot go back yet: expected exit 1:\n      {r}"
    assert f"retry: {failed}/x.npz -> {drop}/x.npz\n" in r.out, f"no line for x.npz:\n      {r}"
    assert f"retry: {failed}/y.npz -> {drop}/y.npz\n" in r.out, f"no line for y.npz:\n      {r}"
    assert r.out.strip().splitlines()[-1] == "retry: 2 bundles moved back", f"count:\n      {r}"
    assert f"{drop}/x.npz already exists" in r.err and "x.npz.2" in r.err, f"no refusal:\n      {r}"
    assert read_bytes(os.path.join(drop, "x.npz")) == b"first"
    assert sorted(os.listdir(failed)) == ["x.npz.2", "x.npz.2.error.txt"], os.listdir(failed)
    assert os.path.exists(os.path.join(other, ".weightdrop", "failed", "z.npz")), "--watch ignored"

    os.remove(os.path.join(drop, "x.npz"))  # as when the daemon has taken it
    r = expect_ok(wd("retry", "--config", c, "--watch", drop, "x.npz"), "retry x.npz by name")
    assert f"retry: {failed}/x.npz.2 -> {drop}/x.npz\n" in r.out, f"not back as x.npz:\n      {r}"
    assert read_bytes(os.path.join(drop, "x.npz")) == b"second" and os.listdir(failed) == []

    r = wd("retry", "--config", c, "nosuch.npz")
    assert r.rc == 1 and "no failed bundle nosuch.npz" in r.err, f"expected exit 1:\n      {r}"
    r = expect_ok(wd("retry", "--config", c), "retry of every watch")
    assert f"-> {other}/z.npz" in r.out and "retry: 1 bundle moved back" in r.out, str(r)
    r = wd("retry", "--config", c, "--watch", "nowhere")
    assert r.rc == 2 and "--watch nowhere" in r.err and drop in r.err, f"expected exit 2:\n      {r}"


@check("rollback: a version folder is refused with the command to use, and nothing is written")
@with_sandbox
def rollback_version_folder(sb):
    for i in (1, 2, 3):
        expect_ok(sb.publish(distinct_bundle(sb, i)))
    before = snapshot(sb.S)
    r = wd("rollback", os.path.join(sb.model_dir(), "2"))
    want = (f"{sb.model_dir()}/2 is a version folder: pass the model folder and the version, "
            f"`weightdrop rollback {sb.model_dir()} --to 2`")
    assert r.rc == 2 and want in r.err, f"expected exit 2 and {want!r}:\n      {r}"
    assert "nothing is current" not in r.err, str(r)
    assert not snapshot_diff(before, snapshot(sb.S)), "the refused rollback wrote something"


@check("inspect: --config DAEMON.yaml --watch uses the watch's settings and names the model")
@with_sandbox
def inspect_daemon_watch(sb):
    b = sb.npz("net.npz", **{"enc/kernel": np.ones((4, 4), np.float32),
                             "enc/bias": np.ones(4, np.float32)})
    drop_a, drop_b = os.path.join(sb.inner, "a"), os.path.join(sb.inner, "b")
    c = daemon_config(sb, "state_dir: state\ndefaults:\n  shard_size: 16\nwatches:\n"
                          f"  - drop: {drop_a}\n    serve: {sb.S}\n    model: '{{drop}}-{{stem}}'\n"
                          "    quantize: {float16: true}\n"
                          f"  - drop: {drop_b}\n    serve: {sb.S}\n")
    r = expect_ok(wd("inspect", b, "--config", c, "--watch", "a"), "inspect --watch a")
    first = r.out.splitlines()[0]
    assert "a-net" in first and f"{sb.S}/a-net" in first, f"no model name line:\n      {r}"
    assert re.search(r"enc/kernel .* float16", r.out), f"watch a's float16 not applied:\n      {r}"
    assert "shards: 3" in r.out, f"defaults' shard_size 16 not applied (40 bytes):\n      {r}"
    r = expect_ok(wd("inspect", b, "--config", c, "--watch", drop_b), "inspect --watch DROP")
    assert "model net " in r.out.splitlines()[0] and "float16" not in r.out, str(r)
    assert "shards: 5" in r.out, f"defaults' shard_size 16 not applied (80 bytes):\n      {r}"
    r = wd("inspect", b, "--config", c)
    assert r.rc == 2 and "--watch" in r.err and drop_a in r.err, f"expected exit 2:\n      {r}"
    r = wd("inspect", b, "--watch", "a")
    assert r.rc == 2 and "daemon config" in r.err, f"expected exit 2:\n      {r}"
    one = write_text(os.path.join(sb.inner, "one.yaml"),
                     f"state_dir: state\nwatches:\n  - drop: {drop_a}\n    serve: {sb.S}\n")
    r = expect_ok(wd("inspect", b, "--config", one), "inspect with the only watch")
    assert "model net " in r.out.splitlines()[0], str(r)


@check("status: after a clean stop, 'stopped at <UTC time> (pid N)'")
@with_sandbox
def status_after_stop(sb):
    import signal
    drop, state = os.path.join(sb.inner, "drop"), os.path.join(sb.inner, "state")
    c = daemon_config(sb, f"state_dir: {state}\nwatches:\n  - drop: {drop}\n    serve: {sb.S}\n")
    p = subprocess.Popen([BINARY, "run", "--config", c], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    status = os.path.join(state, "status.json")
    deadline = time.monotonic() + 10
    while not os.path.exists(status) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=30)[1].decode("utf-8", "replace")
    assert p.returncode == 0, f"daemon exited {p.returncode}: {err}"
    st = load_json(status)
    assert st["state"] == "stopped" and re.match(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$", st.get("stopped") or ""), \
        f"status.json after a clean stop: {st}"
    r = expect_ok(wd("status", "--config", c), "status")
    first = r.out.splitlines()[0]
    assert first.startswith(f"weightdrop stopped at {st['stopped']} (pid {p.pid}), started "), \
        f"header {first!r}"
    assert "no process" not in r.out, f"a clean stop is not a vanished daemon:\n      {r}"


# --- 10. quantize fallthrough, patterns without effect, --force (issue 10) ----

def dense_step_bundle(sb, name="ds.npz"):
    rng = np.random.default_rng(5)
    return sb.npz(name, **{"dense/kernel": rng.standard_normal((4, 3)).astype(np.float32),
                           "dense/bias": rng.standard_normal(3).astype(np.float32),
                           "step": np.arange(2, dtype=np.int32)})


def manifest_quant(version_dir):
    """{weight name: its quantization dtype, or None} from a version's manifest."""
    man = load_json(os.path.join(version_dir, "weights_manifest.json"))
    return {w["name"]: (w.get("quantization") or {}).get("dtype")
            for g in man for w in g["weights"]}


@check("usage: publish and inspect --help list --quantize-rest and --strict-patterns, "
       "publish --force")
def usage_issue10_flags():
    for cmd, flags in (("publish", ("--quantize-rest", "--strict-patterns", "--force")),
                       ("inspect", ("--quantize-rest", "--strict-patterns"))):
        r = expect_ok(wd(cmd, "--help"), f"{cmd} --help")
        for f in flags:
            assert f in r.out, f"{cmd} --help does not list {f}:\n      {r}"


@check("quantize: --quantize-rest DTYPE quantizes every float weight no pattern matched")
@with_sandbox
def quantize_rest_cli(sb):
    b = dense_step_bundle(sb)
    r = expect_ok(sb.publish(b, "--quantize", "uint8=*/kernel", "--quantize-rest", "float16"))
    v = version_from_stdout(r, sb.S, "m")
    got = manifest_quant(os.path.join(sb.model_dir(), str(v)))
    want = {"dense/kernel": "uint8", "dense/bias": "float16", "step": None}
    assert got == want, f"quantization {got}, expected {want}"
    expect_ok(wd("verify", sb.model_dir(), "--against", b), "verify --against the bundle")
    # Over --config: --quantize adds to its patterns, --quantize-rest replaces its fallthrough.
    c = cfg(sb, "q.yaml", "quantize:\n  uint16: [\"*/bias\"]\n  uint8: true\n")
    r = expect_ok(sb.publish(b, "--config", c, "--quantize", "float16=*/kernel",
                             "--quantize-rest", "float16"), "publish over --config")
    got = manifest_quant(os.path.join(sb.model_dir(), str(version_from_stdout(r, sb.S, "m"))))
    want = {"dense/kernel": "float16", "dense/bias": "uint16", "step": None}
    assert got == want, f"over --config: quantization {got}, expected {want}"
    for args, word in ((("--quantize-rest", "float16", "--quantize-rest", "uint8"), "--quantize-rest"),
                       (("--quantize-rest", "int8"), "uint8, uint16 or float16")):
        r = sb.publish(b, *args)
        assert r.rc == 2 and word in r.err, f"expected exit 2 naming {word!r}:\n      {r}"


@check("quantize: a '*' pattern beside another dtype's is refused, naming the fallthrough")
@with_sandbox
def quantize_star_conflict(sb):
    b = dense_step_bundle(sb)
    r = sb.publish(b, "--quantize", "uint8=*/kernel", "--quantize", "float16=*")
    assert r.rc == 1, f"expected exit 1:\n      {r}"
    for want in ("'dense/kernel'", "--quantize-rest float16", "`float16: true`"):
        assert want in r.err, f"message lacks {want!r}:\n      {r}"
    assert not os.path.exists(sb.model_dir()), "a refused bundle left a model folder"


UNUSED_ARGS = ("--quantize", "uint8=*/kernal", "--quantize", "uint16=step",
               "--group", "dense/*", "--group", "dense/k*", "--group", "x*")
UNUSED_WARNINGS = (
    "weightdrop: warning: quantize uint8 pattern '*/kernal' matched no weight\n",
    "weightdrop: warning: quantize uint16 pattern 'step' matched only non-float weights "
    "(not quantized)\n",
    "weightdrop: warning: group 2 pattern 'dense/k*' matched only weights an earlier group took\n",
    "weightdrop: warning: group 3 pattern 'x*' matched no weight\n",
)


@check("patterns: one that matches no weight is a warning of publish (unchanged too) and inspect")
@with_sandbox
def patterns_unused_warn(sb):
    b = dense_step_bundle(sb)
    for what in ("publish", "unchanged re-publish"):
        r = expect_ok(sb.publish(b, *UNUSED_ARGS), what)
        for w in UNUSED_WARNINGS:
            assert w in r.err, f"{what}: no {w!r}:\n      {r}"
    assert "unchanged" in r.err, f"the second publish should be unchanged:\n      {r}"
    # inspect: after the table, on stderr.
    p = subprocess.run([BINARY, "inspect", b, *UNUSED_ARGS], capture_output=False,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    both = p.stdout.decode()
    assert p.returncode == 0, f"inspect exit {p.returncode}: {both}"
    at = [both.find(w) for w in UNUSED_WARNINGS]
    assert min(at) > both.find("shards:") >= 0, f"warnings not after the table:\n{both}"
    r = expect_ok(wd("inspect", b, "--quantize", "uint8=*/kernel"), "inspect, patterns used")
    assert "warning" not in r.err, f"a used pattern was warned about:\n      {r}"


@check("patterns: --strict-patterns or strict_patterns: true refuse such a bundle; nothing published")
@with_sandbox
def patterns_strict(sb):
    b = dense_step_bundle(sb)
    r = sb.publish(b, "--quantize", "uint8=*/kernal", "--strict-patterns")
    assert r.rc == 1 and "weightdrop: error:" in r.err, f"expected exit 1:\n      {r}"
    assert "quantize uint8 pattern '*/kernal' matched no weight" in r.err, str(r)
    assert not os.path.exists(sb.model_dir()), "a refused bundle left a model folder"
    c = cfg(sb, "strict.yaml", "strict_patterns: true\nquantize: {uint8: ['*/kernal']}\n")
    for args in (("publish", b, "--to", sb.S, "--config", c), ("inspect", b, "--config", c)):
        r = wd(*args)
        assert r.rc == 1 and "'*/kernal' matched no weight" in r.err and c in r.err, \
            f"expected exit 1 naming the pattern and {c}:\n      {r}"
    assert not os.path.exists(sb.model_dir()), "a refused bundle left a model folder"
    r = expect_ok(sb.publish(b, "--quantize", "uint8=*/kernel", "--strict-patterns"),
                  "strict publish whose patterns all apply")
    assert "warning" not in r.err, str(r)
    d = write_text(os.path.join(sb.inner, "strict-daemon.yaml"),
                   f"state_dir: state\ndefaults:\n  strict_patterns: true\nwatches:\n"
                   f"  - drop: {sb.inner}/drop\n    serve: {sb.S}\n    strict_patterns: false\n")
    expect_ok(wd("check-config", d), "check-config with strict_patterns in defaults and a watch")


@check("lifecycle: publish --force writes a new version of an unchanged bundle (a repair)")
@with_sandbox
def lifecycle_force(sb):
    b = sb.npz("v.npz", w=np.arange(50, dtype=np.float32))
    expect_ok(sb.publish(b, "--shard-size", "64"))
    shard = os.path.join(sb.model_dir(), "1", "group1-shard2of4.bin")
    os.chmod(shard, 0o644)
    data = bytearray(read_bytes(shard))
    data[5] ^= 0x01
    with open(shard, "wb") as f:
        f.write(data)
    assert wd("verify", sb.model_dir()).rc == 1, "verify should find the corrupted shard"
    r = expect_ok(sb.publish(b, "--shard-size", "64"), "re-publish")
    assert "unchanged" in r.err and version_from_stdout(r, sb.S, "m") == 1, str(r)
    r = expect_ok(sb.publish(b, "--shard-size", "64", "--force"), "publish --force")
    assert version_from_stdout(r, sb.S, "m") == 2 and "unchanged" not in r.err, str(r)
    check_pointers(sb.S, "m", 2)
    expect_ok(wd("verify", sb.model_dir()), "verify of the forced version")
    expect_ok(wd("verify", sb.model_dir(), "--against", b), "verify --against the bundle")
    src = load_json(os.path.join(sb.model_dir(), "2", "publish.json"))["source"]
    assert re.fullmatch(r"[0-9a-f]{64}", src.get("fingerprint", "")), f"source record {src}"


# --- runner -------------------------------------------------------------------

def main():
    global BINARY, VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also print the error message of every refused bad input")
    args = ap.parse_args()
    VERBOSE = args.verbose
    BINARY = os.path.abspath(args.binary)
    if not os.access(BINARY, os.X_OK):
        print(f"cli_test: {BINARY} is not an executable", file=sys.stderr)
        return 2
    register_golden()
    register_bad_inputs()
    t0 = time.monotonic()
    passed, failed, _ = checks.run(args.filter)
    for sb, _ in _golden_cache.values():
        sb.close()
    return checks.finish(t0, passed, failed)


if __name__ == "__main__":
    sys.exit(main())
