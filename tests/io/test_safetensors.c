/* safetensors: bit-exact round trip of several dtypes (0-d and empty shapes included) with
 * metadata, an independent check by Python (json + numpy), atomic-write guarantees (failed
 * writes leave the old file and no temporary file behind, also when the disk write itself fails),
 * and rejection of truncated, foreign and inconsistent files with a message. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <float.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kronvi/io.h"
#include "kvi_test.h"

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* Expects a failure whose message contains every given substring (NULL-terminated list). */
static void expect_fail_msg(kvi_status st, const char *what, int line, ...) {
  kvi_test_checks++;
  const char *msg = kvi_last_error();
  bool ok = st != KVI_OK && msg[0];
  va_list ap;
  va_start(ap, line);
  for (const char *needle; ok && (needle = va_arg(ap, const char *));)
    if (!strstr(msg, needle)) {
      ok = false;
      fprintf(stderr, "%s:%d: message lacks \"%s\"\n", __FILE__, line, needle);
    }
  va_end(ap);
  if (!ok) {
    kvi_test_failures++;
    fprintf(stderr, "%s:%d: %s: status %s, message \"%s\"\n", __FILE__, line, what,
            kvi_status_name(st), msg);
  }
}
#define FAILS_WITH(call, ...)                                               \
  do {                                                                      \
    kvi_clear_error();                                                      \
    expect_fail_msg((call), #call, __LINE__, __VA_ARGS__, (const char *)0); \
  } while (0)

static char g_dir[400];

static void tpath(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", g_dir, name);
}

/* Number of entries in g_dir whose name starts with prefix and contains ".tmp.". */
static int count_temps(const char *prefix) {
  DIR *d = opendir(g_dir);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".tmp.")) n++;
  closedir(d);
  return n;
}

static bool same_file(const char *path, const char *data, size_t len) {
  char *got = NULL;
  size_t glen = 0;
  if (kvi_read_file(&got, &glen, path, 0) != KVI_OK) return false;
  bool same = glen == len && memcmp(got, data, len) == 0;
  free(got);
  return same;
}

/* ---- the reference file ------------------------------------------------------------------ */
/* The same values are repeated in tests/io/check_safetensors.py. */
static float g_mean[12];
static const double g_chol[6] = {0.1, -0.0, 5e-324, 1.7976931348623157e308, 1.0 / 3.0, -2.5};
static const int64_t g_step = 1234567890123;
static const uint8_t g_mask[5] = {0, 1, 255, 7, 128};
static const int32_t g_counts[2] = {-7, 2147483647};
static const double g_odd[1] = {-1e-300};
static const char *g_odd_name = "odd \"name\"/\xc3\xbc";
static const char *g_meta_keys[2] = {"kronvi", "comment"};
static const char *g_meta_vals[2] = {
    "{\"format\": \"kronvi-checkpoint\", \"version\": 1, \"note\": \"\xc3\xa9\\n\"}",
    "quote \" and backslash \\ and tab \t"};

enum { NT = 7 };
static void reference_tensors(kvi_st_tensor *t) {
  for (int i = 0; i < 12; i++) g_mean[i] = (float)(i - 5) * 0.25f;
  memset(t, 0, NT * sizeof *t);
  t[0] = (kvi_st_tensor){"layer0.mean", "F32", 2, {3, 4}, g_mean};
  t[1] = (kvi_st_tensor){"layer0.chol", "F64", 2, {2, 3}, g_chol};
  t[2] = (kvi_st_tensor){"step", "I64", 0, {0}, &g_step};
  t[3] = (kvi_st_tensor){"mask", "U8", 1, {5}, g_mask};
  t[4] = (kvi_st_tensor){"empty", "F32", 2, {0, 3}, NULL};
  t[5] = (kvi_st_tensor){"counts", "I32", 1, {2}, g_counts};
  t[6] = (kvi_st_tensor){g_odd_name, "F64", 1, {1}, g_odd};
}

static void test_roundtrip(const char *path) {
  kvi_st_tensor t[NT];
  reference_tensors(t);
  CHECK_OK(kvi_safetensors_write(path, t, NT, g_meta_keys, g_meta_vals, 2));
  CHECK(count_temps("rt.safetensors") == 0);

  /* layout: u64 header length, multiple of 8, header padded with spaces */
  char *raw = NULL;
  size_t rlen = 0;
  CHECK_OK(kvi_read_file(&raw, &rlen, path, 0));
  if (!raw) return;
  uint64_t hlen = 0;
  for (int k = 0; k < 8; k++) hlen |= (uint64_t)(unsigned char)raw[k] << (8 * k);
  CHECK(hlen % 8 == 0 && 8 + hlen <= rlen);
  CHECK(raw[8] == '{');
  size_t data = 48 + 48 + 8 + 5 + 0 + 8 + 8;
  CHECK(rlen == 8 + hlen + data);
  free(raw);

  kvi_st_file *f = NULL;
  CHECK_OK(kvi_safetensors_open(&f, path));
  if (!f) return;
  CHECK(kvi_st_count(f) == NT);
  for (int i = 0; i < NT; i++) {
    const kvi_st_tensor *r = kvi_st_at(f, i); /* header order = write order */
    CHECK(r && streq(r->name, t[i].name));
    CHECK(r == kvi_st_get(f, t[i].name));
    if (!r) continue;
    CHECK(streq(r->dtype, t[i].dtype));
    CHECK(r->ndim == t[i].ndim);
    for (int d = 0; d < r->ndim; d++) CHECK(r->shape[d] == t[i].shape[d]);
    size_t nb = kvi_st_nbytes(&t[i]);
    CHECK(kvi_st_nbytes(r) == nb);
    CHECK(nb == 0 || (r->data && memcmp(r->data, t[i].data, nb) == 0));
    CHECK(((uintptr_t)r->data % 64) == 0);
  }
  CHECK(kvi_st_at(f, NT) == NULL && kvi_st_at(f, -1) == NULL);
  CHECK(kvi_st_get(f, "nope") == NULL);
  CHECK(kvi_st_numel(kvi_st_get(f, "step")) == 1);
  CHECK(kvi_st_numel(kvi_st_get(f, "empty")) == 0);
  CHECK(kvi_st_meta_count(f) == 2);
  CHECK(kvi_st_meta(f, "kronvi") && streq(kvi_st_meta(f, "kronvi"), g_meta_vals[0]));
  CHECK(kvi_st_meta(f, "comment") && streq(kvi_st_meta(f, "comment"), g_meta_vals[1]));
  CHECK(kvi_st_meta(f, "absent") == NULL);
  CHECK(kvi_st_meta_key(f, 0) && streq(kvi_st_meta_key(f, 0), "kronvi"));
  /* the metadata is JSON again */
  kvi_json *doc = NULL;
  const char *kj = kvi_st_meta(f, "kronvi");
  CHECK_OK(kvi_json_parse(&doc, kj, kj ? strlen(kj) : 0));
  CHECK(streq(kvi_json_str(kvi_json_get(doc, "note")), "\xc3\xa9\n"));
  kvi_json_free(doc);

  /* reals */
  kvi_real buf[12];
  CHECK_OK(kvi_st_read_reals(buf, 12, f, "layer0.mean"));
  for (int i = 0; i < 12; i++) CHECK(buf[i] == (kvi_real)g_mean[i]);
  CHECK_OK(kvi_st_read_reals(buf, 6, f, "layer0.chol"));
  CHECK(memcmp(buf, g_chol, sizeof g_chol) == 0); /* f64 build: bit-exact, -0 and denormal too */
  CHECK_OK(kvi_st_read_reals(buf, 0, f, "empty"));
  FAILS_WITH(kvi_st_read_reals(buf, 10, f, "layer0.mean"), "rt.safetensors", "layer0.mean",
             "[3, 4]", "12 elements", "10 were expected");
  CHECK(kvi_st_read_reals(buf, 10, f, "layer0.mean") == KVI_ERR_SHAPE);
  FAILS_WITH(kvi_st_read_reals(buf, 12, f, "layer1.mean"), "no tensor named \"layer1.mean\"",
             "layer0.mean");
  FAILS_WITH(kvi_st_read_reals(buf, 5, f, "mask"), "dtype U8");
  CHECK(kvi_st_read_reals(buf, 5, f, "mask") == KVI_ERR_UNSUPPORTED);
  kvi_safetensors_close(f);
  kvi_safetensors_close(NULL);
}

/* An independent reader: Debian's python3 with numpy, json + numpy only. */
static void test_python(const char *path) {
  if (access("/usr/bin/python3", X_OK) != 0 ||
      system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    printf("test_safetensors: /usr/bin/python3 with numpy not available, Python check skipped\n");
    return;
  }
  char script[600], cmd[1400];
  const char *src = __FILE__;
  const char *slash = strrchr(src, '/');
  snprintf(script, sizeof script, "%.*scheck_safetensors.py", slash ? (int)(slash - src + 1) : 0,
           src);
  if (access(script, R_OK) != 0) snprintf(script, sizeof script, "tests/io/check_safetensors.py");
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, path);
  int rc = system(cmd);
  CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
  if (rc != 0) fprintf(stderr, "command failed (status %d): %s\n", rc, cmd);
}

static void test_atomic(void) {
  char path[512], text[512];
  /* a missing directory: clear error, nothing left behind */
  tpath(path, sizeof path, "no_such_dir/x.safetensors");
  kvi_st_tensor t[NT];
  reference_tensors(t);
  FAILS_WITH(kvi_safetensors_write(path, t, NT, NULL, NULL, 0), "no_such_dir", "HINT");
  CHECK(access(path, F_OK) != 0);
  FAILS_WITH(kvi_write_file_atomic(path, "x", 1), "cannot create temporary file");

  /* a failed write leaves an existing file untouched and no temporary file */
  tpath(path, sizeof path, "keep.safetensors");
  CHECK_OK(kvi_safetensors_write(path, t, 2, NULL, NULL, 0));
  char *before = NULL;
  size_t blen = 0;
  CHECK_OK(kvi_read_file(&before, &blen, path, 0));
  kvi_st_tensor bad[3];
  memcpy(bad, t, sizeof bad);
  bad[2].dtype = "F128";
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "unknown dtype \"F128\"");
  memcpy(bad, t, sizeof bad);
  bad[2].data = NULL;
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "NULL data");
  memcpy(bad, t, sizeof bad);
  bad[2].name = "layer0.mean";
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "both named \"layer0.mean\"");
  memcpy(bad, t, sizeof bad);
  bad[2].name = "__metadata__";
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "reserved");
  memcpy(bad, t, sizeof bad);
  bad[2].name = "";
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "empty name");
  memcpy(bad, t, sizeof bad);
  bad[2].ndim = 9;
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "ndim 9");
  memcpy(bad, t, sizeof bad);
  bad[0].shape[1] = -4;
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "invalid shape [3, -4]");
  memcpy(bad, t, sizeof bad);
  bad[1].name = "bad \xff name";
  FAILS_WITH(kvi_safetensors_write(path, bad, 3, NULL, NULL, 0), "UTF-8");
  const char *dk[2] = {"a", "a"}, *dv[2] = {"1", "2"};
  FAILS_WITH(kvi_safetensors_write(path, t, 3, dk, dv, 2), "metadata key \"a\" appears twice");
  const char *nv[1] = {NULL};
  FAILS_WITH(kvi_safetensors_write(path, t, 3, dk, nv, 1), "NULL value");
  CHECK(before && same_file(path, before, blen));
  CHECK(count_temps("keep.safetensors") == 0);

  /* the disk write itself fails half way (file size limit): old file kept, temp removed */
  static double big[1 << 17]; /* 1 MiB */
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) big[i] = (double)i;
  kvi_st_tensor bt = {"big", "F64", 1, {1 << 17}, big};
  struct rlimit old, lim;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
    lim = old;
    lim.rlim_cur = 64 * 1024;
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
      FAILS_WITH(kvi_safetensors_write(path, &bt, 1, NULL, NULL, 0), "keep.safetensors", "failed");
      FAILS_WITH(kvi_write_file_atomic(path, big, sizeof big), "keep.safetensors");
      setrlimit(RLIMIT_FSIZE, &old);
      CHECK(same_file(path, before, blen));
      CHECK(count_temps("keep.safetensors") == 0);
    } else {
      printf("test_safetensors: cannot lower RLIMIT_FSIZE, mid-write failure check skipped\n");
    }
  }
  signal(SIGXFSZ, prev);
  free(before);

  /* a successful write replaces the file and keeps its permission bits */
  tpath(path, sizeof path, "atomic.txt");
  CHECK_OK(kvi_write_file_atomic(path, "first\n", 6));
  CHECK(chmod(path, 0640) == 0);
  snprintf(text, sizeof text, "second, longer\n");
  CHECK_OK(kvi_write_file_atomic(path, text, strlen(text)));
  CHECK(same_file(path, text, strlen(text)));
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640);
  CHECK_OK(kvi_write_file_atomic(path, "", 0));
  CHECK(same_file(path, "", 0));

  /* streaming: abort keeps the old file; a stale temp name from the same pid is skipped */
  CHECK_OK(kvi_write_file_atomic(path, "old", 3));
  kvi_atomic_file *af = NULL;
  CHECK_OK(kvi_atomic_open(&af, path));
  CHECK_OK(kvi_atomic_write(af, "new", 3));
  CHECK(count_temps("atomic.txt") == 1);
  kvi_atomic_abort(af);
  CHECK(same_file(path, "old", 3));
  CHECK(count_temps("atomic.txt") == 0);
  char stale[600];
  snprintf(stale, sizeof stale, "%s.tmp.%ld", path, (long)getpid());
  FILE *sf = fopen(stale, "wb");
  if (sf) fclose(sf);
  CHECK_OK(kvi_atomic_open(&af, path));
  CHECK_OK(kvi_atomic_write(af, "newer", 5));
  CHECK_OK(kvi_atomic_commit(af));
  CHECK(same_file(path, "newer", 5));
  CHECK(same_file(stale, "", 0)); /* the other file was not touched */
  remove(stale);
  CHECK(count_temps("atomic.txt") == 0);

  /* a directory in the way */
  FAILS_WITH(kvi_write_file_atomic(g_dir, "x", 1), "is a directory");
  kvi_st_file *f = NULL;
  FAILS_WITH(kvi_safetensors_open(&f, g_dir), "not a regular file");
  tpath(path, sizeof path, "does_not_exist.safetensors");
  FAILS_WITH(kvi_safetensors_open(&f, path), "does_not_exist.safetensors", "cannot open");
  CHECK(f == NULL);
}

/* ---- bad files ------------------------------------------------------------------------------ */

/* Plain (non-atomic, no fsync) write: the bad-file tests write hundreds of files. */
static void write_raw(const char *path, const void *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  CHECK(fp != NULL);
  if (!fp) return;
  CHECK(fwrite(data, 1, len, fp) == len);
  CHECK(fclose(fp) == 0);
}

static void put_u64(unsigned char *b, uint64_t x) {
  for (int k = 0; k < 8; k++) b[k] = (unsigned char)(x >> (8 * k));
}

/* A file from a header text (padded here to a multiple of 8) and a data region. */
static void write_crafted(const char *path, const char *header, const void *data, size_t dlen) {
  size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
  size_t total = 8 + padded + dlen;
  unsigned char *b = malloc(total);
  put_u64(b, padded);
  memcpy(b + 8, header, hl);
  memset(b + 8 + hl, ' ', padded - hl);
  if (dlen) memcpy(b + 8 + padded, data, dlen);
  write_raw(path, b, total);
  free(b);
}

#define OPEN_FAILS(...)                                       \
  do {                                                        \
    kvi_st_file *f_ = (kvi_st_file *)1;                       \
    FAILS_WITH(kvi_safetensors_open(&f_, path), __VA_ARGS__); \
    CHECK(f_ == NULL);                                        \
  } while (0)

static void test_bad_files(const char *good) {
  char path[512];
  tpath(path, sizeof path, "bad.safetensors");
  char *raw = NULL;
  size_t rlen = 0;
  CHECK_OK(kvi_read_file(&raw, &rlen, good, 0));
  if (!raw) return;
  uint64_t hlen = 0;
  for (int k = 0; k < 8; k++) hlen |= (uint64_t)(unsigned char)raw[k] << (8 * k);

  /* truncated at many points: inside the length, inside the header, inside the data */
  write_raw(path, raw, 0);
  OPEN_FAILS("bad.safetensors", "shorter than the 8-byte header length");
  write_raw(path, raw, 5);
  OPEN_FAILS("file is 5 bytes");
  size_t cuts[] = {8, 9, 8 + hlen / 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 1, rlen - 50, rlen - 1};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    write_raw(path, raw, cuts[c]);
    if (cuts[c] < 8 + hlen)
      OPEN_FAILS("bad.safetensors", "exceeds file size", "looks truncated");
    else
      OPEN_FAILS("bad.safetensors", "extend past the data region", "truncated");
  }
  for (size_t n = 0; n < rlen; n += 7) { /* every 7th length: error, never a crash */
    write_raw(path, raw, n);
    OPEN_FAILS("bad.safetensors");
  }

  /* wrong header length */
  unsigned char *m = malloc(rlen);
  memcpy(m, raw, rlen);
  put_u64(m, hlen + 8); /* reaches into the data: not JSON any more */
  write_raw(path, m, rlen);
  OPEN_FAILS("not valid JSON");
  put_u64(m, hlen - 8); /* cuts the JSON */
  write_raw(path, m, rlen);
  OPEN_FAILS("not valid JSON", "end of input");
  put_u64(m, 8031162345u);
  write_raw(path, m, 120);
  OPEN_FAILS(
      "bad.safetensors: not a safetensors file (header length 8031162345 exceeds file "
      "size 120)");
  put_u64(m, 0);
  write_raw(path, m, rlen);
  OPEN_FAILS("header length 0 is too small");
  free(m);

  /* foreign files */
  unsigned char junk[256];
  uint64_t s = 99;
  for (size_t i = 0; i < sizeof junk; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    junk[i] = (unsigned char)(s >> 56);
  }
  memcpy(junk, "\x89PNG\r\n\x1a\n", 8);
  write_raw(path, junk, sizeof junk);
  OPEN_FAILS("not a safetensors file", "HINT: the file starts like a PNG image");
  memcpy(junk, "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
  write_raw(path, junk, sizeof junk);
  OPEN_FAILS("not a safetensors file", "gzip");
  memcpy(junk, "PK\x03\x04\x14\x00\x00\x00", 8);
  write_raw(path, junk, sizeof junk);
  OPEN_FAILS("not a safetensors file", "zip archive");
  memcpy(junk, "\x80\x02\x63\x00\x00\x00\x00\x00", 8);
  write_raw(path, junk, 40);
  OPEN_FAILS("not a safetensors file", "pickle");
  junk[0] = 0x3a, junk[1] = 0x7f, junk[2] = 0x11, junk[3] = 0xc4;
  write_raw(path, junk, sizeof junk);
  OPEN_FAILS("not a safetensors file", "HINT");
  const char *passwd = "root:x:0:0:root:/root:/bin/bash\n";
  write_raw(path, passwd, strlen(passwd));
  OPEN_FAILS("not a safetensors file", "starts with text (\"root:x:0\")");
  const char *json_text = "{\"a\": 1, \"b\": [1, 2, 3]}";
  write_raw(path, json_text, strlen(json_text));
  OPEN_FAILS("not a safetensors file", "plain JSON");
  /* a small length whose header bytes are not JSON at all */
  write_crafted(path, "\x01\x02garbage", NULL, 0);
  OPEN_FAILS("does not start with '{'");
  write_crafted(path, "{not json}", NULL, 0);
  OPEN_FAILS("header", "not valid JSON", "byte 1");
  write_crafted(path, "[1, 2]", NULL, 0);
  OPEN_FAILS("does not start with '{'");

  /* inconsistent headers */
  unsigned char d[64] = {0};
  write_crafted(path, "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}", d, 2);
  OPEN_FAILS("tensor \"w\"", "unknown dtype \"Q4\"");
  write_crafted(path, "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,2]}}", d, 2);
  OPEN_FAILS("unknown dtype (not a string)");
  write_crafted(path,
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                d, 24);
  OPEN_FAILS("\"a\" [0, 16] and \"b\" [8, 24] overlap");
  write_crafted(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}", d, 16);
  OPEN_FAILS("data_offsets [0, 64] extend past the data region of 16 bytes");
  write_crafted(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", d, 20);
  OPEN_FAILS("shape [2, 3] of F32 needs 24 bytes", "span 20");
  write_crafted(path,
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[16,24]}}",
                d, 24);
  OPEN_FAILS("bytes [8, 16) of the data region belong to no tensor");
  write_crafted(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", d, 12);
  OPEN_FAILS("data region has 12 bytes but the tensors cover only 8");
  write_crafted(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", d, 8);
  OPEN_FAILS("begin > end");
  write_crafted(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[-2],\"data_offsets\":[0,2]}}", d, 2);
  OPEN_FAILS("shape[0] is not a non-negative integer");
  write_crafted(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[2.0],\"data_offsets\":[0,2]}}", d, 2);
  OPEN_FAILS("shape[0] is not a non-negative integer");
  write_crafted(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", d, 2);
  OPEN_FAILS("\"shape\" must be an array");
  write_crafted(path,
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}",
                d, 2);
  OPEN_FAILS("9 dimensions");
  write_crafted(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[2]}}", d, 2);
  OPEN_FAILS("missing \"data_offsets\"");
  write_crafted(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2,4]}}", d, 2);
  OPEN_FAILS("[begin, end]");
  write_crafted(path,
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
                "\"data_offsets\":[0,2]}}",
                d, 2);
  OPEN_FAILS("needs more than");
  write_crafted(path, "{\"a\":[1,2]}", d, 0);
  OPEN_FAILS("tensor \"a\": expected an object");
  write_crafted(path,
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
                d, 4);
  OPEN_FAILS("duplicate key \"a\"");
  write_crafted(path, "{\"__metadata__\":{\"k\":1}}", d, 0);
  OPEN_FAILS("\"__metadata__\" value of \"k\" must be a string");
  write_crafted(path, "{\"__metadata__\":[\"k\"]}", d, 0);
  OPEN_FAILS("\"__metadata__\" must be an object");
  write_crafted(path, "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", d,
                2);
  OPEN_FAILS("NUL character");

  /* valid hand-made files: offsets need not follow header order; null metadata; no tensors */
  double vals[3] = {1.5, -2.0, 0.25};
  unsigned char region[34];
  memcpy(region, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  memcpy(region + 8, vals, sizeof vals);
  region[32] = 0x80, region[33] = 0x3f; /* bf16 1.0 */
  write_crafted(path,
                "{\"__metadata__\":null,"
                "\"v\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[8,32]},"
                "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                "\"u\":{\"dtype\":\"U8\",\"shape\":[2,4],\"data_offsets\":[0,8]},"
                "\"extra\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[32,34]}}",
                region, sizeof region);
  kvi_st_file *f = NULL;
  CHECK_OK(kvi_safetensors_open(&f, path));
  CHECK(kvi_st_count(f) == 4 && kvi_st_meta_count(f) == 0);
  kvi_real got[3] = {0};
  CHECK_OK(kvi_st_read_reals(got, 3, f, "v"));
  CHECK(got[0] == (kvi_real)1.5 && got[1] == (kvi_real)-2.0 && got[2] == (kvi_real)0.25);
  const kvi_st_tensor *u = kvi_st_get(f, "u");
  CHECK(u && u->ndim == 2 && ((const unsigned char *)u->data)[7] == 8);
  CHECK(kvi_st_at(f, 0) == kvi_st_get(f, "v"));
  kvi_safetensors_close(f);
  write_crafted(path, "{}", NULL, 0);
  f = NULL;
  CHECK_OK(kvi_safetensors_open(&f, path));
  CHECK(f && kvi_st_count(f) == 0 && kvi_st_get(f, "x") == NULL);
  kvi_safetensors_close(f);

  /* random corruption of a valid file: error or success, never a crash */
  uint64_t r = 5;
  int silent = 0;
  unsigned char *c = malloc(rlen);
  for (int it = 0; it < 300; it++) {
    memcpy(c, raw, rlen);
    for (int e = 0; e < 3; e++) {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      size_t pos = (size_t)((r >> 20) % (8 + hlen));
      c[pos] = (unsigned char)(r >> 56);
    }
    write_raw(path, c, rlen);
    kvi_clear_error();
    f = NULL;
    kvi_status st = kvi_safetensors_open(&f, path);
    if (st != KVI_OK && kvi_last_error()[0] == 0) silent++;
    kvi_safetensors_close(f);
  }
  CHECK(silent == 0);
  free(c);
  free(raw);
  remove(path);
}

static void remove_test_files(void) {
  const char *names[] = {"rt.safetensors", "keep.safetensors", "atomic.txt"};
  char path[512];
  for (int i = 0; i < 3; i++) {
    tpath(path, sizeof path, names[i]);
    remove(path);
  }
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "%s", kvi_test_dir());
  char path[512];
  tpath(path, sizeof path, "rt.safetensors");
  test_roundtrip(path);
  test_python(path);
  test_atomic();
  test_bad_files(path);
  remove_test_files();
  TEST_MAIN_END();
}
