/* kronvi train */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train_cli.h"

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
      "  --act A                elu (default), relu or none, after every weight layer\n"
      "                         but the last\n"
      "  --family F             point, diag, mn (default) or mn-diag\n"
      "  --prior P              ard (default), group (rows and columns), scalar (one learned\n"
      "                         variance), fixed:VAR\n"
      "  --prior-update N       group: closed-form update of the row and column precisions\n"
      "                         every N steps (default 10; 0: Adam on them only)\n"
      "  --no-bias              no bias vectors\n"
      "  --init-log-sigma S     initial log standard deviation of every weight (default -5)\n"
      "  --noise-precision B    regression: noise precision beta (default 1)\n"
      "  --learn-noise          regression: learn beta by the ELBO\n"
      "  --mndiag-bound B       mn-diag: the log det of the KL by minkowski (default: a lower\n"
      "                         bound, the ELBO stays a bound) or slq (stochastic Lanczos\n"
      "                         quadrature with Kronecker products: an estimate, much closer;\n"
      "                         docs/prob.md)\n"
      "  --slq-probes P         slq: probes per step (default 2)\n"
      "  --slq-steps K          slq: Lanczos steps per probe (default 20)\n"
      "  --slq-refresh T        slq: eigenbases of the control variate every T steps (20)\n"
      "  --max-memory SIZE      refuse a network whose estimated memory exceeds SIZE (bytes,\n"
      "                         or with a K, M or G suffix; default: the machine's memory)\n");
  fputs(
      "optimization:\n"
      "  --epochs N             epochs (default 10)\n"
      "  --stop-after E         stop after epoch E of the --epochs schedule with a checkpoint;\n"
      "                         --resume continues it exactly (--lr-final, --finetune-pruned and\n"
      "                         the last epoch's evaluation follow --epochs, so resuming a "
      "shorter\n"
      "                         run with a larger --epochs changes its schedule from there)\n"
      "  --batch B              mini-batch size (default 100)\n",
      f);
  fputs(
      "  --optimizer O          adam (default), sgd (momentum), kfac (point networks) or\n"
      "                         noisy-kfac (mn posterior by natural gradient, --prior fixed:V\n"
      "                         or scalar); both K-FAC: lr default 1e-2, docs/kfac.md.\n"
      "                         Solvers for point networks (--family point) and large or full\n"
      "                         batches (--batch; docs/curv.md): each step is one iteration on\n"
      "                         the batch's loss with its own curvature products: lbfgs (strong-\n"
      "                         Wolfe line search), newton (damped, exact Hessian), lm\n"
      "                         (Levenberg-Marquardt on the Gauss-Newton matrix), hf (Hessian-\n"
      "                         free: CG on the damped Gauss-Newton matrix, pullback-sampling\n"
      "                         diagonal preconditioner), proximal (--prox-steps Adam steps on\n"
      "                         loss + function- and weight-space distances to the step's start;\n"
      "                         --lr is their step, default 1e-3); --lr is not used by the "
      "others.\n"
      "                         Geometric: riemann-sgd, riemann-momentum, riemann-adam (mn,\n"
      "                         mn-diag: Riemannian steps on the covariance factors, Adam on the\n"
      "                         rest) or lie-ngd (point networks: Kronecker-of-triangular\n"
      "                         Lie-group NGD, lr default 1e-2, the kfac flags below apply);\n"
      "                         docs/geom.md\n",
      f);
  fputs(
      "  --damping L            kfac: initial Tikhonov damping (default 1e-3; about 0.1 with\n"
      "                         --damping-kind exact or --ekfac); newton, lm, hf: initial lambda\n"
      "  --cg-max N             hf (and newton, lm above --dense-max parameters): CG iterations\n"
      "                         per step (default 250)\n"
      "  --dense-max N          newton, lm: Cholesky of the dense matrix up to N parameters, CG\n"
      "                         above (default 2000)\n"
      "  --lbfgs-memory M       lbfgs: (s, y) pairs kept (default 10)\n"
      "  --prox-steps K         proximal: inner steps per batch (default 5)\n"
      "  --prox-fsd L           proximal: weight of the outputs' KL to the step's start (1)\n"
      "  --prox-wsd L           proximal: L/2 ||w - w_k||^2 (default 1e-4)\n"
      "  --hf-hessian           hf: CG on the damped Hessian instead of the Gauss-Newton matrix\n"
      "  --damping-kind K       kfac: factored (pi correction, default) or exact (A(x)G + L I\n"
      "                         in the factors' eigenbases)\n"
      "  --adapt-damping N      kfac: Levenberg-Marquardt adaptation of L every N steps (0: off)\n"
      "  --fisher F             kfac: sampled (targets from the model, default) or empirical\n"
      "  --kfac-ema E           kfac: decay of the factors' moving averages (default 0.95)\n"
      "  --inverse-every T      kfac: refresh the eigenbases every T steps (default 20)\n"
      "  --kl-clip C            kfac: bound lr^2 v.g of a step by C (default 1e-3; 0: off)\n"
      "  --ekfac                kfac: EKFAC re-scaling in the Kronecker eigenbasis\n"
      "  --lr LR                learning rate (default 1e-3)\n"
      "  --lr-decay G           multiply the learning rate by G after every epoch (default 1)\n"
      "  --lr-final LR          decay exponentially to LR at the last epoch (overrides "
      "--lr-decay)\n"
      "  --momentum M           sgd, kfac, riemann-momentum, lie-ngd momentum (default 0.9)\n"
      "  --nesterov             sgd: Nesterov momentum\n"
      "  --weight-decay WD      decoupled weight decay of the means (default 0)\n"
      "  --kl-warmup E          KL weight schedule length in epochs (default 0: weight 1 "
      "throughout)\n"
      "  --kl-schedule S        linear (default: beta = t/E) or exp (beta = 1 - exp(-5t/E))\n"
      "  --patience N           early stopping after N epochs without validation improvement\n"
      "  --finetune-pruned E    the last E epochs hold the means of the pruned weights (log\n"
      "                         alpha > threshold, renewed each epoch) at zero and fit the rest\n",
      f);
  fputs(
      "evaluation and output:\n"
      "  --samples K            weight samples for Bayesian model averaging (default 10)\n"
      "  --eval-every N         test BMA also every N epochs (default 0: only after the epoch\n"
      "                         that ends the run; the other epochs evaluate the mean weights\n"
      "                         and the accuracy after pruning, the log leaves BMA empty)\n"
      "  --bma M                shared (default: a dense first layer's output drawn per\n"
      "                         example around its mean and scale computed once, one weight\n"
      "                         sample per later layer for each of the K networks), weights\n"
      "                         (one weight sample per layer: about K mean-weight passes) or\n"
      "                         lrt (local reparameterization, fresh noise per example)\n"
      "  --prune-threshold T    drop weights with log alpha > T (default 3)\n"
      "  --save PATH            checkpoint (safetensors) written atomically after every epoch\n"
      "  --save-every N         checkpoint every N epochs instead (and after the last)\n"
      "  --resume PATH          continue training from a checkpoint with its settings and data\n"
      "                         preparation (--epochs may extend the run, --eval-every and\n"
      "                         --bma may change; a flag that differs from the checkpoint's\n"
      "                         is refused)\n"
      "  --reset-optimizer      with --resume: restart the optimizer's moments from zero (for\n"
      "                         checkpoints without optimizer state, e.g. pruned ones)\n"
      "  --log PATH             per-epoch metrics as CSV (BMA columns empty when not computed)\n"
      "  --seed S               random seed (default 1): same seed and threads, same result\n"
      "  --threads N            at most N threads (default: the CPUs this process may use,\n"
      "                         divided by the processes of a data-parallel run on this machine);\n"
      "                         steps run on fewer when that is faster, e.g. while another\n"
      "                         process holds a core (the results are the same)\n"
      "  --fixed-threads        always exactly --threads threads\n"
      "  --overlap on|off       data-parallel runs (mpirun -np P kronvi train ..., a build with\n"
      "                         KRONVI_MPI): sum each layer's gradient over the processes while\n"
      "                         the backward goes on below it (default off; the same numbers\n"
      "                         either way; docs/distributed.md)\n"
      "  --progress P           auto (default: bar on a terminal, lines otherwise), bar, lines, "
      "none\n"
      "  -h, --help             this help\n",
      f);
}

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
                                           {"reset-optimizer", 0, 0, O_RESETOPT},
                                           {"max-memory", 1, 0, O_MAXMEM},
                                           {"nesterov", 0, 0, O_NESTEROV},
                                           {"weight-decay", 1, 0, O_WD},
                                           {"stop-after", 1, 0, O_STOPAFTER},
                                           {"fixed-threads", 0, 0, O_FIXEDTHREADS},
                                           {"damping", 1, 0, O_DAMPING},
                                           {"kfac-ema", 1, 0, O_KFACEMA},
                                           {"inverse-every", 1, 0, O_INVEVERY},
                                           {"kl-clip", 1, 0, O_KLCLIP},
                                           {"fisher", 1, 0, O_FISHER},
                                           {"damping-kind", 1, 0, O_DAMPKIND},
                                           {"ekfac", 0, 0, O_EKFAC},
                                           {"adapt-damping", 1, 0, O_ADAPT},
                                           {"bma", 1, 0, O_BMA},
                                           {"overlap", 1, 0, O_OVERLAP},
                                           {"cg-max", 1, 0, O_CGMAX},
                                           {"dense-max", 1, 0, O_DENSEMAX},
                                           {"lbfgs-memory", 1, 0, O_LBFGSMEM},
                                           {"prox-steps", 1, 0, O_PROXSTEPS},
                                           {"prox-fsd", 1, 0, O_PROXFSD},
                                           {"prox-wsd", 1, 0, O_PROXWSD},
                                           {"hf-hessian", 0, 0, O_HFHESS},
                                           {"mndiag-bound", 1, 0, O_MNDBOUND},
                                           {"slq-probes", 1, 0, O_SLQPROBES},
                                           {"slq-steps", 1, 0, O_SLQSTEPS},
                                           {"slq-refresh", 1, 0, O_SLQREFRESH},
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

/* The output files must be writable before any data are loaded: --save (a resumed run saves to
 * its --resume checkpoint unless --save is given) and --log. */
static bool outputs_writable(const char *save, const char *resume, const char *log) {
  if (save && !cli_check_writable("--save", save)) return false;
  if (!save && resume && !cli_check_writable("--resume", resume)) return false;
  return !log || cli_check_writable("--log", log);
}

/* Parses the options into *a; returns -1 to go on, else the exit code (0 for --help). */
static int parse_train_args(train_args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->cfg = kvi_train_config_default();
  a->nc = kvi_net_config_default();
  a->progress = "auto";
  a->targets = 1, a->threads = kvi_threads_available();
  long v;
  double d;
  int c;
  optind = 1;
  opterr = 1;
  while ((c = getopt_long(argc, argv, "h", train_opts, NULL)) != -1) {
    bool ok = true;
    if (c >= O_DATA && c < O_LAST) a->given[c - O_DATA] = true;
    switch (c) {
      case 'h':
        train_help(stdout);
        return 0;
      case O_DATA:
        a->data = optarg;
        break;
      case O_TASK:
        if (!strcmp(optarg, "regression"))
          a->regression = true;
        else if (strcmp(optarg, "classification") && strcmp(optarg, "classify")) {
          fprintf(stderr, "kronvi: --task expects classification or regression\n");
          ok = false;
        }
        break;
      case O_TARGETS:
        ok = cli_int("--targets", optarg, 1, 100000, &a->targets);
        break;
      case O_TEST:
        a->test_path = optarg;
        break;
      case O_VAL:
        ok = cli_int("--val", optarg, 0, 100000000, &a->nval);
        break;
      case O_LTRAIN:
        ok = cli_int("--limit-train", optarg, 1, 1000000000, &a->lt);
        break;
      case O_LTEST:
        ok = cli_int("--limit-test", optarg, 1, 1000000000, &a->lte);
        break;
      case O_STD:
        a->standardize = true;
        break;
      case O_NORM:
        a->normalize = true;
        break;
      case O_FINETUNE:
        ok = cli_int("--finetune-pruned", optarg, 0, 1000000, &v);
        a->cfg.finetune_pruned = (int)v;
        break;
      case O_PAD:
        ok = cli_int("--pad", optarg, 0, 64, &a->pad);
        break;
      case O_HFLIP:
        a->cfg.hflip = true;
        break;
      case O_PRIORUPD: {
        long every = 0;
        ok = cli_int("--prior-update", optarg, 0, 1000000000, &every);
        a->cfg.prior_update_every = (int)every;
        break;
      }
      case O_ARCH:
        a->arch = optarg;
        break;
      case O_ACT:
        ok = kvi_act_parse(&a->nc.act, optarg) == KVI_OK || cli_error("--act") == 0;
        break;
      case O_FAMILY:
        ok = kvi_family_parse(&a->nc.family, optarg) == KVI_OK || cli_error("--family") == 0;
        break;
      case O_PRIOR:
        ok = parse_prior(&a->nc, optarg);
        break;
      case O_NOBIAS:
        a->nc.bias = false;
        break;
      case O_INITLS:
        ok = cli_double("--init-log-sigma", optarg, -30, 5, &a->nc.init_log_sigma);
        break;
      case O_NOISE:
        ok = cli_double("--noise-precision", optarg, 1e-12, 1e12, &a->cfg.noise_precision);
        break;
      case O_LEARNNOISE:
        a->cfg.learn_noise = true;
        break;
      case O_EPOCHS:
        ok = cli_int("--epochs", optarg, 0, 1000000, &v);
        a->cfg.epochs = (int)v, a->epochs_given = true;
        break;
      case O_BATCH:
        ok = cli_int("--batch", optarg, 1, 100000, &v);
        a->cfg.batch = (int)v;
        break;
      case O_OPT: {
        kvi_opt_kind k;
        ok = kvi_opt_parse(&k, optarg) == KVI_OK || cli_error("--optimizer") == 0;
        if (ok) {
          kvi_opt_config o = a->cfg.opt; /* the kind's defaults; flags given keep their value */
          a->cfg.opt = o;
          a->cfg.opt.kind = k;
          if (!train_given(a, O_LR)) a->cfg.opt.lr = kvi_opt_config_default(k).lr;
        }
        break;
      }
      case O_LR:
        ok = cli_double("--lr", optarg, 1e-12, 1e3, &a->cfg.opt.lr);
        break;
      case O_LRDECAY:
        ok = cli_double("--lr-decay", optarg, 1e-6, 1, &a->cfg.lr_decay);
        break;
      case O_LRFINAL:
        ok = cli_double("--lr-final", optarg, 1e-12, 1e3, &a->cfg.lr_final);
        break;
      case O_MOM:
        ok = cli_double("--momentum", optarg, 0, 0.9999, &a->cfg.opt.momentum);
        break;
      case O_WARMUP:
        ok = cli_double("--kl-warmup", optarg, 0, 1e6, &a->cfg.kl_warmup);
        break;
      case O_SCHED:
        if (!strcmp(optarg, "linear"))
          a->cfg.kl_schedule = KVI_KL_LINEAR;
        else if (!strcmp(optarg, "exp"))
          a->cfg.kl_schedule = KVI_KL_EXP;
        else {
          fprintf(stderr, "kronvi: --kl-schedule expects linear or exp\n");
          ok = false;
        }
        break;
      case O_PATIENCE:
        ok = cli_int("--patience", optarg, 0, 100000, &v);
        a->cfg.patience = (int)v;
        break;
      case O_SAMPLES:
        ok = cli_int("--samples", optarg, 0, 100000, &v);
        a->cfg.samples = (int)v;
        break;
      case O_EVALEVERY:
        ok = cli_int("--eval-every", optarg, 0, 100000, &v);
        a->cfg.eval_samples_every = (int)v;
        break;
      case O_BMA:
        if (kvi_bma_parse(&a->cfg.bma, optarg)) {
          fprintf(stderr, "kronvi: --bma expects shared, weights or lrt\n");
          ok = false;
        }
        break;
      case O_THR:
        ok = cli_double("--prune-threshold", optarg, -100, 100, &a->cfg.prune_threshold);
        break;
      case O_SAVE:
        a->save = optarg;
        break;
      case O_SAVEEVERY:
        ok = cli_int("--save-every", optarg, 1, 1000000, &v);
        a->cfg.save_every = (int)v;
        break;
      case O_RESUME:
        a->resume = optarg;
        break;
      case O_LOG:
        a->log = optarg;
        break;
      case O_SEED:
        ok = cli_double("--seed", optarg, 0, 1.8e19, &d);
        a->cfg.seed = (uint64_t)d;
        break;
      case O_THREADS:
        ok = cli_int("--threads", optarg, 1, 256, &a->threads);
        break;
      case O_PROGRESS:
        a->progress = optarg;
        break;
      case O_RESETOPT:
        a->reset_optimizer = true;
        break;
      case O_MAXMEM:
        ok = cli_size("--max-memory", optarg, &a->nc.max_memory);
        break;
      case O_NESTEROV:
        a->cfg.opt.nesterov = true;
        break;
      case O_DAMPING:
        ok = cli_double("--damping", optarg, 1e-12, 1e6, &a->cfg.opt.damping);
        break;
      case O_KFACEMA:
        ok = cli_double("--kfac-ema", optarg, 0, 0.999999, &a->cfg.opt.ema);
        break;
      case O_INVEVERY:
        ok = cli_int("--inverse-every", optarg, 1, 1000000, &v);
        a->cfg.opt.inverse_every = (int)v;
        break;
      case O_KLCLIP:
        ok = cli_double("--kl-clip", optarg, 0, 1e6, &a->cfg.opt.kl_clip);
        break;
      case O_FISHER:
        ok = !strcmp(optarg, "sampled") || !strcmp(optarg, "empirical");
        if (!ok) fprintf(stderr, "kronvi: --fisher expects sampled or empirical\n");
        a->cfg.opt.fisher = strcmp(optarg, "empirical") ? KVI_FISHER_SAMPLED : KVI_FISHER_EMPIRICAL;
        break;
      case O_DAMPKIND:
        ok = !strcmp(optarg, "factored") || !strcmp(optarg, "exact");
        if (!ok) fprintf(stderr, "kronvi: --damping-kind expects factored or exact\n");
        a->cfg.opt.damping_kind = strcmp(optarg, "exact") ? KVI_DAMP_FACTORED : KVI_DAMP_EXACT;
        break;
      case O_EKFAC:
        a->cfg.opt.ekfac = true;
        break;
      case O_ADAPT:
        ok = cli_int("--adapt-damping", optarg, 0, 1000000, &v);
        a->cfg.opt.adapt_every = (int)v;
        break;
      case O_OVERLAP:
        ok = !strcmp(optarg, "on") || !strcmp(optarg, "off");
        if (!ok) fprintf(stderr, "kronvi: --overlap expects on or off\n");
        a->cfg.overlap_comm = !strcmp(optarg, "on");
        break;
      case O_CGMAX:
        ok = cli_int("--cg-max", optarg, 1, 100000, &v);
        a->cfg.opt.cg_max = (int)v;
        break;
      case O_DENSEMAX:
        ok = cli_int("--dense-max", optarg, 0, 100000, &v);
        a->cfg.opt.dense_max = (int)v;
        break;
      case O_LBFGSMEM:
        ok = cli_int("--lbfgs-memory", optarg, 1, 1000, &v);
        a->cfg.opt.lbfgs_memory = (int)v;
        break;
      case O_PROXSTEPS:
        ok = cli_int("--prox-steps", optarg, 1, 100000, &v);
        a->cfg.opt.prox_steps = (int)v;
        break;
      case O_PROXFSD:
        ok = cli_double("--prox-fsd", optarg, 0, 1e6, &a->cfg.opt.prox_fsd);
        break;
      case O_PROXWSD:
        ok = cli_double("--prox-wsd", optarg, 0, 1e6, &a->cfg.opt.prox_wsd);
        break;
      case O_HFHESS:
        a->cfg.opt.hf_hessian = true;
        break;
      case O_MNDBOUND:
        ok = !strcmp(optarg, "minkowski") || !strcmp(optarg, "slq");
        if (!ok) fprintf(stderr, "kronvi: --mndiag-bound expects minkowski or slq\n");
        a->cfg.mndiag_slq = !strcmp(optarg, "slq");
        break;
      case O_SLQPROBES:
        ok = cli_int("--slq-probes", optarg, 1, 1000, &v);
        a->cfg.slq.probes = (int)v;
        break;
      case O_SLQSTEPS:
        ok = cli_int("--slq-steps", optarg, 2, 200, &v);
        a->cfg.slq.steps = (int)v;
        break;
      case O_SLQREFRESH:
        ok = cli_int("--slq-refresh", optarg, 1, 1000000, &v);
        a->cfg.slq.refresh = (int)v;
        break;
      case O_FIXEDTHREADS:
        a->cfg.fixed_threads = true;
        break;
      case O_STOPAFTER:
        ok = cli_int("--stop-after", optarg, 1, 1000000, &v);
        a->cfg.stop_after = (int)v;
        break;
      case O_WD:
        ok = cli_double("--weight-decay", optarg, 0, 1e3, &a->cfg.opt.weight_decay);
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
  if (!strcmp(a->progress, "auto"))
    a->cfg.progress = isatty(fileno(stderr)) ? 2 : 1;
  else if (!strcmp(a->progress, "bar"))
    a->cfg.progress = 2;
  else if (!strcmp(a->progress, "lines"))
    a->cfg.progress = 1;
  else if (!strcmp(a->progress, "none"))
    a->cfg.progress = 0;
  else {
    fprintf(stderr, "kronvi: --progress expects auto, bar, lines or none\n");
    return 2;
  }
  if (!a->data) {
    fprintf(stderr, "kronvi: --data is required (see 'kronvi train --help')\n");
    return 2;
  }
  if (!a->arch && !a->resume) {
    fprintf(stderr, "kronvi: --arch is required (see 'kronvi train --help')\n");
    return 2;
  }
  if (a->normalize && a->regression) {
    fprintf(stderr, "kronvi: --normalize is for images; regression features take --standardize\n");
    return 2;
  }
  if (a->nc.family == KVI_FAMILY_POINT) a->nc.prior = KVI_PRIOR_NONE;
  a->cfg.task = a->regression ? KVI_TASK_REGRESS : KVI_TASK_CLASSIFY;
  return -1;
}

/* Started by an MPI launcher: the group of the data-parallel run (NULL: one process). Returns
 * false (with a message) when the launcher started several processes but this build has no
 * MPI: each would train alone and write the same files. */
static bool join_group(kvi_comm **comm) {
  *comm = NULL;
  if (!kvi_comm_mpi_launched()) return true;
  if (!kvi_comm_mpi_built()) {
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1) {
      fprintf(stderr,
              "kronvi: started as one of %s processes, but this kronvi was built without MPI "
              "(HINT: cmake -DKRONVI_MPI=ON; docs/distributed.md)\n",
              n);
      return false;
    }
    return true; /* one process: an ordinary run */
  }
  if (kvi_comm_mpi_init(comm, NULL, NULL)) return cli_error("MPI") == 0;
  return true;
}

int cmd_train(int argc, char **argv) {
  train_args a;
  int rc = parse_train_args(&a, argc, argv);
  if (rc >= 0) return rc;
  if (!join_group(&a.comm)) return 1;
  const bool lead = kvi_comm_rank(a.comm) == 0; /* writes the checkpoints, the log, the output */
  if (lead && !outputs_writable(a.save, a.resume, a.log)) rc = 1;
  /* several processes on this machine share its cores: by default each takes its share */
  if (!train_given(&a, O_THREADS) && a.comm && a.comm->node_size > 1) {
    const long share = a.threads / a.comm->node_size;
    a.threads = share > 1 ? share : 1;
  }
  if (rc < 0) {
    kvi_set_threads((int)a.threads);
    rc = train_run(&a);
  }
  /* a process that fails ends every process of the run: none waits for it forever */
  if (rc != 0 && kvi_comm_size(a.comm) > 1) kvi_comm_abort(a.comm, rc);
  kvi_comm_free(a.comm);
  return rc;
}
