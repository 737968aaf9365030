/* IDX loader: small generated files (plain and gzipped) loaded exactly, the real Fashion-MNIST
 * when installed, and every kind of bad input failing with a message. */
// ctest-timeout: 300
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "kronvi/data.h"
#include "kvi_test.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ASan reserves terabytes of address space, so RLIMIT_AS cannot be lowered under it. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

/* ---- writers (tests only) ---------------------------------------------------------------- */

static bool write_bytes(const char *path, bool gz, const unsigned char *data, size_t len) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    if (!f) return false;
    bool ok = len == 0 || gzwrite(f, data, (unsigned)len) == (int)len;
    return gzclose(f) == Z_OK && ok;
  }
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = len == 0 || fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

/* Reads a file's raw bytes (no decompression) into buf (cap bytes); returns the length. */
static size_t read_raw(const char *path, unsigned char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* IDX images file bytes: header (magic, n, rows, cols) then pixels; returns the length. */
static size_t idx_images(unsigned char *buf, uint32_t magic, uint32_t n, uint32_t rows,
                         uint32_t cols, const unsigned char *pix, size_t npix) {
  put_be32(buf, magic);
  put_be32(buf + 4, n);
  put_be32(buf + 8, rows);
  put_be32(buf + 12, cols);
  memcpy(buf + 16, pix, npix);
  return 16 + npix;
}

static size_t idx_labels(unsigned char *buf, uint32_t magic, uint32_t n, const unsigned char *lab,
                         size_t nlab) {
  put_be32(buf, magic);
  put_be32(buf + 4, n);
  memcpy(buf + 8, lab, nlab);
  return 8 + nlab;
}

static char *tpath(char *buf, const char *name) {
  snprintf(buf, 512, "%s/data_idx_%s", kvi_test_dir(), name);
  return buf;
}

static bool is_empty(const kvi_dataset *ds) { return ds->n == 0 && !ds->x && !ds->y && !ds->t; }

/* Message of the last failure contains s. */
#define CHECK_MSG(s)                                                              \
  do {                                                                            \
    kvi_test_checks++;                                                            \
    if (!strstr(kvi_last_error(), (s))) {                                         \
      kvi_test_failures++;                                                        \
      fprintf(stderr, "%s:%d: message lacks '%s': %s\n", __FILE__, __LINE__, (s), \
              kvi_last_error());                                                  \
    }                                                                             \
  } while (0)

/* ---- the generated data set -------------------------------------------------------------- */
enum { N = 7, R = 5, C = 4 };
static unsigned char pix[N * R * C], lab[N];

static void make_data(void) {
  for (int i = 0; i < N * R * C; i++) pix[i] = (unsigned char)((i * 31 + 7) % 256);
  pix[3] = 255;
  pix[4] = 0;
  for (int i = 0; i < N; i++) lab[i] = (unsigned char)(i % 3);
}

static void check_loaded(const kvi_dataset *ds, int64_t n) {
  CHECK(ds->n == n);
  CHECK(ds->d == R * C && ds->c == 1 && ds->h == R && ds->w == C);
  CHECK(ds->nclasses == 3 && ds->k == 0 && ds->t == NULL);
  if (ds->n != n || !ds->x || !ds->y) return;
  int bad = 0;
  for (int64_t i = 0; i < n * R * C; i++)
    if (ds->x[i] != (kvi_real)((double)pix[i] / 255.0)) bad++;
  for (int64_t i = 0; i < n; i++)
    if (ds->y[i] != lab[i]) bad++;
  CHECK(bad == 0);
  CHECK(kvi_dataset_validate(ds, "loaded") == KVI_OK);
}

static void test_good(void) {
  unsigned char buf[1024];
  char pi[512], pl[512], pig[512], plg[512];
  size_t li = idx_images(buf, 0x803, N, R, C, pix, sizeof pix);
  CHECK(write_bytes(tpath(pi, "img"), false, buf, li));
  CHECK(write_bytes(tpath(pig, "img.gz"), true, buf, li));
  size_t ll = idx_labels(buf, 0x801, N, lab, N);
  CHECK(write_bytes(tpath(pl, "lab"), false, buf, ll));
  CHECK(write_bytes(tpath(plg, "lab.gz"), true, buf, ll));

  kvi_dataset ds;
  CHECK_OK(kvi_idx_load(&ds, pi, pl));
  check_loaded(&ds, N);
  kvi_dataset_free(&ds);
  CHECK(is_empty(&ds));
  CHECK_OK(kvi_idx_load(&ds, pig, plg));
  check_loaded(&ds, N);
  kvi_dataset_free(&ds);
  CHECK_OK(kvi_idx_load(&ds, pi, plg)); /* mixed */
  check_loaded(&ds, N);
  kvi_dataset_free(&ds);
  CHECK_OK(kvi_idx_load_limit(&ds, pig, pl, 4));
  check_loaded(&ds, 4);
  kvi_dataset_free(&ds);
  CHECK_OK(kvi_idx_load_limit(&ds, pig, pl, 100)); /* limit above n: all rows */
  check_loaded(&ds, N);
  kvi_dataset_free(&ds);
}

/* A directory with train (gz) and t10k (plain) files; t10k has a larger label. */
static void test_dir(void) {
  char dir[512], p[600];
  snprintf(dir, sizeof dir, "%s/data_idx_dir", kvi_test_dir());
  mkdir(dir, 0755);
  unsigned char buf[1024];
  size_t li = idx_images(buf, 0x803, N, R, C, pix, sizeof pix);
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
  CHECK(write_bytes(p, true, buf, li));
  size_t ll = idx_labels(buf, 0x801, N, lab, N);
  snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
  CHECK(write_bytes(p, true, buf, ll));
  li = idx_images(buf, 0x803, 2, R, C, pix, 2 * R * C);
  snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
  CHECK(write_bytes(p, false, buf, li));
  unsigned char tl[2] = {4, 1};
  ll = idx_labels(buf, 0x801, 2, tl, 2);
  snprintf(p, sizeof p, "%s/t10k-labels.idx1-ubyte", dir); /* the other spelling */
  CHECK(write_bytes(p, false, buf, ll));

  kvi_dataset tr, te;
  CHECK_OK(kvi_idx_load_dir(&tr, &te, dir, 0, 0));
  CHECK(tr.n == N && te.n == 2 && te.d == R * C);
  CHECK(tr.nclasses == 5 && te.nclasses == 5); /* shared: max over both */
  CHECK(te.y && te.y[0] == 4 && te.y[1] == 1);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
  CHECK_OK(kvi_idx_load_dir(&tr, &te, dir, 3, 1));
  CHECK(tr.n == 3 && te.n == 1 && tr.nclasses == 5);
  if (tr.n == 3) {
    int bad = 0;
    for (int i = 0; i < 3 * R * C; i++) bad += tr.x[i] != (kvi_real)((double)pix[i] / 255.0);
    CHECK(bad == 0);
  }
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
  CHECK_OK(kvi_data_load_dir(&tr, &te, dir, 0, 0)); /* auto-detects IDX */
  CHECK(tr.n == N && te.n == 2 && tr.c == 1);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);

  CHECK_FAILS(kvi_idx_load_dir(&tr, &te, dir, -1, 0));
  char nodir[600];
  snprintf(nodir, sizeof nodir, "%s/no_such_dir_here", kvi_test_dir());
  CHECK_FAILS(kvi_idx_load_dir(&tr, &te, nodir, 0, 0));
  CHECK_MSG("does not exist");
  CHECK_FAILS(kvi_data_load_dir(&tr, &te, nodir, 0, 0));
  /* a directory without the files */
  char empty[600];
  snprintf(empty, sizeof empty, "%s/data_idx_emptydir", kvi_test_dir());
  mkdir(empty, 0755);
  CHECK_FAILS(kvi_idx_load_dir(&tr, &te, empty, 0, 0));
  CHECK_MSG("train-images-idx3-ubyte");
  CHECK_FAILS(kvi_data_load_dir(&tr, &te, empty, 0, 0));
  CHECK(is_empty(&tr) && is_empty(&te));
  /* a broken test split frees the loaded train split (checked by LeakSanitizer) */
  snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
  CHECK(write_bytes(p, false, buf, 3));
  CHECK_FAILS(kvi_idx_load_dir(&tr, &te, dir, 0, 0));
  CHECK(is_empty(&tr) && is_empty(&te));
}

/* Writes images and labels files from byte arrays, expects kvi_idx_load to fail. */
static void expect_fail(const char *name, const unsigned char *img, size_t li, bool gzi,
                        const unsigned char *lb, size_t ll, bool gzl, const char *msg_part) {
  char pi[512], pl[512], ni[128], nl[128];
  snprintf(ni, sizeof ni, "%s_img%s", name, gzi ? ".gz" : "");
  snprintf(nl, sizeof nl, "%s_lab%s", name, gzl ? ".gz" : "");
  CHECK(write_bytes(tpath(pi, ni), gzi, img, li));
  CHECK(write_bytes(tpath(pl, nl), gzl, lb, ll));
  kvi_dataset ds;
  ds.x = (kvi_real *)&ds; /* garbage: the loader must not free it */
  kvi_clear_error();
  kvi_status s = kvi_idx_load(&ds, pi, pl);
  kvi_test_checks++;
  if (s == KVI_OK || !kvi_last_error()[0]) {
    kvi_test_failures++;
    fprintf(stderr, "%s:%d: case '%s' should fail with a message (got %s)\n", __FILE__, __LINE__,
            name, kvi_status_name(s));
  } else if (msg_part && !strstr(kvi_last_error(), msg_part)) {
    kvi_test_failures++;
    fprintf(stderr, "case '%s': message lacks '%s': %s\n", name, msg_part, kvi_last_error());
  }
  CHECK(is_empty(&ds));
  if (s == KVI_OK) kvi_dataset_free(&ds);
}

/* Cuts the raw (compressed) bytes of a file to keep bytes. */
static void cut_file(const char *path, size_t keep) {
  static unsigned char raw[1 << 16];
  size_t n = read_raw(path, raw, sizeof raw);
  CHECK(n > keep);
  CHECK(write_bytes(path, false, raw, keep));
}

static void test_bad(void) {
  unsigned char img[1024], lb[256], tmp[1024];
  size_t li = idx_images(img, 0x803, N, R, C, pix, sizeof pix);
  size_t ll = idx_labels(lb, 0x801, N, lab, N);
  for (int gz = 0; gz < 2; gz++) {
    char name[64];
#define NAME(s) (snprintf(name, sizeof name, "%s%s", s, gz ? "_gz" : ""), name)
    /* truncated pixel data and labels */
    expect_fail(NAME("trunc_img"), img, li - 5, gz, lb, ll, gz, "truncated");
    expect_fail(NAME("trunc_lab"), img, li, gz, lb, ll - 2, gz, "truncated");
    expect_fail(NAME("trunc_hdr"), img, 10, gz, lb, ll, gz, "truncated");
    expect_fail(NAME("trunc_magic"), img, 2, gz, lb, ll, gz, "truncated");
    /* empty files */
    expect_fail(NAME("empty_img"), img, 0, gz, lb, ll, gz, "empty");
    expect_fail(NAME("empty_lab"), img, li, gz, lb, 0, gz, "empty");
    /* trailing data */
    memcpy(tmp, img, li);
    tmp[li] = 9;
    expect_fail(NAME("trailing"), tmp, li + 1, gz, lb, ll, gz, "more data");
    /* wrong magic, swapped files, unsupported type */
    memcpy(tmp, img, li);
    put_be32(tmp, 0x12345678);
    expect_fail(NAME("magic"), tmp, li, gz, lb, ll, gz, "magic");
    put_be32(tmp, 0x00000804);
    expect_fail(NAME("ndims"), tmp, li, gz, lb, ll, gz, "dimensions");
    put_be32(tmp, 0x00000D03);
    expect_fail(NAME("type"), tmp, li, gz, lb, ll, gz, "0x0d");
    expect_fail(NAME("swapped"), lb, ll, gz, img, li, gz, "swapped");
    /* absurd sizes */
    memcpy(tmp, img, li);
    put_be32(tmp + 4, 200000000u);
    expect_fail(NAME("huge_n"), tmp, li, gz, lb, ll, gz, "limit");
    memcpy(tmp, img, li);
    put_be32(tmp + 8, 5000);
    expect_fail(NAME("huge_rows"), tmp, li, gz, lb, ll, gz, "4096");
    memcpy(tmp, img, li);
    put_be32(tmp + 12, 0);
    expect_fail(NAME("zero_cols"), tmp, li, gz, lb, ll, gz, "pixels");
    memcpy(tmp, img, li);
    put_be32(tmp + 4, 0xFFFFFFFFu);
    expect_fail(NAME("n_ffff"), tmp, li, gz, lb, ll, gz, "limit");
    memcpy(tmp, lb, ll);
    put_be32(tmp + 4, 0xFFFFFFFFu);
    expect_fail(NAME("lab_n_ffff"), img, li, gz, tmp, ll, gz, "limit");
    /* image/label count mismatch */
    size_t ll5 = idx_labels(tmp, 0x801, N - 2, lab, N - 2);
    expect_fail(NAME("mismatch"), img, li, gz, tmp, ll5, gz, "labels");
    /* zero images */
    size_t li0 = idx_images(tmp, 0x803, 0, R, C, pix, 0);
    unsigned char lb0[8];
    size_t ll0 = idx_labels(lb0, 0x801, 0, lab, 0);
    expect_fail(NAME("zero_n"), tmp, li0, gz, lb0, ll0, gz, "0 images");
#undef NAME
  }

  /* gzipped files whose compressed bytes are cut short (an incomplete download) */
  char pi[512], pl[512];
  kvi_dataset ds;
  unsigned char big[16 + 3000];
  for (int i = 0; i < 3000; i++) big[16 + i] = (unsigned char)((i * 7919) >> 3);
  unsigned char biglab[150];
  memset(biglab, 1, sizeof biglab);
  size_t lbig = idx_images(big, 0x803, 150, 4, 5, big + 16, 3000);
  unsigned char labf[8 + 150];
  size_t llbig = idx_labels(labf, 0x801, 150, biglab, 150);
  CHECK(write_bytes(tpath(pi, "cut_img.gz"), true, big, lbig));
  CHECK(write_bytes(tpath(pl, "cut_lab.gz"), true, labf, llbig));
  CHECK_OK(kvi_idx_load(&ds, pi, pl));
  CHECK(ds.n == 150);
  kvi_dataset_free(&ds);
  static unsigned char raw[1 << 16];
  size_t nraw = read_raw(pi, raw, sizeof raw);
  cut_file(pi, nraw / 2);
  CHECK_FAILS(kvi_idx_load(&ds, pi, pl));
  CHECK(is_empty(&ds));
  CHECK(write_bytes(pi, false, raw, nraw - 4)); /* only the gzip trailer cut */
  CHECK_FAILS(kvi_idx_load(&ds, pi, pl));
  CHECK_MSG("gzip");
  /* corrupt compressed data: flip bytes in the middle */
  static unsigned char bad[1 << 16];
  memcpy(bad, raw, nraw);
  for (size_t i = nraw / 3; i < nraw / 3 + 8; i++) bad[i] ^= 0x5A;
  CHECK(write_bytes(pi, false, bad, nraw));
  CHECK_FAILS(kvi_idx_load(&ds, pi, pl));
  CHECK(is_empty(&ds));
  /* labels gz cut */
  CHECK(write_bytes(pi, true, big, lbig));
  size_t nrl = read_raw(pl, raw, sizeof raw);
  cut_file(pl, nrl - 6);
  CHECK_FAILS(kvi_idx_load(&ds, pi, pl));

  /* missing files, directories, bad arguments */
  char nof[512];
  tpath(nof, "does_not_exist");
  CHECK(write_bytes(pl, true, labf, llbig));
  CHECK_FAILS(kvi_idx_load(&ds, nof, pl));
  CHECK_MSG("does_not_exist");
  CHECK_FAILS(kvi_idx_load(&ds, pi, nof));
  CHECK_MSG("does_not_exist");
  CHECK_FAILS(kvi_idx_load(&ds, kvi_test_dir(), pl));
  CHECK_MSG("directory");
  CHECK_FAILS(kvi_idx_load(&ds, NULL, pl));
  CHECK_FAILS(kvi_idx_load(&ds, "", pl));
  CHECK_FAILS(kvi_idx_load(NULL, pi, pl));
  CHECK_FAILS(kvi_idx_load_limit(&ds, pi, pl, -3));
  CHECK(is_empty(&ds));
}

/* ---- a huge header on a tiny file ------------------------------------------------------ */

/* Field `field` of /proc/self/statm (0: virtual size, 1: resident) in bytes; 0 if unknown. */
static size_t statm_bytes(int field) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long v[2] = {0, 0};
  if (!f) return 0;
  int k = fscanf(f, "%lu %lu", &v[0], &v[1]);
  fclose(f);
  return k == 2 ? v[field] * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Child: loads the pair (under RLIMIT_AS = current size + 512 MB unless ASan), writes the peak
 * resident growth in bytes and the message to fd, exits with the status. */
static void huge_child(int fd, const char *pi, const char *pl) {
#ifndef TEST_ASAN
  rlim_t lim = (rlim_t)statm_bytes(0) + ((rlim_t)512 << 20);
  struct rlimit rl = {lim, lim};
  if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(100);
#endif
  size_t rss0 = statm_bytes(1);
  kvi_dataset ds;
  kvi_status s = kvi_idx_load(&ds, pi, pl);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  dprintf(fd, "%lld\n%s", (long long)ru.ru_maxrss * 1024 - (long long)rss0, kvi_last_error());
  if (s == KVI_OK) kvi_dataset_free(&ds);
  _exit((int)s);
}

/* A file pair (about 1 KB gzipped) whose images header claims 800000 28x28 images (2.5 GB as
 * float) with 5 pixel bytes: loading fails as truncated and allocates little (in a child). */
static void test_huge_claim(bool gz) {
  enum { HN = 800000 };
  unsigned char *labf = calloc(8 + HN, 1), img[16 + 5];
  char pi[512], pl[512];
  if (!labf) return;
  put_be32(labf, 0x801); /* all labels 0: compresses to ~1 KB */
  put_be32(labf + 4, HN);
  size_t ll = 8 + HN;
  size_t li = idx_images(img, 0x803, HN, 28, 28, pix, 5);
  CHECK(write_bytes(tpath(pi, gz ? "huge_img.gz" : "huge_img"), gz, img, li));
  CHECK(write_bytes(tpath(pl, gz ? "huge_lab.gz" : "huge_lab"), gz, labf, ll));
  free(labf);
  int fd[2];
  if (pipe(fd) != 0) return;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    huge_child(fd[1], pi, pl);
  }
  close(fd[1]);
  char out[4096];
  size_t len = 0;
  ssize_t k;
  while (len < sizeof out - 1 && (k = read(fd[0], out + len, sizeof out - 1 - len)) > 0)
    len += (size_t)k;
  out[len] = 0;
  close(fd[0]);
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == KVI_ERR_FORMAT);
  long long grow = atoll(out);
  const char *msg = strchr(out, '\n') ? strchr(out, '\n') + 1 : "";
  CHECK(strstr(msg, "truncated") && strstr(msg, "800000 images"));
  CHECK(grow < (256ll << 20));
  const char *t = strstr(msg, "truncated") ? strstr(msg, "truncated") : msg;
  printf("huge header (%s): exit %d, peak resident growth %.1f MB: ...%.*s\n", gz ? "gz" : "plain",
         WIFEXITED(st) ? WEXITSTATUS(st) : -1, (double)grow / 1048576.0, (int)strcspn(t, "\n"), t);
}

/* The real Fashion-MNIST (Debian package dataset-fashion-mnist), when installed. */
static void test_fashion(void) {
  char p[600];
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", FASHION_DIR);
  FILE *f = fopen(p, "rb");
  if (!f) {
    printf("note: %s not found, skipping the Fashion-MNIST check\n", FASHION_DIR);
    return;
  }
  fclose(f);
  double t0 = kvi_time_now();
  kvi_dataset tr, te;
  CHECK_OK(kvi_idx_load_dir(&tr, &te, FASHION_DIR, 0, 0));
  double t1 = kvi_time_now();
  CHECK(tr.n == 60000 && te.n == 10000);
  CHECK(tr.d == 784 && tr.c == 1 && tr.h == 28 && tr.w == 28 && te.d == 784);
  CHECK(tr.nclasses == 10 && te.nclasses == 10);
  if (tr.n == 60000 && te.n == 10000 && tr.x && te.x) {
    int64_t cnt[10] = {0}, cnt_te[10] = {0}, bad = 0;
    for (int64_t i = 0; i < tr.n; i++) {
      if (tr.y[i] < 0 || tr.y[i] > 9)
        bad++;
      else
        cnt[tr.y[i]]++;
    }
    for (int64_t i = 0; i < te.n; i++) {
      if (te.y[i] < 0 || te.y[i] > 9)
        bad++;
      else
        cnt_te[te.y[i]]++;
    }
    CHECK(bad == 0);
    for (int c = 0; c < 10; c++) {
      CHECK(cnt[c] == 6000);
      CHECK(cnt_te[c] == 1000);
    }
    kvi_real mn = 1, mx = 0;
    double sum = 0;
    for (int64_t i = 0; i < tr.n * tr.d; i++) {
      kvi_real v = tr.x[i];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
      sum += (double)v;
    }
    CHECK(mn == 0 && mx == 1);
    double mean = sum / (double)(tr.n * tr.d);
    CHECK(mean > 0.25 && mean < 0.35); /* Fashion-MNIST pixel mean is 0.286 */
    printf("Fashion-MNIST: %lld train, %lld test, pixel mean %.4f, loaded in %.2f s\n",
           (long long)tr.n, (long long)te.n, mean, t1 - t0);
  }
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
  CHECK_OK(kvi_idx_load_dir(&tr, &te, FASHION_DIR, 1000, 500));
  CHECK(tr.n == 1000 && te.n == 500 && tr.nclasses == 10);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
}

int main(void) {
  make_data();
  test_good();
  test_dir();
  test_bad();
  test_huge_claim(true);
  test_huge_claim(false);
  test_fashion();
  TEST_MAIN_END();
}
