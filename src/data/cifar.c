/* CIFAR-10 binary batches: each record is 1 label byte (0..9) followed by 3072 pixel bytes,
 * 1024 red, 1024 green, 1024 blue, each channel 32x32 row-major (so CHW). The official archive
 * cifar-10-binary.tar.gz unpacks to cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

#define KVI_CIFAR_C 3
#define KVI_CIFAR_HW 32
#define KVI_CIFAR_PIX (KVI_CIFAR_C * KVI_CIFAR_HW * KVI_CIFAR_HW) /* 3072 */
#define KVI_CIFAR_REC (1 + KVI_CIFAR_PIX)                         /* 3073 */
#define KVI_CIFAR_MAX_BYTES ((size_t)KVI_CIFAR_REC * 10000000u)   /* 10M records per file */

/* Raw records of one batch file (malloc'd), checked: size a multiple of 3073, labels < 10. */
static kvi_status kvi__cifar_raw(const char *path, unsigned char **raw, int64_t *nrec) {
  *raw = NULL;
  *nrec = 0;
  kvi__reader r;
  kvi_status s = kvi__reader_open(&r, path, "CIFAR-10 batch file");
  if (s != KVI_OK) return s;
  unsigned char *buf = NULL;
  size_t got = 0;
  s = kvi__reader_read_all(&r, KVI_CIFAR_MAX_BYTES, &buf, &got);
  if (s == KVI_OK && got == KVI_CIFAR_MAX_BYTES)
    s = kvi__reader_expect_end(&r, "a CIFAR-10 batch holds at most 10 million records");
  kvi__reader_close(&r);
  if (s != KVI_OK) {
    free(buf);
    return s;
  }
  if (got == 0) {
    free(buf);
    return kvi_fail(KVI_ERR_FORMAT,
                    "CIFAR-10 batch file '%s' is empty, expected records of %d bytes (1 label + "
                    "3072 pixels)",
                    path, KVI_CIFAR_REC);
  }
  if (got % KVI_CIFAR_REC != 0) {
    free(buf);
    const char *hint =
        got % (KVI_CIFAR_REC + 1) == 0
            ? "the size fits CIFAR-100 records (2 label bytes), which are not supported"
            : "the file may be truncated or not a CIFAR-10 binary batch (the python pickles "
              "data_batch_1 without .bin are not supported: use cifar-10-binary.tar.gz)";
    return kvi_fail(KVI_ERR_FORMAT,
                    "CIFAR-10 batch file '%s' has %zu bytes, expected a multiple of %d (1 label + "
                    "3072 pixel bytes per record); the last record has only %zu bytes\nHINT: %s",
                    path, got, KVI_CIFAR_REC, got % KVI_CIFAR_REC, hint);
  }
  int64_t n = (int64_t)(got / KVI_CIFAR_REC);
  for (int64_t i = 0; i < n; i++) {
    unsigned lab = buf[(size_t)i * KVI_CIFAR_REC];
    if (lab >= 10) {
      free(buf);
      return kvi_fail(KVI_ERR_FORMAT,
                      "CIFAR-10 batch file '%s': record %lld (byte offset %lld) has label %u, "
                      "expected 0..9\nHINT: CIFAR-100 (2 label bytes per record) is not "
                      "supported",
                      path, (long long)i, (long long)(i * KVI_CIFAR_REC), lab);
    }
  }
  *raw = buf;
  *nrec = n;
  return KVI_OK;
}

/* Converts m records of raw into rows [row0, row0 + m) of ds (numbers, or bytes into x8). */
static void kvi__cifar_convert(kvi_dataset *ds, int64_t row0, const unsigned char *raw, int64_t m) {
  kvi_real lut[256];
  kvi__byte_scale(lut);
#pragma omp parallel for schedule(static) if (m > 1024)
  for (int64_t i = 0; i < m; i++) {
    const unsigned char *rec = raw + (size_t)i * KVI_CIFAR_REC;
    ds->y[row0 + i] = rec[0];
    /* the file is CHW (1024 red, 1024 green, 1024 blue); kronvi stores HWC */
    if (ds->x8) {
      uint8_t *x = ds->x8 + (size_t)(row0 + i) * KVI_CIFAR_PIX;
      for (int ch = 0; ch < 3; ch++)
        for (int q = 0; q < 1024; q++) x[q * 3 + ch] = rec[1 + ch * 1024 + q];
      continue;
    }
    kvi_real *x = ds->x + (size_t)(row0 + i) * KVI_CIFAR_PIX;
    for (int ch = 0; ch < 3; ch++)
      for (int q = 0; q < 1024; q++) x[q * 3 + ch] = lut[rec[1 + ch * 1024 + q]];
  }
}

kvi_status kvi_cifar_load_file(kvi_dataset *out, const char *path) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "kvi_cifar_load_file: output dataset is NULL");
  kvi_dataset_init(out);
  unsigned char *raw = NULL;
  int64_t n = 0;
  kvi_status s = kvi__cifar_raw(path, &raw, &n);
  if (s != KVI_OK) return s;
  s = kvi_dataset_alloc(out, n, KVI_CIFAR_PIX, KVI_CIFAR_C, KVI_CIFAR_HW, KVI_CIFAR_HW, 10, 0);
  if (s == KVI_OK) kvi__cifar_convert(out, 0, raw, n);
  free(raw);
  return s;
}

/* Loads files[0..nf) one after the other into out, stopping once `limit` rows are in (0 = all). */
static kvi_status kvi__cifar_load_files(kvi_dataset *out, char (*files)[4096], int nf,
                                        int64_t limit, bool bytes) {
  unsigned char *raw[8] = {0};
  int64_t nrec[8] = {0}, total = 0;
  kvi_status s = KVI_OK;
  int used = 0;
  for (int f = 0; f < nf && s == KVI_OK; f++) {
    if (limit > 0 && total >= limit) break;
    s = kvi__cifar_raw(files[f], &raw[f], &nrec[f]);
    if (s == KVI_OK) {
      total += nrec[f];
      used = f + 1;
    }
  }
  int64_t keep = (limit > 0 && limit < total) ? limit : total;
  if (s == KVI_OK)
    s = bytes ? kvi__dataset_alloc_bytes(out, keep, KVI_CIFAR_PIX, KVI_CIFAR_C, KVI_CIFAR_HW,
                                         KVI_CIFAR_HW, 10, NULL)
              : kvi_dataset_alloc(out, keep, KVI_CIFAR_PIX, KVI_CIFAR_C, KVI_CIFAR_HW, KVI_CIFAR_HW,
                                  10, 0);
  int64_t row = 0;
  for (int f = 0; f < used && s == KVI_OK && row < keep; f++) {
    int64_t m = nrec[f] < keep - row ? nrec[f] : keep - row;
    kvi__cifar_convert(out, row, raw[f], m);
    row += m;
  }
  for (int f = 0; f < nf; f++) free(raw[f]);
  if (s != KVI_OK) kvi_dataset_free(out);
  return s;
}

kvi_status kvi__cifar_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                               int64_t limit_train, int64_t limit_test, bool bytes) {
  if (!train || !test || train == test)
    return kvi_fail(KVI_ERR_ARG, "kvi_cifar_load_dir: expected two distinct output datasets");
  kvi_dataset_init(train);
  kvi_dataset_init(test);
  if (!dir || !dir[0]) return kvi_fail(KVI_ERR_ARG, "kvi_cifar_load_dir: no directory given");
  if (limit_train < 0 || limit_test < 0)
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_cifar_load_dir: limits must be >= 0 (0 = all), got %lld, %lld",
                    (long long)limit_train, (long long)limit_test);
  if (!kvi__dir_exists(dir))
    return kvi_fail(KVI_ERR_IO,
                    "CIFAR-10 directory '%s' does not exist\nHINT: unpack cifar-10-binary.tar.gz "
                    "and point --data at cifar-10-batches-bin (or the directory holding it)",
                    dir);
  /* dir itself, or the archive's subdirectory cifar-10-batches-bin inside it */
  char base[4096], probe[4096];
  bool in_dir =
      kvi__path_join(probe, sizeof probe, dir, "data_batch_1.bin") && kvi__file_exists(probe);
  if (in_dir || !kvi__path_join(base, sizeof base, dir, "cifar-10-batches-bin") ||
      !kvi__dir_exists(base))
    snprintf(base, sizeof base, "%s", dir);
  static const char *names[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                 "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
  char files[6][4096];
  char missing[512] = "";
  for (int i = 0; i < 6; i++) {
    if (!kvi__path_join(files[i], sizeof files[i], base, names[i]))
      return kvi_fail(KVI_ERR_ARG, "CIFAR-10 directory path '%s' is too long", dir);
    if (!kvi__file_exists(files[i])) {
      size_t l = strlen(missing);
      snprintf(missing + l, sizeof missing - l, "%s%s", l ? ", " : "", names[i]);
    }
  }
  if (missing[0])
    return kvi_fail(KVI_ERR_IO,
                    "CIFAR-10 directory '%s' lacks %s\nHINT: expected data_batch_1.bin .. "
                    "data_batch_5.bin and test_batch.bin from cifar-10-binary.tar.gz",
                    base, missing);
  kvi_status s = kvi__cifar_load_files(train, files, 5, limit_train, bytes);
  if (s != KVI_OK) return s;
  s = kvi__cifar_load_files(test, files + 5, 1, limit_test, bytes);
  if (s != KVI_OK) kvi_dataset_free(train);
  return s;
}

kvi_status kvi_cifar_load_dir(kvi_dataset *train, kvi_dataset *test, const char *dir,
                              int64_t limit_train, int64_t limit_test) {
  return kvi__cifar_load_dir(train, test, dir, limit_train, limit_test, false);
}
