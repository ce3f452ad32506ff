/* inflate_only: the floor for publishing a deflated .npz.
 *
 * Reads the zip central directory (zip64 records included), then for every
 * deflated member reads its compressed bytes with large pread calls and
 * inflates them with the system zlib into a scratch buffer that is thrown
 * away. Stored members are read and discarded. Prints members and bytes.
 *
 * Usage: inflate_only FILE.npz            (build: cc -O2 -o inflate_only
 *                                          inflate_only.c -lz)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

enum { kChunk = 1 << 20, kOut = 1 << 20 };

static void die(const char* path, const char* what) {
  fprintf(stderr, "inflate_only: %s: %s\n", path, what);
  exit(1);
}

static uint64_t le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

static void read_at(int fd, const char* path, void* buf, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = pread(fd, (char*)buf + done, n - done, (off_t)(off + done));
    if (got <= 0) die(path, "short read");
    done += (size_t)got;
  }
}

typedef struct {
  uint64_t cd_offset, cd_size, entries;
} CentralDir;

/* Finds the end-of-central-directory record (and its zip64 twin). */
static CentralDir find_central_dir(int fd, const char* path, uint64_t size) {
  unsigned char tail[65536 + 22];
  uint64_t n = size < sizeof tail ? size : sizeof tail;
  read_at(fd, path, tail, n, size - n);
  for (int64_t i = (int64_t)n - 22; i >= 0; --i) {
    if (le(tail + i, 4) != 0x06054b50) continue;
    CentralDir cd = {le(tail + i + 16, 4), le(tail + i + 12, 4), le(tail + i + 10, 2)};
    if (i >= 20 && le(tail + i - 20, 4) == 0x07064b50) {
      unsigned char z64[56];
      read_at(fd, path, z64, sizeof z64, le(tail + i - 12, 8));
      if (le(z64, 4) != 0x06064b50) die(path, "bad zip64 end record");
      cd.entries = le(z64 + 32, 8);
      cd.cd_size = le(z64 + 40, 8);
      cd.cd_offset = le(z64 + 48, 8);
    }
    return cd;
  }
  die(path, "no end of central directory record");
  return (CentralDir){0, 0, 0};
}

typedef struct {
  int method;
  uint64_t comp_size, local_offset;
} Member;

/* Parses one central directory entry at p; returns its length. */
static size_t parse_entry(const char* path, const unsigned char* p, Member* m) {
  if (le(p, 4) != 0x02014b50) die(path, "bad central directory entry");
  m->method = (int)le(p + 10, 2);
  m->comp_size = le(p + 20, 4);
  uint64_t usize = le(p + 24, 4);
  m->local_offset = le(p + 42, 4);
  size_t name_len = le(p + 28, 2), extra_len = le(p + 30, 2);
  size_t comment_len = le(p + 32, 2);
  const unsigned char *x = p + 46 + name_len, *end = x + extra_len;
  while (x + 4 <= end) {
    size_t id = le(x, 2), len = le(x + 2, 2);
    const unsigned char* f = x + 4;
    if (id == 1) { /* zip64: only the fields that overflowed, in order */
      if (usize == 0xffffffffu) f += 8;
      if (m->comp_size == 0xffffffffu) m->comp_size = le(f, 8), f += 8;
      if (m->local_offset == 0xffffffffu) m->local_offset = le(f, 8);
    }
    x += 4 + len;
  }
  return 46 + name_len + extra_len + comment_len;
}

static uint64_t inflate_member(int fd, const char* path, const Member* m, unsigned char* in,
                               unsigned char* out) {
  unsigned char local[30];
  read_at(fd, path, local, sizeof local, m->local_offset);
  if (le(local, 4) != 0x04034b50) die(path, "bad local header");
  uint64_t off = m->local_offset + 30 + le(local + 26, 2) + le(local + 28, 2);
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (m->method == 8 && inflateInit2(&zs, -MAX_WBITS) != Z_OK) die(path, "inflateInit2 failed");
  uint64_t left = m->comp_size, produced = 0;
  int ret = Z_OK;
  while (left > 0) {
    size_t n = left < kChunk ? (size_t)left : kChunk;
    read_at(fd, path, in, n, off);
    off += n, left -= n;
    if (m->method != 8) {
      produced += n;
      continue;
    }
    zs.next_in = in, zs.avail_in = (uInt)n;
    do {
      zs.next_out = out, zs.avail_out = kOut;
      ret = inflate(&zs, Z_NO_FLUSH);
      if (ret != Z_OK && ret != Z_STREAM_END) die(path, "corrupt deflate data");
      produced += kOut - zs.avail_out;
    } while (zs.avail_out == 0 && ret != Z_STREAM_END);
  }
  if (m->method == 8) {
    if (ret != Z_STREAM_END) die(path, "deflate stream ends early");
    inflateEnd(&zs);
  }
  return produced;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: inflate_only FILE.npz\n");
    return 2;
  }
  const char* path = argv[1];
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) die(path, "cannot open");
  CentralDir cd = find_central_dir(fd, path, (uint64_t)st.st_size);
  unsigned char *dir = malloc(cd.cd_size), *in = malloc(kChunk);
  unsigned char* out = malloc(kOut);
  if (!dir || !in || !out) die(path, "out of memory");
  read_at(fd, path, dir, cd.cd_size, cd.cd_offset);
  uint64_t total = 0;
  size_t pos = 0;
  for (uint64_t i = 0; i < cd.entries; ++i) {
    Member m;
    pos += parse_entry(path, dir + pos, &m);
    total += inflate_member(fd, path, &m, in, out);
  }
  printf("%llu members, %llu bytes\n", (unsigned long long)cd.entries, (unsigned long long)total);
  free(dir), free(in), free(out);
  close(fd);
  return 0;
}
