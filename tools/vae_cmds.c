/* kronvi vae eval / sample / reconstruct: commands that read a VAE checkpoint. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vae_cli.h"

enum {
  E_DATA = 500,
  E_K,
  E_LTEST,
  E_SEED,
  E_THREADS,
  E_LAST,
  E_JSON,
  E_PERIMAGE,
  E_OUT,
  E_N,
  E_COLS,
  E_SCALE,
  E_PROGRESS
};

static const struct option eval_opts[] = {{"data", 1, 0, E_DATA},
                                          {"k", 1, 0, E_K},
                                          {"limit-test", 1, 0, E_LTEST},
                                          {"seed", 1, 0, E_SEED},
                                          {"threads", 1, 0, E_THREADS},
                                          {"last", 0, 0, E_LAST},
                                          {"json", 0, 0, E_JSON},
                                          {"per-image", 1, 0, E_PERIMAGE},
                                          {"out", 1, 0, E_OUT},
                                          {"n", 1, 0, E_N},
                                          {"cols", 1, 0, E_COLS},
                                          {"scale", 1, 0, E_SCALE},
                                          {"progress", 1, 0, E_PROGRESS},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};

typedef struct {
  const char *model, *data, *per_image, *out, *progress;
  long k, limit_test, seed, threads, n, cols, scale;
  bool last, json;
} eval_args;

/* The flags a command takes are the ones its usage text names. */
static bool takes(const char *usage, const char *flag) { return strstr(usage, flag) != NULL; }

static bool eval_option(eval_args *a, int c, const char *usage) {
  static const char *names[] = {"--data", "--k",     "--limit-test", "--seed", "--threads",
                                "--last", "--json",  "--per-image",  "--out",  "--n ",
                                "--cols", "--scale", "--progress"};
  if (c >= E_DATA && c <= E_PROGRESS && !takes(usage, names[c - E_DATA])) {
    fprintf(stderr, "kronvi: this command does not take %s\n", names[c - E_DATA]);
    return false;
  }
  switch (c) {
    case E_DATA:
      return a->data = optarg, true;
    case E_K:
      return cli_int("--k", optarg, 1, KVI_VAE_MAX_SAMPLES, &a->k);
    case E_LTEST:
      return cli_int("--limit-test", optarg, 1, 1000000000, &a->limit_test);
    case E_SEED:
      return cli_int("--seed", optarg, 0, 2147483647, &a->seed);
    case E_THREADS:
      return cli_int("--threads", optarg, 1, 256, &a->threads);
    case E_LAST:
      return a->last = true;
    case E_JSON:
      return a->json = true;
    case E_PERIMAGE:
      return a->per_image = optarg, true;
    case E_OUT:
      return a->out = optarg, true;
    case E_N:
      return cli_int("--n", optarg, 1, 10000, &a->n);
    case E_COLS:
      return cli_int("--cols", optarg, 1, 1000, &a->cols);
    case E_SCALE:
      return cli_int("--scale", optarg, 1, 16, &a->scale);
    case E_PROGRESS:
      a->progress = optarg;
      if (strcmp(optarg, "auto") && strcmp(optarg, "none") && strcmp(optarg, "lines")) {
        fprintf(stderr, "kronvi: --progress expects auto, lines or none\n");
        return false;
      }
      return true;
    default:
      return false;
  }
}

/* Parses the options of a command whose usage text is `usage`; -1: go on, else the exit code. */
static int parse_eval(eval_args *a, int argc, char **argv, const char *usage, long n) {
  memset(a, 0, sizeof *a);
  a->k = 5000, a->seed = 1, a->threads = kvi_threads_available(), a->n = n, a->cols = 8;
  a->scale = 2, a->progress = "auto";
  optind = 1;
  opterr = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", eval_opts, NULL)) != -1) {
    if (c == 'h') {
      printf("%s", usage);
      return 0;
    }
    if (!eval_option(a, c, usage)) {
      fprintf(stderr, "%s", usage);
      return 2;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "kronvi: expected exactly one MODEL argument\n%s", usage);
    return 2;
  }
  a->model = argv[optind];
  if (takes(usage, "--data DIR") && !a->data) {
    fprintf(stderr, "kronvi: --data is required\n%s", usage);
    return 2;
  }
  if (takes(usage, "--out PNG") && !a->out) {
    fprintf(stderr, "kronvi: --out is required\n%s", usage);
    return 2;
  }
  if (a->out && !cli_check_writable("--out", a->out)) return 1;
  if (a->per_image && !cli_check_writable("--per-image", a->per_image)) return 1;
  kvi_set_threads((int)a->threads);
  return -1;
}

/* The checkpoint's VAE with its best parameters (unless --last), and its trainer's counters. */
static int load_vae(const eval_args *a, kvi_vae **v, kvi_vae_trainer *t, bool *best) {
  if (kvi_vae_checkpoint_load(a->model, v, t, !a->last, best))
    return cli_error("cannot load model");
  return 0;
}

static void describe(const eval_args *a, const kvi_vae *v, const kvi_vae_trainer *t, bool best,
                     FILE *f) {
  fprintf(f, "%s: VAE %s (|z| %d), %s parameters (epoch %d of %d trained)\n", a->model,
          vae_family_label(&v->cfg), v->cfg.head.d, best ? "best" : "last",
          best ? t->best_epoch : t->epoch, t->epoch);
}

/* ---- eval ----------------------------------------------------------------------------------- */
static const char *EVAL_USAGE =
    "usage: kronvi vae eval MODEL --data DIR [--k K] [--limit-test N] [--seed S] [--threads N]\n"
    "                       [--last] [--json] [--per-image CSV] [--progress auto|lines|none]\n"
    "  Evaluates a VAE checkpoint on the test split of DIR (binarized IDX images): per image in\n"
    "  nats, the ELBO and the importance-weighted estimate of log p(x) with K samples from the\n"
    "  encoder (default 5000), both as a mean over the images with its standard error (sample\n"
    "  standard deviation / sqrt(images)), and their paired difference. The ELBO uses the same\n"
    "  samples: mean log p(x|z) minus the closed-form KL. The parameters of the best validation\n"
    "  epoch are used (--last: those of the last epoch). --per-image writes one CSV row per image\n"
    "  (index, elbo, ll) for paired comparisons between models; --limit-test N uses the first N\n"
    "  images; --seed S seeds the samples (image i always gets the stream (S, i)).\n";

typedef struct {
  double mean, se;
} mean_se;

static mean_se stats(const double *x, const double *y, int64_t n) {
  double m = 0, v = 0;
  for (int64_t i = 0; i < n; i++) m += (x[i] - (y ? y[i] : 0)) / (double)n;
  for (int64_t i = 0; i < n; i++) {
    const double d = x[i] - (y ? y[i] : 0) - m;
    v += d * d;
  }
  return (mean_se){m, n > 1 ? sqrt(v / (double)(n - 1) / (double)n) : NAN};
}

static kvi_status write_per_image(const char *path, const double *elbo, const double *ll,
                                  int64_t n) {
  size_t cap = 32 + (size_t)n * 48, len = 0;
  char *buf = malloc(cap);
  if (!buf) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  len += (size_t)snprintf(buf, cap, "image,elbo,ll\n");
  for (int64_t i = 0; i < n; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%lld,%.6f,%.6f\n", (long long)i, elbo[i], ll[i]);
  kvi_status s = kvi_write_file_atomic(path, buf, len);
  free(buf);
  return s;
}

/* IWAE over the test images in chunks of 100 (the same numbers as one call), with progress. */
static kvi_status run_iwae(kvi_vae *v, double *ll, double *elbo, const kvi_dataset *test,
                           const eval_args *a) {
  const bool show = strcmp(a->progress, "none") && (isatty(2) || !strcmp(a->progress, "lines"));
  const double t0 = kvi_time_now();
  double last = t0;
  for (int64_t i0 = 0; i0 < test->n; i0 += 100) {
    const int64_t nb = test->n - i0 < 100 ? test->n - i0 : 100;
    kvi_status s = kvi_vae_iwae(v, ll + i0, elbo + i0, test->x + (size_t)i0 * test->d, nb,
                                (int)a->k, (uint64_t)a->seed, i0);
    if (s) return s;
    const double now = kvi_time_now();
    if (show && (now - last > 1 || i0 + nb == test->n)) {
      fprintf(stderr, "%s%lld / %lld images, %.0f s", isatty(2) ? "\r" : "", (long long)(i0 + nb),
              (long long)test->n, now - t0);
      fprintf(stderr, isatty(2) && i0 + nb < test->n ? " " : "\n");
      last = now;
    }
  }
  return KVI_OK;
}

static void print_eval(const eval_args *a, const kvi_vae *v, int64_t n, const double *elbo,
                       const double *ll, bool best) {
  const mean_se e = stats(elbo, NULL, n), l = stats(ll, NULL, n), g = stats(ll, elbo, n);
  if (a->json) {
    printf(
        "{\"images\": %lld, \"k\": %ld, \"family\": \"%s\", \"latent\": %d, \"p\": %d, "
        "\"q\": %d, \"parameters\": \"%s\", \"elbo\": %.6f, \"elbo_se\": %.6f, \"ll\": %.6f, "
        "\"ll_se\": %.6f, \"gap\": %.6f, \"gap_se\": %.6f}\n",
        (long long)n, a->k, kvi_vae_family_name(v->cfg.head.family), v->cfg.head.d, v->cfg.head.p,
        v->cfg.head.q, best ? "best" : "last", e.mean, e.se, l.mean, l.se, g.mean, g.se);
    return;
  }
  printf("test set: %lld images of %s, k = %ld importance samples, seed %ld\n", (long long)n,
         a->data, a->k, a->seed);
  printf("  ELBO            %10.3f nats per image (standard error %.3f)\n", e.mean, e.se);
  printf("  log-likelihood  %10.3f nats per image (standard error %.3f; IWAE, k = %ld)\n", l.mean,
         l.se, a->k);
  printf("  LL - ELBO       %10.3f nats per image (standard error %.3f, paired)\n", g.mean, g.se);
}

int vae_eval(int argc, char **argv) {
  eval_args a;
  int rc = parse_eval(&a, argc, argv, EVAL_USAGE, 0);
  if (rc >= 0) return rc;
  rc = 0;
  kvi_vae *v = NULL;
  kvi_vae_trainer t;
  bool best = false;
  if (load_vae(&a, &v, &t, &best)) return 1;
  kvi_dataset train, test;
  kvi_status s = vae_load_data(&train, &test, a.data, false, 1, true, a.limit_test);
  if (!s && test.d != v->cfg.in_size)
    s = kvi_fail(KVI_ERR_SHAPE, "the test images have %d pixels, the VAE takes %d", test.d,
                 v->cfg.in_size);
  double *ll = NULL, *elbo = NULL;
  if (s) {
    rc = cli_error("cannot load data");
  } else if (!(ll = malloc((size_t)test.n * sizeof *ll)) ||
             !(elbo = malloc((size_t)test.n * sizeof *elbo))) {
    rc = cli_error("out of memory");
  } else {
    if (!a.json) describe(&a, v, &t, best, stdout);
    fflush(stdout);
    if (run_iwae(v, ll, elbo, &test, &a))
      rc = cli_error("evaluation failed");
    else if (a.per_image && write_per_image(a.per_image, elbo, ll, test.n))
      rc = cli_error("--per-image");
    else
      print_eval(&a, v, test.n, elbo, ll, best);
  }
  free(ll), free(elbo);
  kvi_dataset_free(&train), kvi_dataset_free(&test);
  kvi_vae_trainer_free(&t);
  kvi_vae_free(v);
  return rc;
}

/* ---- sample, reconstruct -------------------------------------------------------------------- */
static const char *SAMPLE_USAGE =
    "usage: kronvi vae sample MODEL --out PNG [--n N] [--cols C] [--scale S] [--seed S] [--last]\n"
    "  Draws N latent codes z ~ N(0, I) (default 64) and writes the decoder's Bernoulli means\n"
    "  (white = 1) as a grid of C columns (default 8), every pixel S x S (default 2), to PNG.\n"
    "  The best validation epoch's parameters are used (--last: the last epoch's).\n"
    "  --threads N: at most N threads.\n";

static const char *RECON_USAGE =
    "usage: kronvi vae reconstruct MODEL --data DIR --out PNG [--n N] [--cols C] [--scale S]\n"
    "                              [--last]\n"
    "  The first N test images of DIR (default 32) and their reconstructions, the decoder's\n"
    "  Bernoulli means at the encoder's mean code, as a PNG grid: each row of C originals\n"
    "  (default 8) is followed by a row of their reconstructions. --threads N: at most N "
    "threads.\n";

static int need_image_shape(const kvi_vae *v, const char *model) {
  if (v->cfg.in_h > 0 && v->cfg.in_w > 0) return 0;
  fprintf(stderr, "kronvi: %s was trained on data without an image shape: no pictures\n", model);
  return 1;
}

int vae_sample(int argc, char **argv) {
  eval_args a;
  int rc = parse_eval(&a, argc, argv, SAMPLE_USAGE, 64);
  if (rc >= 0) return rc;
  kvi_vae *v = NULL;
  kvi_vae_trainer t;
  bool best = false;
  if (load_vae(&a, &v, &t, &best)) return 1;
  const int d = v->cfg.head.d, D = v->cfg.in_size;
  kvi_real *Z = kvi_alloc((size_t)a.n * d * sizeof *Z), *P = kvi_alloc((size_t)a.n * D * sizeof *P);
  rc = need_image_shape(v, a.model);
  if (!rc && (!Z || !P)) rc = cli_error("out of memory");
  if (!rc) {
    kvi_rng rng = kvi_rng_stream((uint64_t)a.seed, 0x5a3b1e);
    kvi_rng_normal(&rng, Z, (size_t)a.n * d);
    if (kvi_vae_decode(v, P, Z, a.n) ||
        cli_png_grid(a.out, P, (int)a.n, v->cfg.in_h, v->cfg.in_w, (int)a.cols, (int)a.scale))
      rc = cli_error("sample");
  }
  if (!rc) {
    describe(&a, v, &t, best, stdout);
    printf("wrote %ld samples to %s\n", a.n, a.out);
  }
  kvi_free(Z), kvi_free(P);
  kvi_vae_trainer_free(&t);
  kvi_vae_free(v);
  return rc;
}

/* Images in the grid's order: each group of `cols` originals, then their reconstructions. */
static void interleave(kvi_real *G, const kvi_real *X, const kvi_real *R, int n, int cols, int D) {
  int k = 0;
  for (int r0 = 0; r0 < n; r0 += cols) {
    const int c = n - r0 < cols ? n - r0 : cols;
    for (int pass = 0; pass < 2; pass++)
      for (int j = 0; j < cols; j++, k++) {
        kvi_real *dst = G + (size_t)k * D;
        if (j < c)
          memcpy(dst, (pass ? R : X) + (size_t)(r0 + j) * D, (size_t)D * sizeof *dst);
        else
          memset(dst, 0, (size_t)D * sizeof *dst);
      }
  }
}

int vae_reconstruct(int argc, char **argv) {
  eval_args a;
  int rc = parse_eval(&a, argc, argv, RECON_USAGE, 32);
  if (rc >= 0) return rc;
  kvi_vae *v = NULL;
  kvi_vae_trainer t;
  bool best = false;
  if (load_vae(&a, &v, &t, &best)) return 1;
  kvi_dataset train, test;
  kvi_status s = vae_load_data(&train, &test, a.data, false, 1, true, a.n);
  rc = s ? cli_error("cannot load data") : need_image_shape(v, a.model);
  if (!rc && test.d != v->cfg.in_size) {
    fprintf(stderr, "kronvi: the test images have %d pixels, the VAE takes %d\n", test.d,
            v->cfg.in_size);
    rc = 1;
  }
  const int n = (int)test.n, d = v->cfg.head.d, D = v->cfg.in_size, cols = (int)a.cols;
  const int cells = 2 * ((n + cols - 1) / cols) * cols;
  kvi_real *Z = NULL, *R = NULL, *G = NULL;
  if (!rc &&
      (!(Z = kvi_alloc((size_t)n * d * sizeof *Z)) || !(R = kvi_alloc((size_t)n * D * sizeof *R)) ||
       !(G = kvi_alloc((size_t)cells * D * sizeof *G))))
    rc = cli_error("out of memory");
  if (!rc && (kvi_vae_encode_mean(v, Z, test.x, n) || kvi_vae_decode(v, R, Z, n)))
    rc = cli_error("reconstruct");
  if (!rc) {
    interleave(G, test.x, R, n, cols, D);
    if (cli_png_grid(a.out, G, cells, v->cfg.in_h, v->cfg.in_w, cols, (int)a.scale))
      rc = cli_error("reconstruct");
  }
  if (!rc) {
    describe(&a, v, &t, best, stdout);
    printf("wrote %d test images and their reconstructions to %s\n", n, a.out);
  }
  kvi_free(Z), kvi_free(R), kvi_free(G);
  kvi_dataset_free(&train), kvi_dataset_free(&test);
  kvi_vae_trainer_free(&t);
  kvi_vae_free(v);
  return rc;
}
