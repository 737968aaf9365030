/* Datasets held as bytes (kvi_data_load_dir_bytes) against the same data loaded as numbers:
 * every reader (kvi_dataset_rows, kvi_batch_gather, kvi_evaluate_ex with BMA and the pruned
 * pass) and every transform (split, pad, scalar and per-channel normalization,
 * standardization, pixel statistics, expand) must give the same bits; the transforms that a
 * byte table can hold keep the bytes. Bad calls fail with a message. Uses the real
 * Fashion-MNIST (Debian dataset-fashion-mnist; KRONVI_FASHION overrides the directory). */
#include <string.h>

#include "kronvi/models.h"
#include "kronvi/train.h"
#include "kvi_test.h"

static const char *fashion_dir(void) {
  const char *dir = getenv("KRONVI_FASHION");
  return dir ? dir : "/usr/share/datasets/fashion-mnist";
}

/* The two forms hold the same rows, labels and shape. */
static bool same_rows(const kvi_dataset *a, const kvi_dataset *b) {
  if (a->n != b->n || a->d != b->d || a->h != b->h || a->w != b->w || a->c != b->c) return false;
  const size_t total = (size_t)a->n * a->d;
  kvi_real *ra = malloc(total * sizeof *ra), *rb = malloc(total * sizeof *rb);
  const kvi_real *pa = ra ? kvi_dataset_rows(a, 0, a->n, ra) : NULL;
  const kvi_real *pb = rb ? kvi_dataset_rows(b, 0, b->n, rb) : NULL;
  bool same = pa && pb && !memcmp(pa, pb, total * sizeof *pa);
  same = same && (!a->y || !memcmp(a->y, b->y, (size_t)a->n * sizeof *a->y));
  free(ra), free(rb);
  return same;
}

static void load_pair(kvi_dataset *f, kvi_dataset *b, kvi_dataset *ft, kvi_dataset *bt) {
  CHECK_OK(kvi_data_load_dir(f, ft, fashion_dir(), 500, 200));
  CHECK_OK(kvi_data_load_dir_bytes(b, bt, fashion_dir(), 500, 200));
}

static void free_all(kvi_dataset *a, kvi_dataset *b, kvi_dataset *c, kvi_dataset *d) {
  kvi_dataset_free(a), kvi_dataset_free(b), kvi_dataset_free(c), kvi_dataset_free(d);
}

static void test_load_and_read(void) {
  kvi_dataset f, b, ft, bt;
  load_pair(&f, &b, &ft, &bt);
  CHECK(f.x && !f.x8 && b.x8 && !b.x);
  CHECK(same_rows(&f, &b) && same_rows(&ft, &bt));
  CHECK(b.nclasses == f.nclasses && bt.nclasses == ft.nclasses);
  CHECK_OK(kvi_dataset_validate(&b, "bytes"));
  /* a gathered batch in a shuffled order */
  kvi_epoch_order o;
  CHECK_OK(kvi_epoch_order_init(&o, f.n));
  kvi_epoch_order_shuffle(&o, 7, 1);
  kvi_real *xf = malloc(64 * (size_t)f.d * sizeof *xf), *xb = malloc(64 * (size_t)f.d * sizeof *xb);
  int32_t yf[64], yb[64];
  kvi_batch_gather(xf, yf, NULL, &f, o.order + 100, 64);
  kvi_batch_gather(xb, yb, NULL, &b, o.order + 100, 64);
  CHECK(!memcmp(xf, xb, 64 * (size_t)f.d * sizeof *xf) && !memcmp(yf, yb, sizeof yf));
  /* rows: a range, out of range, no buffer */
  CHECK(kvi_dataset_rows(&b, 10, 5, xb) == xb &&
        !memcmp(xb, f.x + 10 * (size_t)f.d, 5 * sizeof *xb));
  CHECK(kvi_dataset_rows(&b, b.n - 1, 2, xb) == NULL);
  CHECK(kvi_dataset_rows(&b, -1, 1, xb) == NULL);
  CHECK(kvi_dataset_rows(&b, 0, 1, NULL) == NULL);
  CHECK(kvi_dataset_rows(&f, 3, 1, NULL) == f.x + 3 * (size_t)f.d);
  /* statistics, truncation, expansion */
  double mf, sf, mb, sb;
  CHECK_OK(kvi_dataset_pixel_stats(&f, &mf, &sf));
  CHECK_OK(kvi_dataset_pixel_stats(&b, &mb, &sb));
  CHECK(mf == mb && sf == sb);
  CHECK_OK(kvi_dataset_truncate(&b, 400));
  CHECK_OK(kvi_dataset_truncate(&f, 400));
  CHECK(same_rows(&f, &b));
  CHECK_OK(kvi_dataset_expand(&b));
  CHECK(b.x && !b.x8 && !memcmp(b.x, f.x, 400 * (size_t)f.d * sizeof *f.x));
  CHECK_OK(kvi_dataset_expand(&b)); /* a float dataset: nothing to do */
  CHECK_FAILS(kvi_dataset_expand(NULL));
  free(xf), free(xb);
  kvi_epoch_order_free(&o);
  free_all(&f, &b, &ft, &bt);
}

static void test_transforms(void) {
  kvi_dataset f, b, ft, bt, fv, bv;
  load_pair(&f, &b, &ft, &bt);
  /* split: the same rows on both sides, bytes kept */
  CHECK_OK(kvi_dataset_split(&f, &fv, 100, 5));
  CHECK_OK(kvi_dataset_split(&b, &bv, 100, 5));
  CHECK(bv.x8 && b.x8 && same_rows(&f, &b) && same_rows(&fv, &bv));
  /* pad before normalizing: bytes kept */
  CHECK_OK(kvi_dataset_pad(&f, 2));
  CHECK_OK(kvi_dataset_pad(&b, 2));
  CHECK(b.x8 && b.h == 32 && same_rows(&f, &b));
  /* scalar normalization maps the table */
  double m, s;
  CHECK_OK(kvi_dataset_pixel_stats(&f, &m, &s));
  CHECK_OK(kvi_dataset_normalize_scalar(&f, (kvi_real)m, (kvi_real)s));
  CHECK_OK(kvi_dataset_normalize_scalar(&b, (kvi_real)m, (kvi_real)s));
  CHECK(b.x8 && same_rows(&f, &b));
  /* padding after it: the byte 0 no longer reads 0, so the bytes are expanded first */
  CHECK_OK(kvi_dataset_pad(&f, 1));
  CHECK_OK(kvi_dataset_pad(&b, 1));
  CHECK(!b.x8 && b.x && same_rows(&f, &b));
  /* per-channel normalization and per-feature standardization expand the bytes */
  kvi_real mean = (kvi_real)0.3, sd = (kvi_real)0.4;
  CHECK_OK(kvi_dataset_normalize_channels(&fv, &mean, &sd));
  CHECK_OK(kvi_dataset_normalize_channels(&bv, &mean, &sd));
  CHECK(!bv.x8 && same_rows(&fv, &bv));
  kvi_dataset_free(&fv), kvi_dataset_free(&bv);
  kvi_dataset ft2, bt2;
  load_pair(&fv, &bv, &ft2, &bt2);
  kvi_real *mf = NULL, *sf = NULL, *mb = NULL, *sb = NULL;
  CHECK_FAILS(kvi_dataset_standardize(&ft2, &bv, NULL, NULL)); /* a byte reference */
  CHECK_OK(kvi_dataset_standardize(&fv, &fv, &mf, &sf));
  CHECK_OK(kvi_dataset_standardize(&bv, &bv, &mb, &sb));
  CHECK(!bv.x8 && same_rows(&fv, &bv) && !memcmp(mf, mb, (size_t)fv.d * sizeof *mf));
  CHECK_OK(kvi_dataset_apply_standardize(&ft, mf, sf));
  CHECK_OK(kvi_dataset_apply_standardize(&bt, mf, sf));
  CHECK(!bt.x8 && same_rows(&ft, &bt));
  kvi_free(mf), kvi_free(sf), kvi_free(mb), kvi_free(sb);
  free_all(&f, &b, &ft, &bt);
  free_all(&fv, &bv, &ft2, &bt2);
}

/* The evaluation reads rows in batches and, for the BMA, all of them: the same metrics. */
static void test_evaluate(void) {
  kvi_dataset f, b, ft, bt;
  load_pair(&f, &b, &ft, &bt);
  kvi_net_config nc = kvi_net_config_default();
  nc.family = KVI_FAMILY_MN, nc.prior = KVI_PRIOR_ARD;
  kvi_net *net = NULL;
  CHECK_OK(kvi_net_create(&net, "784-20-10", 784, &nc, 64, 3));
  if (!net) return;
  kvi_eval_config c = kvi_eval_config_default();
  c.samples = 3, c.seed = 9;
  kvi_metrics a, z;
  CHECK_OK(kvi_evaluate_ex(&a, net, &ft, &c));
  CHECK_OK(kvi_evaluate_ex(&z, net, &bt, &c));
  CHECK(a.acc_mean == z.acc_mean && a.nll_mean == z.nll_mean && a.acc_bma == z.acc_bma &&
        a.nll_bma == z.nll_bma && a.acc_pruned == z.acc_pruned && a.ece == z.ece);
  kvi_net_free(net);
  free_all(&f, &b, &ft, &bt);
}

static void test_bad_input(void) {
  kvi_dataset a, b;
  CHECK_FAILS(kvi_data_load_dir_bytes(&a, &b, "/nonexistent/kronvi-data", 0, 0));
  CHECK(!a.x && !a.x8 && !b.x && !b.x8);
  CHECK_FAILS(kvi_data_load_dir_bytes(&a, &b, "", 0, 0));
  CHECK_FAILS(kvi_data_load_dir_bytes(&a, &b, kvi_test_dir(), 0, 0)); /* no data files there */
  CHECK_FAILS(kvi_data_load_dir_bytes(&a, &b, fashion_dir(), -1, 0));
}

int main(void) {
  kvi_dataset probe, t;
  if (kvi_data_load_dir(&probe, &t, fashion_dir(), 1, 1)) {
    fprintf(stderr, "Fashion-MNIST not found in %s: %s\n", fashion_dir(), kvi_last_error());
    return 1;
  }
  kvi_dataset_free(&probe), kvi_dataset_free(&t);
  test_load_and_read();
  test_transforms();
  test_evaluate();
  test_bad_input();
  TEST_MAIN_END();
}
