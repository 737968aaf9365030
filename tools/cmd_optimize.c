/* kronvi optimize: the solvers, the first-order optimizers and structured natural-gradient
 * descent on classic test problems, one line per iteration (docs/curv.md, "Test problems";
 * docs/geom.md, "Structured NGD"). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void optimize_help(FILE *f) {
  fputs(
      "usage: kronvi optimize --problem NAME --method M [options]\n"
      "\n"
      "Minimizes a test problem, one line per iteration: f, f - f*, |g|, damping, reduction\n"
      "ratio, inner iterations (CG, line search or inner steps), cumulative counts of values,\n"
      "gradients and curvature products, seconds. Stops when f - f* < --tol.\n"
      "\n"
      "  --problem NAME   rosenbrock (chained, f* = 0, start (-1.2, 1, ...)), quadratic (1/2\n"
      "                   (x - x*)^T A (x - x*), A a random rotation of log-spaced eigenvalues\n"
      "                   in [1, --cond], f* = 0, start 0) or logreg (L2-regularized logistic\n"
      "                   regression on two Fashion-MNIST classes, f* by Newton's method)\n"
      "  --dim D          dimension of rosenbrock and quadratic (default 200)\n"
      "  --cond C         quadratic: condition number (default 1e4)\n"
      "  --method M       gd (steepest descent, Armijo backtracking; --lr: fixed steps), adam,\n"
      "                   lbfgs, newton (damped, exact Hessian), lm (Levenberg-Marquardt on the\n"
      "                   Gauss-Newton matrix), hf (Hessian-free: preconditioned CG on the\n"
      "                   damped Gauss-Newton matrix) or proximal (K Adam steps with a weight-\n"
      "                   space proximity term), ngd (structured natural-gradient descent:\n"
      "                   a Gaussian N(mu, (B B^T)^-1) with B in the Lie group --group, the mean\n"
      "                   is the iterate) or search (the same from function values only, xNES-\n"
      "                   like)\n"
      "  --max-iter N     iterations (default 10000)\n"
      "  --tol T          stop when f - f* < T (default 1e-6)\n"
      "  --lr LR          adam and proximal step size (default 1e-2); gd: fixed steps\n"
      "  --damping L      newton, lm, hf: initial damping (default 1e-3)\n"
      "  --cg-max N       hf: CG iterations per step (default 250)\n"
      "  --memory M       lbfgs: pairs kept (default 10)\n"
      "  --group G        ngd, search: the group of B: dense, tril, upK, lowK, bdiagK, diag,\n"
      "                   toeplitz, hierK,KB, spcholK,KB (sparse Cholesky) or\n"
      "                   kron:P1:KIND1:KIND2 (default tril for ngd, diag for search)\n"
      "  --estimator E    ngd: mean (gradient and curvature at the mean, default), price,\n"
      "                   stein or reparam (Monte Carlo over --samples draws)\n"
      "  --curvature C    ngd: hessian (default) or ggn (Gauss-Newton), from products:\n"
      "                   only the columns the group needs (upK: K a step)\n"
      "  --samples N      ngd (Monte Carlo), search: draws per iteration (default 10; search:\n"
      "                   4 + 3 ln D)\n"
      "  --beta B         ngd, search: the mean's step (default 1)\n"
      "  --beta-b B       ngd, search: B's step (default 0.1; search (9 + 3 ln D) / (10 D^1.5))\n"
      "  --monotone       ngd: undo a step that raises f at the mean and retry it with half\n"
      "                   the steps (a backtracking line search; default: only steps that\n"
      "                   make f ten times worse are undone, as in the source method)\n"
      "  --data PATH      logreg: Fashion-MNIST directory\n"
      "  --classes A,B    logreg: the two classes (default 0,6: T-shirt/top against shirt)\n"
      "  --rows N         logreg: training rows of the two classes used (default 2000)\n"
      "  --l2 MU          logreg: mu/2 ||w||^2 (default 1e-3)\n"
      "  --seed S         quadratic: the rotation and x*; ngd, search: the samples (default 1)\n"
      "  --log PATH       the iterations as CSV\n"
      "  --quiet          only the summary line\n"
      "  --threads N      threads (default 1)\n"
      "  -h, --help       this help\n",
      f);
}

typedef struct {
  kvi_problem_config pc;
  const char *method, *log, *data;
  long max_iter, threads, classes[2];
  double tol, lr, damping;
  long cg_max, memory;
  bool quiet, lr_given;
  /* ngd, search */
  const char *group;
  kvi_lie_estimator est;
  kvi_curv_kind curv;
  long samples;
  double beta, beta_b;
  bool monotone;
} opt_args;

enum {
  P_PROBLEM = 300,
  P_DIM,
  P_COND,
  P_METHOD,
  P_MAXIT,
  P_TOL,
  P_LR,
  P_DAMP,
  P_CG,
  P_MEM,
  P_DATA,
  P_CLASSES,
  P_ROWS,
  P_L2,
  P_SEED,
  P_LOG,
  P_QUIET,
  P_THREADS,
  P_GROUP,
  P_EST,
  P_CURV,
  P_SAMPLES,
  P_BETA,
  P_BETA_B,
  P_MONO
};

static const struct option optimize_opts[] = {
    {"problem", 1, 0, P_PROBLEM}, {"dim", 1, 0, P_DIM},        {"cond", 1, 0, P_COND},
    {"method", 1, 0, P_METHOD},   {"max-iter", 1, 0, P_MAXIT}, {"tol", 1, 0, P_TOL},
    {"lr", 1, 0, P_LR},           {"damping", 1, 0, P_DAMP},   {"cg-max", 1, 0, P_CG},
    {"memory", 1, 0, P_MEM},      {"data", 1, 0, P_DATA},      {"classes", 1, 0, P_CLASSES},
    {"rows", 1, 0, P_ROWS},       {"l2", 1, 0, P_L2},          {"seed", 1, 0, P_SEED},
    {"log", 1, 0, P_LOG},         {"quiet", 0, 0, P_QUIET},    {"threads", 1, 0, P_THREADS},
    {"group", 1, 0, P_GROUP},     {"estimator", 1, 0, P_EST},  {"curvature", 1, 0, P_CURV},
    {"samples", 1, 0, P_SAMPLES}, {"beta", 1, 0, P_BETA},      {"beta-b", 1, 0, P_BETA_B},
    {"monotone", 0, 0, P_MONO},   {"help", 0, 0, 'h'},         {0, 0, 0, 0}};

static bool parse_estimator(const char *s, kvi_lie_estimator *e) {
  static const char *const names[] = {"mean", "price", "stein", "reparam"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(s, names[i])) return *e = (kvi_lie_estimator)i, true;
  fprintf(stderr, "kronvi: --estimator expects mean, price, stein or reparam, not '%s'\n", s);
  return false;
}

static bool parse_curvature(const char *s, kvi_curv_kind *k) {
  if (!strcmp(s, "hessian")) return *k = KVI_CURV_HESSIAN, true;
  if (!strcmp(s, "ggn")) return *k = KVI_CURV_GGN, true;
  fprintf(stderr, "kronvi: --curvature expects hessian or ggn, not '%s'\n", s);
  return false;
}

static bool parse_classes(const char *s, long *c) {
  char *end;
  c[0] = strtol(s, &end, 10);
  if (*end != ',' || c[0] < 0 || c[0] > 9) return false;
  c[1] = strtol(end + 1, &end, 10);
  return !*end && c[1] >= 0 && c[1] <= 9 && c[1] != c[0];
}

/* Returns -1 to go on, else the exit code. */
static int parse_optimize(opt_args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->pc.dim = 200, a->pc.cond = 1e4, a->pc.seed = 1, a->pc.l2 = 1e-3, a->pc.rows = 2000;
  a->max_iter = 10000, a->tol = 1e-6, a->lr = 1e-2, a->damping = 1e-3, a->cg_max = 250;
  a->memory = 10, a->threads = 1, a->classes[0] = 0, a->classes[1] = 6;
  bool have_problem = false;
  long v;
  double d;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", optimize_opts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
      case 'h':
        optimize_help(stdout);
        return 0;
      case P_PROBLEM:
        ok = kvi_problem_parse(&a->pc.kind, optarg) == KVI_OK || cli_error("--problem") == 0;
        have_problem = ok;
        break;
      case P_DIM:
        ok = cli_int("--dim", optarg, 2, 20000, &v), a->pc.dim = (int)v;
        break;
      case P_COND:
        ok = cli_double("--cond", optarg, 1, 1e12, &a->pc.cond);
        break;
      case P_METHOD:
        a->method = optarg;
        break;
      case P_MAXIT:
        ok = cli_int("--max-iter", optarg, 0, 100000000, &a->max_iter);
        break;
      case P_TOL:
        ok = cli_double("--tol", optarg, 0, 1e30, &a->tol);
        break;
      case P_LR:
        ok = cli_double("--lr", optarg, 1e-12, 1e3, &a->lr), a->lr_given = true;
        break;
      case P_DAMP:
        ok = cli_double("--damping", optarg, 1e-12, 1e12, &a->damping);
        break;
      case P_CG:
        ok = cli_int("--cg-max", optarg, 1, 100000, &a->cg_max);
        break;
      case P_MEM:
        ok = cli_int("--memory", optarg, 1, 1000, &a->memory);
        break;
      case P_DATA:
        a->data = optarg;
        break;
      case P_CLASSES:
        ok = parse_classes(optarg, a->classes);
        if (!ok) fprintf(stderr, "kronvi: --classes expects two different digits A,B\n");
        break;
      case P_ROWS:
        ok = cli_int("--rows", optarg, 2, 12000, &v), a->pc.rows = v;
        break;
      case P_L2:
        ok = cli_double("--l2", optarg, 0, 1e6, &a->pc.l2);
        break;
      case P_SEED:
        ok = cli_double("--seed", optarg, 0, 1.8e19, &d), a->pc.seed = (uint64_t)d;
        break;
      case P_LOG:
        a->log = optarg;
        break;
      case P_QUIET:
        a->quiet = true;
        break;
      case P_THREADS:
        ok = cli_int("--threads", optarg, 1, 256, &a->threads);
        break;
      case P_GROUP:
        a->group = optarg;
        break;
      case P_EST:
        ok = parse_estimator(optarg, &a->est);
        break;
      case P_CURV:
        ok = parse_curvature(optarg, &a->curv);
        break;
      case P_SAMPLES:
        ok = cli_int("--samples", optarg, 1, 1000000, &a->samples);
        break;
      case P_BETA:
        ok = cli_double("--beta", optarg, 1e-12, 1e3, &a->beta);
        break;
      case P_BETA_B:
        ok = cli_double("--beta-b", optarg, 1e-12, 1e3, &a->beta_b);
        break;
      case P_MONO:
        a->monotone = true;
        break;
      default:
        ok = false;
        break;
    }
    if (!ok) {
      fprintf(stderr, "(see 'kronvi optimize --help')\n");
      return 2;
    }
  }
  if (optind < argc || !have_problem || !a->method) {
    fprintf(stderr,
            "kronvi: optimize needs --problem and --method (see 'kronvi optimize --help')\n");
    return 2;
  }
  if (a->pc.kind == KVI_PROBLEM_LOGREG && !a->data) {
    fprintf(stderr, "kronvi: --problem logreg needs --data (a Fashion-MNIST directory)\n");
    return 2;
  }
  return -1;
}

/* logreg: the first rows of the two classes of the training set, labels 0 / 1. */
static int load_logreg(opt_args *a, kvi_dataset *sel) {
  kvi_dataset train, test;
  if (cli_load_data(&train, &test, a->data, false, 1, NULL, 0, 1)) return cli_error("--data");
  int64_t k = 0;
  kvi_status s = kvi_dataset_expand(&train); /* rows copied as numbers below */
  if (!s) s = kvi_dataset_alloc(sel, a->pc.rows, train.d, 0, 0, 0, 2, 0);
  for (int64_t i = 0; !s && i < train.n && k < a->pc.rows; i++) {
    const int y = train.y[i];
    if (y != a->classes[0] && y != a->classes[1]) continue;
    memcpy(sel->x + (size_t)k * train.d, train.x + (size_t)i * train.d, train.d * sizeof(kvi_real));
    sel->y[k++] = y == a->classes[1];
  }
  kvi_dataset_free(&train), kvi_dataset_free(&test);
  if (s) return cli_error("logreg data");
  if (k < a->pc.rows) kvi_dataset_truncate(sel, k);
  a->pc.X = sel->x, a->pc.y = sel->y, a->pc.rows = sel->n, a->pc.d = sel->d;
  return 0;
}

typedef struct {
  double alpha; /* gd: the last accepted step */
  kvi_real *g, *x0;
} gd_state;

/* One steepest-descent iteration: Armijo backtracking from twice the last step (or fixed lr). */
static kvi_status gd_iterate(gd_state *st, kvi_objective *f, const opt_args *a,
                             kvi_solve_info *info) {
  const size_t n = f->n;
  double f0, gg = 0;
  kvi_status s = kvi_objective_eval(f, &f0, st->g);
  if (s) return s;
  for (size_t i = 0; i < n; i++) gg += (double)st->g[i] * st->g[i];
  memset(info, 0, sizeof *info);
  info->f0 = info->f = f0, info->gnorm = sqrt(gg), info->rho = NAN;
  memcpy(st->x0, f->x, n * sizeof *f->x);
  double alpha = a->lr_given ? a->lr : 2 * st->alpha, fa = f0;
  for (int t = 0; t < 60; t++, alpha *= 0.5) {
    for (size_t i = 0; i < n; i++) f->x[i] = (kvi_real)(st->x0[i] - alpha * st->g[i]);
    if ((s = kvi_objective_eval(f, &fa, NULL)) != KVI_OK) return s;
    info->inner++;
    if (a->lr_given || fa <= f0 - 1e-4 * alpha * gg) break;
    fa = NAN;
  }
  if (!(fa == fa)) { /* no decrease: stay */
    memcpy(f->x, st->x0, n * sizeof *f->x);
    info->rejected = 1;
    return KVI_OK;
  }
  st->alpha = alpha, info->f = fa, info->moved = true, info->step = alpha * info->gnorm;
  return KVI_OK;
}

/* One iteration of a first-order optimizer of the library (adam). */
static kvi_status first_order_iterate(kvi_optimizer *o, kvi_params *p, kvi_objective *f, double lr,
                                      kvi_solve_info *info) {
  double f0;
  kvi_status s = kvi_objective_eval(f, &f0, p->grad);
  if (s) return s;
  memset(info, 0, sizeof *info);
  info->f0 = f0, info->rho = NAN, info->moved = true;
  double gg = 0;
  for (size_t i = 0; i < p->n; i++) gg += (double)p->grad[i] * p->grad[i];
  info->gnorm = sqrt(gg);
  s = kvi_optimizer_step(o, p, lr);
  if (!s) s = kvi_objective_eval(f, &info->f, NULL); /* for the line; counted */
  f->nf--;                                           /* ... but not as work of the method */
  return s;
}

static void print_line(FILE *out, bool csv, long it, const kvi_solve_info *in, double fstar,
                       const kvi_objective *f, double secs) {
  if (csv)
    fprintf(out, "%ld,%.17g,%.6g,%.6g,%.6g,%.6g,%d,%d,%lld,%lld,%lld,%.4f\n", it, in->f,
            in->f - fstar, in->gnorm, in->damping, in->rho, in->inner, in->rejected,
            (long long)f->nf, (long long)f->ng, (long long)f->nhv, secs);
  else
    fprintf(out,
            "%6ld  f %-14.8g f-f* %-10.3e |g| %-10.3e lambda %-9.2e rho %-8.3g inner %-4d "
            "rej %d  nf %lld ng %lld nhv %lld  %.3f s\n",
            it, in->f, in->f - fstar, in->gnorm, in->damping, in->rho, in->inner, in->rejected,
            (long long)f->nf, (long long)f->ng, (long long)f->nhv, secs);
}

/* --log: the CSV with its header (*log stays NULL without --log); 1 when it cannot be written. */
static int open_log(const opt_args *a, FILE **log) {
  *log = NULL;
  if (!a->log) return 0;
  if (!(*log = fopen(a->log, "w")))
    return fprintf(stderr, "kronvi: cannot write --log %s\n", a->log), 1;
  fprintf(*log, "iter,f,f_minus_fstar,gnorm,damping,rho,inner,rejected,nf,ng,nhv,seconds\n");
  return 0;
}

/* ---- structured NGD and the search from values (kronvi/geom.h) ---------------------------- */
typedef struct {
  const opt_args *a;
  kvi_objective *f;
  FILE *log;
  double fstar, t0;
} lie_progress;

/* One line per iteration: f at the mean before its step, the evaluations so far. */
static int lie_line(const kvi_lie_report *r, const double *mu, const double *B, void *user) {
  (void)mu, (void)B;
  const lie_progress *lp = user;
  const double secs = kvi_time_now() - lp->t0;
  const kvi_objective *f = lp->f;
  kvi_solve_info in;
  memset(&in, 0, sizeof in);
  in.f = r->f, in.gnorm = in.damping = in.rho = NAN, in.rejected = r->rejected;
  if (lp->log) print_line(lp->log, true, r->iters, &in, lp->fstar, f, secs);
  if (!lp->a->quiet)
    printf(
        "%6d  f %-14.8g f-f* %-10.3e damped %-4d rejected %-4d nf %lld ng %lld nhv %lld  %.3f s\n",
        r->iters, r->f, r->f - lp->fstar, r->damped, r->rejected, (long long)f->nf,
        (long long)f->ng, (long long)f->nhv, secs);
  return 0;
}

/* The options of the run: kvi_lie_start's steps and start, then what the command line gives. */
static int lie_setup(const opt_args *a, const kvi_lie_problem *pb, kvi_lie_opts *o, double *mu,
                     double *B) {
  const bool search = !strcmp(a->method, "search");
  kvi_lie_group g;
  if (kvi_lie_group_parse(&g, a->group ? a->group : search ? "diag" : "tril", pb->dim))
    return cli_error("--group");
  *o = kvi_lie_opts_default(g);
  o->est = search ? KVI_LIE_EST_VALUES : a->est;
  if (kvi_lie_start(pb, o, mu, B)) return cli_error("ngd start");
  if (!search && o->est != KVI_LIE_EST_MEAN) o->samples = 10;
  if (a->samples) o->samples = (int)a->samples;
  if (a->beta > 0) o->beta = a->beta;
  if (a->beta_b > 0) o->beta_b = a->beta_b;
  o->max_iter = (int)(a->max_iter < 2000000000 ? a->max_iter : 2000000000);
  o->tol = a->tol, o->seed = a->pc.seed, o->monotone = a->monotone;
  o->use_hvp = true; /* only the entries of X the group keeps */
  return 0;
}

static int run_lie(opt_args *a, kvi_problem *P) {
  kvi_objective *f = kvi_problem_objective(P);
  const size_t n = f->n;
  if (n > 3000) {
    fprintf(stderr, "kronvi: --method %s keeps D x D matrices: --dim at most 3000, not %zu\n",
            a->method, n);
    return 2;
  }
  kvi_lie_objective lo;
  kvi_lie_problem pb;
  if (kvi_lie_objective_init(&lo, f, a->curv, kvi_problem_fstar(P), &pb)) return cli_error("ngd");
  double *mu = malloc(n * sizeof *mu), *B = malloc(n * n * sizeof *B);
  int rc = mu && B ? 0 : (fprintf(stderr, "kronvi: out of memory\n"), 1);
  for (size_t i = 0; !rc && i < n; i++) mu[i] = f->x[i];
  kvi_lie_opts o;
  if (!rc) rc = lie_setup(a, &pb, &o, mu, B);
  lie_progress lp = {a, f, NULL, pb.f_star, 0};
  if (!rc) rc = open_log(a, &lp.log);
  f->nf = f->ng = f->nhv = 0; /* the start's Hessian is not work of the method */
  o.progress = lie_line, o.progress_user = &lp;
  kvi_lie_report r;
  memset(&r, 0, sizeof r);
  lp.t0 = kvi_time_now();
  if (!rc && (kvi_lie_minimize(&pb, &o, mu, B, &r) || lo.status)) rc = cli_error("ngd");
  if (!rc) {
    char gname[64];
    printf(
        "%s-%zu %s (%s): %s after %d iterations, f - f* = %.3e, values %lld, gradients %lld, "
        "curvature products %lld, damped %d, rejected %d, %.3f s\n",
        kvi_problem_name(a->pc.kind), n, a->method, kvi_lie_group_name(&o.group, gname, 64),
        r.converged ? "reached" : "NOT reached", r.iters, r.f - pb.f_star, (long long)f->nf,
        (long long)f->ng, (long long)f->nhv, r.damped, r.rejected, r.seconds);
  }
  if (lp.log) fclose(lp.log);
  free(mu), free(B);
  kvi_lie_objective_free(&lo);
  return rc ? rc : r.converged ? 0 : 3;
}

static int run_optimize(opt_args *a, kvi_problem *P) {
  kvi_objective *f = kvi_problem_objective(P);
  const double fstar = kvi_problem_fstar(P);
  const bool gd = !strcmp(a->method, "gd");
  kvi_opt_kind kind = KVI_OPT_ADAM;
  if (!gd && kvi_opt_parse(&kind, a->method)) return cli_error("--method");
  if (!gd && kind != KVI_OPT_ADAM && !kvi_opt_is_solver(kind)) {
    fprintf(stderr,
            "kronvi: --method expects gd, adam, lbfgs, newton, lm, hf, proximal, ngd or search\n");
    return 2;
  }
  kvi_params p;
  kvi_params_init(&p);
  int64_t shape[1] = {(int64_t)f->n};
  int vi;
  if (kvi_params_add(&p, "x", KVI_ROLE_OTHER, 1, shape, &vi) || kvi_params_alloc(&p))
    return cli_error("parameters");
  memcpy(p.data, f->x, f->n * sizeof *f->x);
  f->x = p.data; /* the problem reads its point from the block */
  kvi_opt_config oc = kvi_opt_config_default(kind);
  oc.lr = a->lr, oc.damping = a->damping, oc.cg_max = (int)a->cg_max;
  oc.lbfgs_memory = (int)a->memory, oc.prox_wsd = 1e-3;
  kvi_optimizer o;
  memset(&o, 0, sizeof o);
  gd_state gs = {1, kvi_alloc(f->n * sizeof(kvi_real)), kvi_alloc(f->n * sizeof(kvi_real))};
  int rc = (!gd && kvi_optimizer_init(&o, &oc, &p)) ? cli_error("--method") : 0;
  FILE *log = NULL;
  if (!rc) rc = open_log(a, &log);
  long it = 0, stalled = 0;
  double t0 = kvi_time_now(), f0 = NAN;
  kvi_solve_info info;
  memset(&info, 0, sizeof info);
  if (!rc && kvi_objective_eval(f, &f0, NULL)) rc = cli_error("objective");
  info.f = f0, info.rho = NAN, f->nf = 0;
  bool reached = info.f - fstar < a->tol;
  if (!rc && !a->quiet) print_line(stdout, false, 0, &info, fstar, f, 0);
  for (it = 1; !rc && !reached && it <= a->max_iter && stalled < 20; it++) {
    kvi_status s = gd                        ? gd_iterate(&gs, f, a, &info)
                   : kvi_opt_is_solver(kind) ? kvi_optimizer_solve(&o, &p, a->lr, f)
                                             : first_order_iterate(&o, &p, f, a->lr, &info);
    if (s) rc = cli_error("iteration");
    if (!gd && kvi_opt_is_solver(kind)) info = o.info;
    stalled = info.moved ? 0 : stalled + 1;
    reached = info.f - fstar < a->tol;
    const double secs = kvi_time_now() - t0;
    if (!rc && !a->quiet) print_line(stdout, false, it, &info, fstar, f, secs);
    if (!rc && log) print_line(log, true, it, &info, fstar, f, secs);
  }
  const double secs = kvi_time_now() - t0;
  if (!rc)
    printf(
        "%s-%zu %s: %s after %ld iterations, f - f* = %.3e, values %lld, gradients %lld, "
        "curvature products %lld, %.3f s\n",
        kvi_problem_name(a->pc.kind), f->n, a->method, reached ? "reached" : "NOT reached", it - 1,
        info.f - fstar, (long long)f->nf, (long long)f->ng, (long long)f->nhv, secs);
  if (log) fclose(log);
  kvi_free(gs.g), kvi_free(gs.x0);
  if (!gd) kvi_optimizer_free(&o);
  kvi_params_free(&p);
  return rc ? rc : reached ? 0 : 3;
}

int cmd_optimize(int argc, char **argv) {
  opt_args a;
  int rc = parse_optimize(&a, argc, argv);
  if (rc >= 0) return rc;
  rc = 0;
  if (a.log && !cli_check_writable("--log", a.log)) return 1;
  kvi_set_threads((int)a.threads);
  kvi_dataset sel;
  kvi_dataset_init(&sel);
  if (a.pc.kind == KVI_PROBLEM_LOGREG && (rc = load_logreg(&a, &sel)) != 0) return rc;
  kvi_problem *P = NULL;
  if (kvi_problem_create(&P, &a.pc)) rc = cli_error("--problem");
  const bool lie = !strcmp(a.method, "ngd") || !strcmp(a.method, "search");
  if (!rc) rc = lie ? run_lie(&a, P) : run_optimize(&a, P);
  kvi_problem_free(P);
  kvi_dataset_free(&sel);
  return rc;
}
