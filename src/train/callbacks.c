/* The built-in training callbacks: progress lines and bar, the CSV log, checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kronvi/train.h"

/* ---- progress --------------------------------------------------------------------------- */
typedef struct {
  double last_draw;
  bool tty;
} kvi__progress;

/* A progress bar on a terminal; redrawn at most five times a second, so the sparsity it shows
 * (recomputed from log alpha at each redraw) costs nothing noticeable. */
static kvi_status kvi__progress_step(kvi_trainer *t, const kvi_step_info *si, void *user) {
  kvi__progress *p = user;
  if (t->cfg.progress < 2 || !p->tty) return KVI_OK;
  if (kvi_time_now() - p->last_draw < 0.2 && si->batch != si->nb) return KVI_OK;
  p->last_draw = kvi_time_now();
  int width = 30, fill = (int)(width * (double)si->batch / (double)si->nb);
  char bar[64];
  for (int k = 0; k < width; k++) bar[k] = k < fill ? '#' : '.';
  bar[width] = 0;
  double sparsity = 0;
  kvi_sparsity sp;
  if (kvi_sparsity_compute(&sp, t->net, t->cfg.prune_threshold) == KVI_OK && sp.total > 0)
    sparsity = 100.0 * (double)(sp.total - sp.left) / (double)sp.total;
  fprintf(stderr, "\repoch %d/%d [%s] %3d%% loss %.4f acc %.4f sparsity %.1f%% %.1fs ",
          si->epoch + 1, t->cfg.epochs, bar, (int)(100.0 * (double)si->batch / (double)si->nb),
          si->loss, si->acc, sparsity, kvi_time_now() - si->epoch_start);
  fflush(stderr);
  return KVI_OK;
}

static kvi_status kvi__progress_epoch(kvi_trainer *t, const kvi_epoch_info *e, void *user) {
  kvi__progress *p = user;
  if (t->cfg.progress >= 2 && p->tty) fprintf(stderr, "\n");
  if (t->cfg.progress < 1) return KVI_OK;
  const kvi_metrics *mt = e->test, *mv = e->val;
  const kvi_metrics none = {0};
  if (!mt) mt = &none;
  if (t->cfg.task == KVI_TASK_CLASSIFY) {
    char vs[32] = "";
    if (mv) snprintf(vs, sizeof vs, "  val %.4f", mv->acc_mean);
    fprintf(stderr,
            "epoch %3d  loss %.4f  train %.4f%s  test %.4f  pruned %.4f  sparsity %.1f%%  "
            "kl-beta %.2f  lr %.2e  %.1fs%s",
            e->epoch, e->train_loss, e->train_acc, vs, mt->acc_mean, mt->acc_pruned,
            100 * e->sparsity, e->kl_beta, e->lr, e->seconds, e->bma_samples ? "" : "\n");
    if (e->bma_samples)
      fprintf(stderr, "  BMA(%d) %.4f  nll %.4f  ece %.4f\n", e->bma_samples, mt->acc_bma,
              mt->nll_bma, mt->ece);
  } else {
    fprintf(stderr, "epoch %3d  loss %.5f  val rmse %.5f  test rmse %.5f  beta %.3g  %.2fs\n",
            e->epoch, e->train_loss, mv ? mv->rmse_mean : 0, mt->rmse_mean,
            exp((double)kvi_net_log_beta(t->net)), e->seconds);
  }
  if (e->stopping)
    fprintf(stderr, "early stopping: validation has not improved for %d epochs (best %d)\n",
            t->cfg.patience, t->best_epoch);
  return KVI_OK;
}

kvi_callback kvi_progress_callback(void) {
  static kvi__progress p; /* one progress display per process */
  p.last_draw = 0;
  p.tty = isatty(fileno(stderr));
  kvi_callback cb = {kvi__progress_step, kvi__progress_epoch, NULL, &p};
  return cb;
}

/* ---- CSV log ---------------------------------------------------------------------------- */
/* One row per epoch. test_acc_bma, test_nll_bma and test_ece are empty in the epochs without a
 * test BMA (by default all but the one that ends the run; --eval-every N adds every N-th). */
static kvi_status kvi__log_epoch(kvi_trainer *t, const kvi_epoch_info *e, void *user) {
  FILE *f = user;
  const kvi_metrics none = {0}, *mv = e->val ? e->val : &none, *mt = e->test ? e->test : &none;
  char bma[96] = ",,";
  if (e->bma_samples > 0)
    snprintf(bma, sizeof bma, "%.5f,%.5f,%.5f", mt->acc_bma, mt->nll_bma, mt->ece);
  fprintf(f, "%d,%lld,%.3f,%.6g,%.4f,%.6f,%.5f,%.2f,%.5f,%.5f,%.5f,%.5f,%s,%.5f,%.5f,%.6g\n",
          e->epoch, (long long)t->step, e->seconds, e->lr, e->kl_beta, e->train_loss, e->train_acc,
          e->kl, mv->acc_mean, mv->nll_mean, mt->acc_mean, mt->nll_mean, bma, mt->acc_pruned,
          e->sparsity, mt->rmse_mean);
  return fflush(f) == 0 ? KVI_OK : kvi_fail(KVI_ERR_IO, "cannot write the training log");
}

static void kvi__log_close(void *user) { fclose(user); }

kvi_status kvi_csv_log_callback(kvi_callback *cb, const kvi_trainer *t, const char *path) {
  bool fresh = t->epoch == 0 || access(path, F_OK) != 0;
  FILE *f = fopen(path, fresh ? "w" : "a");
  if (!f) return kvi_fail(KVI_ERR_IO, "cannot open log file '%s' for writing", path);
  if (fresh)
    fprintf(f,
            "epoch,step,seconds,lr,kl_beta,train_loss,train_acc,kl,val_acc,val_nll,test_acc_mean,"
            "test_nll_mean,test_acc_bma,test_nll_bma,test_ece,test_acc_pruned,sparsity,"
            "test_rmse\n");
  *cb = (kvi_callback){NULL, kvi__log_epoch, kvi__log_close, f};
  return KVI_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------ */
typedef struct {
  char *path;
  int every;
  const kvi_dataset *shape_of;
} kvi__ckpt;

static kvi_status kvi__ckpt_epoch(kvi_trainer *t, const kvi_epoch_info *e, void *user) {
  const kvi__ckpt *c = user;
  if (!(e->last || e->stopping || e->paused || e->epoch % c->every == 0)) return KVI_OK;
  return kvi_checkpoint_save(c->path, t, c->shape_of);
}

static void kvi__ckpt_free(void *user) {
  kvi__ckpt *c = user;
  free(c->path);
  free(c);
}

kvi_status kvi_checkpoint_callback(kvi_callback *cb, const char *path, int every,
                                   const kvi_dataset *shape_of) {
  kvi__ckpt *c = calloc(1, sizeof *c);
  size_t len = path ? strlen(path) + 1 : 0;
  if (c && path && (c->path = malloc(len)) != NULL) memcpy(c->path, path, len);
  if (!c || !path || !c->path) {
    free(c);
    return kvi_fail(path ? KVI_ERR_NOMEM : KVI_ERR_ARG, "checkpoint_callback: no path or memory");
  }
  c->every = every > 0 ? every : 1;
  c->shape_of = shape_of;
  *cb = (kvi_callback){NULL, kvi__ckpt_epoch, kvi__ckpt_free, c};
  return KVI_OK;
}

/* ---- data preparation record ------------------------------------------------------------ */
kvi_status kvi_data_prep_set_standardize(kvi_data_prep *prep, const kvi_real *mean,
                                         const kvi_real *std, int d) {
  kvi_free(prep->feature_mean), kvi_free(prep->feature_std);
  prep->feature_mean = prep->feature_std = NULL;
  prep->d = 0;
  if (d <= 0 || !mean || !std) return KVI_OK;
  prep->feature_mean = kvi_alloc((size_t)d * sizeof(kvi_real));
  prep->feature_std = kvi_alloc((size_t)d * sizeof(kvi_real));
  if (!prep->feature_mean || !prep->feature_std) {
    kvi_data_prep_free(prep);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  memcpy(prep->feature_mean, mean, (size_t)d * sizeof(kvi_real));
  memcpy(prep->feature_std, std, (size_t)d * sizeof(kvi_real));
  prep->d = d;
  return KVI_OK;
}

void kvi_data_prep_free(kvi_data_prep *prep) {
  kvi_free(prep->feature_mean), kvi_free(prep->feature_std);
  prep->feature_mean = prep->feature_std = NULL;
  prep->d = 0;
}
