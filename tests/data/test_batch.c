/* Dataset transforms and batching: split sizes, disjointness and determinism; epoch shuffles;
 * gather; standardization statistics; scalar / per-channel normalization; padding. */
#include <stdbool.h>

#include "kronvi/data.h"
#include "kvi_test.h"

/* tolerance of statistics recomputed from standardized data in kvi_real */
#define TOL (sizeof(kvi_real) == 8 ? 1e-9 : 1e-5)

/* n rows, d features: x[i][j] = 1000 i + j (the row id is x[i][0] / 1000), y = i % 5 */
static void make_cls(kvi_dataset *ds, int64_t n, int d) {
  CHECK_OK(kvi_dataset_alloc(ds, n, d, 0, 0, 0, 5, 0));
  for (int64_t i = 0; i < ds->n; i++) {
    for (int j = 0; j < d; j++) ds->x[i * d + j] = (kvi_real)(1000 * i + j);
    ds->y[i] = (int32_t)(i % 5);
  }
}

static int64_t row_id(const kvi_dataset *ds, int64_t i) {
  return (int64_t)(ds->x[i * ds->d] / 1000);
}

/* rows consistent with their id, ids strictly increasing; returns the number of violations */
static int check_rows(const kvi_dataset *ds, unsigned char *seen) {
  int bad = 0;
  for (int64_t i = 0; i < ds->n; i++) {
    int64_t id = row_id(ds, i);
    for (int j = 0; j < ds->d; j++) bad += ds->x[i * ds->d + j] != (kvi_real)(1000 * id + j);
    if (ds->y) bad += ds->y[i] != id % 5;
    if (ds->t) bad += ds->t[i] != (kvi_real)(-id);
    if (i > 0) bad += row_id(ds, i - 1) >= id;
    bad += seen[id]++ != 0;
  }
  return bad;
}

static void test_split(void) {
  enum { N = 100 };
  kvi_dataset ds, val;
  make_cls(&ds, N, 3);
  CHECK_OK(kvi_dataset_split(&ds, &val, 30, 7));
  CHECK(ds.n == 70 && val.n == 30);
  CHECK(val.d == 3 && val.nclasses == 5 && val.k == 0 && val.c == 0 && val.t == NULL);
  unsigned char seen[N] = {0};
  CHECK(check_rows(&ds, seen) == 0);
  CHECK(check_rows(&val, seen) == 0);
  int all = 0;
  for (int i = 0; i < N; i++) all += seen[i] == 1;
  CHECK(all == N); /* disjoint and together all rows */
  int64_t ids1[30];
  for (int i = 0; i < 30 && i < val.n; i++) ids1[i] = row_id(&val, i);
  kvi_dataset_free(&ds);
  kvi_dataset_free(&val);

  /* same seed -> same split; another seed -> another */
  make_cls(&ds, N, 3);
  CHECK_OK(kvi_dataset_split(&ds, &val, 30, 7));
  int same = 0;
  for (int i = 0; i < 30 && i < val.n; i++) same += row_id(&val, i) == ids1[i];
  CHECK(same == 30);
  kvi_dataset_free(&ds);
  kvi_dataset_free(&val);
  make_cls(&ds, N, 3);
  CHECK_OK(kvi_dataset_split(&ds, &val, 30, 8));
  same = 0;
  for (int i = 0; i < 30 && i < val.n; i++) same += row_id(&val, i) == ids1[i];
  CHECK(same < 30);
  kvi_dataset_free(&ds);
  kvi_dataset_free(&val);
  make_cls(&ds, N, 3);

  /* nval = 0, errors */
  CHECK_OK(kvi_dataset_split(&ds, &val, 0, 1));
  CHECK(ds.n == N && val.n == 0 && val.x == NULL);
  CHECK_FAILS(kvi_dataset_split(&ds, &val, N, 1));
  CHECK_FAILS(kvi_dataset_split(&ds, &val, -1, 1));
  CHECK_FAILS(kvi_dataset_split(&ds, &ds, 3, 1));
  CHECK_FAILS(kvi_dataset_split(&ds, NULL, 3, 1));
  CHECK(ds.n == N);
  kvi_dataset_free(&ds);

  /* regression rows keep their targets */
  CHECK_OK(kvi_dataset_alloc(&ds, 50, 2, 0, 0, 0, 0, 1));
  for (int64_t i = 0; i < 50; i++) {
    ds.x[2 * i] = (kvi_real)(1000 * i);
    ds.x[2 * i + 1] = (kvi_real)(1000 * i + 1);
    ds.t[i] = (kvi_real)(-i);
  }
  CHECK_OK(kvi_dataset_split(&ds, &val, 49, 3));
  CHECK(ds.n == 1 && val.n == 49 && val.k == 1 && val.y == NULL);
  unsigned char seen2[50] = {0};
  CHECK(check_rows(&ds, seen2) == 0 && check_rows(&val, seen2) == 0);
  kvi_dataset_free(&ds);
  kvi_dataset_free(&val);
}

static bool is_perm(const int64_t *a, int64_t n) {
  unsigned char *seen = calloc((size_t)n, 1);
  bool ok = true;
  for (int64_t i = 0; i < n; i++) {
    if (a[i] < 0 || a[i] >= n || seen[a[i]]) ok = false;
    if (a[i] >= 0 && a[i] < n) seen[a[i]] = 1;
  }
  free(seen);
  return ok;
}

static void test_order_gather(void) {
  enum { N = 1000 };
  kvi_epoch_order o, o2;
  CHECK_OK(kvi_epoch_order_init(&o, N));
  CHECK_OK(kvi_epoch_order_init(&o2, N));
  CHECK(o.n == N && o.order[0] == 0 && o.order[N - 1] == N - 1);
  kvi_epoch_order_shuffle(&o, 11, 0);
  CHECK(is_perm(o.order, N));
  int fixed = 0;
  for (int i = 0; i < N; i++) fixed += o.order[i] == i;
  CHECK(fixed < 20); /* a shuffle, not the identity (expected 1 fixed point) */
  kvi_epoch_order_shuffle(&o2, 11, 5);
  kvi_epoch_order_shuffle(&o2, 11, 0); /* depends on (seed, epoch) only */
  CHECK(memcmp(o.order, o2.order, sizeof(int64_t) * N) == 0);
  kvi_epoch_order_shuffle(&o2, 11, 1);
  CHECK(is_perm(o2.order, N) && memcmp(o.order, o2.order, sizeof(int64_t) * N) != 0);
  kvi_epoch_order_shuffle(&o2, 12, 0);
  CHECK(memcmp(o.order, o2.order, sizeof(int64_t) * N) != 0);
  kvi_epoch_order_free(&o2);
  CHECK(o2.order == NULL && o2.n == 0);
  CHECK_FAILS(kvi_epoch_order_init(&o2, -1));

  /* gather rows of a classification and a regression set */
  kvi_dataset ds;
  make_cls(&ds, N, 4);
  kvi_real xb[8 * 4];
  int32_t yb[8];
  kvi_batch_gather(xb, yb, NULL, &ds, o.order + 16, 8);
  int bad = 0;
  for (int i = 0; i < 8; i++) {
    int64_t r = o.order[16 + i];
    for (int j = 0; j < 4; j++) bad += xb[i * 4 + j] != (kvi_real)(1000 * r + j);
    bad += yb[i] != r % 5;
  }
  CHECK(bad == 0);
  kvi_batch_gather(xb, NULL, NULL, &ds, NULL, 3); /* idx NULL: rows 0..2 */
  CHECK(xb[0] == 0 && xb[4] == 1000 && xb[11] == 2003);
  kvi_dataset_free(&ds);
  CHECK_OK(kvi_dataset_alloc(&ds, 10, 1, 0, 0, 0, 0, 2));
  for (int i = 0; i < 10; i++) {
    ds.x[i] = (kvi_real)i;
    ds.t[2 * i] = (kvi_real)(10 * i);
    ds.t[2 * i + 1] = (kvi_real)(10 * i + 1);
  }
  int64_t idx[3] = {7, 0, 7};
  kvi_real tb[6];
  kvi_batch_gather(xb, yb, tb, &ds, idx, 3);
  CHECK(xb[0] == 7 && xb[1] == 0 && xb[2] == 7);
  CHECK(tb[0] == 70 && tb[1] == 71 && tb[2] == 0 && tb[3] == 1 && tb[4] == 70 && tb[5] == 71);
  kvi_dataset_free(&ds);
  kvi_epoch_order_free(&o);
}

static void col_stats(const kvi_dataset *ds, int j, double *mean, double *sd) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < ds->n; i++) s += (double)ds->x[i * ds->d + j];
  *mean = s / (double)ds->n;
  for (int64_t i = 0; i < ds->n; i++) {
    double z = (double)ds->x[i * ds->d + j] - *mean;
    s2 += z * z;
  }
  *sd = sqrt(s2 / (double)ds->n);
}

static void test_standardize(void) {
  enum { N = 500, D = 4 };
  kvi_dataset tr, te, te2;
  CHECK_OK(kvi_dataset_alloc(&tr, N, D, 0, 0, 0, 0, 1));
  CHECK_OK(kvi_dataset_alloc(&te, 7, D, 0, 0, 0, 0, 1));
  CHECK_OK(kvi_dataset_alloc(&te2, 7, D, 0, 0, 0, 0, 1));
  kvi_rng r = kvi_rng_stream(5, 0);
  kvi_rng_normal(&r, tr.x, N * D);
  kvi_rng_normal(&r, tr.t, N);
  kvi_rng_normal(&r, te.x, 7 * D);
  for (int i = 0; i < N; i++) {
    tr.x[i * D + 1] = tr.x[i * D + 1] * 30 + 100; /* scale and shift */
    tr.x[i * D + 3] = (kvi_real)2.5;              /* constant: std floored to 1 */
    tr.t[i] = tr.t[i] * 4 - 3;
  }
  memcpy(te2.x, te.x, sizeof(kvi_real) * 7 * D);
  double m1, s1;
  col_stats(&tr, 1, &m1, &s1);
  kvi_real *mean = NULL, *sd = NULL;
  CHECK_OK(kvi_dataset_standardize(&tr, &tr, &mean, &sd));
  CHECK(mean != NULL && sd != NULL);
  if (mean && sd) {
    CHECK_NEAR(mean[1], m1, TOL);
    CHECK_NEAR(sd[1], s1, TOL);
    CHECK(mean[3] == (kvi_real)2.5 && sd[3] == 1);
  }
  for (int j = 0; j < D; j++) {
    double m, s;
    col_stats(&tr, j, &m, &s);
    CHECK_NEAR(m, 0, TOL);
    CHECK_NEAR(s, j == 3 ? 0 : 1, TOL);
  }
  /* test set with the training statistics, and the same via apply_standardize */
  kvi_real te_before = te.x[1];
  CHECK_OK(kvi_dataset_standardize(&te, &tr, NULL, NULL)); /* tr now has mean 0, std 1 */
  CHECK_NEAR(te.x[1], te_before, TOL);
  if (mean && sd) {
    CHECK_OK(kvi_dataset_apply_standardize(&te2, mean, sd));
    CHECK(te2.x[1] == (te_before - mean[1]) / sd[1]);
    sd[0] = 0;
    CHECK_FAILS(kvi_dataset_apply_standardize(&te2, mean, sd));
  }
  kvi_free(mean);
  kvi_free(sd);
  /* targets */
  CHECK_OK(kvi_dataset_standardize_targets(&tr, &tr, &mean, &sd));
  if (mean && sd) {
    CHECK_NEAR(mean[0], -3, 0.5);
    CHECK_NEAR(sd[0], 4, 0.5);
  }
  double st = 0, st2 = 0;
  for (int i = 0; i < N; i++) st += (double)tr.t[i];
  for (int i = 0; i < N; i++) st2 += (double)tr.t[i] * (double)tr.t[i];
  CHECK_NEAR(st / N, 0, TOL);
  CHECK_NEAR(st2 / N, 1, TOL);
  kvi_free(mean);
  kvi_free(sd);
  /* errors */
  kvi_dataset other, empty;
  CHECK_OK(kvi_dataset_alloc(&other, 3, D + 1, 0, 0, 0, 2, 0));
  CHECK_FAILS(kvi_dataset_standardize(&tr, &other, NULL, NULL));
  CHECK_FAILS(kvi_dataset_standardize_targets(&other, &other, NULL, NULL));
  CHECK_OK(kvi_dataset_alloc(&empty, 0, D, 0, 0, 0, 0, 1));
  CHECK_FAILS(kvi_dataset_standardize(&tr, &empty, &mean, NULL));
  CHECK(mean == NULL);
  kvi_dataset_free(&empty);
  kvi_dataset_free(&other);
  kvi_dataset_free(&tr);
  kvi_dataset_free(&te);
  kvi_dataset_free(&te2);
}

static void test_images(void) {
  /* 2 images of 2 channels 2x3: value = 1 + 100 i + 10 (c h + r) + col */
  kvi_dataset ds;
  CHECK_OK(kvi_dataset_alloc(&ds, 2, 12, 2, 2, 3, 10, 0));
  for (int i = 0; i < 2; i++)
    for (int c = 0; c < 2; c++) /* HWC */
      for (int r = 0; r < 2; r++)
        for (int q = 0; q < 3; q++)
          ds.x[i * 12 + (r * 3 + q) * 2 + c] = (kvi_real)(1 + 100 * i + 10 * (c * 2 + r) + q);
  CHECK_OK(kvi_dataset_pad(&ds, 0));
  CHECK(ds.d == 12 && ds.h == 2);
  CHECK_OK(kvi_dataset_pad(&ds, 2));
  CHECK(ds.d == 2 * 6 * 7 && ds.c == 2 && ds.h == 6 && ds.w == 7 && ds.n == 2);
  int bad = 0, nonzero = 0;
  for (int i = 0; i < 2; i++)
    for (int c = 0; c < 2; c++)
      for (int r = 0; r < 6; r++)
        for (int q = 0; q < 7; q++) {
          kvi_real v = ds.x[i * 84 + (r * 7 + q) * 2 + c];
          bool inside = r >= 2 && r < 4 && q >= 2 && q < 5;
          kvi_real want =
              inside ? (kvi_real)(1 + 100 * i + 10 * (c * 2 + r - 2) + q - 2) : (kvi_real)0;
          bad += v != want;
          nonzero += v != 0;
        }
  CHECK(bad == 0 && nonzero == 2 * 12);
  CHECK_OK(kvi_dataset_validate(&ds, "padded"));
  CHECK_FAILS(kvi_dataset_pad(&ds, -1));

  /* scalar and per-channel normalization */
  kvi_real v0 = ds.x[16], v1 = ds.x[42 + 16];
  CHECK_OK(kvi_dataset_normalize_scalar(&ds, (kvi_real)0.5, (kvi_real)0.25));
  CHECK(ds.x[16] == (v0 - (kvi_real)0.5) / (kvi_real)0.25);
  CHECK_FAILS(kvi_dataset_normalize_scalar(&ds, 0, 0));
  CHECK_FAILS(kvi_dataset_normalize_scalar(&ds, 0, (kvi_real)NAN));
  kvi_real cm[2] = {1, -1}, cs[2] = {2, 4};
  kvi_real a = ds.x[16], b = ds.x[42 + 17]; /* channel 0 and channel 1 (HWC) */
  CHECK_OK(kvi_dataset_normalize_channels(&ds, cm, cs));
  CHECK(ds.x[16] == (a - 1) / 2 && ds.x[42 + 17] == (b + 1) / 4);
  (void)v1;
  cs[1] = -1;
  CHECK_FAILS(kvi_dataset_normalize_channels(&ds, cm, cs));
  /* pixel statistics: normalizing with them gives mean 0 and std 1; constant data fail */
  double pm = 0, ps = 0, pm2 = 0, ps2 = 0;
  CHECK_OK(kvi_dataset_pixel_stats(&ds, &pm, &ps));
  CHECK_OK(kvi_dataset_normalize_scalar(&ds, (kvi_real)pm, (kvi_real)ps));
  CHECK_OK(kvi_dataset_pixel_stats(&ds, &pm2, &ps2));
  CHECK(fabs(pm2) < 1e-5 && fabs(ps2 - 1) < 1e-5);
  for (size_t k = 0; k < (size_t)ds.n * ds.d; k++) ds.x[k] = (kvi_real)0.5;
  CHECK_FAILS(kvi_dataset_pixel_stats(&ds, &pm, &ps));
  CHECK_FAILS(kvi_dataset_pixel_stats(NULL, &pm, &ps));
  kvi_dataset_free(&ds);

  /* tabular data cannot be padded or normalized per channel */
  kvi_dataset tab;
  CHECK_OK(kvi_dataset_alloc(&tab, 3, 5, 0, 0, 0, 0, 1));
  CHECK_FAILS(kvi_dataset_pad(&tab, 2));
  CHECK(strstr(kvi_last_error(), "HINT") != NULL);
  CHECK_FAILS(kvi_dataset_normalize_channels(&tab, cm, cs));
  kvi_dataset_free(&tab);
}

static void test_alloc_validate(void) {
  kvi_dataset ds;
  CHECK_FAILS(kvi_dataset_alloc(&ds, -1, 3, 0, 0, 0, 2, 0));
  CHECK_FAILS(kvi_dataset_alloc(&ds, 3, 0, 0, 0, 0, 2, 0));
  CHECK_FAILS(kvi_dataset_alloc(&ds, 3, 3, 0, 0, 0, 2, 1));  /* labels and targets */
  CHECK_FAILS(kvi_dataset_alloc(&ds, 3, 12, 2, 2, 2, 2, 0)); /* 2*2*2 != 12 */
  CHECK_FAILS(kvi_dataset_alloc(&ds, INT64_MAX / 2, 1000, 0, 0, 0, 2, 0));
  CHECK(ds.x == NULL && ds.n == 0);
  CHECK_OK(kvi_dataset_alloc(&ds, 4, 2, 0, 0, 0, 3, 0));
  CHECK_OK(kvi_dataset_validate(&ds, "ds"));
  ds.y[2] = 3;
  CHECK_FAILS(kvi_dataset_validate(&ds, "ds"));
  CHECK(strstr(kvi_last_error(), "row 2") != NULL);
  ds.y[2] = -1;
  CHECK_FAILS(kvi_dataset_validate(&ds, "ds"));
  ds.y[2] = 0;
  CHECK_OK(kvi_dataset_truncate(&ds, 10));
  CHECK(ds.n == 4);
  CHECK_OK(kvi_dataset_truncate(&ds, 2));
  CHECK(ds.n == 2);
  CHECK_FAILS(kvi_dataset_truncate(&ds, -2));
  ds.c = 3;
  CHECK_FAILS(kvi_dataset_validate(&ds, "ds"));
  kvi_dataset_free(&ds);
  kvi_dataset_free(&ds); /* twice is harmless */
  kvi_dataset_free(NULL);
  CHECK_FAILS(kvi_dataset_validate(NULL, "ds"));
}

int main(void) {
  test_split();
  test_order_gather();
  test_standardize();
  test_images();
  test_alloc_validate();
  TEST_MAIN_END();
}
