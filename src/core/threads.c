/* Thread-count governor: picks, while a loop of similar steps runs, the number of threads that
 * makes a step fastest right now.
 *
 * Why: kronvi's parallel loops split work evenly over the threads and meet at a barrier after
 * each region. When another process takes one of the cores, the thread sharing it runs at a
 * fraction of its speed (or not at all for a scheduler time slice of several ms) and every
 * barrier waits for it: two threads become many times slower than one. kronvi splits its work
 * by kvi_set_threads' count and the problem's shape only, never by the number of threads that
 * run it (kvi_set_active_threads), so the governor can change that number between steps
 * without changing a single bit of the results.
 *
 * How: the governor starts on one thread, times each step at the current count and keeps the
 * median of the last KVI__GOV_WIN steps. It then tries another count (halving or doubling, within
 * [1, max]) for KVI__GOV_PROBE steps and keeps the faster. A probe is abandoned after one step that
 * is slower than 3x the current median. Probes are rationed by their cost: after a probe that lost
 * time X, the next waits until the steps since have taken KVI__GOV_BUDGET * X, so at most about
 * 1/KVI__GOV_BUDGET of the time goes to probing, and at least twice the previous wait, so that the
 * probes grow rare while the choice holds (64 steps after a switch); and fewer threads are tried at
 * once when the last 4 steps are 1.5x slower than the median the last decision was based on (load
 * came). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/core.h"

#ifndef KVI__GOV_PROBE
#define KVI__GOV_PROBE 3
#endif
#ifndef KVI__GOV_BUDGET
#define KVI__GOV_BUDGET 30.0
#endif
#define KVI__GOV_FIRST 2 /* steps before the first probe */

static double kvi__median(const double *x, int n) {
  double v[KVI__GOV_WIN];
  memcpy(v, x, (size_t)n * sizeof *v);
  for (int i = 1; i < n; i++) /* insertion sort: n <= 16 */
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double t = v[j];
      v[j] = v[j - 1], v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void kvi_governor_init(kvi_governor *g, int max_threads, bool adapt) {
  memset(g, 0, sizeof *g);
  g->max = max_threads < 1 ? 1 : max_threads;
  g->cur = g->max;
  g->adapt = adapt && g->max > 1;
  g->next_dir = -1;
  const char *tr = getenv("KRONVI_THREADS_TRACE"); /* decisions on stderr (diagnostics) */
  g->trace = tr && *tr && strcmp(tr, "0");
  /* KRONVI_THREADS_ALTERNATE=1: max and 1 thread on alternate steps (tests of the invariance) */
  const char *alt = getenv("KRONVI_THREADS_ALTERNATE");
  g->alternate = alt && *alt && strcmp(alt, "0") && g->max > 1;
  if (g->alternate) g->adapt = false;
  /* Start on one thread and probe upwards: on a loaded machine a first step on all threads can
   * cost 40 steps' time, while on an idle one the first steps on one thread cost little. */
  if (g->adapt) g->cur = 1;
}

void kvi_governor_begin(kvi_governor *g) {
  const int want = kvi_governor_step_threads(g);
  if (kvi_get_active_threads() != want) kvi_set_active_threads(want);
  g->t0 = kvi_time_now();
}

/* The other count to try from the current one: alternately fewer and more threads. */
static int kvi__gov_candidate(kvi_governor *g) {
  int down = g->cur / 2 > 0 ? g->cur / 2 : 1, up = g->cur * 2 < g->max ? g->cur * 2 : g->max;
  if (g->cur == 1) return up;
  if (g->cur == g->max) return down;
  g->next_dir = -g->next_dir;
  return g->next_dir < 0 ? down : up;
}

/* base: the step time at the current count to beat (the window's median, or the recent steps'
 * when they changed). */
static void kvi__gov_start_probe(kvi_governor *g, double base) {
  g->probe_base = base;
  g->probe_threads = kvi__gov_candidate(g);
  if (g->probe_threads == g->cur) return;
  g->probing = true;
  g->nprobe = 0;
}

/* Ends a probe: keep the faster count; charge the time lost to the next wait. */
static void kvi__gov_end_probe(kvi_governor *g, double base) {
  double probe = kvi__median(g->probe_t, g->nprobe);
  double lost = 0;
  for (int i = 0; i < g->nprobe; i++) lost += g->probe_t[i] - base;
  g->probing = false;
  g->decisions++;
  if (g->trace)
    fprintf(stderr, "[threads] step %ld: %d threads %.2f ms, %d threads %.2f ms (%d steps)%s\n",
            g->steps, g->cur, 1e3 * base, g->probe_threads, 1e3 * probe, g->nprobe,
            probe < 0.92 * base ? ": switch" : "");
  if (probe < 0.92 * base) { /* switch; the window restarts at the new count */
    g->cur = g->probe_threads;
    g->nwin = g->win_pos = 0;
    g->ref = probe;
    g->wait_s = 64 * probe; /* settle for 64 steps before the next probe */
    g->since_s = 0;
    return;
  }
  g->ref = base;
  /* the budget, and at least twice the last wait: each confirmation makes the next probe
   * rarer (a change of load is caught by the 1.5x trigger instead) */
  double wait = KVI__GOV_BUDGET * (lost > 0 ? lost : 0.25 * base), twice = 2 * g->wait_s;
  if (wait < twice) wait = twice;
  if (wait < 64 * base) wait = 64 * base;
  g->wait_s = wait;
  g->since_s = 0;
}

void kvi_governor_end(kvi_governor *g) { kvi_governor_record(g, kvi_time_now() - g->t0); }

int kvi_governor_step_threads(const kvi_governor *g) {
  if (g->alternate) return g->steps % 2 ? 1 : g->max;
  return g->probing ? g->probe_threads : g->cur;
}

void kvi_governor_record(kvi_governor *g, double dt) {
  if (kvi_governor_step_threads(g) < g->max) g->steps_reduced++;
  g->steps++;
  if (!g->adapt) return;
  double base;
  if (g->probing) {
    g->probe_t[g->nprobe++] = dt;
    if (dt > 3 * g->probe_base || g->nprobe == KVI__GOV_PROBE) kvi__gov_end_probe(g, g->probe_base);
    return;
  }
  g->win[g->win_pos] = dt;
  g->win_pos = (g->win_pos + 1) % KVI__GOV_WIN;
  if (g->nwin < KVI__GOV_WIN) g->nwin++;
  g->since_s += dt;
  if (g->nwin < (g->decisions ? 8 : KVI__GOV_FIRST)) return; /* the first probe comes early */
  base = kvi__median(g->win, g->nwin);
  double recent[4];
  const int nr = g->nwin < 4 ? g->nwin : 4;
  for (int i = 0; i < nr; i++)
    recent[i] = g->win[(g->win_pos + KVI__GOV_WIN - 1 - i) % KVI__GOV_WIN];
  /* slower steps on several threads: another process may have come, try fewer at once. (Faster
   * steps on fewer threads say little: a lone thread speeds up whenever the scheduler moves it
   * off the busy core; more threads wait for the budgeted probe.) */
  const double r = kvi__median(recent, nr);
  bool changed = g->ref > 0 && g->cur > 1 && r > 1.5 * g->ref;
  if (changed) {
    g->nwin = g->win_pos = 0; /* the window restarts from the new load */
    for (int i = 0; i < nr; i++) g->win[g->nwin++] = recent[i];
    g->win_pos = g->nwin % KVI__GOV_WIN;
    kvi__gov_start_probe(g, r);
  } else if (g->decisions == 0 || g->since_s >= g->wait_s) {
    kvi__gov_start_probe(g, base);
  }
}

int kvi_governor_threads(const kvi_governor *g) { return g->cur; }

int kvi_threads_available(void) {
  int n = omp_get_num_procs(); /* the CPUs this process may run on (affinity mask) */
  return n < 1 ? 1 : n;
}
