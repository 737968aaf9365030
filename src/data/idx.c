/* IDX files (the MNIST / Fashion-MNIST format), gzipped or plain.
 *
 * Layout (big-endian): magic 00 00 TT DD (TT = element type, 08 = unsigned byte; DD = number of
 * dimensions), then DD 32-bit sizes, then the elements in row-major order. Images: 00 00 08 03,
 * sizes (n, rows, cols); labels: 00 00 08 01, size (n). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

#define KVI_IDX_MAX_N 100000000LL     /* rows */
#define KVI_IDX_MAX_SIDE 4096         /* rows / cols of one image */
#define KVI_IDX_MAX_BYTES (1LL << 34) /* n * rows * cols */
#define KVI_IDX_HINT                                                      \
  "expected an MNIST-format IDX file (e.g. train-images-idx3-ubyte.gz / " \
  "train-labels-idx1-ubyte.gz)"
#define KVI_IDX_HINT_SIZES                                                                      \
  "the sizes in the header disagree with the data: the file is corrupt or not an MNIST-format " \
  "IDX file"

static uint32_t kvi__be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Reads and checks the header: magic 00 00 08 ndims, then ndims sizes into dims. */
static kvi_status kvi__idx_header(kvi__reader *r, int ndims, uint32_t *dims) {
  unsigned char h[16];
  size_t got = 0;
  kvi_status s = kvi__reader_read(r, h, 4, &got);
  if (s != KVI_OK) return s;
  if (got == 0)
    return kvi_fail(KVI_ERR_FORMAT, "%s '%s' is empty\nHINT: %s", r->what, r->path, KVI_IDX_HINT);
  if (got < 4)
    return kvi_fail(KVI_ERR_FORMAT, "%s '%s' is truncated: %zu bytes, shorter than a 4-byte magic",
                    r->what, r->path, got);
  const char *want = ndims == 3 ? "00 00 08 03" : "00 00 08 01";
  if (h[0] != 0 || h[1] != 0)
    return kvi_fail(
        KVI_ERR_FORMAT,
        "%s '%s' is not an IDX file: magic %02x %02x %02x %02x, expected %s%s\nHINT: %s", r->what,
        r->path, h[0], h[1], h[2], h[3], want,
        (h[0] == 0x1f && h[1] == 0x8b) ? " (the data is gzipped twice?)" : "", KVI_IDX_HINT);
  if (h[2] != 0x08)
    return kvi_fail(KVI_ERR_UNSUPPORTED,
                    "%s '%s': IDX element type 0x%02x is not supported, expected 0x08 (unsigned "
                    "bytes; magic %s)",
                    r->what, r->path, h[2], want);
  if (h[3] != ndims) {
    const char *swap = (ndims == 3 && h[3] == 1)   ? "; this looks like a labels file: are the "
                                                     "images and labels paths swapped?"
                       : (ndims == 1 && h[3] == 3) ? "; this looks like an images file: are the "
                                                     "images and labels paths swapped?"
                                                   : "";
    return kvi_fail(KVI_ERR_FORMAT,
                    "%s '%s': IDX header has %d dimensions, expected %d (magic %s)%s", r->what,
                    r->path, h[3], ndims, want, swap);
  }
  s = kvi__reader_read(r, h, 4 * (size_t)ndims, &got);
  if (s != KVI_OK) return s;
  if (got < 4 * (size_t)ndims)
    return kvi_fail(KVI_ERR_FORMAT, "%s '%s' is truncated inside its header (%zu of %d size bytes)",
                    r->what, r->path, got, 4 * ndims);
  for (int i = 0; i < ndims; i++) dims[i] = kvi__be32(h + 4 * i);
  if ((int64_t)dims[0] > KVI_IDX_MAX_N)
    return kvi_fail(KVI_ERR_FORMAT,
                    "%s '%s': header declares %u items, more than the limit of %lld (corrupt "
                    "header?)",
                    r->what, r->path, dims[0], KVI_IDX_MAX_N);
  return KVI_OK;
}

/* All labels of a labels file into a new malloc'd array; *maxlab = largest label (-1 if none). */
static kvi_status kvi__idx_labels(const char *path, unsigned char **lab, int64_t *n, int *maxlab) {
  kvi__reader r;
  *lab = NULL;
  kvi_status s = kvi__reader_open(&r, path, "IDX labels file");
  if (s != KVI_OK) return s;
  uint32_t dims[1];
  s = kvi__idx_header(&r, 1, dims);
  unsigned char *buf = NULL;
  size_t got = 0;
  if (s == KVI_OK && dims[0] > 0) s = kvi__reader_read_all(&r, dims[0], &buf, &got);
  if (s == KVI_OK && got < dims[0])
    s = kvi_fail(KVI_ERR_FORMAT,
                 "IDX labels file '%s' is truncated: header declares %u labels, the data ends "
                 "after %zu\nHINT: the file may be an incomplete download%s",
                 path, dims[0], got, r.gzipped ? "; test it with `gzip -t`" : "");
  if (s == KVI_OK) s = kvi__reader_expect_end(&r, KVI_IDX_HINT_SIZES);
  kvi__reader_close(&r);
  if (s != KVI_OK) {
    free(buf);
    return s;
  }
  int mx = -1;
  for (size_t i = 0; i < got; i++)
    if (buf[i] > mx) mx = buf[i];
  *lab = buf;
  *n = (int64_t)dims[0];
  *maxlab = mx;
  return KVI_OK;
}

/* The pixel bytes of the first keep of n images (each rows x cols) into a new malloc'd array.
 * The buffer grows with the data that actually arrives (capped by the header's claim), so a
 * truncated file with a huge header allocates little; the dataset is allocated only after. */
static kvi_status kvi__idx_pixels(kvi__reader *r, int64_t n, int64_t keep, int rows, int cols,
                                  unsigned char **pix) {
  size_t d = (size_t)rows * (size_t)cols, got = 0;
  kvi_status s = kvi__reader_read_all(r, (size_t)keep * d, pix, &got);
  if (s == KVI_OK && got < (size_t)keep * d)
    s = kvi_fail(KVI_ERR_FORMAT,
                 "IDX images file '%s' is truncated: header declares %lld images of %d x %d "
                 "(%lld pixel bytes), the data ends after %lld bytes (inside image %lld)\nHINT: "
                 "the file may be an incomplete download%s",
                 r->path, (long long)n, rows, cols, (long long)(n * (int64_t)d), (long long)got,
                 (long long)(got / d), r->gzipped ? "; test it with `gzip -t`" : "");
  if (s == KVI_OK && keep == n) s = kvi__reader_expect_end(r, KVI_IDX_HINT_SIZES);
  if (s != KVI_OK) {
    free(*pix);
    *pix = NULL;
  }
  return s;
}

/* kvi_idx_load_limit; bytes: the dataset keeps the pixel bytes as read (x8), no float copy. */
static kvi_status kvi__idx_load(kvi_dataset *out, const char *images_path, const char *labels_path,
                                int64_t limit, bool bytes) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "kvi_idx_load: output dataset is NULL");
  kvi_dataset_init(out);
  if (limit < 0)
    return kvi_fail(KVI_ERR_ARG, "kvi_idx_load: expected limit >= 0 (0 = all rows), got %lld",
                    (long long)limit);
  unsigned char *lab = NULL;
  int64_t nl = 0;
  int maxlab = -1;
  kvi_status s = kvi__idx_labels(labels_path, &lab, &nl, &maxlab);
  if (s != KVI_OK) return s;

  kvi__reader r;
  s = kvi__reader_open(&r, images_path, "IDX images file");
  if (s != KVI_OK) {
    free(lab);
    return s;
  }
  uint32_t dims[3] = {0, 0, 0};
  s = kvi__idx_header(&r, 3, dims);
  int64_t n = dims[0];
  int rows = (int)dims[1], cols = (int)dims[2];
  if (s == KVI_OK &&
      (dims[1] < 1 || dims[1] > KVI_IDX_MAX_SIDE || dims[2] < 1 || dims[2] > KVI_IDX_MAX_SIDE))
    s = kvi_fail(KVI_ERR_FORMAT,
                 "IDX images file '%s': header declares images of %u x %u pixels, expected rows "
                 "and cols in 1..%d (corrupt header?)",
                 images_path, dims[1], dims[2], KVI_IDX_MAX_SIDE);
  if (s == KVI_OK && n * rows * cols > KVI_IDX_MAX_BYTES)
    s = kvi_fail(KVI_ERR_FORMAT,
                 "IDX images file '%s': header declares %lld images of %d x %d = %lld bytes, more "
                 "than the limit of %lld (corrupt header?)",
                 images_path, (long long)n, rows, cols, (long long)(n * rows * cols),
                 KVI_IDX_MAX_BYTES);
  if (s == KVI_OK && n != nl)
    s = kvi_fail(KVI_ERR_SHAPE,
                 "IDX images file '%s' declares %lld images but labels file '%s' declares %lld "
                 "labels\nHINT: the two files must belong to the same split (train-* with train-*, "
                 "t10k-* with t10k-*)",
                 images_path, (long long)n, labels_path, (long long)nl);
  if (s == KVI_OK && n == 0)
    s = kvi_fail(KVI_ERR_FORMAT, "IDX images file '%s' declares 0 images", images_path);
  int64_t keep = (limit > 0 && limit < n) ? limit : n;
  size_t d = (size_t)rows * (size_t)cols;
  unsigned char *pix = NULL;
  if (s == KVI_OK) s = kvi__idx_pixels(&r, n, keep, rows, cols, &pix);
  kvi__reader_close(&r);
  if (s == KVI_OK && bytes) {
    s = kvi__dataset_alloc_bytes(out, keep, rows * cols, 1, rows, cols, maxlab + 1, pix);
    if (s == KVI_OK) {
      pix = NULL; /* the dataset's now */
      for (int64_t i = 0; i < keep; i++) out->y[i] = lab[i];
    }
  } else if (s == KVI_OK) {
    s = kvi_dataset_alloc(out, keep, rows * cols, 1, rows, cols, maxlab + 1, 0);
  }
  if (s == KVI_OK && !bytes) {
    kvi_real lut[256];
    kvi__byte_scale(lut);
    for (size_t q = 0; q < (size_t)keep * d; q++) out->x[q] = lut[pix[q]];
    for (int64_t i = 0; i < keep; i++) out->y[i] = lab[i];
  }
  free(pix);
  free(lab);
  return s;
}

kvi_status kvi_idx_load_limit(kvi_dataset *out, const char *images_path, const char *labels_path,
                              int64_t limit) {
  return kvi__idx_load(out, images_path, labels_path, limit, false);
}

kvi_status kvi_idx_load(kvi_dataset *out, const char *images_path, const char *labels_path) {
  return kvi_idx_load_limit(out, images_path, labels_path, 0);
}

/* Finds "<split>-<kind>-<idxN>-ubyte" in dir, plain or .gz, or the "<split>-<kind>.<idxN>-ubyte"
 * spelling. */
static bool kvi__idx_find(char *out, size_t cap, const char *dir, const char *split,
                          const char *kind, const char *idxn) {
  static const char *fmts[] = {"%s-%s-%s-ubyte", "%s-%s-%s-ubyte.gz", "%s-%s.%s-ubyte",
                               "%s-%s.%s-ubyte.gz"};
  for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
    char name[128];
    snprintf(name, sizeof name, fmts[i], split, kind, idxn);
    if (kvi__path_join(out, cap, dir, name) && kvi__file_exists(out)) return true;
  }
  return false;
}

/* True if dir holds the training images of an IDX dataset (for kvi_data_load_dir). */
static bool kvi__idx_present(const char *dir) {
  char p[4096];
  return kvi__idx_find(p, sizeof p, dir, "train", "images", "idx3");
}

kvi_status kvi__idx_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                             int64_t limit_train, int64_t limit_test, bool bytes) {
  if (!train || !test || train == test)
    return kvi_fail(KVI_ERR_ARG, "kvi_idx_load_dir: expected two distinct output datasets");
  kvi_dataset_init(train);
  kvi_dataset_init(test);
  if (!dir || !dir[0]) return kvi_fail(KVI_ERR_ARG, "kvi_idx_load_dir: no directory given");
  if (limit_train < 0 || limit_test < 0)
    return kvi_fail(KVI_ERR_ARG, "kvi_idx_load_dir: limits must be >= 0 (0 = all), got %lld, %lld",
                    (long long)limit_train, (long long)limit_test);
  if (!kvi__dir_exists(dir))
    return kvi_fail(KVI_ERR_IO,
                    "data directory '%s' does not exist\nHINT: Fashion-MNIST is installed by the "
                    "Debian package dataset-fashion-mnist in /usr/share/datasets/fashion-mnist",
                    dir);
  static const char *splits[2] = {"train", "t10k"};
  char paths[4][4096];
  for (int i = 0; i < 4; i++) {
    const char *split = splits[i / 2];
    const char *kind = (i % 2) ? "labels" : "images";
    const char *idxn = (i % 2) ? "idx1" : "idx3";
    if (!kvi__idx_find(paths[i], sizeof paths[i], dir, split, kind, idxn))
      return kvi_fail(KVI_ERR_IO,
                      "no IDX file %s-%s-%s-ubyte[.gz] in '%s'\nHINT: expected train-images-idx3-"
                      "ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
                      "t10k-labels-idx1-ubyte (each plain or .gz), as in MNIST and Fashion-MNIST",
                      split, kind, idxn, dir);
  }
  kvi_status s = kvi__idx_load(train, paths[0], paths[1], limit_train, bytes);
  if (s != KVI_OK) return s;
  s = kvi__idx_load(test, paths[2], paths[3], limit_test, bytes);
  if (s != KVI_OK) {
    kvi_dataset_free(train);
    return s;
  }
  if (train->w != test->w || train->h != test->h) {
    int th = train->h, tw = train->w;
    kvi_dataset_free(train);
    kvi_dataset_free(test);
    return kvi_fail(KVI_ERR_SHAPE, "IDX data in '%s': train images are %dx%d, test images %dx%d",
                    dir, th, tw, test->h, test->w);
  }
  int nc = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
  train->nclasses = test->nclasses = nc;
  return KVI_OK;
}

kvi_status kvi_idx_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                            int64_t limit_train, int64_t limit_test) {
  return kvi__idx_load_dir(train, test, dir, limit_train, limit_test, false);
}

/* ---- any format -------------------------------------------------------------------------- */

static kvi_status kvi__data_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                                     int64_t limit_train, int64_t limit_test, bool bytes) {
  if (train) kvi_dataset_init(train);
  if (test) kvi_dataset_init(test);
  if (!dir || !dir[0]) return kvi_fail(KVI_ERR_ARG, "kvi_data_load_dir: no directory given");
  if (!kvi__dir_exists(dir))
    return kvi_fail(KVI_ERR_IO,
                    "data directory '%s' does not exist\nHINT: Fashion-MNIST is installed by the "
                    "Debian package dataset-fashion-mnist in /usr/share/datasets/fashion-mnist",
                    dir);
  if (kvi__idx_present(dir))
    return kvi__idx_load_dir(train, test, dir, limit_train, limit_test, bytes);
  char p[4096];
  if ((kvi__path_join(p, sizeof p, dir, "data_batch_1.bin") && kvi__file_exists(p)) ||
      (kvi__path_join(p, sizeof p, dir, "cifar-10-batches-bin/data_batch_1.bin") &&
       kvi__file_exists(p)))
    return kvi__cifar_load_dir(train, test, dir, limit_train, limit_test, bytes);
  return kvi_fail(KVI_ERR_IO,
                  "'%s' holds neither IDX files (train-images-idx3-ubyte[.gz], ...) nor CIFAR-10 "
                  "batches (data_batch_1.bin, ..., test_batch.bin)\nHINT: point --data at the "
                  "directory with the files, e.g. /usr/share/datasets/fashion-mnist",
                  dir);
}

kvi_status kvi_data_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                             int64_t limit_train, int64_t limit_test) {
  return kvi__data_load_dir(train, test, dir, limit_train, limit_test, false);
}

kvi_status kvi_data_load_dir_bytes(kvi_dataset *train, kvi_dataset *test, const char *dir,
                                   int64_t limit_train, int64_t limit_test) {
  return kvi__data_load_dir(train, test, dir, limit_train, limit_test, true);
}
