/* The stable C API (include/kronvi/kronvi.h) on bad input and through a whole workflow: NULL
 * arguments, malformed options, shapes and values fail with a message; create, train (callback
 * per step and per epoch, stopping), continue, evaluate, predict, prune, compress, save, load,
 * train a compressed network, regression. */
#include "kronvi/kronvi.h"

#include "kvi_test.h"

/* 3 classes, 8 features: row i has class i % 3 and a bump on feature i % 3. */
static kvi_dset *toy(int n, unsigned seed) {
  kvi_real x[200 * 8];
  int32_t y[200];
  for (int i = 0; i < n; i++) {
    y[i] = i % 3;
    for (int j = 0; j < 8; j++) {
      seed = seed * 1103515245u + 12345u;
      x[i * 8 + j] = (kvi_real)((j == y[i] ? 1.0 : 0.0) + (double)(seed >> 8) / 16777216.0 - 0.5);
    }
  }
  kvi_dset *ds = NULL;
  CHECK_OK(kvi_dset_create(&ds, x, n, 8, y, 0));
  return ds;
}

static void bad_arguments(void) {
  kvi_real x[4] = {0, 1, 2, 3};
  int32_t y[2] = {0, 1};
  kvi_dset *ds = (kvi_dset *)1;
  CHECK_FAILS(kvi_dset_create(NULL, x, 2, 2, y, 2));
  CHECK_FAILS(kvi_dset_create(&ds, NULL, 2, 2, y, 2));
  CHECK(ds == NULL); /* outputs are cleared on failure */
  CHECK_FAILS(kvi_dset_create(&ds, x, 0, 2, y, 2));
  CHECK_FAILS(kvi_dset_create(&ds, x, 2, 2, y, 1)); /* label 1 >= 1 class */
  x[1] = NAN;
  CHECK_STATUS(kvi_dset_create(&ds, x, 2, 2, y, 2), KVI_ERR_NONFINITE);
  x[1] = 1;
  CHECK_FAILS(kvi_dset_create_regression(&ds, x, 2, 2, x, 0));
  CHECK_FAILS(kvi_dset_load_dir(&ds, NULL, "/nonexistent/dir", 0, 0));
  CHECK_OK(kvi_dset_create(&ds, x, 2, 2, y, 0));
  CHECK(kvi_dset_classes(ds) == 2 && kvi_dset_targets(ds) == 0 && kvi_dset_rows(NULL) == -1);
  CHECK_STATUS(kvi_dset_set_image_shape(ds, 1, 1, 3), KVI_ERR_SHAPE);
  kvi_real t[2];
  CHECK_FAILS(kvi_dset_copy(ds, NULL, NULL, t));
  kvi_dset_free(ds);
  kvi_dset_free(NULL);

  kvi_optim *o = NULL;
  CHECK_FAILS(kvi_optim_create(&o, "adamw"));
  CHECK_OK(kvi_optim_create(&o, NULL));
  CHECK(strcmp(kvi_optim_kind(o), "adam") == 0);
  CHECK_FAILS(kvi_optim_set(o, "speed", 1));
  CHECK_FAILS(kvi_optim_set(o, "lr", -1));
  CHECK_FAILS(kvi_optim_set(o, "lr", NAN));
  CHECK_FAILS(kvi_optim_set(o, "nesterov", 0.5));
  double v = 0;
  CHECK_OK(kvi_optim_set(o, "inverse_every", 7));
  CHECK_OK(kvi_optim_get(o, "inverse_every", &v));
  CHECK(v == 7);
  kvi_optim_free(o);

  kvi_network *n = (kvi_network *)1;
  CHECK_FAILS(kvi_network_create(&n, NULL, 0, NULL));
  CHECK(n == NULL);
  CHECK_FAILS(kvi_network_create(&n, "8-x-3", 0, NULL));
  CHECK_FAILS(kvi_network_create(&n, "8-4-3", 9, NULL)); /* in_size differs from arch */
  const char *bad_opts[] = {"family",     "=mn",    "family=gauss",  "seed=-1",   "batch=0",
                            "colour=red", "bias=2", "prior=fixed:x", "task=sort", "in_h=1e3"};
  for (size_t i = 0; i < sizeof bad_opts / sizeof *bad_opts; i++)
    CHECK_FAILS(kvi_network_create(&n, "8-4-3", 0, bad_opts[i]));
  CHECK_FAILS(kvi_network_load(&n, "/nonexistent.safetensors"));
  CHECK_FAILS(kvi_network_save(NULL, "x"));
  CHECK(kvi_network_inputs(NULL) == -1 && strcmp(kvi_network_arch(NULL), "") == 0);
  kvi_network_free(NULL);
  kvi_learner_free(NULL);
  CHECK_FAILS(kvi_set_num_threads(0));
  CHECK(kvi_learner_stopped(NULL) == -1);
}

/* Field by field (the struct has padding); NaN equals NaN. */
static bool same_scores(const kvi_scores *a, const kvi_scores *b) {
  const double x[] = {a->accuracy, a->nll,         a->accuracy_bma,    a->nll_bma, a->ece,
                      a->entropy,  a->entropy_bma, a->accuracy_pruned, a->rmse};
  const double y[] = {b->accuracy, b->nll,         b->accuracy_bma,    b->nll_bma, b->ece,
                      b->entropy,  b->entropy_bma, b->accuracy_pruned, b->rmse};
  for (int i = 0; i < 9; i++)
    if (!(x[i] == y[i] || (isnan(x[i]) && isnan(y[i])))) return false;
  return a->rows == b->rows && a->samples == b->samples;
}

typedef struct {
  int epochs, steps, stop_at_step;
  double last_loss;
} progress_log;

static int on_progress(const kvi_progress *p, void *user) {
  progress_log *l = user;
  if (p->end_of_epoch) {
    l->epochs++;
    l->last_loss = p->loss;
    CHECK(p->batches == 5 && p->batch == 5 && p->test_accuracy >= 0 && p->test_accuracy <= 1);
  } else {
    l->steps++;
    CHECK(p->batch >= 1 && p->batch <= p->batches && isnan(p->test_accuracy));
  }
  return l->stop_at_step > 0 && p->step >= l->stop_at_step;
}

static void workflow(void) {
  kvi_dset *train = toy(150, 1), *test = toy(90, 2);
  kvi_network *net = NULL;
  CHECK_OK(kvi_network_create(&net, "8-16-3", 8, "family=mn, prior=ard seed=5 batch=30"));
  CHECK(kvi_network_inputs(net) == 8 && kvi_network_outputs(net) == 3);
  CHECK(strcmp(kvi_network_family(net), "mn") == 0 && kvi_network_epochs(net) == 0);
  CHECK(strcmp(kvi_network_task(net), "classify") == 0);
  kvi_learner *l = NULL;
  CHECK_FAILS(kvi_learner_create(&l, net, NULL, "epochs=2 batch=1001")); /* above max_batch */
  CHECK_FAILS(kvi_learner_create(&l, net, NULL, "epochs=two"));
  kvi_optim *o = NULL;
  CHECK_OK(kvi_optim_create(&o, "adam"));
  CHECK_OK(kvi_optim_set(o, "lr", 1e-2));
  CHECK_OK(kvi_learner_create(&l, net, o, "epochs=2 batch=30 kl_warmup=1 samples=3"));
  progress_log plog = {0, 0, 0, 0};
  CHECK_OK(kvi_learner_set_callback(l, on_progress, &plog, 1));
  CHECK_OK(kvi_learner_fit(l, train, NULL, test));
  CHECK(plog.epochs == 2 && plog.steps == 10 && kvi_network_epochs(net) == 2);
  CHECK(kvi_learner_stopped(l) == 0);
  kvi_learner_free(l);

  /* a trained network continues with its own configuration */
  kvi_optim *sgd = NULL;
  CHECK_OK(kvi_optim_create(&sgd, "sgd"));
  CHECK_STATUS(kvi_learner_create(&l, net, sgd, "epochs=4"), KVI_ERR_STATE);
  CHECK_STATUS(kvi_learner_create(&l, net, NULL, "epochs=4 batch=10"), KVI_ERR_STATE);
  CHECK_OK(kvi_learner_create(&l, net, NULL, "epochs=4"));
  plog = (progress_log){0, 0, 12, 0}; /* step 12: in the third epoch */
  CHECK_OK(kvi_learner_set_callback(l, on_progress, &plog, 1));
  CHECK_OK(kvi_learner_fit(l, train, NULL, NULL));
  CHECK(kvi_learner_stopped(l) == 1 && kvi_network_epochs(net) == 2 && plog.steps == 2);
  CHECK_OK(kvi_learner_set_callback(l, NULL, NULL, 0));
  CHECK_OK(kvi_learner_fit(l, train, NULL, NULL));
  CHECK(kvi_learner_stopped(l) == 0 && kvi_network_epochs(net) == 4);
  kvi_dset *wide = NULL;
  kvi_real xw[9] = {0};
  int32_t yw[1] = {0};
  CHECK_OK(kvi_dset_create(&wide, xw, 1, 9, yw, 3));
  CHECK_STATUS(kvi_learner_fit(l, wide, NULL, NULL), KVI_ERR_SHAPE);
  kvi_learner_free(l);

  kvi_scores sc;
  CHECK_OK(kvi_network_evaluate(net, test, 10, 1, 3.0, &sc));
  CHECK(sc.rows == 90 && sc.samples == 10 && sc.accuracy > 0.5 && isnan(sc.rmse));
  CHECK_STATUS(kvi_network_evaluate(net, wide, 10, 1, 3.0, &sc), KVI_ERR_SHAPE);
  CHECK_FAILS(kvi_network_evaluate(net, test, 10, 1, NAN, &sc));

  kvi_real x[90 * 8];
  int32_t y[90];
  CHECK_OK(kvi_dset_copy(test, x, y, NULL));
  double P[90 * 3], H[90], P2[90 * 3];
  CHECK_OK(kvi_network_predict(net, x, 90, 8, 0, 0, P, H));
  int correct = 0;
  for (int i = 0; i < 90; i++) {
    int a = 0;
    for (int k = 1; k < 3; k++) a = P[i * 3 + k] > P[i * 3 + a] ? k : a;
    correct += a == y[i];
    CHECK(H[i] >= 0 && H[i] <= log(3.0) + 1e-9);
  }
  CHECK(correct == (int)lround(sc.accuracy * 90)); /* the same mean-weight predictions */
  CHECK_OK(kvi_network_predict(net, x, 90, 8, 5, 3, P, NULL));
  CHECK_OK(kvi_network_predict(net, x, 90, 8, 5, 3, P2, NULL));
  CHECK(memcmp(P, P2, sizeof P) == 0); /* a seed gives the same samples */
  CHECK_STATUS(kvi_network_predict(net, x, 90, 7, 0, 0, P, NULL), KVI_ERR_SHAPE);
  CHECK_FAILS(kvi_network_predict(net, x, 0, 8, 0, 0, P, NULL));
  CHECK_FAILS(kvi_network_predict(net, x, 90, 8, -1, 0, P, NULL));

  char path[512], path2[512];
  snprintf(path, sizeof path, "%s/api_test.safetensors", kvi_test_dir());
  snprintf(path2, sizeof path2, "%s/api_test_small.safetensors", kvi_test_dir());
  int64_t total = 0, kept = 0, pruned = -1;
  CHECK_OK(kvi_network_sparsity(net, 3.0, &total, &kept));
  CHECK_OK(kvi_network_prune(net, 3.0, &pruned));
  CHECK(total == 8 * 16 + 16 * 3 && pruned == total - kept);
  CHECK_OK(kvi_network_save(net, path));
  kvi_network *back = NULL;
  CHECK_OK(kvi_network_load(&back, path));
  kvi_scores a, b;
  CHECK_OK(kvi_network_evaluate(net, test, 4, 9, 3.0, &a));
  CHECK_OK(kvi_network_evaluate(back, test, 4, 9, 3.0, &b));
  CHECK(same_scores(&a, &b) && kvi_network_epochs(back) == 4);

  kvi_network *small = NULL;
  CHECK_OK(kvi_network_compress(&small, back, 3.0));
  CHECK(kvi_network_param_count(small) <= kvi_network_param_count(back));
  CHECK_OK(kvi_network_save(small, path2));
  kvi_network *small2 = NULL;
  CHECK_OK(kvi_network_load(&small2, path2)); /* no optimizer state: loads as kronvi eval does */
  CHECK_OK(kvi_learner_create(&l, small2, NULL, "epochs=5"));
  CHECK_OK(kvi_learner_fit(l, train, NULL, NULL)); /* a new optimizer, counters kept */
  CHECK(kvi_network_epochs(small2) == 5);
  kvi_learner_free(l);

  kvi_network_free(small2), kvi_network_free(small), kvi_network_free(back);
  kvi_optim_free(sgd), kvi_optim_free(o);
  kvi_network_free(net), kvi_dset_free(wide), kvi_dset_free(train), kvi_dset_free(test);
}

static void regression(void) {
  kvi_real x[60 * 2], t[60];
  for (int i = 0; i < 60; i++) {
    x[2 * i] = (kvi_real)(i / 60.0), x[2 * i + 1] = (kvi_real)((i % 7) / 7.0);
    t[i] = (kvi_real)(2 * x[2 * i] - x[2 * i + 1]);
  }
  kvi_dset *ds = NULL;
  CHECK_OK(kvi_dset_create_regression(&ds, x, 60, 2, t, 1));
  kvi_network *net = NULL;
  CHECK_OK(kvi_network_create(&net, "2-8-1", 0, "task=regress family=diag"));
  CHECK(strcmp(kvi_network_task(net), "regress") == 0);
  kvi_learner *l = NULL;
  CHECK_OK(kvi_learner_create(&l, net, NULL, "epochs=3 batch=20 learn_noise=1"));
  CHECK_OK(kvi_learner_fit(l, ds, NULL, NULL));
  kvi_scores sc;
  CHECK_OK(kvi_network_evaluate(net, ds, 10, 1, 3, &sc));
  CHECK(sc.rmse >= 0 && isnan(sc.accuracy) && sc.samples == 0);
  double out[60], h[60];
  CHECK_OK(kvi_network_predict(net, x, 60, 2, 0, 0, out, NULL));
  CHECK_FAILS(kvi_network_predict(net, x, 60, 2, 3, 0, out, NULL));
  CHECK_FAILS(kvi_network_predict(net, x, 60, 2, 0, 0, out, h));
  kvi_learner_free(l), kvi_network_free(net), kvi_dset_free(ds);
}

int main(void) {
  int major = -1;
  const char *v = kvi_version(&major, NULL, NULL);
  CHECK(major == KVI_VERSION_MAJOR && strstr(v, "f32") != NULL);
  CHECK_OK(kvi_set_num_threads(2));
  CHECK(kvi_num_threads() == 2);
  CHECK(strcmp(kvi_status_message(KVI_ERR_SHAPE), "shape mismatch") == 0);
  bad_arguments();
  workflow();
  regression();
  TEST_MAIN_END();
}
