/* Datasets held as bytes (kvi_data_load_dir_bytes): images as their pixel bytes x8 and a table
 * lut of the 256 feature values, a quarter of the memory of 32-bit floats. Every reader goes
 * through kvi_batch_gather or kvi_dataset_rows, which produce the numbers x would hold. */
#include <string.h>

#include "data/data_internal.h"

kvi_status kvi__dataset_alloc_bytes(kvi_dataset *ds, int64_t n, int d, int c, int h, int w,
                                    int nclasses, unsigned char *pix) {
  kvi_dataset_init(ds);
  kvi_dataset tmp;
  kvi_dataset_init(&tmp);
  tmp.x8 = pix ? pix : kvi_alloc((size_t)n * (size_t)d);
  if (nclasses > 0) tmp.y = kvi_alloc((size_t)n * sizeof(int32_t));
  if (!tmp.x8 || (nclasses > 0 && !tmp.y)) {
    if (pix) tmp.x8 = NULL; /* the caller still owns it */
    kvi_dataset_free(&tmp);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory allocating a dataset of %lld rows x %d bytes",
                    (long long)n, d);
  }
  tmp.n = n, tmp.d = d, tmp.c = c, tmp.h = h, tmp.w = w, tmp.nclasses = nclasses;
  kvi__byte_scale(tmp.lut);
  *ds = tmp;
  return KVI_OK;
}

const kvi_real *kvi_dataset_rows(const kvi_dataset *ds, int64_t r0, int64_t n, kvi_real *buf) {
  if (!ds || r0 < 0 || n < 0 || r0 + n > ds->n) return NULL;
  const size_t d = (size_t)ds->d;
  if (ds->x) return ds->x + (size_t)r0 * d;
  if (!ds->x8 || !buf) return NULL;
  const uint8_t *b = ds->x8 + (size_t)r0 * d;
  const size_t total = (size_t)n * d;
  for (size_t q = 0; q < total; q++) buf[q] = ds->lut[b[q]];
  return buf;
}

kvi_status kvi_dataset_expand(kvi_dataset *ds) {
  if (!ds) return kvi_fail(KVI_ERR_ARG, "kvi_dataset_expand: dataset is NULL");
  if (!ds->x8) return KVI_OK;
  const size_t total = (size_t)ds->n * (size_t)ds->d;
  if ((uint64_t)ds->n > SIZE_MAX / sizeof(kvi_real) / (size_t)ds->d)
    return kvi_fail(KVI_ERR_NOMEM, "kvi_dataset_expand: %lld rows of %d features overflow size_t",
                    (long long)ds->n, ds->d);
  kvi_real *x = kvi_alloc(total * sizeof *x);
  if (!x)
    return kvi_fail(KVI_ERR_NOMEM, "kvi_dataset_expand: out of memory for %lld rows x %d",
                    (long long)ds->n, ds->d);
  kvi_dataset_rows(ds, 0, ds->n, x);
  kvi_free(ds->x8);
  ds->x8 = NULL;
  ds->x = x;
  return KVI_OK;
}

/* The rows marked in isval move to val (nval rows), the others stay in order (kvi_dataset_split
 * after its permutation). */
kvi_status kvi__split_bytes(kvi_dataset *ds, kvi_dataset *val, const unsigned char *isval,
                            int64_t nval) {
  kvi_status s =
      kvi__dataset_alloc_bytes(val, nval, ds->d, ds->c, ds->h, ds->w, ds->nclasses, NULL);
  if (s != KVI_OK) return s;
  memcpy(val->lut, ds->lut, sizeof val->lut);
  const size_t d = (size_t)ds->d;
  int64_t nv = 0, nt = 0;
  for (int64_t i = 0; i < ds->n; i++) {
    if (isval[i]) {
      memcpy(val->x8 + (size_t)nv * d, ds->x8 + (size_t)i * d, d);
      if (ds->y) val->y[nv] = ds->y[i];
      nv++;
    } else {
      if (nt != i) { /* rows move forward only */
        memmove(ds->x8 + (size_t)nt * d, ds->x8 + (size_t)i * d, d);
        if (ds->y) ds->y[nt] = ds->y[i];
      }
      nt++;
    }
  }
  ds->n = nt;
  return KVI_OK;
}

/* Zero pixels around each image: the byte 0, whose value lut[0] must be +0 (the caller checks). */
kvi_status kvi__pad_bytes(kvi_dataset *ds, int pad) {
  const int c = ds->c, h = ds->h, w = ds->w, h2 = h + 2 * pad, w2 = w + 2 * pad;
  const size_t d2 = (size_t)c * h2 * w2;
  uint8_t *nx = kvi_alloc((size_t)ds->n * d2); /* zero-filled */
  if (!nx)
    return kvi_fail(KVI_ERR_NOMEM, "kvi_dataset_pad: out of memory for %lld images of %dx%dx%d",
                    (long long)ds->n, c, h2, w2);
#pragma omp parallel for schedule(static) if (ds->n > 256)
  for (int64_t i = 0; i < ds->n; i++)
    for (int r = 0; r < h; r++) /* HWC: one image row is w * c contiguous bytes */
      memcpy(nx + (size_t)i * d2 + ((size_t)(r + pad) * w2 + pad) * c,
             ds->x8 + (size_t)i * ds->d + (size_t)r * w * c, (size_t)w * c);
  kvi_free(ds->x8);
  ds->x8 = nx;
  ds->h = h2, ds->w = w2, ds->d = (int)d2;
  return KVI_OK;
}
