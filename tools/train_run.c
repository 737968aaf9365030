#define _POSIX_C_SOURCE 200809L /* SIGKILL */
/* kronvi train, after the options: the resumed run's checks, the data preparation (recorded in
 * the checkpoint so that a resumed run sees the same examples), the trainer with its callbacks,
 * and the summary. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_cli.h"

/* ---- a resumed run keeps the checkpoint's settings ---------------------------------------- */
typedef struct {
  const char *resume;
  bool ok;
} conflicts;

/* Refuses flag when it was given with a value other than the checkpoint's. */
static void refuse_if(conflicts *c, const train_args *a, int opt, const char *flag, bool differs,
                      const char *theirs, const char *ours) {
  if (!train_given(a, opt) || !differs) return;
  fprintf(stderr,
          "kronvi: %s was trained with %s %s, but this command gives %s %s (HINT: drop %s to "
          "continue the run, or start a new run without --resume)\n",
          c->resume, flag, theirs, flag, ours, flag);
  c->ok = false;
}

static void refuse_num(conflicts *c, const train_args *a, int opt, const char *flag, double saved,
                       double given) {
  char t[32], o[32];
  snprintf(t, sizeof t, "%.10g", saved), snprintf(o, sizeof o, "%.10g", given);
  refuse_if(c, a, opt, flag, saved != given, t, o);
}

static void refuse_bool(conflicts *c, const train_args *a, int opt, const char *flag, bool saved) {
  refuse_if(c, a, opt, flag, !saved, "(not given)", "(given)");
}

static void model_conflicts(conflicts *c, const train_args *a, const kvi_net *net) {
  const kvi_net_config *s = &net->cfg, *g = &a->nc;
  refuse_if(c, a, O_ARCH, "--arch", a->arch && strcmp(a->arch, net->arch), net->arch,
            a->arch ? a->arch : "");
  refuse_if(c, a, O_FAMILY, "--family", s->family != g->family, kvi_family_name(s->family),
            kvi_family_name(g->family));
  refuse_if(c, a, O_PRIOR, "--prior",
            s->prior != g->prior || (g->prior == KVI_PRIOR_FIXED && s->prior_var != g->prior_var),
            kvi_prior_name(s->prior), kvi_prior_name(g->prior));
  refuse_if(c, a, O_ACT, "--act", s->act != g->act, kvi_act_name(s->act), kvi_act_name(g->act));
  refuse_bool(c, a, O_NOBIAS, "--no-bias", !s->bias);
  refuse_num(c, a, O_INITLS, "--init-log-sigma", s->init_log_sigma, g->init_log_sigma);
  refuse_bool(c, a, O_NORM, "--normalize", s->input_std > 0);
}

static void data_conflicts(conflicts *c, const train_args *a, const kvi_trainer *tr) {
  const kvi_data_prep *p = &tr->prep;
  refuse_if(c, a, O_TASK, "--task", (tr->cfg.task == KVI_TASK_REGRESS) != a->regression,
            tr->cfg.task == KVI_TASK_REGRESS ? "regression" : "classification",
            a->regression ? "regression" : "classification");
  refuse_num(c, a, O_VAL, "--val", (double)p->val, (double)a->nval);
  refuse_num(c, a, O_LTRAIN, "--limit-train", (double)p->limit_train, (double)a->lt);
  refuse_num(c, a, O_PAD, "--pad", p->pad, (double)a->pad);
  refuse_bool(c, a, O_STD, "--standardize", p->d > 0);
  refuse_bool(c, a, O_HFLIP, "--hflip", tr->cfg.hflip);
}

static void train_conflicts(conflicts *c, const train_args *a, const kvi_train_config *s) {
  const kvi_train_config *g = &a->cfg;
  refuse_num(c, a, O_FINETUNE, "--finetune-pruned", s->finetune_pruned, g->finetune_pruned);
  refuse_num(c, a, O_PRIORUPD, "--prior-update", s->prior_update_every, g->prior_update_every);
  refuse_num(c, a, O_BATCH, "--batch", s->batch, g->batch);
  refuse_if(c, a, O_OPT, "--optimizer", s->opt.kind != g->opt.kind, kvi_opt_name(s->opt.kind),
            kvi_opt_name(g->opt.kind));
  refuse_num(c, a, O_LR, "--lr", s->opt.lr, g->opt.lr);
  refuse_num(c, a, O_LRDECAY, "--lr-decay", s->lr_decay, g->lr_decay);
  refuse_num(c, a, O_LRFINAL, "--lr-final", s->lr_final, g->lr_final);
  refuse_num(c, a, O_MOM, "--momentum", s->opt.momentum, g->opt.momentum);
  refuse_bool(c, a, O_NESTEROV, "--nesterov", s->opt.nesterov);
  refuse_num(c, a, O_WD, "--weight-decay", s->opt.weight_decay, g->opt.weight_decay);
  refuse_num(c, a, O_WARMUP, "--kl-warmup", s->kl_warmup, g->kl_warmup);
  refuse_num(c, a, O_SCHED, "--kl-schedule", s->kl_schedule, g->kl_schedule);
  refuse_num(c, a, O_PATIENCE, "--patience", s->patience, g->patience);
  refuse_num(c, a, O_SAMPLES, "--samples", s->samples, g->samples);
  refuse_num(c, a, O_THR, "--prune-threshold", s->prune_threshold, g->prune_threshold);
  refuse_num(c, a, O_SEED, "--seed", (double)s->seed, (double)g->seed);
  refuse_num(c, a, O_NOISE, "--noise-precision", s->noise_precision, g->noise_precision);
  refuse_bool(c, a, O_LEARNNOISE, "--learn-noise", s->learn_noise);
  refuse_num(c, a, O_DAMPING, "--damping", s->opt.damping, g->opt.damping);
  refuse_num(c, a, O_KFACEMA, "--kfac-ema", s->opt.ema, g->opt.ema);
  refuse_num(c, a, O_INVEVERY, "--inverse-every", s->opt.inverse_every, g->opt.inverse_every);
  refuse_num(c, a, O_KLCLIP, "--kl-clip", s->opt.kl_clip, g->opt.kl_clip);
  refuse_num(c, a, O_FISHER, "--fisher", s->opt.fisher, g->opt.fisher);
  refuse_num(c, a, O_DAMPKIND, "--damping-kind", s->opt.damping_kind, g->opt.damping_kind);
  refuse_bool(c, a, O_EKFAC, "--ekfac", s->opt.ekfac);
  refuse_num(c, a, O_ADAPT, "--adapt-damping", s->opt.adapt_every, g->opt.adapt_every);
  refuse_num(c, a, O_CGMAX, "--cg-max", s->opt.cg_max, g->opt.cg_max);
  refuse_num(c, a, O_DENSEMAX, "--dense-max", s->opt.dense_max, g->opt.dense_max);
  refuse_num(c, a, O_LBFGSMEM, "--lbfgs-memory", s->opt.lbfgs_memory, g->opt.lbfgs_memory);
  refuse_num(c, a, O_PROXSTEPS, "--prox-steps", s->opt.prox_steps, g->opt.prox_steps);
  refuse_num(c, a, O_PROXFSD, "--prox-fsd", s->opt.prox_fsd, g->opt.prox_fsd);
  refuse_num(c, a, O_PROXWSD, "--prox-wsd", s->opt.prox_wsd, g->opt.prox_wsd);
  refuse_bool(c, a, O_HFHESS, "--hf-hessian", s->opt.hf_hessian);
  refuse_if(c, a, O_MNDBOUND, "--mndiag-bound", s->mndiag_slq != g->mndiag_slq,
            s->mndiag_slq ? "slq" : "minkowski", g->mndiag_slq ? "slq" : "minkowski");
  refuse_num(c, a, O_SLQPROBES, "--slq-probes", s->slq.probes, g->slq.probes);
  refuse_num(c, a, O_SLQSTEPS, "--slq-steps", s->slq.steps, g->slq.steps);
  refuse_num(c, a, O_SLQREFRESH, "--slq-refresh", s->slq.refresh, g->slq.refresh);
}

/* Loads the checkpoint to resume and checks the command line against it. */
static int resume_run(train_args *a, kvi_net **net, kvi_trainer *tr) {
  kvi_train_config saved;
  if (kvi_checkpoint_load_ex(a->resume, net, tr, &saved, a->reset_optimizer))
    return cli_error("cannot resume");
  conflicts c = {a->resume, true};
  model_conflicts(&c, a, *net);
  data_conflicts(&c, a, tr);
  train_conflicts(&c, a, &tr->cfg);
  if (!c.ok) return 1;
  if (a->epochs_given) tr->cfg.epochs = a->cfg.epochs;
  tr->cfg.stop_after = a->cfg.stop_after;
  tr->cfg.bma = a->cfg.bma; /* evaluation settings: they do not change the trained numbers */
  if (train_given(a, O_EVALEVERY)) tr->cfg.eval_samples_every = a->cfg.eval_samples_every;
  if (tr->cfg.task == KVI_TASK_REGRESS) a->targets = (*net)->out_size;
  if (train_given(a, O_SAVEEVERY)) tr->cfg.save_every = a->cfg.save_every;
  tr->cfg.progress = a->cfg.progress;
  tr->cfg.overlap_comm = a->cfg.overlap_comm;
  return 0;
}

/* ---- data --------------------------------------------------------------------------------- */
typedef struct {
  kvi_dataset train, test, val;
} run_data;

static void run_data_free(run_data *d) {
  kvi_dataset_free(&d->train);
  kvi_dataset_free(&d->test);
  kvi_dataset_free(&d->val);
}

/* --normalize: one mean and standard deviation over all training pixels (a resumed run uses the
 * stored ones); they travel with the model, and eval and prune apply them. */
static int normalize_images(run_data *d, kvi_net_config *nc, bool fresh, int progress) {
  double mean = nc->input_mean, sd = nc->input_std;
  if (fresh && kvi_dataset_pixel_stats(&d->train, &mean, &sd)) return cli_error("--normalize");
  if (kvi_dataset_normalize_scalar(&d->train, (kvi_real)mean, (kvi_real)sd) ||
      (d->test.n > 0 && kvi_dataset_normalize_scalar(&d->test, (kvi_real)mean, (kvi_real)sd)))
    return cli_error("--normalize");
  nc->input_mean = mean, nc->input_std = sd;
  if (progress >= 1)
    fprintf(stderr, "kronvi train: inputs normalized with mean %.6g, std %.6g\n", mean, sd);
  return 0;
}

/* --standardize: statistics of the training features (a resumed run uses the stored ones). */
static int standardize_features(run_data *d, kvi_data_prep *prep) {
  if (prep->d == 0) {
    kvi_real *mu = NULL, *sd = NULL;
    kvi_status s = kvi_dataset_standardize(&d->train, &d->train, &mu, &sd);
    if (!s) s = kvi_data_prep_set_standardize(prep, mu, sd, d->train.d);
    kvi_free(mu), kvi_free(sd);
    if (s) return cli_error("--standardize");
  } else if (prep->d != d->train.d ||
             kvi_dataset_apply_standardize(&d->train, prep->feature_mean, prep->feature_std)) {
    return cli_error("--standardize (stored statistics)");
  }
  if (d->test.n > 0 &&
      kvi_dataset_apply_standardize(&d->test, prep->feature_mean, prep->feature_std))
    return cli_error("--standardize");
  return 0;
}

/* Loads the data and prepares them as prep says: normalize, standardize, pad, split. */
static int prepare_data(run_data *d, const train_args *a, kvi_data_prep *prep, kvi_net_config *nc,
                        bool fresh, bool standardize, int progress) {
  kvi_dataset_init(&d->val);
  int64_t lte = a->lte ? a->lte : prep->limit_test;
  if (cli_load_data(&d->train, &d->test, a->data, a->regression, (int)a->targets, a->test_path,
                    prep->limit_train, lte))
    return cli_error("cannot load data");
  int rc = 0;
  if (nc->input_std > 0 || (fresh && a->normalize)) rc = normalize_images(d, nc, fresh, progress);
  if (!rc && standardize) rc = standardize_features(d, prep);
  if (!rc && prep->pad > 0 &&
      (kvi_dataset_pad(&d->train, prep->pad) ||
       (d->test.n > 0 && kvi_dataset_pad(&d->test, prep->pad))))
    rc = cli_error("--pad");
  if (!rc && prep->val > 0 && kvi_dataset_split(&d->train, &d->val, prep->val, prep->val_seed))
    rc = cli_error("validation split");
  return rc;
}

/* ---- the run ------------------------------------------------------------------------------ */
/* The test metrics of the last epoch, which ends the run: the summary prints them instead of
 * evaluating the same model again. */
typedef struct {
  kvi_metrics test;
  bool have;
  double steps_seconds; /* training time of this run (not of the resumed ones) */
} last_eval;

static kvi_status keep_last_eval(kvi_trainer *t, const kvi_epoch_info *e, void *user) {
  (void)t;
  last_eval *l = user;
  l->have = e->test != NULL;
  if (e->test) l->test = *e->test;
  return KVI_OK;
}

/* A test hook, not a feature: with KRONVI_TEST_DIE_AT_STEP=N the process of rank
 * KRONVI_TEST_DIE_RANK (default: the last) kills itself with SIGKILL after step N, as a crashed
 * machine would (tests/mpi/kill_resume.sh checks that the run then fails cleanly). */
static kvi_status die_at_step(kvi_trainer *t, const kvi_step_info *s, void *user) {
  (void)s;
  if (t->step == *(const long long *)user) raise(SIGKILL);
  return KVI_OK;
}

static int add_test_hook(kvi_trainer *tr, const train_args *a) {
  static long long die_step;
  const char *at = getenv("KRONVI_TEST_DIE_AT_STEP"), *rank = getenv("KRONVI_TEST_DIE_RANK");
  const int who = rank ? atoi(rank) : kvi_comm_size(a->comm) - 1;
  if (!at || who != kvi_comm_rank(a->comm)) return 0;
  die_step = atoll(at);
  fprintf(stderr, "kronvi: test hook: rank %d kills itself after step %lld\n", who, die_step);
  return kvi_trainer_add_callback(tr, (kvi_callback){die_at_step, NULL, NULL, &die_step})
             ? cli_error("trainer")
             : 0;
}

/* Progress, log and checkpoints come from the lead process (rank 0) only; the others train and
 * evaluate their shares silently. */
static int add_callbacks(kvi_trainer *tr, const train_args *a, const kvi_dataset *train,
                         last_eval *last) {
  kvi_callback cb = {NULL, keep_last_eval, NULL, last};
  if (kvi_trainer_add_callback(tr, cb)) return cli_error("trainer");
  if (add_test_hook(tr, a)) return 1;
  if (kvi_comm_rank(a->comm) != 0) return 0;
  cb = kvi_progress_callback();
  if (kvi_trainer_add_callback(tr, cb)) return cli_error("trainer");
  if (a->log && (kvi_csv_log_callback(&cb, tr, a->log) || kvi_trainer_add_callback(tr, cb)))
    return cli_error("--log");
  const char *save = a->save ? a->save : a->resume;
  if (save && (kvi_checkpoint_callback(&cb, save, tr->cfg.save_every, train) ||
               kvi_trainer_add_callback(tr, cb)))
    return cli_error("--save");
  return 0;
}

/* Every process calls it (an evaluation is shared); the lead prints. */
static void print_summary(kvi_net *net, const kvi_trainer *tr, const run_data *d, const char *save,
                          const last_eval *last) {
  const kvi_train_config *c = &tr->cfg;
  kvi_metrics m = last->test;
  bool have = last->have && d->test.n > 0;
  if (!have && d->test.n > 0) { /* no epoch ran (a finished run resumed): evaluate once */
    kvi_eval_config ec = kvi_eval_config_default();
    ec.samples = c->task == KVI_TASK_CLASSIFY ? c->samples : 0;
    ec.seed = c->seed ^ 0x7e57, ec.bma = c->bma, ec.prune_threshold = c->prune_threshold;
    ec.log_beta = kvi_net_log_beta(net);
    ec.comm = tr->comm;
    have = kvi_evaluate_ex(&m, net, &d->test, &ec) == KVI_OK;
  }
  if (kvi_comm_rank(tr->comm) != 0) return;
  if (c->task == KVI_TASK_CLASSIFY) {
    kvi_sparsity sp;
    if (kvi_sparsity_compute(&sp, net, c->prune_threshold) == KVI_OK) {
      printf("\n");
      kvi_sparsity_print(stdout, &sp, kvi_family_name(net->cfg.family));
    }
    if (have) {
      char bma[96] = "BMA, NLL and ECE not computed (--samples 0)";
      if (m.samples > 0)
        snprintf(bma, sizeof bma, "%.4f (BMA, %d samples), NLL %.4f, ECE %.4f", m.acc_bma,
                 m.samples, m.nll_bma, m.ece);
      printf("\ntest (%lld rows): accuracy %.4f (mean weights), %s, accuracy after pruning %.4f\n",
             (long long)d->test.n, m.acc_mean, bma, m.acc_pruned);
    }
  } else if (have) {
    printf("test (%lld rows): RMSE %.6f, NLL %.6f\n", (long long)d->test.n, m.rmse_mean,
           m.nll_mean);
  }
  printf("trained %d epochs in %.1f s%s%s\n", tr->epoch, tr->elapsed, save ? "; saved " : "",
         save ? save : "");
  if (tr->gov.steps_reduced > 0)
    printf("threads: %ld of %ld steps ran on fewer than %d threads\n", tr->gov.steps_reduced,
           tr->gov.steps, tr->gov.max);
  if (kvi_comm_size(tr->comm) > 1)
    printf(
        "data-parallel: %d processes; the training steps of rank 0 spent %.2f s of %.2f s "
        "(%.1f%%) in sums over them (waits included), %.1f MB sent in all; overlap with the "
        "backward %s\n",
        kvi_comm_size(tr->comm), tr->comm_seconds, last->steps_seconds,
        last->steps_seconds > 0 ? 100 * tr->comm_seconds / last->steps_seconds : 0.0,
        (double)tr->comm->bytes / 1e6, tr->overlapped ? "on" : "off");
}

/* A new net and trainer for the prepared data. */
static int new_run(train_args *a, kvi_net **net, kvi_trainer *tr, const run_data *d,
                   kvi_data_prep *prep) {
  a->nc.in_h = d->train.h, a->nc.in_w = d->train.w;
  a->nc.noise_param = a->regression;
  int maxb = kvi_net_pick_max_batch(a->arch, a->cfg.batch);
  if (kvi_net_create(net, a->arch, d->train.d, &a->nc, maxb, a->cfg.seed))
    return cli_error("--arch");
  if (kvi_trainer_init(tr, *net, &a->cfg)) return cli_error("trainer");
  tr->prep = *prep;
  memset(prep, 0, sizeof *prep); /* the trainer owns the statistics now */
  return 0;
}

int train_run(train_args *a) {
  if (kvi_comm_rank(a->comm) != 0) a->cfg.progress = 0; /* the lead reports */
  kvi_net *net = NULL;
  kvi_trainer tr;
  memset(&tr, 0, sizeof tr);
  run_data d;
  kvi_dataset_init(&d.train), kvi_dataset_init(&d.test), kvi_dataset_init(&d.val);
  kvi_data_prep prep = {a->lt, a->lte, a->nval, a->cfg.seed, (int)a->pad, 0, NULL, NULL};
  int rc = a->resume ? resume_run(a, &net, &tr) : 0;
  if (!rc && a->resume) {
    a->regression = tr.cfg.task == KVI_TASK_REGRESS;
    rc = prepare_data(&d, a, &tr.prep, &net->cfg, false, tr.prep.d > 0, a->cfg.progress);
    if (!rc && net->in_size != d.train.d) {
      fprintf(stderr, "kronvi: %s expects %d features but the data have %d\n", a->resume,
              net->in_size, d.train.d);
      rc = 1;
    }
    if (!rc && a->cfg.progress >= 1)
      fprintf(stderr, "resuming %s at epoch %d (step %lld)\n", a->resume, tr.epoch,
              (long long)tr.step);
  } else if (!rc) {
    rc = prepare_data(&d, a, &prep, &a->nc, true, a->standardize, a->cfg.progress);
    if (!rc) rc = new_run(a, &net, &tr, &d, &prep);
  }
  last_eval last = {{0}, false, 0};
  tr.comm = a->comm;
  if (!rc) rc = add_callbacks(&tr, a, &d.train, &last);
  if (!rc && tr.cfg.progress >= 1)
    fprintf(stderr,
            "kronvi train: %s %s/%s, %zu parameters, %lld train / %lld val / %lld test rows, "
            "batch %d, %s lr %g, %d threads (%s, BLAS core %s, SIMD %s)\n",
            net->arch, kvi_family_name(net->cfg.family), kvi_prior_name(net->cfg.prior),
            kvi_net_param_count(net), (long long)d.train.n, (long long)d.val.n, (long long)d.test.n,
            tr.cfg.batch, kvi_opt_name(tr.cfg.opt.kind), tr.cfg.opt.lr, (int)a->threads,
            KVI_REAL_NAME, cli_blas_description(), kvi_simd_isa());
  if (!rc && tr.cfg.progress >= 1 && kvi_comm_size(a->comm) > 1)
    fprintf(stderr,
            "kronvi train: data-parallel over %d processes (%s), %d threads each; each batch "
            "of %d split among them\n",
            kvi_comm_size(a->comm), kvi_comm_mpi_version(), (int)a->threads, tr.cfg.batch);
  const double elapsed0 = tr.elapsed;
  if (!rc && kvi_train(&tr, &d.train, d.val.n ? &d.val : NULL, d.test.n ? &d.test : NULL)) {
    fprintf(stderr, "\n");
    rc = cli_error("training failed");
  }
  last.steps_seconds = tr.elapsed - elapsed0;
  if (!rc) print_summary(net, &tr, &d, a->save ? a->save : a->resume, &last);
  if (tr.net) kvi_trainer_free(&tr);
  kvi_data_prep_free(&prep);
  kvi_net_free(net);
  run_data_free(&d);
  return rc;
}
