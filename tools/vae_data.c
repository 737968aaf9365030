/* kronvi vae binarize, and the data helpers of the vae commands. Static binarization (as for the
 * binarized MNIST of Larochelle & Murray 2011): every pixel becomes 1 with probability equal to
 * its intensity, sampled once with a fixed seed and saved, so that every run and every family
 * sees the same bits. The bits are written as IDX files (gzipped) with the values 0 and 255,
 * which every IDX reader shows as black and white and kronvi reads as exactly 0 and 1. */
#define _XOPEN_SOURCE 700 /* realpath, mkdir */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "vae_cli.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

const char *vae_family_label(const kvi_vae_config *c) {
  static char buf[48];
  if (c->head.family == KVI_VAE_MN)
    snprintf(buf, sizeof buf, "mn %dx%d", c->head.p, c->head.q);
  else
    snprintf(buf, sizeof buf, "%s", kvi_vae_family_name(c->head.family));
  return buf;
}

bool vae_parse_shape(const char *s, int *p, int *q) {
  char *end = NULL;
  long a = strtol(s, &end, 10), b = 0;
  if (end && end != s && (*end == 'x' || *end == 'X')) {
    const char *t = end + 1;
    b = strtol(t, &end, 10);
    if (end == t) b = 0;
  }
  if (!end || *end || a < 1 || b < 1 || a > KVI_VAE_MAX_LATENT || b > KVI_VAE_MAX_LATENT) {
    fprintf(stderr, "kronvi: --mn-shape expects PxQ with positive P and Q, e.g. 20x2, got '%s'\n",
            s);
    return false;
  }
  *p = (int)a, *q = (int)b;
  return true;
}

kvi_status vae_load_data(kvi_dataset *train, kvi_dataset *test, const char *dir, bool want_train,
                         int64_t limit_train, bool want_test, int64_t limit_test) {
  kvi_status s = cli_load_data(train, test, dir, false, 0, NULL, want_train ? limit_train : 1,
                               want_test ? limit_test : 1);
  if (!s) s = kvi_dataset_expand(train); /* the VAE reads its images as numbers */
  if (!s) s = kvi_dataset_expand(test);
  if (s) {
    kvi_dataset_free(train), kvi_dataset_free(test);
    return s;
  }
  char what[PATH_MAX + 32];
  if (want_train) {
    snprintf(what, sizeof what, "%s, training images", dir);
    s = kvi_vae_check_binary(train->x, train->n, train->d, what);
  }
  if (!s && want_test) {
    snprintf(what, sizeof what, "%s, test images", dir);
    s = kvi_vae_check_binary(test->x, test->n, test->d, what);
  }
  if (s) kvi_dataset_free(train), kvi_dataset_free(test);
  return s;
}

kvi_status vae_split_tail(kvi_dataset *ds, kvi_dataset *val, int64_t nval) {
  kvi_dataset_init(val);
  if (nval <= 0) return KVI_OK;
  if (nval >= ds->n)
    return kvi_fail(KVI_ERR_ARG,
                    "%lld validation images leave none of the %lld training images to train on",
                    (long long)nval, (long long)ds->n);
  kvi_status s = kvi_dataset_alloc(val, nval, ds->d, ds->c, ds->h, ds->w, 0, 0);
  if (s) return s;
  memcpy(val->x, ds->x + (size_t)(ds->n - nval) * ds->d, (size_t)nval * ds->d * sizeof *val->x);
  return kvi_dataset_truncate(ds, ds->n - nval);
}

/* ---- binarize ------------------------------------------------------------------------------- */
static const char *BIN_USAGE =
    "usage: kronvi vae binarize --data DIR --out DIR [--seed S] [--limit-train N] [--limit-test "
    "N]\n"
    "  Binarizes the IDX images of DIR (e.g. /usr/share/datasets/fashion-mnist) once: each pixel\n"
    "  becomes 1 with probability equal to its intensity in [0, 1] (image i of the training set\n"
    "  draws from the stream (S, i), of the test set from (S, 2^32 + i); default S = 1), and\n"
    "  writes {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz to the --out directory (created if\n"
    "  missing; the pixels are stored as 0 and 255, the labels copied), which 'kronvi vae train'\n"
    "  and 'eval' then read. --limit-train / --limit-test keep the first N images.\n";

/* The gzip stream of data[0..len) into *out (malloc'd). */
static kvi_status gzip_bytes(unsigned char **out, size_t *out_len, const unsigned char *data,
                             size_t len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return kvi_fail(KVI_ERR_NOMEM, "zlib: deflateInit2 failed");
  const size_t cap = deflateBound(&z, (uLong)len) + 64;
  unsigned char *buf = malloc(cap);
  if (!buf) {
    deflateEnd(&z);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  z.next_in = (Bytef *)(uintptr_t)data, z.avail_in = (uInt)len;
  z.next_out = buf, z.avail_out = (uInt)cap;
  const int r = deflate(&z, Z_FINISH);
  *out_len = cap - z.avail_out;
  deflateEnd(&z);
  if (r != Z_STREAM_END) {
    free(buf);
    return kvi_fail(KVI_ERR_IO, "zlib: deflate failed (%d)", r);
  }
  *out = buf;
  return KVI_OK;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Writes dir/name (gzipped) from the raw IDX bytes. */
static kvi_status write_idx(const char *dir, const char *name, const unsigned char *raw,
                            size_t len) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
    return kvi_fail(KVI_ERR_ARG, "--out %s: path too long", dir);
  unsigned char *gz = NULL;
  size_t gl = 0;
  kvi_status s = gzip_bytes(&gz, &gl, raw, len);
  if (!s) s = kvi_write_file_atomic(path, gz, gl);
  free(gz);
  return s;
}

/* One split: images (bits 0 / 255) and labels; *ones receives the fraction of ones. */
static kvi_status binarize_split(const kvi_dataset *ds, const char *dir, const char *prefix,
                                 uint64_t seed, uint64_t stream0, double *ones) {
  const size_t n = (size_t)ds->n, D = (size_t)ds->d;
  unsigned char *img = malloc(16 + n * D), *lab = malloc(8 + n);
  kvi_real *u = kvi_alloc(D * sizeof *u);
  if (!img || !lab || !u) {
    free(img), free(lab), kvi_free(u);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  put_be32(img, 0x803), put_be32(img + 4, (uint32_t)n);
  put_be32(img + 8, (uint32_t)ds->h), put_be32(img + 12, (uint32_t)ds->w);
  put_be32(lab, 0x801), put_be32(lab + 4, (uint32_t)n);
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    kvi_rng rng = kvi_rng_stream(seed, stream0 + i);
    kvi_rng_uniform(&rng, u, D);
    for (size_t j = 0; j < D; j++) {
      const bool bit = u[j] < ds->x[i * D + j];
      img[16 + i * D + j] = bit ? 255 : 0;
      count += bit;
    }
    lab[8 + i] = (unsigned char)(ds->y ? ds->y[i] : 0);
  }
  *ones = n ? (double)count / (double)(n * D) : 0;
  char name[64];
  snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
  kvi_status s = write_idx(dir, name, img, 16 + n * D);
  snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
  if (!s) s = write_idx(dir, name, lab, 8 + n);
  free(img), free(lab), kvi_free(u);
  return s;
}

/* --out: created if missing; never the --data directory itself. */
static int prepare_out_dir(const char *out, const char *data) {
  struct stat st;
  if (stat(out, &st) != 0) {
    if (errno != ENOENT || mkdir(out, 0777) != 0) {
      fprintf(stderr, "kronvi: --out %s: %s\n", out, strerror(errno));
      return 1;
    }
  } else if (!S_ISDIR(st.st_mode)) {
    fprintf(stderr, "kronvi: --out %s: not a directory\n", out);
    return 1;
  }
  char a[PATH_MAX], b[PATH_MAX];
  if (realpath(out, a) && realpath(data, b) && !strcmp(a, b)) {
    fprintf(stderr, "kronvi: --out is the --data directory: its files would be replaced\n");
    return 1;
  }
  return 0;
}

int vae_binarize(int argc, char **argv) {
  static const struct option opts[] = {{"data", 1, 0, 'd'},
                                       {"out", 1, 0, 'o'},
                                       {"seed", 1, 0, 's'},
                                       {"limit-train", 1, 0, 't'},
                                       {"limit-test", 1, 0, 'e'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *data = NULL, *out = NULL;
  long seed = 1, lt = 0, le = 0;
  optind = 1;
  opterr = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    bool ok = true;
    if (c == 'h') {
      printf("%s", BIN_USAGE);
      return 0;
    }
    if (c == 'd')
      data = optarg;
    else if (c == 'o')
      out = optarg;
    else if (c == 's')
      ok = cli_int("--seed", optarg, 0, 2147483647, &seed);
    else if (c == 't')
      ok = cli_int("--limit-train", optarg, 1, 1000000000, &lt);
    else if (c == 'e')
      ok = cli_int("--limit-test", optarg, 1, 1000000000, &le);
    else
      ok = false;
    if (!ok) {
      fprintf(stderr, "%s", BIN_USAGE);
      return 2;
    }
  }
  if (!data || !out || optind != argc) {
    fprintf(stderr, "kronvi: --data and --out are required\n%s", BIN_USAGE);
    return 2;
  }
  kvi_dataset train, test;
  if (kvi_idx_load_dir(&train, &test, data, lt, le)) return cli_error("cannot load data");
  int rc = 0;
  if (train.c != 1 || test.c != 1 || train.h <= 0) {
    fprintf(stderr, "kronvi: %s: binarize takes gray IDX images\n", data);
    rc = 1;
  }
  if (!rc) rc = prepare_out_dir(out, data);
  double f1 = 0, f2 = 0;
  if (!rc && (binarize_split(&train, out, "train", (uint64_t)seed, 0, &f1) ||
              binarize_split(&test, out, "t10k", (uint64_t)seed, 1ull << 32, &f2)))
    rc = cli_error("binarize");
  if (!rc)
    printf(
        "binarized %lld training and %lld test images of %s with seed %ld (ones: %.1f%% and "
        "%.1f%% of the pixels) into %s\n",
        (long long)train.n, (long long)test.n, data, seed, 100 * f1, 100 * f2, out);
  kvi_dataset_free(&train), kvi_dataset_free(&test);
  return rc;
}
