/* A program over kronvi's stable C API (docs/api.md): builds a Matrix Normal network, trains it
 * with a progress callback, evaluates it with uncertainty, prunes, compresses, saves and loads.
 *
 *   train_predict [DIR [CHECKPOINT]]
 *
 * DIR: a directory of IDX files (Fashion-MNIST); without it (or with "-"), a synthetic data set
 * of three noisy clusters in 20 dimensions. CHECKPOINT: where to save (example.safetensors). Build
 * it with pkg-config: cc train_predict.c $(pkg-config --cflags --libs kronvi) -o train_predict or
 * with CMake (CMakeLists.txt next to it: find_package(kronvi)). */
#include <kronvi/kronvi.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                               \
  do {                                                                                            \
    kvi_status s_ = (call);                                                                       \
    if (s_ != KVI_OK) {                                                                           \
      fprintf(stderr, "%s failed: %s: %s\n", #call, kvi_status_message(s_), kvi_error_message()); \
      exit(1);                                                                                    \
    }                                                                                             \
  } while (0)

/* n rows of d features around one of K centres; deterministic. */
static kvi_dset *clusters(int n, int d, int K, unsigned seed) {
  kvi_real *x = malloc(sizeof *x * n * d);
  int32_t *y = malloc(sizeof *y * n);
  for (int i = 0; i < n; i++) {
    y[i] = i % K;
    for (int j = 0; j < d; j++) {
      seed = seed * 1103515245u + 12345u;
      double u = (double)(seed >> 8) / 16777216.0 - 0.5;
      x[i * d + j] = (kvi_real)((j % K == y[i] ? 1.5 : 0.0) + u);
    }
  }
  kvi_dset *ds;
  CHECK(kvi_dset_create(&ds, x, n, d, y, K));
  free(x), free(y);
  return ds;
}

static int on_progress(const kvi_progress *p, void *user) {
  (void)user;
  printf("epoch %d/%d: loss %.4f, train accuracy %.4f, test accuracy %.4f, sparsity %.3f\n",
         p->epoch, p->epochs, p->loss, p->accuracy, p->test_accuracy, p->sparsity);
  return 0; /* non-zero would stop training */
}

int main(int argc, char **argv) {
  const char *ckpt = argc > 2 ? argv[2] : "example.safetensors";
  kvi_dset *train, *test;
  const char *arch;
  if (argc > 1 && strcmp(argv[1], "-") != 0) {
    CHECK(kvi_dset_load_dir(&train, &test, argv[1], 10000, 2000));
    arch = "784-100-10";
  } else {
    train = clusters(600, 20, 3, 1), test = clusters(300, 20, 3, 2);
    arch = "20-32-3";
  }
  printf("kronvi %s: %lld training rows, %lld test rows\n", kvi_version(NULL, NULL, NULL),
         (long long)kvi_dset_rows(train), (long long)kvi_dset_rows(test));

  kvi_network *net;
  CHECK(kvi_network_create(&net, arch, 0, "family=mn prior=ard seed=1"));
  kvi_optim *adam;
  CHECK(kvi_optim_create(&adam, "adam"));
  CHECK(kvi_optim_set(adam, "lr", 3e-3));
  kvi_learner *learner;
  CHECK(kvi_learner_create(&learner, net, adam, "epochs=3 batch=50 kl_warmup=1"));
  CHECK(kvi_learner_set_callback(learner, on_progress, NULL, 0));
  CHECK(kvi_learner_fit(learner, train, NULL, test));

  kvi_scores sc;
  CHECK(kvi_network_evaluate(net, test, 10, 1, 3.0, &sc));
  printf("test: accuracy %.4f (mean weights), %.4f (BMA, %d samples), NLL %.4f, ECE %.4f\n",
         sc.accuracy, sc.accuracy_bma, sc.samples, sc.nll_bma, sc.ece);

  /* per-example uncertainty: the BMA probabilities and predictive entropy of 3 test rows */
  int d = kvi_dset_features(test), K = kvi_network_outputs(net);
  kvi_real *x = malloc(sizeof *x * kvi_dset_rows(test) * d);
  CHECK(kvi_dset_copy(test, x, NULL, NULL));
  double *p = malloc(sizeof *p * 3 * K), h[3];
  CHECK(kvi_network_predict(net, x, 3, d, 10, 1, p, h));
  for (int i = 0; i < 3; i++) {
    int arg = 0;
    for (int k = 1; k < K; k++) arg = p[i * K + k] > p[i * K + arg] ? k : arg;
    printf("row %d: class %d, probability %.3f, entropy %.3f nats\n", i, arg, p[i * K + arg], h[i]);
  }

  int64_t total, pruned;
  CHECK(kvi_network_prune(net, 3.0, &pruned));
  CHECK(kvi_network_sparsity(net, 3.0, &total, NULL));
  kvi_network *small;
  CHECK(kvi_network_compress(&small, net, 3.0));
  printf("pruned %lld of %lld weights; compressed %s -> %s (%lld -> %lld parameters)\n",
         (long long)pruned, (long long)total, kvi_network_arch(net), kvi_network_arch(small),
         (long long)kvi_network_param_count(net), (long long)kvi_network_param_count(small));

  CHECK(kvi_network_evaluate(net, test, 10, 1, 3.0, &sc));
  printf("pruned network: accuracy %.4f (mean weights), %.4f (BMA)\n", sc.accuracy,
         sc.accuracy_bma);
  CHECK(kvi_network_save(net, ckpt));
  kvi_network *back;
  CHECK(kvi_network_load(&back, ckpt));
  kvi_scores sb;
  CHECK(kvi_network_evaluate(back, test, 10, 1, 3.0, &sb));
  printf("saved and loaded %s: accuracy %.4f (BMA %.4f), %s\n", ckpt, sb.accuracy, sb.accuracy_bma,
         sb.accuracy_bma == sc.accuracy_bma ? "the same" : "DIFFERENT");

  /* bad input is an error with a message, never a crash */
  kvi_status s = kvi_network_predict(back, x, 3, d + 1, 0, 0, p, NULL);
  printf("predict with %d features: %s (%s)\n", d + 1, kvi_status_message(s), kvi_error_message());

  free(x), free(p);
  kvi_network_free(back), kvi_network_free(small), kvi_learner_free(learner);
  kvi_optim_free(adam), kvi_network_free(net), kvi_dset_free(train), kvi_dset_free(test);
  return sb.accuracy_bma == sc.accuracy_bma && s != KVI_OK ? 0 : 1;
}
