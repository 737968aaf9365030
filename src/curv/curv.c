/* Curvature products of a network's mean loss on a batch (docs/curv.md).
 *   gradient   forward, loss, backward                                     (eq. G1)
 *   J v        R-forward: R{z} of the outputs                              (eq. R1, R4, R5)
 *   H v        R-forward, R{dz} = H_L R{z} + 0, R-backward                 (eq. H1)
 *   G v        J v, u = H_L J v, then the ordinary backward of u: J^T u    (eq. G2)
 *   F_emp v    J v, u_b = e_b (e_b . (J v)_b) / B, J^T u (e_b = B dz_b)     (eq. F2)
 * Buffers (one arena, for the net's max_batch rows): per layer i, racts[i + 1] = R{output},
 * rgrads[i] = R{dX}, jgrads[i] = dX of the J^T passes (the gradient's own dX stay in the net's
 * grads, which the R-backward reads as each layer's dY), rws[i] = the R-operator's workspace. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "curv/curv_internal.h"

static size_t kvi__al(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

void kvi_curv_free(kvi_curv *c) {
  if (!c) return;
  kvi_arena_free(c->arena);
  kvi_free(c->mask), kvi_free(c->gtmp), kvi_free(c->dw);
  free(c);
}

static kvi_status kvi__curv_check_kinds(const kvi_net *net) {
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    if (!L->ops->rop_forward || !L->ops->rop_backward)
      return kvi_fail(KVI_ERR_UNSUPPORTED,
                      "layer %d ('%s', kind '%s') has no R-operator: curvature products need "
                      "rop_forward and rop_backward in its ops table",
                      i, L->name, L->ops->kind);
  }
  return KVI_OK;
}

/* mask: 1 on the elements of M and b of every weight layer. */
static void kvi__curv_fill_mask(kvi_real *mask, kvi_net *net) {
  const kvi_params *p = net->params;
  memset(mask, 0, p->n * sizeof *mask);
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    const kvi_dense *d = kvi_net_dense(net, k, NULL);
    const int views[2] = {d->iM, d->ib};
    for (int j = 0; j < 2; j++) {
      if (views[j] < 0) continue;
      const kvi_view *v = &p->views[views[j]];
      for (size_t e = 0; e < v->size; e++) mask[v->offset + e] = 1;
    }
  }
}

static kvi_status kvi__curv_buffers(kvi_curv *c) {
  kvi_net *net = c->net;
  const int nl = net->nlayers, B = net->max_batch;
  size_t total = 0;
  for (int i = 0; i < nl; i++) {
    const kvi_layer *L = &net->layers[i];
    total += 3 * kvi__al((size_t)B * (size_t)L->out_size * sizeof(kvi_real));
    total += 2 * kvi__al((size_t)B * (size_t)L->in_size * sizeof(kvi_real));
    if (L->ops->rop_ws_size) total += kvi__al(L->ops->rop_ws_size(L, B));
  }
  total += 8 * 64 + (size_t)nl * 4 * sizeof(void *);
  if (!(c->arena = kvi_arena_create(total + 4096)))
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the curvature buffers (%zu bytes)", total);
  c->racts = kvi_arena_alloc(c->arena, (size_t)(nl + 1) * sizeof(kvi_real *));
  c->rgrads = kvi_arena_alloc(c->arena, (size_t)nl * sizeof(kvi_real *));
  c->jgrads = kvi_arena_alloc(c->arena, (size_t)nl * sizeof(kvi_real *));
  c->rws = kvi_arena_alloc(c->arena, (size_t)nl * sizeof(void *));
  if (!c->racts || !c->rgrads || !c->jgrads || !c->rws) return KVI_ERR_NOMEM;
  c->racts[0] = NULL;
  for (int i = 0; i < nl; i++) {
    const kvi_layer *L = &net->layers[i];
    const size_t in = (size_t)B * L->in_size, out = (size_t)B * L->out_size;
    const size_t ws = L->ops->rop_ws_size ? L->ops->rop_ws_size(L, B) : 0;
    c->racts[i + 1] = kvi_arena_reals(c->arena, out);
    c->rgrads[i] = kvi_arena_reals(c->arena, in);
    c->jgrads[i] = kvi_arena_reals(c->arena, in);
    c->rws[i] = ws ? kvi_arena_alloc(c->arena, ws) : NULL;
    if (!c->racts[i + 1] || !c->rgrads[i] || !c->jgrads[i] || (ws && !c->rws[i]))
      return KVI_ERR_NOMEM;
  }
  const size_t K = (size_t)B * net->out_size;
  c->dout = kvi_arena_reals(c->arena, K);
  c->rdout = kvi_arena_reals(c->arena, K);
  c->u = kvi_arena_reals(c->arena, K);
  if (!c->dout || !c->rdout || !c->u) return KVI_ERR_NOMEM;
  return KVI_OK;
}

kvi_status kvi_curv_create(kvi_curv **out, kvi_net *net) {
  if (!out || !net) return kvi_fail(KVI_ERR_ARG, "curv_create: NULL argument");
  *out = NULL;
  kvi_status s = kvi__curv_check_kinds(net);
  if (s) return s;
  kvi_curv *c = calloc(1, sizeof *c);
  if (!c) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  c->net = net;
  const size_t nb = net->params->n * sizeof(kvi_real);
  c->mask = kvi_alloc(nb), c->gtmp = kvi_alloc(nb), c->dw = kvi_alloc(nb);
  s = c->mask && c->gtmp && c->dw ? kvi__curv_buffers(c) : KVI_ERR_NOMEM;
  if (s) {
    kvi_curv_free(c);
    return s == KVI_ERR_NOMEM ? kvi_fail(s, "out of memory for the curvature context") : s;
  }
  kvi__curv_fill_mask(c->mask, net);
  *out = c;
  return KVI_OK;
}

void kvi_curv_mask(const kvi_curv *c, kvi_real *mask) {
  memcpy(mask, c->mask, c->net->params->n * sizeof *mask);
}

const kvi_real *kvi_curv_outputs(const kvi_curv *c) { return c->out; }

/* The block with its gradient pointer replaced: backward passes add into g. */
static kvi_params kvi__curv_target(const kvi_curv *c, const kvi_real *data, kvi_real *grad) {
  kvi_params t = *c->net->params;
  t.data = (kvi_real *)data;
  t.grad = grad;
  return t;
}

/* The ordinary backward of dOut into g (zeroed first), dX of layer i into dx[i]. */
static kvi_status kvi__curv_backward(kvi_curv *c, const kvi_real *dOut, kvi_real *g,
                                     kvi_real *const *dx) {
  kvi_net *net = c->net;
  const int B = c->b.batch;
  memset(g, 0, net->params->n * sizeof *g);
  kvi_params t = kvi__curv_target(c, net->params->data, g);
  const kvi_real *dy = dOut;
  for (int i = net->nlayers - 1; i >= 0; i--) {
    const kvi_layer *L = &net->layers[i];
    kvi_layer_call lc = {.params = &t,
                         .ws = net->ws[i],
                         .batch = B,
                         .X = net->acts[i],
                         .Y = net->acts[i + 1],
                         .dY = dy,
                         .dX = i > 0 ? dx[i] : NULL};
    kvi_status s = L->ops->backward(L, &lc);
    if (s) return s;
    dy = lc.dX;
  }
  return KVI_OK;
}

/* lambda times the function-space distance to the anchor: value, and its gradient added to
 * dout (eq. P3). */
static double kvi__curv_fsd(const kvi_curv *c, kvi_real *dout) {
  const kvi_curv_batch *b = &c->b;
  const int B = b->batch, K = c->net->out_size;
  const double lam = b->fsd;
  double total = 0;
  for (int r = 0; r < B; r++) {
    const kvi_real *z = c->out + (size_t)r * K, *a = b->anchor + (size_t)r * K;
    kvi_real *d = dout + (size_t)r * K;
    if (b->loss == KVI_LOSS_SQUARED) {
      const double beta = exp((double)b->log_beta);
      for (int k = 0; k < K; k++) {
        const double e = (double)z[k] - a[k];
        total += 0.5 * beta * e * e;
        d[k] = (kvi_real)(d[k] + lam * beta * e / B);
      }
      continue;
    }
    double mz = z[0], ma = a[0], sz = 0, sa = 0;
    for (int k = 1; k < K; k++) mz = fmax(mz, z[k]), ma = fmax(ma, a[k]);
    for (int k = 0; k < K; k++) sz += exp(z[k] - mz), sa += exp(a[k] - ma);
    const double lz = mz + log(sz), la = ma + log(sa);
    for (int k = 0; k < K; k++) { /* KL(p_a || q) = sum p_a (log p_a - log q) */
      const double pa = exp(a[k] - la), q = exp(z[k] - lz);
      total += pa * ((a[k] - la) - (z[k] - lz));
      d[k] = (kvi_real)(d[k] + lam * (q - pa) / B);
    }
  }
  return lam * total / B;
}

static kvi_status kvi__curv_loss(kvi_curv *c, double *loss, kvi_real *dout, int *correct) {
  const kvi_curv_batch *b = &c->b;
  const int K = c->net->out_size;
  kvi_status s = b->loss == KVI_LOSS_XENT
                     ? kvi_softmax_xent(loss, dout, NULL, correct, c->out, b->labels, b->batch, K)
                     : kvi_gauss_nll(loss, dout, NULL, c->out, b->T, b->log_beta, b->batch, K);
  if (!s && b->fsd > 0 && b->anchor) *loss += kvi__curv_fsd(c, dout);
  return s;
}

static kvi_status kvi__curv_check_batch(const kvi_curv *c, const kvi_curv_batch *b) {
  if (!b || !b->X || b->batch <= 0 || b->batch > c->net->max_batch)
    return kvi_fail(KVI_ERR_ARG, "curvature batch: NULL inputs or %d rows outside [1, %d]",
                    b ? b->batch : 0, c->net->max_batch);
  if (b->loss == KVI_LOSS_XENT ? !b->labels : b->loss == KVI_LOSS_SQUARED ? !b->T : true)
    return kvi_fail(KVI_ERR_ARG, "curvature batch: unknown loss or no labels / targets");
  if (!(b->fsd >= 0) || (b->fsd > 0 && !b->anchor))
    return kvi_fail(KVI_ERR_ARG, "curvature batch: fsd weight %g without anchor outputs", b->fsd);
  return KVI_OK;
}

kvi_status kvi_curv_eval(kvi_curv *c, const kvi_curv_batch *b, double *loss, kvi_real *g,
                         int *correct) {
  if (!c || !loss) return kvi_fail(KVI_ERR_ARG, "curv_eval: NULL argument");
  kvi_status s = kvi__curv_check_batch(c, b);
  if (s) return s;
  c->b = *b;
  c->ready = false;
  s = kvi_net_forward(c->net, &c->out, b->X, b->batch, NULL);
  if (!s) s = kvi__curv_loss(c, loss, c->dout, correct);
  if (s || !g) return s;
  if (!isfinite(*loss)) return KVI_OK; /* the caller rejects the point; no products there */
  s = kvi__curv_backward(c, c->dout, g, c->net->grads);
  c->ready = s == KVI_OK;
  return s;
}

/* Products need the forward and the gradient's backward at the current parameters. */
kvi_status kvi__curv_ensure(kvi_curv *c, const void *a, const void *b) {
  if (!c || !a || !b) return kvi_fail(KVI_ERR_ARG, "curvature product: NULL argument");
  if (c->ready) return KVI_OK;
  if (!c->b.X) return kvi_fail(KVI_ERR_STATE, "curvature product before kvi_curv_eval");
  double loss;
  kvi_curv_batch batch = c->b;
  kvi_status s = kvi_curv_eval(c, &batch, &loss, c->gtmp, NULL);
  if (!s && !c->ready)
    s = kvi_fail(KVI_ERR_NONFINITE, "curvature product at a point with loss %g", loss);
  return s;
}

/* R-forward of every layer along v: racts[nlayers] = J v. */
static kvi_status kvi__curv_rforward(kvi_curv *c, const kvi_params *dir) {
  kvi_net *net = c->net;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    kvi_layer_call lc = {.params = net->params,
                         .ws = net->ws[i],
                         .batch = c->b.batch,
                         .X = net->acts[i],
                         .Y = net->acts[i + 1]};
    kvi_rop_call r = {.dir = dir, .RX = c->racts[i], .RY = c->racts[i + 1], .rws = c->rws[i]};
    kvi_status s = L->ops->rop_forward(L, &lc, &r);
    if (s) return s;
  }
  return KVI_OK;
}

kvi_status kvi_curv_jvp(kvi_curv *c, const kvi_real *v, kvi_real *Jv) {
  kvi_status s = kvi__curv_ensure(c, v, Jv);
  if (s) return s;
  kvi_params dir = kvi__curv_target(c, v, NULL);
  if ((s = kvi__curv_rforward(c, &dir)) != KVI_OK) return s;
  memcpy(Jv, c->racts[c->net->nlayers], (size_t)c->b.batch * c->net->out_size * sizeof *Jv);
  return KVI_OK;
}

kvi_status kvi_curv_vjp(kvi_curv *c, const kvi_real *u, kvi_real *JTu) {
  kvi_status s = kvi__curv_ensure(c, u, JTu);
  return s ? s : kvi__curv_backward(c, u, JTu, c->jgrads);
}

/* H_L R{z} of the loss into rdout (eq. L1, L2). */
static kvi_status kvi__curv_loss_hvp(kvi_curv *c, const kvi_real *Rz, kvi_real *Rd) {
  const int B = c->b.batch, K = c->net->out_size;
  kvi_status s = c->b.loss == KVI_LOSS_XENT ? kvi_softmax_xent_hvp(Rd, c->out, Rz, B, K)
                                            : kvi_gauss_nll_hvp(Rd, Rz, c->b.log_beta, B, K);
  if (!s && c->b.fsd > 0 && c->b.anchor) /* the distance's output Hessian is the loss's own */
    for (size_t i = 0; i < (size_t)B * K; i++) Rd[i] = (kvi_real)(Rd[i] * (1 + c->b.fsd));
  return s;
}

kvi_status kvi_curv_hvp(kvi_curv *c, const kvi_real *v, kvi_real *Hv) {
  kvi_status s = kvi__curv_ensure(c, v, Hv);
  if (s) return s;
  kvi_net *net = c->net;
  const int nl = net->nlayers;
  memset(Hv, 0, net->params->n * sizeof *Hv);
  kvi_params dir = kvi__curv_target(c, v, Hv);
  if ((s = kvi__curv_rforward(c, &dir)) != KVI_OK) return s;
  if ((s = kvi__curv_loss_hvp(c, c->racts[nl], c->rdout)) != KVI_OK) return s;
  const kvi_real *rdy = c->rdout;
  for (int i = nl - 1; i >= 0; i--) { /* eq. H1: R-backward with R{dz} = H_L R{z} */
    const kvi_layer *L = &net->layers[i];
    kvi_layer_call lc = {.params = net->params,
                         .ws = net->ws[i],
                         .batch = c->b.batch,
                         .X = net->acts[i],
                         .Y = net->acts[i + 1],
                         .dY = i == nl - 1 ? c->dout : net->grads[i + 1]};
    kvi_rop_call r = {.dir = &dir,
                      .RX = c->racts[i],
                      .RY = c->racts[i + 1],
                      .RdY = rdy,
                      .RdX = i > 0 ? c->rgrads[i] : NULL,
                      .rws = c->rws[i]};
    if ((s = L->ops->rop_backward(L, &lc, &r)) != KVI_OK) return s;
    rdy = r.RdX;
  }
  return KVI_OK;
}

kvi_status kvi_curv_gvp(kvi_curv *c, const kvi_real *v, kvi_real *Gv) {
  kvi_status s = kvi__curv_ensure(c, v, Gv);
  if (s) return s;
  kvi_params dir = kvi__curv_target(c, v, NULL);
  if ((s = kvi__curv_rforward(c, &dir)) != KVI_OK) return s;
  if ((s = kvi__curv_loss_hvp(c, c->racts[c->net->nlayers], c->u)) != KVI_OK) return s;
  return kvi__curv_backward(c, c->u, Gv, c->jgrads); /* eq. G2 */
}

kvi_status kvi_curv_fvp(kvi_curv *c, const kvi_real *v, kvi_real *Fv) {
  return kvi_curv_gvp(c, v, Fv);
}

kvi_status kvi_curv_efvp(kvi_curv *c, const kvi_real *v, kvi_real *Fv) {
  kvi_status s = kvi__curv_ensure(c, v, Fv);
  if (s) return s;
  kvi_params dir = kvi__curv_target(c, v, NULL);
  if ((s = kvi__curv_rforward(c, &dir)) != KVI_OK) return s;
  const int B = c->b.batch, K = c->net->out_size;
  const kvi_real *Jv = c->racts[c->net->nlayers];
  for (int b = 0; b < B; b++) { /* eq. F2; dout carries the mean's 1/B: e_b = B dout_b */
    const kvi_real *d = c->dout + (size_t)b * K, *jv = Jv + (size_t)b * K;
    double dot = 0;
    for (int k = 0; k < K; k++) dot += (double)B * d[k] * jv[k];
    for (int k = 0; k < K; k++) c->u[(size_t)b * K + k] = (kvi_real)(d[k] * dot);
  }
  return kvi__curv_backward(c, c->u, Fv, c->jgrads);
}
