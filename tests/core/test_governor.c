/* The thread governor's decisions on simulated step times (kvi_governor_record): it finds the
 * faster thread count, keeps the probes' cost small, reacts when load comes, and never leaves
 * [1, max] (counts reached by halving or doubling). The invariance of the results it relies on
 * is tested in tests/cli/threads_invariant.sh. */
#include "kvi_test.h"

/* Runs `steps` simulated steps; step time = t[threads] (seconds) from step `from` on, t0 before.
 * Returns the steps spent at each count in at[]. */
static void simulate(kvi_governor *g, int steps, const double *t0, const double *t, int from,
                     long *at, double *total) {
  *total = 0;
  for (int i = 0; i < steps; i++) {
    int k = kvi_governor_step_threads(g);
    CHECK(k >= 1 && k <= g->max);
    double dt = (i < from ? t0 : t)[k];
    at[k]++;
    *total += dt;
    kvi_governor_record(g, dt);
  }
}

int main(void) {
  kvi_governor g;
  long at[5] = {0};
  double total;
  /* an idle machine: 2 threads at 6 ms beat 1 at 10 ms; the governor ends on 2 and spends few
   * steps on 1 (the start and the rationed probes) */
  const double idle[5] = {0, 10e-3, 6e-3, 0, 0};
  kvi_governor_init(&g, 2, true);
  simulate(&g, 3000, idle, idle, 0, at, &total);
  CHECK(kvi_governor_threads(&g) == 2);
  CHECK(at[1] < 60);                    /* < 2% of the steps */
  CHECK(total < 1.03 * 3000 * idle[2]); /* within 3% of always 2 threads */
  printf("idle: %ld steps on 1, %ld on 2, %.3f s (always 2: %.3f s)\n", at[1], at[2], total,
         3000 * idle[2]);

  /* a busy core: 2 threads at 200 ms (the barriers wait for a thread sharing its core) against 1
   * at 10 ms; the governor stays on 1 and pays a few slow steps in total */
  const double busy[5] = {0, 10e-3, 200e-3, 0, 0};
  long at2[5] = {0};
  kvi_governor_init(&g, 2, true);
  simulate(&g, 3000, busy, busy, 0, at2, &total);
  CHECK(kvi_governor_threads(&g) == 1);
  CHECK(at2[2] <= 4);
  CHECK(total < 1.1 * 3000 * busy[1]);
  printf("busy: %ld steps on 2, %.3f s (always 1: %.3f s)\n", at2[2], total, 3000 * busy[1]);

  /* load comes at step 1000: from 2 threads at 6 ms to 2 at 200 ms and 1 at 10 ms; the
   * governor leaves 2 threads within a few steps */
  long at3[5] = {0};
  kvi_governor_init(&g, 2, true);
  simulate(&g, 1000, idle, idle, 0, at3, &total);
  CHECK(kvi_governor_threads(&g) == 2);
  long before = at3[2];
  simulate(&g, 1000, busy, busy, 0, at3, &total);
  CHECK(kvi_governor_threads(&g) == 1);
  CHECK(at3[2] - before <= 6);
  printf("load came: %ld steps on 2 threads after it\n", at3[2] - before);

  /* 8 threads where 4 are fastest: it stays within [1, 8] and ends on 4 */
  const double many[9] = {0, 40e-3, 22e-3, 0, 12e-3, 0, 0, 0, 15e-3};
  long at4[9] = {0};
  kvi_governor_init(&g, 8, true);
  for (int i = 0; i < 3000; i++) {
    int k = kvi_governor_step_threads(&g);
    CHECK(k == 1 || k == 2 || k == 4 || k == 8);
    at4[k]++;
    kvi_governor_record(&g, many[k]);
  }
  CHECK(kvi_governor_threads(&g) == 4);
  printf("8 threads, 4 fastest: ended on %d (%ld steps on 4)\n", kvi_governor_threads(&g), at4[4]);

  /* adapt = false: always max */
  kvi_governor_init(&g, 2, false);
  for (int i = 0; i < 100; i++) {
    CHECK(kvi_governor_step_threads(&g) == 2);
    kvi_governor_record(&g, busy[2]);
  }
  TEST_MAIN_END();
}
