/* kvi_dataset: allocation, validation, splitting, standardization and padding. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

void kvi_dataset_init(kvi_dataset *ds) {
  if (ds) memset(ds, 0, sizeof *ds);
}

void kvi_dataset_free(kvi_dataset *ds) {
  if (!ds) return;
  kvi_free(ds->x);
  kvi_free(ds->y);
  kvi_free(ds->t);
  kvi_free(ds->x8);
  kvi_dataset_init(ds);
}

kvi_status kvi_dataset_alloc(kvi_dataset *ds, int64_t n, int d, int c, int h, int w, int nclasses,
                             int k) {
  if (!ds) return kvi_fail(KVI_ERR_ARG, "kvi_dataset_alloc: dataset is NULL");
  kvi_dataset_init(ds);
  if (n < 0 || d < 1 || nclasses < 0 || k < 0 || c < 0 || h < 0 || w < 0)
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_dataset_alloc: expected n >= 0, d >= 1 and non-negative shape, got n=%lld "
                    "d=%d c=%d h=%d w=%d nclasses=%d k=%d",
                    (long long)n, d, c, h, w, nclasses, k);
  if (nclasses > 0 && k > 0)
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_dataset_alloc: a dataset has class labels (nclasses=%d) or regression "
                    "targets (k=%d), not both",
                    nclasses, k);
  if ((c || h || w) && (int64_t)c * h * w != d)
    return kvi_fail(KVI_ERR_SHAPE, "kvi_dataset_alloc: image shape %dx%dx%d does not give d=%d", c,
                    h, w, d);
  size_t rs = sizeof(kvi_real);
  if ((uint64_t)n > SIZE_MAX / rs / (size_t)d || (k && (uint64_t)n > SIZE_MAX / rs / (size_t)k))
    return kvi_fail(KVI_ERR_NOMEM, "kvi_dataset_alloc: %lld rows of %d features overflow size_t",
                    (long long)n, d);
  kvi_dataset tmp;
  kvi_dataset_init(&tmp);
  tmp.x = kvi_alloc((size_t)n * (size_t)d * rs);
  if (nclasses > 0) tmp.y = kvi_alloc((size_t)n * sizeof(int32_t));
  if (k > 0) tmp.t = kvi_alloc((size_t)n * (size_t)k * rs);
  if (!tmp.x || (nclasses > 0 && !tmp.y) || (k > 0 && !tmp.t)) {
    kvi_dataset_free(&tmp);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory allocating a dataset of %lld rows x %d features",
                    (long long)n, d);
  }
  tmp.n = n;
  tmp.d = d;
  tmp.c = c;
  tmp.h = h;
  tmp.w = w;
  tmp.nclasses = nclasses;
  tmp.k = k;
  *ds = tmp;
  return KVI_OK;
}

kvi_status kvi_dataset_validate(const kvi_dataset *ds, const char *what) {
  if (!what) what = "dataset";
  if (!ds) return kvi_fail(KVI_ERR_ARG, "%s: dataset is NULL", what);
  if (ds->n < 0 || ds->d < 1)
    return kvi_fail(KVI_ERR_SHAPE, "%s: expected n >= 0 rows and d >= 1 features, got n=%lld d=%d",
                    what, (long long)ds->n, ds->d);
  if (ds->n > 0 && !ds->x && !ds->x8)
    return kvi_fail(KVI_ERR_STATE, "%s: features x are NULL", what);
  if ((ds->c || ds->h || ds->w) &&
      (ds->c < 1 || ds->h < 1 || ds->w < 1 || (int64_t)ds->c * ds->h * ds->w != ds->d))
    return kvi_fail(KVI_ERR_SHAPE, "%s: image shape %dx%dx%d does not match d=%d", what, ds->c,
                    ds->h, ds->w, ds->d);
  if (ds->nclasses < 0 || ds->k < 0 || (ds->nclasses > 0 && ds->k > 0))
    return kvi_fail(KVI_ERR_STATE,
                    "%s: expected nclasses > 0 (classification) or k > 0 "
                    "(regression), got nclasses=%d k=%d",
                    what, ds->nclasses, ds->k);
  if (ds->k > 0 && ds->n > 0 && !ds->t)
    return kvi_fail(KVI_ERR_STATE, "%s: k=%d targets but t is NULL", what, ds->k);
  if (ds->nclasses > 0 && ds->n > 0) {
    if (!ds->y)
      return kvi_fail(KVI_ERR_STATE, "%s: nclasses=%d but labels y are NULL", what, ds->nclasses);
    for (int64_t i = 0; i < ds->n; i++)
      if (ds->y[i] < 0 || ds->y[i] >= ds->nclasses)
        return kvi_fail(KVI_ERR_FORMAT, "%s: label %d of row %lld is outside [0, %d)", what,
                        (int)ds->y[i], (long long)i, ds->nclasses);
  }
  return KVI_OK;
}

kvi_status kvi_dataset_truncate(kvi_dataset *ds, int64_t n) {
  if (!ds || n < 0)
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_truncate: expected a dataset and n >= 0, got n=%lld",
                    (long long)n);
  if (n < ds->n) ds->n = n;
  return KVI_OK;
}

/* ---- split ------------------------------------------------------------------------------- */

kvi_status kvi_dataset_split(kvi_dataset *ds, kvi_dataset *val, int64_t nval, uint64_t seed) {
  if (!val || val == ds)
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_split: val must be a separate dataset");
  kvi_dataset_init(val);
  kvi_status s = kvi_dataset_validate(ds, "kvi_dataset_split");
  if (s != KVI_OK) return s;
  if (nval < 0 || nval >= ds->n)
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_dataset_split: expected 0 <= nval < n = %lld (at least one training row "
                    "must remain), got nval=%lld",
                    (long long)ds->n, (long long)nval);
  if (nval == 0) return KVI_OK;
  int64_t n = ds->n;
  int64_t *perm = kvi_alloc((size_t)n * sizeof *perm);
  unsigned char *isval = kvi_alloc((size_t)n);
  if (!perm || !isval) {
    kvi_free(perm);
    kvi_free(isval);
    return kvi_fail(KVI_ERR_NOMEM, "kvi_dataset_split: out of memory for %lld rows", (long long)n);
  }
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  kvi_rng rng = kvi_rng_stream(seed, 0x5350u);
  kvi_rng_shuffle(&rng, perm, (size_t)n);
  for (int64_t i = n - nval; i < n; i++) isval[perm[i]] = 1;
  kvi_free(perm);
  if (ds->x8) {
    s = kvi__split_bytes(ds, val, isval, nval);
    kvi_free(isval);
    return s;
  }

  bool has_y = ds->nclasses > 0, has_t = ds->k > 0;
  s = kvi_dataset_alloc(val, nval, ds->d, ds->c, ds->h, ds->w, has_y ? ds->nclasses : 0,
                        has_t ? ds->k : 0);
  if (s != KVI_OK) {
    kvi_free(isval);
    return s;
  }
  size_t d = (size_t)ds->d, k = (size_t)ds->k;
  int64_t nv = 0, nt = 0;
  for (int64_t i = 0; i < n; i++) {
    /* rows move forward only (nt <= i), so compaction in place is safe; memmove for nt == i */
    if (isval[i]) {
      memcpy(val->x + (size_t)nv * d, ds->x + (size_t)i * d, d * sizeof(kvi_real));
      if (has_y) val->y[nv] = ds->y[i];
      if (has_t) memcpy(val->t + (size_t)nv * k, ds->t + (size_t)i * k, k * sizeof(kvi_real));
      nv++;
    } else {
      if (nt != i) {
        memmove(ds->x + (size_t)nt * d, ds->x + (size_t)i * d, d * sizeof(kvi_real));
        if (has_y) ds->y[nt] = ds->y[i];
        if (has_t) memmove(ds->t + (size_t)nt * k, ds->t + (size_t)i * k, k * sizeof(kvi_real));
      }
      nt++;
    }
  }
  kvi_free(isval);
  ds->n = nt;
  return KVI_OK;
}

/* ---- standardization --------------------------------------------------------------------- */

/* Per-column mean and population std (floored: std < 1e-6 -> 1) of a (n, d) array, in double. */
static void kvi__column_stats(const kvi_real *a, int64_t n, int d, double *mean, double *sd) {
  for (int j = 0; j < d; j++) mean[j] = sd[j] = 0;
  for (int64_t i = 0; i < n; i++) {
    const kvi_real *r = a + (size_t)i * (size_t)d;
    for (int j = 0; j < d; j++) mean[j] += (double)r[j];
  }
  for (int j = 0; j < d; j++) mean[j] /= (double)n;
  for (int64_t i = 0; i < n; i++) {
    const kvi_real *r = a + (size_t)i * (size_t)d;
    for (int j = 0; j < d; j++) {
      double z = (double)r[j] - mean[j];
      sd[j] += z * z;
    }
  }
  for (int j = 0; j < d; j++) {
    sd[j] = sqrt(sd[j] / (double)n);
    if (!(sd[j] >= 1e-6)) sd[j] = 1.0;
  }
}

/* a (n, d) = (a - mean) / sd, column-wise */
static void kvi__column_apply(kvi_real *a, int64_t n, int d, const kvi_real *mean,
                              const kvi_real *sd) {
#pragma omp parallel for schedule(static) if (n * d > (1 << 16))
  for (int64_t i = 0; i < n; i++) {
    kvi_real *r = a + (size_t)i * (size_t)d;
    for (int j = 0; j < d; j++) r[j] = (r[j] - mean[j]) / sd[j];
  }
}

/* Shared by standardize (x) and standardize_targets (t). */
static kvi_status kvi__standardize_cols(kvi_real *a, int64_t n, const kvi_real *ra, int64_t rn,
                                        int d, const char *what, kvi_real **mean_out,
                                        kvi_real **std_out) {
  if (mean_out) *mean_out = NULL;
  if (std_out) *std_out = NULL;
  if (rn < 1)
    return kvi_fail(KVI_ERR_ARG, "%s: the reference dataset has no rows to compute statistics",
                    what);
  double *acc = malloc(2 * (size_t)d * sizeof(double));
  kvi_real *m = kvi_alloc((size_t)d * sizeof(kvi_real));
  kvi_real *sd = kvi_alloc((size_t)d * sizeof(kvi_real));
  if (!acc || !m || !sd) {
    free(acc);
    kvi_free(m);
    kvi_free(sd);
    return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory for %d statistics", what, d);
  }
  kvi__column_stats(ra, rn, d, acc, acc + d);
  for (int j = 0; j < d; j++) {
    m[j] = (kvi_real)acc[j];
    sd[j] = (kvi_real)acc[d + j];
  }
  free(acc);
  kvi__column_apply(a, n, d, m, sd);
  if (mean_out)
    *mean_out = m;
  else
    kvi_free(m);
  if (std_out)
    *std_out = sd;
  else
    kvi_free(sd);
  return KVI_OK;
}

kvi_status kvi_dataset_standardize(kvi_dataset *ds, const kvi_dataset *ref, kvi_real **mean_out,
                                   kvi_real **std_out) {
  if (mean_out) *mean_out = NULL;
  if (std_out) *std_out = NULL;
  if (!ds || !ref) return kvi_fail(KVI_ERR_ARG, "kvi_dataset_standardize: dataset is NULL");
  if (ds->d != ref->d)
    return kvi_fail(KVI_ERR_SHAPE,
                    "kvi_dataset_standardize: dataset has d=%d features, reference has d=%d", ds->d,
                    ref->d);
  kvi_status s = kvi_dataset_expand(ds); /* per-feature values do not fit a byte table */
  if (s != KVI_OK) return s;
  if (ref->x8)
    return kvi_fail(KVI_ERR_STATE,
                    "kvi_dataset_standardize: the reference dataset is held as bytes\nHINT: "
                    "kvi_dataset_expand it first");
  if (ds->d < 1 || (ds->n > 0 && !ds->x) || (ref->n > 0 && !ref->x))
    return kvi_fail(KVI_ERR_STATE, "kvi_dataset_standardize: dataset has no features");
  return kvi__standardize_cols(ds->x, ds->n, ref->x, ref->n, ds->d, "kvi_dataset_standardize",
                               mean_out, std_out);
}

kvi_status kvi_dataset_standardize_targets(kvi_dataset *ds, const kvi_dataset *ref,
                                           kvi_real **mean_out, kvi_real **std_out) {
  if (mean_out) *mean_out = NULL;
  if (std_out) *std_out = NULL;
  if (!ds || !ref) return kvi_fail(KVI_ERR_ARG, "kvi_dataset_standardize_targets: NULL dataset");
  if (ds->k < 1 || ds->k != ref->k || (ds->n > 0 && !ds->t) || (ref->n > 0 && !ref->t))
    return kvi_fail(KVI_ERR_SHAPE,
                    "kvi_dataset_standardize_targets: expected regression datasets with the same "
                    "number of targets, got k=%d and reference k=%d",
                    ds->k, ref->k);
  return kvi__standardize_cols(ds->t, ds->n, ref->t, ref->n, ds->k,
                               "kvi_dataset_standardize_targets", mean_out, std_out);
}

kvi_status kvi_dataset_apply_standardize(kvi_dataset *ds, const kvi_real *mean,
                                         const kvi_real *std) {
  if (!ds || !mean || !std || ds->d < 1 || (ds->n > 0 && !ds->x && !ds->x8))
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_apply_standardize: NULL dataset, mean or std");
  for (int j = 0; j < ds->d; j++)
    if (!(std[j] > 0) || !isfinite(std[j]) || !isfinite(mean[j]))
      return kvi_fail(KVI_ERR_ARG,
                      "kvi_dataset_apply_standardize: feature %d has mean %g, std %g; expected "
                      "finite values and std > 0",
                      j, (double)mean[j], (double)std[j]);
  kvi_status s = kvi_dataset_expand(ds);
  if (s != KVI_OK) return s;
  kvi__column_apply(ds->x, ds->n, ds->d, mean, std);
  return KVI_OK;
}

kvi_status kvi_dataset_pixel_stats(const kvi_dataset *ds, double *mean, double *std) {
  if (!ds || !mean || !std || ds->d < 1 || ds->n < 1 || (!ds->x && !ds->x8))
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_pixel_stats: empty or NULL dataset");
  size_t total = (size_t)ds->n * (size_t)ds->d;
  double s = 0, q = 0;
  const kvi_real *x = ds->x, *lut = ds->lut;
  const uint8_t *x8 = ds->x8;
#define KVI__PIX(i) ((double)(x ? x[i] : lut[x8[i]])) /* either form, the same numbers */
  for (size_t i = 0; i < total; i++) s += KVI__PIX(i);
  double mu = s / (double)total;
  for (size_t i = 0; i < total; i++) q += (KVI__PIX(i) - mu) * (KVI__PIX(i) - mu);
#undef KVI__PIX
  double sd = sqrt(q / (double)total);
  if (!(sd > 0) || !isfinite(sd) || !isfinite(mu))
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_dataset_pixel_stats: the inputs are constant or not finite (mean %g, "
                    "std %g): nothing to normalize",
                    mu, sd);
  *mean = mu, *std = sd;
  return KVI_OK;
}

kvi_status kvi_dataset_normalize_scalar(kvi_dataset *ds, kvi_real mean, kvi_real std) {
  if (!ds || ds->d < 1 || (ds->n > 0 && !ds->x && !ds->x8))
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_normalize_scalar: empty or NULL dataset");
  if (!(std > 0) || !isfinite(std) || !isfinite(mean))
    return kvi_fail(KVI_ERR_ARG,
                    "kvi_dataset_normalize_scalar: expected finite mean and std > 0, got mean=%g "
                    "std=%g",
                    (double)mean, (double)std);
  if (ds->x8) { /* bytes: map the table (the same expression, the same numbers) */
    for (int b = 0; b < 256; b++) ds->lut[b] = (ds->lut[b] - mean) / std;
    return KVI_OK;
  }
  size_t total = (size_t)ds->n * (size_t)ds->d;
  kvi_real *x = ds->x;
#pragma omp parallel for schedule(static) if (total > (1u << 16))
  for (size_t i = 0; i < total; i++) x[i] = (x[i] - mean) / std;
  return KVI_OK;
}

kvi_status kvi_dataset_normalize_channels(kvi_dataset *ds, const kvi_real *mean,
                                          const kvi_real *std) {
  if (!ds || !mean || !std || (ds->n > 0 && !ds->x && !ds->x8))
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_normalize_channels: NULL dataset, mean or std");
  if (ds->c < 1 || ds->h < 1 || ds->w < 1 || (int64_t)ds->c * ds->h * ds->w != ds->d)
    return kvi_fail(KVI_ERR_SHAPE,
                    "kvi_dataset_normalize_channels: expected an image dataset, got shape "
                    "%dx%dx%d with d=%d",
                    ds->c, ds->h, ds->w, ds->d);
  for (int ch = 0; ch < ds->c; ch++)
    if (!(std[ch] > 0) || !isfinite(std[ch]) || !isfinite(mean[ch]))
      return kvi_fail(KVI_ERR_ARG,
                      "kvi_dataset_normalize_channels: channel %d has mean %g, std %g; expected "
                      "finite values and std > 0",
                      ch, (double)mean[ch], (double)std[ch]);
  kvi_status s = kvi_dataset_expand(ds); /* one table cannot hold per-channel values */
  if (s != KVI_OK) return s;
  size_t hw = (size_t)ds->h * (size_t)ds->w;
  int c = ds->c;
#pragma omp parallel for schedule(static) if (ds->n > 256)
  for (int64_t i = 0; i < ds->n; i++)
    for (size_t q = 0; q < hw; q++) { /* HWC: channel ch of pixel q at q * c + ch */
      kvi_real *p = ds->x + (size_t)i * (size_t)ds->d + q * (size_t)c;
      for (int ch = 0; ch < c; ch++) p[ch] = (p[ch] - mean[ch]) / std[ch];
    }
  return KVI_OK;
}

/* ---- padding ----------------------------------------------------------------------------- */

kvi_status kvi_dataset_pad(kvi_dataset *ds, int pad) {
  if (!ds) return kvi_fail(KVI_ERR_ARG, "kvi_dataset_pad: dataset is NULL");
  if (pad < 0 || pad > 4096)
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_pad: expected 0 <= pad <= 4096, got %d", pad);
  if (ds->c < 1 || ds->h < 1 || ds->w < 1 || (int64_t)ds->c * ds->h * ds->w != ds->d)
    return kvi_fail(KVI_ERR_SHAPE,
                    "kvi_dataset_pad: expected an image dataset (c, h, w > 0), got shape "
                    "%dx%dx%d with d=%d\nHINT: padding applies to images, not tabular data",
                    ds->c, ds->h, ds->w, ds->d);
  if (pad == 0) return KVI_OK;
  int c = ds->c, h = ds->h, w = ds->w, h2 = h + 2 * pad, w2 = w + 2 * pad;
  int64_t d2 = (int64_t)c * h2 * w2;
  if (d2 > INT_MAX)
    return kvi_fail(KVI_ERR_ARG, "kvi_dataset_pad: padded image %dx%dx%d is too large", c, h2, w2);
  if ((uint64_t)ds->n > SIZE_MAX / sizeof(kvi_real) / (size_t)d2)
    return kvi_fail(KVI_ERR_NOMEM, "kvi_dataset_pad: %lld padded rows overflow size_t",
                    (long long)ds->n);
  if (ds->x8 && ds->lut[0] == 0 && !signbit(ds->lut[0])) return kvi__pad_bytes(ds, pad);
  kvi_status s = kvi_dataset_expand(ds); /* the byte 0 no longer reads 0 (normalized) */
  if (s != KVI_OK) return s;
  kvi_real *nx = kvi_alloc((size_t)ds->n * (size_t)d2 * sizeof(kvi_real)); /* zero-filled */
  if (!nx)
    return kvi_fail(KVI_ERR_NOMEM, "kvi_dataset_pad: out of memory for %lld images of %dx%dx%d",
                    (long long)ds->n, c, h2, w2);
#pragma omp parallel for schedule(static) if (ds->n > 256)
  for (int64_t i = 0; i < ds->n; i++)
    for (int r = 0; r < h; r++) { /* HWC: one image row is w * c contiguous values */
      const kvi_real *src = ds->x + (size_t)i * (size_t)ds->d + (size_t)r * w * c;
      kvi_real *dst = nx + (size_t)i * (size_t)d2 + ((size_t)(r + pad) * w2 + pad) * c;
      memcpy(dst, src, (size_t)w * c * sizeof(kvi_real));
    }
  kvi_free(ds->x);
  ds->x = nx;
  ds->h = h2;
  ds->w = w2;
  ds->d = (int)d2;
  return KVI_OK;
}
