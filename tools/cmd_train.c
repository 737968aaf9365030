/* kronvi train */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void train_help(FILE *f) {
  fprintf(
      f,
      "usage: kronvi train --data PATH --arch SIZES [options]\n"
      "\n"
      "Trains a Bayesian network by maximizing the ELBO with the local reparameterization trick.\n"
      "\n"
      "data:\n"
      "  --data PATH            classification: directory with IDX files "
      "({train,t10k}-{images-idx3,\n"
      "                         labels-idx1}-ubyte[.gz], MNIST / Fashion-MNIST) or CIFAR-10 "
      "binary\n"
      "                         batches; regression: a CSV file (last --targets columns are "
      "targets)\n"
      "  --task T               classification (default) or regression\n"
      "  --targets K            regression: number of target columns (default 1)\n"
      "  --test PATH            regression: a test CSV\n"
      "  --val N                hold out N training rows for validation (default 0; with "
      "--patience)\n"
      "  --limit-train N        use only the first N training rows (default all)\n"
      "  --limit-test N         use only the first N test rows (default all)\n"
      "  --standardize          regression: standardize features with training statistics\n"
      "  --pad N                images: pad N zero pixels on every side (28x28 -> 32x32: 2)\n"
      "  --hflip                images: random horizontal flips of training images\n"
      "  --normalize            images: x <- (x - mean) / std with the mean and standard\n"
      "                         deviation of all training pixels (stored with the model and\n"
      "                         applied by eval and prune)\n"
      "model:\n"
      "  --arch SPEC            MLP: dense layer sizes, e.g. 784-300-300-300-10 (first = input\n"
      "                         size). CNN: input channels, then C (a 3x3 convolution with C\n"
      "                         filters, stride 1, same padding; Ck5s2p0 sets kernel, stride,\n"
      "                         padding), mp (2x2 max-pooling), flatten, then dense sizes:\n"
      "                         1-10-mp-20-mp-40-mp-80-mp-flatten-10 (parentheses as in\n"
      "                         1-10-(mp)-20-(flatten)-10 are accepted); the image height and\n"
      "                         width come from the data (HWC layout)\n"
      "  --act A                elu (default), relu or none, between dense layers\n"
      "  --family F             point, diag, mn (default) or mn-diag\n"
      "  --prior P              ard (default), group (rows and columns), scalar (one learned\n"
      "                         variance), fixed:VAR\n"
      "  --prior-update N       group: closed-form update of the row and column precisions\n"
      "                         every N steps (default 10; 0: Adam on them only)\n"
      "  --no-bias              no bias vectors\n"
      "  --init-log-sigma S     initial log standard deviation of every weight (default -5)\n"
      "  --noise-precision B    regression: noise precision beta (default 1)\n"
      "  --learn-noise          regression: learn beta by the ELBO\n");
  fputs(
      "optimization:\n"
      "  --epochs N             epochs (default 10)\n"
      "  --batch B              mini-batch size (default 100)\n"
      "  --optimizer O          adam (default) or sgd (momentum)\n"
      "  --lr LR                learning rate (default 1e-3)\n"
      "  --lr-decay G           multiply the learning rate by G after every epoch (default 1)\n"
      "  --lr-final LR          decay exponentially to LR at the last epoch (overrides "
      "--lr-decay)\n"
      "  --momentum M           sgd momentum (default 0.9)\n"
      "  --kl-warmup E          KL weight schedule length in epochs (default 0: weight 1 "
      "throughout)\n"
      "  --kl-schedule S        linear (default: beta = t/E) or exp (beta = 1 - exp(-5t/E))\n"
      "  --patience N           early stopping after N epochs without validation improvement\n"
      "  --finetune-pruned E    the last E epochs hold the means of the pruned weights (log\n"
      "                         alpha > threshold, renewed each epoch) at zero and fit the rest\n"
      "evaluation and output:\n"
      "  --samples K            weight samples for Bayesian model averaging (default 10)\n"
      "  --eval-every N         BMA evaluation every N epochs (default 1; 0: last epoch only)\n"
      "  --prune-threshold T    drop weights with log alpha > T (default 3)\n"
      "  --save PATH            checkpoint (safetensors) written atomically after every epoch\n"
      "  --save-every N         checkpoint every N epochs instead (and after the last)\n"
      "  --resume PATH          continue training from a checkpoint (its settings; --epochs may\n"
      "                         extend the run)\n"
      "  --log PATH             per-epoch metrics as CSV\n"
      "  --seed S               random seed (default 1): same seed and threads, same result\n"
      "  --threads N            BLAS and OpenMP threads (default 2)\n"
      "  --progress P           auto (default: bar on a terminal, lines otherwise), bar, lines, "
      "none\n"
      "  -h, --help             this help\n",
      f);
}

enum {
  O_DATA = 256,
  O_TASK,
  O_TARGETS,
  O_TEST,
  O_VAL,
  O_LTRAIN,
  O_LTEST,
  O_STD,
  O_NORM,
  O_FINETUNE,
  O_PAD,
  O_HFLIP,
  O_PRIORUPD,
  O_ARCH,
  O_ACT,
  O_FAMILY,
  O_PRIOR,
  O_NOBIAS,
  O_INITLS,
  O_NOISE,
  O_LEARNNOISE,
  O_EPOCHS,
  O_BATCH,
  O_OPT,
  O_LR,
  O_LRDECAY,
  O_LRFINAL,
  O_MOM,
  O_WARMUP,
  O_SCHED,
  O_PATIENCE,
  O_SAMPLES,
  O_EVALEVERY,
  O_THR,
  O_SAVE,
  O_SAVEEVERY,
  O_RESUME,
  O_LOG,
  O_SEED,
  O_THREADS,
  O_PROGRESS
};

static const struct option train_opts[] = {{"data", 1, 0, O_DATA},
                                           {"task", 1, 0, O_TASK},
                                           {"targets", 1, 0, O_TARGETS},
                                           {"test", 1, 0, O_TEST},
                                           {"val", 1, 0, O_VAL},
                                           {"limit-train", 1, 0, O_LTRAIN},
                                           {"limit-test", 1, 0, O_LTEST},
                                           {"standardize", 0, 0, O_STD},
                                           {"normalize", 0, 0, O_NORM},
                                           {"finetune-pruned", 1, 0, O_FINETUNE},
                                           {"pad", 1, 0, O_PAD},
                                           {"hflip", 0, 0, O_HFLIP},
                                           {"prior-update", 1, 0, O_PRIORUPD},
                                           {"arch", 1, 0, O_ARCH},
                                           {"act", 1, 0, O_ACT},
                                           {"family", 1, 0, O_FAMILY},
                                           {"prior", 1, 0, O_PRIOR},
                                           {"no-bias", 0, 0, O_NOBIAS},
                                           {"init-log-sigma", 1, 0, O_INITLS},
                                           {"noise-precision", 1, 0, O_NOISE},
                                           {"learn-noise", 0, 0, O_LEARNNOISE},
                                           {"epochs", 1, 0, O_EPOCHS},
                                           {"batch", 1, 0, O_BATCH},
                                           {"optimizer", 1, 0, O_OPT},
                                           {"lr", 1, 0, O_LR},
                                           {"lr-decay", 1, 0, O_LRDECAY},
                                           {"lr-final", 1, 0, O_LRFINAL},
                                           {"momentum", 1, 0, O_MOM},
                                           {"kl-warmup", 1, 0, O_WARMUP},
                                           {"kl-schedule", 1, 0, O_SCHED},
                                           {"patience", 1, 0, O_PATIENCE},
                                           {"samples", 1, 0, O_SAMPLES},
                                           {"eval-every", 1, 0, O_EVALEVERY},
                                           {"prune-threshold", 1, 0, O_THR},
                                           {"save", 1, 0, O_SAVE},
                                           {"save-every", 1, 0, O_SAVEEVERY},
                                           {"resume", 1, 0, O_RESUME},
                                           {"log", 1, 0, O_LOG},
                                           {"seed", 1, 0, O_SEED},
                                           {"threads", 1, 0, O_THREADS},
                                           {"progress", 1, 0, O_PROGRESS},
                                           {"help", 0, 0, 'h'},
                                           {0, 0, 0, 0}};

static bool parse_prior(kvi_net_config *nc, const char *s) {
  if (!strcmp(s, "ard"))
    nc->prior = KVI_PRIOR_ARD;
  else if (!strcmp(s, "group"))
    nc->prior = KVI_PRIOR_GROUP;
  else if (!strcmp(s, "scalar"))
    nc->prior = KVI_PRIOR_SCALAR;
  else if (!strncmp(s, "fixed:", 6)) {
    nc->prior = KVI_PRIOR_FIXED;
    return cli_double("--prior fixed:VAR", s + 6, 1e-300, 1e300, &nc->prior_var);
  } else {
    fprintf(stderr, "kronvi: unknown prior '%s' (expected ard, group, scalar or fixed:VAR)\n", s);
    return false;
  }
  return true;
}

int cmd_train(int argc, char **argv) {
  kvi_train_config cfg = kvi_train_config_default();
  kvi_net_config nc = kvi_net_config_default();
  const char *data = NULL, *test_path = NULL, *arch = NULL, *resume = NULL, *progress = "auto";
  long targets = 1, nval = 0, threads = 2, lt = 0, lte = 0, v;
  bool regression = false, standardize = false, normalize = false, epochs_given = false;
  long pad = 0;
  double d;
  int c;
  optind = 1;
  opterr = 1;
  while ((c = getopt_long(argc, argv, "h", train_opts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
      case 'h':
        train_help(stdout);
        return 0;
      case O_DATA:
        data = optarg;
        break;
      case O_TASK:
        if (!strcmp(optarg, "regression"))
          regression = true;
        else if (strcmp(optarg, "classification") && strcmp(optarg, "classify")) {
          fprintf(stderr, "kronvi: --task expects classification or regression\n");
          ok = false;
        }
        break;
      case O_TARGETS:
        ok = cli_int("--targets", optarg, 1, 100000, &targets);
        break;
      case O_TEST:
        test_path = optarg;
        break;
      case O_VAL:
        ok = cli_int("--val", optarg, 0, 100000000, &nval);
        break;
      case O_LTRAIN:
        ok = cli_int("--limit-train", optarg, 1, 1000000000, &lt);
        break;
      case O_LTEST:
        ok = cli_int("--limit-test", optarg, 1, 1000000000, &lte);
        break;
      case O_STD:
        standardize = true;
        break;
      case O_NORM:
        normalize = true;
        break;
      case O_FINETUNE:
        ok = cli_int("--finetune-pruned", optarg, 0, 1000000, &v);
        cfg.finetune_pruned = (int)v;
        break;
      case O_PAD:
        ok = cli_int("--pad", optarg, 0, 64, &pad);
        break;
      case O_HFLIP:
        cfg.hflip = true;
        break;
      case O_PRIORUPD: {
        long every = 0;
        ok = cli_int("--prior-update", optarg, 0, 1000000000, &every);
        cfg.prior_update_every = (int)every;
        break;
      }
      case O_ARCH:
        arch = optarg;
        break;
      case O_ACT:
        ok = kvi_act_parse(&nc.act, optarg) == KVI_OK || cli_error("--act") == 0;
        break;
      case O_FAMILY:
        ok = kvi_family_parse(&nc.family, optarg) == KVI_OK || cli_error("--family") == 0;
        break;
      case O_PRIOR:
        ok = parse_prior(&nc, optarg);
        break;
      case O_NOBIAS:
        nc.bias = false;
        break;
      case O_INITLS:
        ok = cli_double("--init-log-sigma", optarg, -30, 5, &nc.init_log_sigma);
        break;
      case O_NOISE:
        ok = cli_double("--noise-precision", optarg, 1e-12, 1e12, &cfg.noise_precision);
        break;
      case O_LEARNNOISE:
        cfg.learn_noise = true;
        break;
      case O_EPOCHS:
        ok = cli_int("--epochs", optarg, 0, 1000000, &v);
        cfg.epochs = (int)v, epochs_given = true;
        break;
      case O_BATCH:
        ok = cli_int("--batch", optarg, 1, 100000, &v);
        cfg.batch = (int)v;
        break;
      case O_OPT: {
        kvi_opt_kind k;
        ok = kvi_opt_parse(&k, optarg) == KVI_OK || cli_error("--optimizer") == 0;
        if (ok) {
          double lr = cfg.opt.lr, mom = cfg.opt.momentum;
          cfg.opt = kvi_opt_config_default(k);
          cfg.opt.lr = lr, cfg.opt.momentum = mom;
        }
        break;
      }
      case O_LR:
        ok = cli_double("--lr", optarg, 1e-12, 1e3, &cfg.opt.lr);
        break;
      case O_LRDECAY:
        ok = cli_double("--lr-decay", optarg, 1e-6, 1, &cfg.lr_decay);
        break;
      case O_LRFINAL:
        ok = cli_double("--lr-final", optarg, 1e-12, 1e3, &cfg.lr_final);
        break;
      case O_MOM:
        ok = cli_double("--momentum", optarg, 0, 0.9999, &cfg.opt.momentum);
        break;
      case O_WARMUP:
        ok = cli_double("--kl-warmup", optarg, 0, 1e6, &cfg.kl_warmup);
        break;
      case O_SCHED:
        if (!strcmp(optarg, "linear"))
          cfg.kl_schedule = KVI_KL_LINEAR;
        else if (!strcmp(optarg, "exp"))
          cfg.kl_schedule = KVI_KL_EXP;
        else {
          fprintf(stderr, "kronvi: --kl-schedule expects linear or exp\n");
          ok = false;
        }
        break;
      case O_PATIENCE:
        ok = cli_int("--patience", optarg, 0, 100000, &v);
        cfg.patience = (int)v;
        break;
      case O_SAMPLES:
        ok = cli_int("--samples", optarg, 0, 100000, &v);
        cfg.samples = (int)v;
        break;
      case O_EVALEVERY:
        ok = cli_int("--eval-every", optarg, 0, 100000, &v);
        cfg.eval_samples_every = (int)v;
        break;
      case O_THR:
        ok = cli_double("--prune-threshold", optarg, -100, 100, &cfg.prune_threshold);
        break;
      case O_SAVE:
        cfg.save_path = optarg;
        break;
      case O_SAVEEVERY:
        ok = cli_int("--save-every", optarg, 1, 1000000, &v);
        cfg.save_every = (int)v;
        break;
      case O_RESUME:
        resume = optarg;
        break;
      case O_LOG:
        cfg.log_path = optarg;
        break;
      case O_SEED:
        ok = cli_double("--seed", optarg, 0, 1.8e19, &d);
        cfg.seed = (uint64_t)d;
        break;
      case O_THREADS:
        ok = cli_int("--threads", optarg, 1, 256, &threads);
        break;
      case O_PROGRESS:
        progress = optarg;
        break;
      default:
        ok = false;
        break; /* getopt printed the message */
    }
    if (!ok) {
      fprintf(stderr, "(see 'kronvi train --help')\n");
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "kronvi: unexpected argument '%s' (see 'kronvi train --help')\n", argv[optind]);
    return 2;
  }
  if (!strcmp(progress, "auto"))
    cfg.progress = isatty(fileno(stderr)) ? 2 : 1;
  else if (!strcmp(progress, "bar"))
    cfg.progress = 2;
  else if (!strcmp(progress, "lines"))
    cfg.progress = 1;
  else if (!strcmp(progress, "none"))
    cfg.progress = 0;
  else {
    fprintf(stderr, "kronvi: --progress expects auto, bar, lines or none\n");
    return 2;
  }
  if (!data) {
    fprintf(stderr, "kronvi: --data is required (see 'kronvi train --help')\n");
    return 2;
  }
  if (!arch && !resume) {
    fprintf(stderr, "kronvi: --arch is required (see 'kronvi train --help')\n");
    return 2;
  }
  if (normalize && regression) {
    fprintf(stderr, "kronvi: --normalize is for images; regression features take --standardize\n");
    return 2;
  }
  if (nc.family == KVI_FAMILY_POINT) nc.prior = KVI_PRIOR_NONE;
  cfg.task = regression ? KVI_TASK_REGRESS : KVI_TASK_CLASSIFY;
  kvi_set_threads((int)threads);

  kvi_dataset train, test, val;
  kvi_dataset_init(&val);
  if (cli_load_data(&train, &test, data, regression, (int)targets, test_path, lt, lte))
    return cli_error("cannot load data");
  int rc = 0;
  kvi_net *net = NULL;
  kvi_trainer tr;
  memset(&tr, 0, sizeof tr);
  if (resume) {
    kvi_train_config saved;
    if (kvi_checkpoint_load(resume, &net, &tr, &saved)) {
      rc = cli_error("cannot resume");
      goto out;
    }
  }
  /* --normalize: one mean and standard deviation over all training pixels, stored with the
   * model (eval and prune apply them to the test images); a resumed run uses the stored ones */
  if (resume ? net->cfg.input_std > 0 : normalize) {
    double mean = resume ? net->cfg.input_mean : 0, sd = resume ? net->cfg.input_std : 0;
    if (!resume && kvi_dataset_pixel_stats(&train, &mean, &sd)) {
      rc = cli_error("--normalize");
      goto out;
    }
    if (kvi_dataset_normalize_scalar(&train, (kvi_real)mean, (kvi_real)sd) ||
        (test.n > 0 && kvi_dataset_normalize_scalar(&test, (kvi_real)mean, (kvi_real)sd))) {
      rc = cli_error("--normalize");
      goto out;
    }
    nc.input_mean = mean, nc.input_std = sd;
    if (cfg.progress >= 1)
      fprintf(stderr, "kronvi train: inputs normalized with mean %.6g, std %.6g\n", mean, sd);
  }
  if (standardize) {
    kvi_real *mu = NULL, *sd = NULL;
    if (kvi_dataset_standardize(&train, &train, &mu, &sd) ||
        (test.n > 0 && kvi_dataset_apply_standardize(&test, mu, sd))) {
      rc = cli_error("standardize");
    }
    kvi_free(mu), kvi_free(sd);
    if (rc) goto out;
  }
  if (pad > 0 &&
      (kvi_dataset_pad(&train, (int)pad) || (test.n > 0 && kvi_dataset_pad(&test, (int)pad)))) {
    rc = cli_error("--pad");
    goto out;
  }
  if (nval > 0 && kvi_dataset_split(&train, &val, nval, cfg.seed)) {
    rc = cli_error("validation split");
    goto out;
  }
  if (resume) {
    /* the run continues with its own settings; only the length and outputs may change */
    if (epochs_given) tr.cfg.epochs = cfg.epochs;
    tr.cfg.save_path = cfg.save_path ? cfg.save_path : resume;
    tr.cfg.log_path = cfg.log_path;
    tr.cfg.progress = cfg.progress;
    tr.cfg.save_every = cfg.save_every;
    if (net->in_size != train.d) {
      fprintf(stderr, "kronvi: %s expects %d features but the data have %d\n", resume, net->in_size,
              train.d);
      rc = 1;
      goto out;
    }
    fprintf(stderr, "resuming %s at epoch %d (step %lld)\n", resume, tr.epoch, (long long)tr.step);
  } else {
    int maxb = kvi_net_pick_max_batch(arch, cfg.batch);
    nc.in_h = train.h, nc.in_w = train.w;
    if (kvi_net_create(&net, arch, train.d, &nc, maxb, cfg.seed)) {
      rc = cli_error("--arch");
      goto out;
    }
    if (kvi_trainer_init(&tr, net, &cfg)) {
      rc = cli_error("trainer");
      goto out;
    }
  }
  if (cfg.progress >= 1)
    fprintf(stderr,
            "kronvi train: %s %s/%s, %zu parameters, %lld train / %lld val / %lld test rows, "
            "batch %d, %s lr %g, %d threads (%s BLAS core %s)\n",
            net->arch, kvi_family_name(net->cfg.family), kvi_prior_name(net->cfg.prior),
            kvi_net_param_count(net), (long long)train.n, (long long)val.n, (long long)test.n,
            tr.cfg.batch, kvi_opt_name(tr.cfg.opt.kind), tr.cfg.opt.lr, (int)threads, KVI_REAL_NAME,
            kvi_blas_core());
  if (kvi_train(&tr, &train, val.n ? &val : NULL, test.n ? &test : NULL)) {
    fprintf(stderr, "\n");
    rc = cli_error("training failed");
    goto out;
  }
  /* final summary */
  if (!regression) {
    kvi_sparsity sp;
    if (kvi_sparsity_compute(&sp, net, tr.cfg.prune_threshold) == KVI_OK) {
      printf("\n");
      kvi_sparsity_print(stdout, &sp, kvi_family_name(net->cfg.family));
    }
    if (test.n) {
      kvi_metrics m;
      if (kvi_evaluate(&m, net, &test, tr.cfg.samples, tr.cfg.seed ^ 0x7e57, tr.cfg.prune_threshold,
                       net->log_beta) == KVI_OK)
        printf(
            "\ntest (%lld rows): accuracy %.4f (mean weights), %.4f (BMA, %d samples), "
            "NLL %.4f, ECE %.4f, accuracy after pruning %.4f\n",
            (long long)test.n, m.acc_mean, m.acc_bma, m.samples, m.nll_bma, m.ece, m.acc_pruned);
    }
  } else if (test.n) {
    kvi_metrics m;
    if (kvi_evaluate(&m, net, &test, 0, 0, tr.cfg.prune_threshold, net->log_beta) == KVI_OK)
      printf("test (%lld rows): RMSE %.6f, NLL %.6f\n", (long long)test.n, m.rmse_mean, m.nll_mean);
  }
  printf("trained %d epochs in %.1f s%s%s\n", tr.epoch, tr.elapsed,
         tr.cfg.save_path ? "; saved " : "", tr.cfg.save_path ? tr.cfg.save_path : "");
out:
  if (tr.net) kvi_trainer_free(&tr);
  kvi_net_free(net);
  kvi_dataset_free(&train);
  kvi_dataset_free(&test);
  kvi_dataset_free(&val);
  return rc;
}
