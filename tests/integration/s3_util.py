"""Helpers for s3_test.py: a real Ceph RGW from scripts/rgw.sh in a temp dir,
and a small SigV4-signed S3 client (standard library only) to look at what
weightdrop wrote: GET/HEAD objects with their headers, list keys under a
prefix, set a bucket policy and a CORS rule.

The client is the test's own eyes, independent of weightdrop's S3 code: it
signs with AWS Signature Version 4 exactly as AWS documents it (canonical
URI and query percent-encoded, query keys sorted, UNSIGNED-PAYLOAD).
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

import checks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RGW_SH = os.path.join(REPO, "scripts", "rgw.sh")
BUCKET = "weightdrop-test"
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def rgw_available():
    """(ok, message) of `scripts/rgw.sh available`."""
    p = subprocess.run(["bash", RGW_SH, "available"], capture_output=True, text=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v.strip('"')
    return env


class Rgw:
    """One throwaway RGW: mon + memstore osd + radosgw under DIR."""

    def __init__(self):
        # Ceph's admin sockets live under DIR/run: the path must stay short.
        self.dir = tempfile.mkdtemp(prefix="wds3", dir="/tmp")
        assert len(self.dir) <= 60, self.dir
        self.env = {}

    def _sh(self, cmd, timeout=120):
        p = subprocess.run(["bash", RGW_SH, cmd, self.dir], capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            # rgw.sh's own verdict ("rgw.sh: radosgw exited") first: the
            # daemons' log tails after it are long.
            said = "\n".join(ln for ln in p.stderr.splitlines() if ln.startswith("rgw.sh:"))
            raise RuntimeError(f"rgw.sh {cmd} {self.dir} failed (exit {p.returncode}): "
                               f"{said or '(no message)'}\n{p.stdout[-2000:]}{p.stderr[-4000:]}")
        self.env = read_env(os.path.join(self.dir, "env"))
        return p

    def start(self):
        """Starts the cluster; a start that fails is tried once more in a
        fresh folder (Ceph is the fixture here, not what is tested), and the
        first failure is printed with the folder kept for a look."""
        try:
            return self._sh("start")
        except RuntimeError as e:
            first = self.dir
            print(f"note: the RGW did not start; trying once more. First attempt "
                  f"(its folder kept): {str(e)[:3000]}", flush=True)
            self.dir = tempfile.mkdtemp(prefix="wds3", dir="/tmp")
            assert len(self.dir) <= 60, self.dir
            try:
                return self._sh("start")
            except RuntimeError as e2:
                raise RuntimeError(f"{e2}\n(the first attempt's folder: {first})") from None

    def stop(self):
        return self._sh("stop", timeout=60)

    def kill_rgw(self):
        return self._sh("kill-rgw")

    def start_rgw(self):
        return self._sh("start-rgw")

    def restart_rgw(self):
        return self._sh("restart-rgw")

    @property
    def endpoint(self):
        return self.env["AWS_ENDPOINT_URL"]

    def aws_env(self):
        """The AWS_* variables a user exports for the CLI."""
        return {k: v for k, v in self.env.items() if k.startswith("AWS_")}

    def client(self):
        return S3(self.endpoint, self.env["AWS_ACCESS_KEY_ID"],
                  self.env["AWS_SECRET_ACCESS_KEY"], self.env.get("AWS_REGION", "us-east-1"))


# --- SigV4 -------------------------------------------------------------------------

def _q(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:300]!r}"


class S3:
    def __init__(self, endpoint, key, secret, region="us-east-1"):
        u = urllib.parse.urlsplit(endpoint)
        self.host, self.port = u.hostname, u.port or 80
        self.hostport = u.netloc
        self.endpoint = endpoint.rstrip("/")
        self.key, self.secret, self.region = key, secret, region

    def url(self, key):
        """The unsigned (public) URL of an object in the test bucket."""
        return f"{self.endpoint}/{BUCKET}/{_q(key, safe='/-_.~')}"

    def request(self, method, key="", query=None, body=b"", headers=None, timeout=30):
        """Signed request on BUCKET/key; query is a dict ("" values allowed)."""
        path = f"/{BUCKET}" + (f"/{key}" if key else "")
        canon_uri = _q(path, safe="/-_.~")
        query = query or {}
        canon_query = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(query.items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        hdrs = {"host": self.hostport, "x-amz-date": amz_date,
                "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        for k, v in (headers or {}).items():
            hdrs[k.lower()] = v
        signed = sorted(hdrs)
        canon_headers = "".join(f"{k}:{str(hdrs[k]).strip()}\n" for k in signed)
        canon = "\n".join([method, canon_uri, canon_query, canon_headers, ";".join(signed),
                           "UNSIGNED-PAYLOAD"])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canon.encode()).hexdigest()])
        k = _hmac(("AWS4" + self.secret).encode(), day)
        for part in (self.region, "s3", "aws4_request"):
            k = _hmac(k, part)
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        hdrs["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.key}/{scope}, "
                                 f"SignedHeaders={';'.join(signed)}, Signature={sig}")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, canon_uri + ("?" + canon_query if canon_query else ""),
                         body=body, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def get(self, key):
        return self.request("GET", key)

    def head(self, key):
        return self.request("HEAD", key)

    def body(self, key):
        r = self.get(key)
        assert r.status == 200, f"GET {key}: {r}"
        return r.body

    def list(self, prefix):
        """{key: (size, etag)} of every object under prefix (all pages)."""
        out, token = {}, None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            r = self.request("GET", "", q)
            assert r.status == 200, f"ListObjectsV2 {prefix}: {r}"
            root = ET.fromstring(r.body)
            for c in root.findall(S3_NS + "Contents"):
                out[c.find(S3_NS + "Key").text] = (int(c.find(S3_NS + "Size").text),
                                                  c.find(S3_NS + "ETag").text.strip('"'))
            if root.findtext(S3_NS + "IsTruncated") != "true":
                return out
            token = root.findtext(S3_NS + "NextContinuationToken")

    def multipart_uploads(self, prefix):
        """Upload ids of multipart uploads in progress under prefix."""
        r = self.request("GET", "", {"uploads": "", "prefix": prefix})
        assert r.status == 200, f"ListMultipartUploads {prefix}: {r}"
        root = ET.fromstring(r.body)
        return [u.findtext(S3_NS + "Key") for u in root.findall(S3_NS + "Upload")]

    def versions(self, model_prefix):
        """{version number: set of object names} under prefix/M/."""
        out = {}
        for key in self.list(model_prefix):
            m = re.match(re.escape(model_prefix) + r"(\d+)/(.+)$", key)
            if m:
                out.setdefault(int(m.group(1)), set()).add(m.group(2))
        return out

    def make_public(self):
        policy = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                  '"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}' % BUCKET)
        r = self.request("PUT", "", {"policy": ""}, body=policy.encode())
        assert r.status in (200, 204), f"PUT ?policy: {r}"

    def put_cors(self, origin):
        body = ("<CORSConfiguration><CORSRule><AllowedOrigin>%s</AllowedOrigin>"
                "<AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>"
                "<AllowedHeader>*</AllowedHeader><MaxAgeSeconds>600</MaxAgeSeconds>"
                "</CORSRule></CORSConfiguration>" % origin).encode()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        r = self.request("PUT", "", {"cors": ""}, body=body, headers={"content-md5": md5})
        assert r.status in (200, 204), f"PUT ?cors: {r}"


def skip_reason(binary, script):
    """Why a script cannot run here, as (exit code, message), or None: the
    binary must be executable (2) and the Ceph binaries installed (77, the
    ctest skip). Also clears AWS_* from the environment, so a developer's
    settings never leak into the daemons a test starts."""
    if not os.access(binary, os.X_OK):
        return 2, f"{script}: {binary} is not an executable"
    ok, msg = rgw_available()
    if not ok:
        return 77, f"SKIP: no Ceph RGW here (scripts/rgw.sh available: {msg})"
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[k]
    return None


def run_with_rgw(name_filter, keep, started, scratch):
    """Starts a real RGW, calls started(rgw) (where a script keeps its
    handles), runs the registered checks, and always stops the RGW, which
    counts as a failure if it does not stop. scratch() lists the folders to
    remove afterwards, or to name when keep. Returns (passed, failed)."""
    t0 = time.monotonic()
    rgw = Rgw()
    passed = failed = 0
    try:
        rgw.start()
        checks.note(f"RGW started in {time.monotonic() - t0:.1f}s at {rgw.endpoint} ({rgw.dir})")
        started(rgw)
        passed, failed, _ = checks.run(name_filter)
    finally:
        t1 = time.monotonic()
        try:
            rgw.stop()
        except Exception as e:  # report, but the run's verdict stands
            print(f"FAIL stopping the RGW: {e}")
            failed += 1
        checks.note(f"RGW stopped in {time.monotonic() - t1:.1f}s")
        dirs = [d for d in list(scratch()) + [rgw.dir] if d]
        if keep:
            print("kept " + " ".join(dirs))
        else:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
    return passed, failed
