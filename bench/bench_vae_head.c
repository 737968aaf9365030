/* Per-image CPU time of the VAE encoder head's training calls (sample, its backward, the KL
 * with its gradient) on one thread, single precision: the generic path (the triangles unpacked
 * for src/prob's weight-layer functions, with a scratch arena as in training) against the
 * kernels of src/models/vae_head_fast.c that kvi_vae_head_* now run. Each time is the
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID) of a block of --calls calls (default 4000) over
 * a pool of 256 random images, divided by the calls; the median of --reps blocks (default 15).
 * Prints a markdown table (ns per image).
 *   bench_vae_head [--calls N] [--reps R] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kronvi/models.h"
#include "models/vae_head_fast.h"

#define POOL 256

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct {
  kvi_vae_head h;
  int H;
  kvi_real *out, *eps, *dz, *z, *dout;
  kvi_arena *ar;
} hcase;

static void hcase_init(hcase *c, kvi_vae_family f, int d, int p, int q) {
  if (kvi_vae_head_init(&c->h, f, d, p, q)) exit(1);
  c->H = kvi_vae_head_size(&c->h);
  kvi_rng r = kvi_rng_stream(5, (uint64_t)f * 1000 + (uint64_t)d + (uint64_t)p);
  const size_t nh = (size_t)POOL * c->H, nd = (size_t)POOL * d;
  c->out = kvi_alloc(nh * sizeof(kvi_real)), c->dout = kvi_alloc(nh * sizeof(kvi_real));
  c->eps = kvi_alloc(nd * sizeof(kvi_real)), c->dz = kvi_alloc(nd * sizeof(kvi_real));
  c->z = kvi_alloc(nd * sizeof(kvi_real));
  c->ar = kvi_arena_create(1 << 16);
  if (!c->out || !c->dout || !c->eps || !c->dz || !c->z || !c->ar) exit(1);
  kvi_rng_normal(&r, c->out, nh);
  for (size_t k = 0; k < nh; k++)
    if ((int)(k % (size_t)c->H) >= d) c->out[k] *= (kvi_real)0.3; /* the factors */
  kvi_rng_normal(&r, c->eps, nd);
  kvi_rng_normal(&r, c->dz, nd);
  memset(c->dout, 0, nh * sizeof(kvi_real));
}

static void hcase_free(hcase *c) {
  kvi_free(c->out), kvi_free(c->dout), kvi_free(c->eps), kvi_free(c->dz), kvi_free(c->z);
  kvi_arena_free(c->ar);
}

/* One call of operation op (0 sample, 1 backward, 2 KL) on image i, path fast or generic. */
static kvi_status call(hcase *c, int op, bool fast, int i) {
  const kvi_vae_head *h = &c->h;
  const int d = h->d;
  const kvi_real *out = c->out + (size_t)i * c->H, *eps = c->eps + (size_t)i * d;
  kvi_real *dout = c->dout + (size_t)i * c->H;
  double kl;
  switch (op) {
    case 0:
      return fast ? kvi_vae_head_sample(h, c->z + (size_t)i * d, out, eps, c->ar)
                  : kvi__vae_head_sample_generic(h, c->z + (size_t)i * d, out, eps, c->ar);
    case 1:
      return fast ? kvi_vae_head_sample_backward(h, dout, c->dz + (size_t)i * d, out, eps, c->ar)
                  : kvi__vae_head_backward_generic(h, dout, c->dz + (size_t)i * d, out, eps, c->ar);
    default:
      return fast ? kvi_vae_head_kl(h, &kl, dout, (kvi_real)1e-3, out, c->ar)
                  : kvi__vae_head_kl_generic(h, &kl, dout, (kvi_real)1e-3, out, c->ar);
  }
}

/* Median ns per call over reps blocks of calls. */
static double time_op(hcase *c, int op, bool fast, int calls, int reps) {
  double *t = malloc((size_t)reps * sizeof *t);
  if (!t) exit(1);
  for (int i = 0; i < POOL; i++) /* warm-up */
    if (call(c, op, fast, i)) exit(1);
  for (int r = 0; r < reps; r++) {
    const double t0 = cpu_now();
    for (int k = 0; k < calls; k++)
      if (call(c, op, fast, k % POOL)) exit(1);
    t[r] = (cpu_now() - t0) / calls * 1e9;
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_double);
  const double med = t[reps / 2];
  free(t);
  return med;
}

int main(int argc, char **argv) {
  int calls = 4000, reps = 15;
  for (int a = 1; a + 1 < argc; a += 2) {
    if (!strcmp(argv[a], "--calls")) calls = atoi(argv[a + 1]);
    if (!strcmp(argv[a], "--reps")) reps = atoi(argv[a + 1]);
  }
  if (calls < 1000 || reps < 1) {
    fprintf(stderr, "bench_vae_head: --calls must be >= 1000, --reps >= 1\n");
    return 1;
  }
  omp_set_num_threads(1);
  const struct {
    const char *name;
    kvi_vae_family f;
    int d, p, q;
  } cases[] = {{"diag 40", KVI_VAE_DIAG, 40, 0, 0},
               {"mn 20x2", KVI_VAE_MN, 40, 20, 2},
               {"mn 3x3", KVI_VAE_MN, 9, 3, 3},
               {"mv 40", KVI_VAE_MV, 40, 0, 0},
               {"mv 9", KVI_VAE_MV, 9, 0, 0}};
  printf("ns per image, one thread, CPU time, median of %d blocks of %d calls (%s)\n\n", reps,
         calls, kvi_simd_isa());
  printf(
      "| head | sample old | new | backward old | new | KL+grad old | new | total old | new "
      "| speed-up |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    hcase c;
    hcase_init(&c, cases[k].f, cases[k].d, cases[k].p, cases[k].q);
    double t[3][2], tot[2] = {0, 0};
    for (int op = 0; op < 3; op++)
      for (int fast = 0; fast < 2; fast++) {
        t[op][fast] = time_op(&c, op, fast, calls, reps);
        tot[fast] += t[op][fast];
      }
    printf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1fx |\n",
           cases[k].name, t[0][0], t[0][1], t[1][0], t[1][1], t[2][0], t[2][1], tot[0], tot[1],
           tot[0] / tot[1]);
    hcase_free(&c);
  }
  return 0;
}
