/* kronvi vae: variational auto-encoders with DIAG, MN and full-covariance latents (docs/vae.md).
 * This file: the subcommand table and `kronvi vae train`. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vae_cli.h"

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} VAE_COMMANDS[] = {
    {"train", vae_train, "train a VAE by the ELBO (paper Algorithm 3) on binarized images"},
    {"eval", vae_eval, "test ELBO and importance-weighted log-likelihood per image, in nats"},
    {"sample", vae_sample, "decode latent codes z ~ N(0, I) into a PNG grid"},
    {"reconstruct", vae_reconstruct, "test images and their reconstructions as a PNG grid"},
    {"binarize", vae_binarize, "binarize an IDX image set once, by sampling with a fixed seed"},
};

static void vae_usage(FILE *f) {
  fprintf(f, "usage: kronvi vae <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof VAE_COMMANDS / sizeof VAE_COMMANDS[0]; i++)
    fprintf(f, "  %-12s %s\n", VAE_COMMANDS[i].name, VAE_COMMANDS[i].summary);
  fprintf(f, "\n'kronvi vae <command> --help' documents each command's options.\n");
}

int cmd_vae(int argc, char **argv) {
  if (argc < 2) {
    vae_usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    vae_usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof VAE_COMMANDS / sizeof VAE_COMMANDS[0]; i++)
    if (!strcmp(argv[1], VAE_COMMANDS[i].name)) return VAE_COMMANDS[i].run(argc - 1, argv + 1);
  fprintf(stderr, "kronvi: unknown vae command '%s'\n\n", argv[1]);
  vae_usage(stderr);
  return 2;
}

/* ---- kronvi vae train ----------------------------------------------------------------------- */
static const char *TRAIN_USAGE =
    "usage: kronvi vae train --data DIR [options]\n"
    "\n"
    "Trains a variational auto-encoder (paper Algorithm 3): a fully connected encoder and decoder\n"
    "with --layers hidden layers of --hidden units each, a Bernoulli decoder and a N(0, I) prior,\n"
    "by Adam on the ELBO with exponential KL annealing and early stopping on the validation ELBO.\n"
    "\n"
    "data:\n"
    "  --data DIR             binarized IDX images (every pixel 0 or 1: 'kronvi vae binarize'\n"
    "                         writes them from Fashion-MNIST)\n"
    "  --val N                the last N training images are the validation set (default 10000)\n"
    "  --limit-train N        use only the first N training images (before the split)\n"
    "model:\n"
    "  --family F             the encoder's latent family: diag (default), mn (a P x Q latent\n"
    "                         matrix with Matrix Normal q(z|x)) or mv (full covariance)\n"
    "  --latent N             |z| (default 40)\n"
    "  --mn-shape PxQ         mn: the latent matrix shape, P*Q = |z| (the paper: 20x2 for 40,\n"
    "                         3x3 for 9)\n"
    "  --hidden H             units per hidden layer (default 300)\n"
    "  --layers L             hidden layers of the encoder and of the decoder (default 3)\n"
    "  --act A                elu (default) or relu\n"
    "optimization:\n"
    "  --epochs N             at most N epochs (default 300)\n"
    "  --batch B              mini-batch size (default 100)\n"
    "  --lr LR                Adam's learning rate (default 5e-4)\n"
    "  --kl-anneal-epochs T   KL weight beta = 1 - exp(-5 t / T) over the first T epochs, then 1\n"
    "                         (default 100; 0: beta = 1 throughout)\n"
    "  --patience N           stop after N epochs without a better validation ELBO (default 0:\n"
    "                         never); evaluation uses the parameters of the best epoch\n"
    "  --stop-after E         stop after epoch E of the --epochs schedule with a checkpoint;\n"
    "                         --resume continues it exactly\n"
    "output:\n"
    "  --save PATH            checkpoint (safetensors) after every epoch, written atomically\n"
    "  --save-every N         every N epochs instead (and when the run ends)\n"
    "  --resume PATH          continue a run from its checkpoint with its settings (--epochs may\n"
    "                         extend it; a flag that differs from the checkpoint is refused)\n"
    "  --log PATH             one CSV row per epoch: epoch, step, seconds, kl_beta, train_elbo,\n"
    "                         train_rec, train_kl, val_elbo, best_epoch\n"
    "  --seed S               random seed (default 1): same seed and threads, same result\n"
    "  --threads N            at most N threads (default: the CPUs this process may use)\n"
    "  --fixed-threads        always exactly --threads threads\n"
    "  --progress P           auto (default), bar, lines or none\n"
    "  -h, --help             this help\n";

enum {
  V_DATA = 400,
  V_VAL,
  V_LTRAIN,
  V_FAMILY,
  V_LATENT,
  V_SHAPE,
  V_HIDDEN,
  V_LAYERS,
  V_ACT,
  V_EPOCHS,
  V_BATCH,
  V_LR,
  V_ANNEAL,
  V_PATIENCE,
  V_STOPAFTER,
  V_SAVE,
  V_SAVEEVERY,
  V_RESUME,
  V_LOG,
  V_SEED,
  V_THREADS,
  V_FIXED,
  V_PROGRESS,
  V_LAST
};

static const struct option train_opts[] = {{"data", 1, 0, V_DATA},
                                           {"val", 1, 0, V_VAL},
                                           {"limit-train", 1, 0, V_LTRAIN},
                                           {"family", 1, 0, V_FAMILY},
                                           {"latent", 1, 0, V_LATENT},
                                           {"mn-shape", 1, 0, V_SHAPE},
                                           {"hidden", 1, 0, V_HIDDEN},
                                           {"layers", 1, 0, V_LAYERS},
                                           {"act", 1, 0, V_ACT},
                                           {"epochs", 1, 0, V_EPOCHS},
                                           {"batch", 1, 0, V_BATCH},
                                           {"lr", 1, 0, V_LR},
                                           {"kl-anneal-epochs", 1, 0, V_ANNEAL},
                                           {"patience", 1, 0, V_PATIENCE},
                                           {"stop-after", 1, 0, V_STOPAFTER},
                                           {"save", 1, 0, V_SAVE},
                                           {"save-every", 1, 0, V_SAVEEVERY},
                                           {"resume", 1, 0, V_RESUME},
                                           {"log", 1, 0, V_LOG},
                                           {"seed", 1, 0, V_SEED},
                                           {"threads", 1, 0, V_THREADS},
                                           {"fixed-threads", 0, 0, V_FIXED},
                                           {"progress", 1, 0, V_PROGRESS},
                                           {"help", 0, 0, 'h'},
                                           {0, 0, 0, 0}};

typedef struct {
  kvi_vae_config vc;
  kvi_vae_train_config tc;
  const char *data, *save, *resume, *log, *progress;
  long val, limit_train, threads, save_every;
  int p, q, progress_level;
  kvi_vae_family family;
  bool given[V_LAST - V_DATA];
} train_args;

static bool given(const train_args *a, int opt) { return a->given[opt - V_DATA]; }

static bool train_option(train_args *a, int c) {
  long v;
  double d;
  switch (c) {
    case V_DATA:
      return a->data = optarg, true;
    case V_VAL:
      return cli_int("--val", optarg, 0, 100000000, &a->val);
    case V_LTRAIN:
      return cli_int("--limit-train", optarg, 1, 1000000000, &a->limit_train);
    case V_FAMILY:
      return kvi_vae_family_parse(&a->family, optarg) == KVI_OK || cli_error("--family") == 0;
    case V_LATENT:
      if (!cli_int("--latent", optarg, 1, KVI_VAE_MAX_LATENT, &v)) return false;
      return a->vc.head.d = (int)v, true;
    case V_SHAPE:
      return vae_parse_shape(optarg, &a->p, &a->q);
    case V_HIDDEN:
      if (!cli_int("--hidden", optarg, 1, 100000, &v)) return false;
      return a->vc.hidden = (int)v, true;
    case V_LAYERS:
      if (!cli_int("--layers", optarg, 0, 16, &v)) return false;
      return a->vc.layers = (int)v, true;
    case V_ACT:
      if (kvi_act_parse(&a->vc.act, optarg) || a->vc.act == KVI_ACT_NONE) {
        fprintf(stderr, "kronvi: --act expects elu or relu\n");
        return false;
      }
      return true;
    case V_EPOCHS:
      if (!cli_int("--epochs", optarg, 0, 1000000, &v)) return false;
      return a->tc.epochs = (int)v, true;
    case V_BATCH:
      if (!cli_int("--batch", optarg, 1, 100000, &v)) return false;
      return a->tc.batch = (int)v, true;
    case V_LR:
      return cli_double("--lr", optarg, 1e-12, 1e3, &a->tc.opt.lr);
    case V_ANNEAL:
      return cli_double("--kl-anneal-epochs", optarg, 0, 1e6, &a->tc.kl_anneal);
    case V_PATIENCE:
      if (!cli_int("--patience", optarg, 0, 1000000, &v)) return false;
      return a->tc.patience = (int)v, true;
    case V_STOPAFTER:
      if (!cli_int("--stop-after", optarg, 1, 1000000, &v)) return false;
      return a->tc.stop_after = (int)v, true;
    case V_SAVE:
      return a->save = optarg, true;
    case V_SAVEEVERY:
      return cli_int("--save-every", optarg, 1, 1000000, &a->save_every);
    case V_RESUME:
      return a->resume = optarg, true;
    case V_LOG:
      return a->log = optarg, true;
    case V_SEED:
      if (!cli_double("--seed", optarg, 0, 1.8e19, &d)) return false;
      return a->tc.seed = (uint64_t)d, true;
    case V_THREADS:
      return cli_int("--threads", optarg, 1, 256, &a->threads);
    case V_FIXED:
      return a->tc.fixed_threads = true;
    case V_PROGRESS:
      return a->progress = optarg, true;
    default:
      return false; /* getopt printed the message */
  }
}

/* Checks that make no sense to the library: the family's shape, the progress mode, outputs. */
static int train_finish_args(train_args *a) {
  if (!a->data) {
    fprintf(stderr, "kronvi: --data is required (see 'kronvi vae train --help')\n");
    return 2;
  }
  const char *pm[] = {"none", "lines", "bar", "auto"};
  a->progress_level = -1;
  for (int i = 0; i < 4; i++)
    if (!strcmp(a->progress, pm[i])) a->progress_level = i == 3 ? (isatty(2) ? 2 : 1) : i;
  if (a->progress_level < 0) {
    fprintf(stderr, "kronvi: --progress expects auto, bar, lines or none\n");
    return 2;
  }
  if (!a->resume) {
    if (a->family == KVI_VAE_MN && !given(a, V_SHAPE)) {
      fprintf(stderr,
              "kronvi: --family mn needs --mn-shape PxQ with P*Q = --latent (%d) (the paper: "
              "20x2 for 40, 3x3 for 9)\n",
              a->vc.head.d);
      return 2;
    }
    if (a->family != KVI_VAE_MN && given(a, V_SHAPE)) {
      fprintf(stderr, "kronvi: --mn-shape is for --family mn\n");
      return 2;
    }
    if (kvi_vae_head_init(&a->vc.head, a->family, a->vc.head.d, a->p, a->q)) {
      cli_error("--mn-shape");
      return 2;
    }
  }
  const char *save = a->save ? a->save : a->resume;
  if (save && !cli_check_writable(a->save ? "--save" : "--resume", save)) return 1;
  if (a->log && !cli_check_writable("--log", a->log)) return 1;
  return -1;
}

static int parse_train(train_args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->vc = kvi_vae_config_default();
  a->tc = kvi_vae_train_config_default();
  a->val = 10000, a->threads = kvi_threads_available(), a->save_every = 1;
  a->progress = "auto";
  optind = 1;
  opterr = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", train_opts, NULL)) != -1) {
    if (c == 'h') {
      printf("%s", TRAIN_USAGE);
      return 0;
    }
    if (c >= V_DATA && c < V_LAST) a->given[c - V_DATA] = true;
    if (!train_option(a, c)) {
      fprintf(stderr, "(see 'kronvi vae train --help')\n");
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "kronvi: unexpected argument '%s' (see 'kronvi vae train --help')\n",
            argv[optind]);
    return 2;
  }
  return train_finish_args(a);
}

/* ---- a resumed run keeps the checkpoint's settings ---------------------------------------- */
static bool refuse(const train_args *a, int opt, const char *flag, bool differs,
                   const char *saved) {
  if (!given(a, opt) || !differs) return false;
  fprintf(stderr,
          "kronvi: %s was trained with %s %s; this command gives another value (HINT: drop %s to "
          "continue the run, or start a new run without --resume)\n",
          a->resume, flag, saved, flag);
  return true;
}

static const char *num(char *buf, double x) {
  snprintf(buf, 32, "%.10g", x);
  return buf;
}

static int resume_conflicts(const train_args *a, const kvi_vae_trainer *t) {
  const kvi_vae_config *s = &t->vae->cfg;
  const kvi_vae_train_config *c = &t->cfg;
  char b[13][32];
  bool bad = refuse(a, V_FAMILY, "--family", a->family != s->head.family,
                    kvi_vae_family_name(s->head.family));
  snprintf(b[0], sizeof b[0], "%dx%d", s->head.p, s->head.q);
  bad |= refuse(a, V_SHAPE, "--mn-shape", a->p != s->head.p || a->q != s->head.q, b[0]);
  bad |= refuse(a, V_LATENT, "--latent", a->vc.head.d != s->head.d, num(b[1], s->head.d));
  bad |= refuse(a, V_HIDDEN, "--hidden", a->vc.hidden != s->hidden, num(b[2], s->hidden));
  bad |= refuse(a, V_LAYERS, "--layers", a->vc.layers != s->layers, num(b[3], s->layers));
  bad |= refuse(a, V_ACT, "--act", a->vc.act != s->act, kvi_act_name(s->act));
  bad |= refuse(a, V_BATCH, "--batch", a->tc.batch != c->batch, num(b[4], c->batch));
  bad |= refuse(a, V_LR, "--lr", a->tc.opt.lr != c->opt.lr, num(b[5], c->opt.lr));
  bad |= refuse(a, V_ANNEAL, "--kl-anneal-epochs", a->tc.kl_anneal != c->kl_anneal,
                num(b[6], c->kl_anneal));
  bad |= refuse(a, V_PATIENCE, "--patience", a->tc.patience != c->patience, num(b[7], c->patience));
  bad |= refuse(a, V_SEED, "--seed", a->tc.seed != c->seed, num(b[8], (double)c->seed));
  bad |= refuse(a, V_VAL, "--val", a->val != t->val, num(b[9], (double)t->val));
  bad |= refuse(a, V_LTRAIN, "--limit-train", a->limit_train != t->limit_train,
                num(b[10], (double)t->limit_train));
  return bad ? 1 : 0;
}

/* ---- callbacks: progress, CSV log, checkpoints -------------------------------------------- */
typedef struct {
  const train_args *a;
  const char *save;
  FILE *log;
  double last_draw;
} train_out;

static kvi_status on_step(kvi_vae_trainer *t, int64_t batch, int64_t nb, double elbo, void *u) {
  train_out *o = u;
  if (o->a->progress_level < 2 || !isatty(2)) return KVI_OK;
  if (kvi_time_now() - o->last_draw < 0.2 && batch != nb) return KVI_OK;
  o->last_draw = kvi_time_now();
  fprintf(stderr, "\repoch %d/%d %3d%% train ELBO %.2f ", t->epoch + 1, t->cfg.epochs,
          (int)(100.0 * (double)batch / (double)nb), elbo);
  fflush(stderr);
  return KVI_OK;
}

static kvi_status write_log(train_out *o, const kvi_vae_trainer *t, const kvi_vae_epoch_info *e) {
  if (!o->log) { /* opened at the first epoch: a run that fails before writes nothing */
    const bool fresh = e->epoch == 1 || access(o->a->log, F_OK) != 0;
    if (!(o->log = fopen(o->a->log, fresh ? "w" : "a")))
      return kvi_fail(KVI_ERR_IO, "cannot open log file '%s' for writing", o->a->log);
    if (fresh)
      fprintf(o->log,
              "epoch,step,seconds,kl_beta,train_elbo,train_rec,train_kl,val_elbo,best_epoch\n");
  }
  char val[32] = "";
  if (isfinite(e->val_elbo)) snprintf(val, sizeof val, "%.5f", e->val_elbo);
  fprintf(o->log, "%d,%lld,%.3f,%.5f,%.5f,%.5f,%.5f,%s,%d\n", e->epoch, (long long)t->step,
          e->seconds, e->kl_beta, e->train_elbo, e->train_rec, e->train_kl, val, t->best_epoch);
  return fflush(o->log) == 0 ? KVI_OK : kvi_fail(KVI_ERR_IO, "cannot write the training log");
}

static kvi_status on_epoch(kvi_vae_trainer *t, const kvi_vae_epoch_info *e, void *u) {
  train_out *o = u;
  if (o->a->progress_level >= 2 && isatty(2)) fprintf(stderr, "\n");
  if (o->a->progress_level >= 1) {
    char val[48] = "";
    if (isfinite(e->val_elbo))
      snprintf(val, sizeof val, "  val ELBO %.3f%s", e->val_elbo, e->improved ? " *" : "");
    fprintf(stderr, "epoch %3d  train ELBO %.3f (rec %.3f, KL %.3f)%s  kl-beta %.3f  %.1fs\n",
            e->epoch, e->train_elbo, e->train_rec, e->train_kl, val, e->kl_beta, e->seconds);
    if (e->stopping)
      fprintf(stderr, "early stopping: no better validation ELBO for %d epochs (best: epoch %d)\n",
              t->cfg.patience, t->best_epoch);
  }
  kvi_status s = o->a->log ? write_log(o, t, e) : KVI_OK;
  const bool due = e->last || e->stopping || e->paused || e->epoch % o->a->save_every == 0;
  if (!s && o->save && due) s = kvi_vae_checkpoint_save(o->save, t);
  return s;
}

/* ---- the run -------------------------------------------------------------------------------- */
static int train_data(kvi_dataset *train, kvi_dataset *val, const train_args *a,
                      const kvi_vae_trainer *t) {
  kvi_dataset test;
  kvi_dataset_init(val);
  if (vae_load_data(train, &test, a->data, true, t->limit_train, false, 1))
    return cli_error("cannot load data");
  kvi_dataset_free(&test);
  if (t->val > 0 && vae_split_tail(train, val, t->val)) {
    kvi_dataset_free(train);
    return cli_error("--val");
  }
  return 0;
}

static int train_setup(train_args *a, kvi_vae **v, kvi_vae_trainer *t, kvi_dataset *train,
                       kvi_dataset *val) {
  if (a->resume) {
    if (kvi_vae_checkpoint_load(a->resume, v, t, false, NULL)) return cli_error("cannot resume");
    if (resume_conflicts(a, t)) return 1;
    if (given(a, V_EPOCHS)) t->cfg.epochs = a->tc.epochs;
    t->cfg.stop_after = a->tc.stop_after, t->cfg.fixed_threads = a->tc.fixed_threads;
    if (train_data(train, val, a, t)) return 1;
    if (train->d != (*v)->cfg.in_size) {
      fprintf(stderr, "kronvi: %s takes %d pixels but the data have %d\n", a->resume,
              (*v)->cfg.in_size, train->d);
      return 1;
    }
    fprintf(stderr, "resuming %s at epoch %d (step %lld)\n", a->resume, t->epoch,
            (long long)t->step);
    return 0;
  }
  kvi_vae_trainer probe; /* the data preparation, before anything is built */
  memset(&probe, 0, sizeof probe);
  probe.limit_train = a->limit_train, probe.val = a->val;
  if (train_data(train, val, a, &probe)) return 1;
  a->vc.in_size = train->d, a->vc.in_h = train->h, a->vc.in_w = train->w;
  if (kvi_vae_create(v, &a->vc, a->tc.batch, a->tc.seed)) return cli_error("cannot build the VAE");
  if (kvi_vae_trainer_init(t, *v, &a->tc)) return cli_error("trainer");
  t->limit_train = a->limit_train, t->val = a->val;
  return 0;
}

int vae_train(int argc, char **argv) {
  train_args a;
  int rc = parse_train(&a, argc, argv);
  if (rc >= 0) return rc;
  kvi_set_threads((int)a.threads);
  kvi_vae *v = NULL;
  kvi_vae_trainer t;
  memset(&t, 0, sizeof t);
  kvi_dataset train, val;
  kvi_dataset_init(&train), kvi_dataset_init(&val);
  rc = train_setup(&a, &v, &t, &train, &val);
  train_out o = {&a, a.save ? a.save : a.resume, NULL, 0};
  if (!rc) {
    t.on_epoch = on_epoch, t.on_step = on_step, t.user = &o;
    if (a.progress_level >= 1)
      fprintf(stderr,
              "kronvi vae train: %s, |z| %d, encoder %s, decoder %s, %zu parameters, %lld train / "
              "%lld val images, batch %d, adam lr %g, KL annealing over %g epochs, %d threads "
              "(%s)\n",
              vae_family_label(&v->cfg), v->cfg.head.d, v->enc->arch, v->dec->arch,
              v->model->params.n, (long long)train.n, (long long)val.n, t.cfg.batch, t.cfg.opt.lr,
              t.cfg.kl_anneal, (int)a.threads, KVI_REAL_NAME);
    if (kvi_vae_train(&t, &train, val.n ? &val : NULL)) {
      fprintf(stderr, "\n");
      rc = cli_error("training failed");
    }
  }
  if (!rc) {
    printf("trained %d epochs in %.1f s", t.epoch, t.elapsed);
    if (t.best) printf("; best validation ELBO %.3f nats at epoch %d", t.best_val, t.best_epoch);
    printf("%s%s\n", o.save ? "; saved " : "", o.save ? o.save : "");
  }
  if (o.log) fclose(o.log);
  kvi_vae_trainer_free(&t);
  kvi_vae_free(v);
  kvi_dataset_free(&train), kvi_dataset_free(&val);
  return rc;
}
