/* The stable API: data sets (kvi_dset) over the internal kvi_dataset. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* n rows of d finite features: the checks shared by the constructors. */
static kvi_status kvi__check_x(const char *fn, const kvi_real *x, int64_t n, int d) {
  if (!x) return kvi_fail(KVI_ERR_ARG, "%s: x is NULL", fn);
  if (n <= 0 || n > 1000000000)
    return kvi_fail(KVI_ERR_SHAPE, "%s: %lld rows (expected 1 to 1e9)", fn, (long long)n);
  if (d <= 0 || d > 100000000)
    return kvi_fail(KVI_ERR_SHAPE, "%s: %d features (expected 1 to 1e8)", fn, d);
  for (size_t i = 0; i < (size_t)n * (size_t)d; i++)
    if (!isfinite(x[i]))
      return kvi_fail(KVI_ERR_NONFINITE, "%s: x[%lld, %d] is not finite", fn,
                      (long long)(i / (size_t)d), (int)(i % (size_t)d));
  return KVI_OK;
}

static kvi_status kvi__dset_new(kvi_dset **out, const kvi_real *x, int64_t n, int d, int nclasses,
                                int k) {
  kvi_dset *ds = calloc(1, sizeof *ds);
  if (!ds) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  kvi_status s = kvi_dataset_alloc(&ds->ds, n, d, 0, 0, 0, nclasses, k);
  if (s) {
    free(ds);
    return s;
  }
  memcpy(ds->ds.x, x, (size_t)n * (size_t)d * sizeof *x);
  *out = ds;
  return KVI_OK;
}

kvi_status kvi_dset_create(kvi_dset **out, const kvi_real *x, int64_t n, int d,
                           const int32_t *labels, int nclasses) {
  const char *fn = "kvi_dset_create";
  KVI__NEED(out, "kvi_dset_create");
  *out = NULL;
  kvi_status s = kvi__check_x(fn, x, n, d);
  if (s) return s;
  if (!labels) return kvi_fail(KVI_ERR_ARG, "%s: labels is NULL", fn);
  if (nclasses < 0 || nclasses > 1000000)
    return kvi_fail(KVI_ERR_ARG, "%s: nclasses %d outside [0, 1e6]", fn, nclasses);
  int32_t max = 0;
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < 0 || (nclasses > 0 && labels[i] >= nclasses) || labels[i] >= 1000000)
      return kvi_fail(KVI_ERR_ARG, "%s: label %d of row %lld outside [0, %d)", fn, labels[i],
                      (long long)i, nclasses > 0 ? nclasses : 1000000);
    if (labels[i] > max) max = labels[i];
  }
  s = kvi__dset_new(out, x, n, d, nclasses > 0 ? nclasses : max + 1, 0);
  if (!s) memcpy((*out)->ds.y, labels, (size_t)n * sizeof *labels);
  return s;
}

kvi_status kvi_dset_create_regression(kvi_dset **out, const kvi_real *x, int64_t n, int d,
                                      const kvi_real *targets, int k) {
  const char *fn = "kvi_dset_create_regression";
  KVI__NEED(out, "kvi_dset_create_regression");
  *out = NULL;
  kvi_status s = kvi__check_x(fn, x, n, d);
  if (s) return s;
  if (!targets) return kvi_fail(KVI_ERR_ARG, "%s: targets is NULL", fn);
  if (k <= 0 || k > 100000)
    return kvi_fail(KVI_ERR_SHAPE, "%s: %d targets (expected 1 to 1e5)", fn, k);
  s = kvi__check_x(fn, targets, n, k);
  if (s) return s;
  s = kvi__dset_new(out, x, n, d, 0, k);
  if (!s) memcpy((*out)->ds.t, targets, (size_t)n * (size_t)k * sizeof *targets);
  return s;
}

kvi_status kvi_dset_load_dir(kvi_dset **train, kvi_dset **test, const char *dir,
                             int64_t limit_train, int64_t limit_test) {
  KVI__NEED(train, "kvi_dset_load_dir");
  *train = NULL;
  if (test) *test = NULL;
  KVI__NEED(dir, "kvi_dset_load_dir");
  if (limit_train < 0 || limit_test < 0)
    return kvi_fail(KVI_ERR_ARG, "kvi_dset_load_dir: negative limit");
  kvi_dset *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  kvi_status s = a && b ? KVI_OK : kvi_fail(KVI_ERR_NOMEM, "out of memory");
  if (!s) s = kvi_data_load_dir(&a->ds, &b->ds, dir, limit_train, test ? limit_test : 1);
  if (s) {
    free(a), free(b);
    return s;
  }
  *train = a;
  if (test)
    *test = b;
  else
    kvi_dset_free(b);
  return KVI_OK;
}

kvi_status kvi_dset_set_image_shape(kvi_dset *ds, int c, int h, int w) {
  KVI__NEED(ds, "kvi_dset_set_image_shape");
  if (c <= 0 || h <= 0 || w <= 0 || (int64_t)c * h * w != ds->ds.d)
    return kvi_fail(KVI_ERR_SHAPE,
                    "kvi_dset_set_image_shape: %d x %d x %d does not match %d features", c, h, w,
                    ds->ds.d);
  ds->ds.c = c, ds->ds.h = h, ds->ds.w = w;
  return KVI_OK;
}

int64_t kvi_dset_rows(const kvi_dset *ds) { return ds ? ds->ds.n : -1; }
int kvi_dset_features(const kvi_dset *ds) { return ds ? ds->ds.d : -1; }
int kvi_dset_classes(const kvi_dset *ds) { return ds ? ds->ds.nclasses : -1; }
int kvi_dset_targets(const kvi_dset *ds) { return ds ? ds->ds.k : -1; }

kvi_status kvi_dset_copy(const kvi_dset *ds, kvi_real *x, int32_t *labels, kvi_real *targets) {
  KVI__NEED(ds, "kvi_dset_copy");
  const kvi_dataset *d = &ds->ds;
  if (labels && !d->y)
    return kvi_fail(KVI_ERR_ARG, "kvi_dset_copy: a regression set has no labels");
  if (targets && !d->t)
    return kvi_fail(KVI_ERR_ARG, "kvi_dset_copy: a classification set has no targets");
  if (x) memcpy(x, d->x, (size_t)d->n * (size_t)d->d * sizeof *x);
  if (labels) memcpy(labels, d->y, (size_t)d->n * sizeof *labels);
  if (targets) memcpy(targets, d->t, (size_t)d->n * (size_t)d->k * sizeof *targets);
  return KVI_OK;
}

void kvi_dset_free(kvi_dset *ds) {
  if (!ds) return;
  kvi_dataset_free(&ds->ds);
  free(ds);
}
