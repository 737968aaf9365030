/* The reference network: the built-in layer kinds, the two losses and the backward written with
 * plain loops over a number type RT, for the dual-number (dual.c) and complex-step (cstep.c)
 * checks of the R-operator (docs/curv.md, "Checks"). Nothing here shares code with the library's
 * kernels: dense layers are triple loops, convolutions direct sums over the taps, max-pooling
 * compares the real parts in the library's tie order.
 *
 * Included once per type, with these macros defined:
 *   RT              the number type
 *   RE(a)          its real part (branches compare it)
 *   MK(x, d)       x + d * (the infinitesimal: eps for duals, i h for the complex step)
 *   ADD, SUB, MUL, DIV (a, b), EXPM1(a), EXP(a), LOG(a)
 *   REF(name)      the prefixed name of each function */
#include <stdlib.h>
#include <string.h>

#include "kronvi/curv.h"

typedef struct {
  const kvi_net *net;
  const kvi_curv_batch *b;
  RT *par;         /* the block's n numbers (tangents on the means and biases) */
  RT **acts, **dx; /* per layer: input acts[i] (B, in_size), output acts[i + 1]; dX */
  int32_t **arg;   /* max-pooling: the forward's maxima (offsets in the example) */
  RT *dout, *grad; /* (B, out_size); the block's n */
} REF(ctx);

static RT REF(zero)(void) { return MK(0.0, 0.0); }

static void REF(free)(REF(ctx) * r) {
  const int nl = r->net->nlayers;
  for (int i = 0; r->acts && i <= nl; i++) free(r->acts[i]);
  for (int i = 0; r->dx && i < nl; i++) free(r->dx[i]);
  for (int i = 0; r->arg && i < nl; i++) free(r->arg[i]);
  free(r->acts), free(r->dx), free(r->arg), free(r->par), free(r->dout), free(r->grad);
}

/* Buffers; par = theta + (tangent) v on the means and biases (all of theta elsewhere). */
static kvi_status REF(init)(REF(ctx) * r, const kvi_net *net, const kvi_curv_batch *b,
                            const kvi_real *v, double scale) {
  memset(r, 0, sizeof *r);
  r->net = net, r->b = b;
  const int nl = net->nlayers, B = b->batch;
  const size_t n = net->params->n;
  r->acts = calloc((size_t)nl + 1, sizeof *r->acts);
  r->dx = calloc((size_t)nl, sizeof *r->dx);
  r->arg = calloc((size_t)nl, sizeof *r->arg);
  r->par = malloc(n * sizeof *r->par);
  r->grad = calloc(n, sizeof *r->grad);
  r->dout = malloc((size_t)B * net->out_size * sizeof *r->dout);
  bool ok = r->acts && r->dx && r->arg && r->par && r->grad && r->dout;
  for (int i = 0; ok && i < nl; i++) {
    const kvi_layer *L = &net->layers[i];
    ok = (r->acts[i + 1] = malloc((size_t)B * L->out_size * sizeof(RT))) &&
         (r->dx[i] = malloc((size_t)B * L->in_size * sizeof(RT))) &&
         (r->arg[i] = malloc((size_t)B * L->out_size * sizeof(int32_t)));
  }
  if (ok) ok = (r->acts[0] = malloc((size_t)B * net->in_size * sizeof(RT))) != NULL;
  if (!ok) {
    REF(free)(r);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory for the reference network");
  }
  for (size_t i = 0; i < n; i++) r->par[i] = MK((double)net->params->data[i], 0.0);
  for (size_t i = 0; i < (size_t)B * net->in_size; i++) r->acts[0][i] = MK((double)b->X[i], 0.0);
  int nd = 0;
  kvi_net_dense((kvi_net *)net, 0, &nd);
  for (int k = 0; v && k < nd; k++) {
    const kvi_dense *d = kvi_net_dense((kvi_net *)net, k, NULL);
    const int views[2] = {d->iM, d->ib};
    for (int j = 0; j < 2; j++) {
      if (views[j] < 0) continue;
      const kvi_view *w = &net->params->views[views[j]];
      for (size_t e = w->offset; e < w->offset + w->size; e++)
        r->par[e] = MK((double)net->params->data[e], scale * (double)v[e]);
    }
  }
  for (size_t i = 0; i < n; i++) r->grad[i] = REF(zero)();
  return KVI_OK;
}

/* ---- layers --------------------------------------------------------------------------------- */
/* Y[b, j] = sum_i X[b, i] M[i, j] + bias[j] */
static void REF(dense_fwd)(REF(ctx) * r, const kvi_dense *d, const RT *X, RT *Y) {
  const RT *M = r->par + r->net->params->views[d->iM].offset;
  const RT *bb = d->ib >= 0 ? r->par + r->net->params->views[d->ib].offset : NULL;
  for (int b = 0; b < r->b->batch; b++)
    for (int j = 0; j < d->m; j++) {
      RT acc = bb ? bb[j] : REF(zero)();
      for (int i = 0; i < d->n; i++)
        acc = ADD(acc, MUL(X[(size_t)b * d->n + i], M[(size_t)i * d->m + j]));
      Y[(size_t)b * d->m + j] = acc;
    }
}

static void REF(dense_bwd)(REF(ctx) * r, const kvi_dense *d, const RT *X, const RT *dY, RT *dX) {
  const size_t oM = r->net->params->views[d->iM].offset;
  const RT *M = r->par + oM;
  RT *gM = r->grad + oM;
  for (int b = 0; b < r->b->batch; b++)
    for (int i = 0; i < d->n; i++) {
      RT acc = REF(zero)();
      for (int j = 0; j < d->m; j++) {
        const RT dy = dY[(size_t)b * d->m + j];
        gM[(size_t)i * d->m + j] = ADD(gM[(size_t)i * d->m + j], MUL(X[(size_t)b * d->n + i], dy));
        acc = ADD(acc, MUL(dy, M[(size_t)i * d->m + j]));
      }
      if (dX) dX[(size_t)b * d->n + i] = acc;
    }
  if (d->ib < 0) return;
  RT *gb = r->grad + r->net->params->views[d->ib].offset;
  for (int b = 0; b < r->b->batch; b++)
    for (int j = 0; j < d->m; j++) gb[j] = ADD(gb[j], dY[(size_t)b * d->m + j]);
}

/* Direct convolution: Y[b](oy, ox, co) = bias[co] + sum over taps (ky, kx, ci) inside the image
 * of X[b](oy s - p + ky, ox s - p + kx, ci) M[(ky k + kx) c_in + ci, co]. fwd: dY NULL;
 * bwd: adds the gradients and writes dX (when not NULL). */
static void REF(conv_pass)(REF(ctx) * r, const kvi_conv *l, const RT *X, RT *Y, const RT *dY,
                           RT *dX) {
  const kvi_dense *d = &l->d;
  const size_t oM = r->net->params->views[d->iM].offset, img = (size_t)l->h * l->w * l->c_in;
  const size_t oimg = (size_t)l->oh * l->ow * l->c_out;
  const RT *M = r->par + oM;
  RT *gM = r->grad + oM;
  const RT *bb = d->ib >= 0 ? r->par + r->net->params->views[d->ib].offset : NULL;
  RT *gb = d->ib >= 0 ? r->grad + r->net->params->views[d->ib].offset : NULL;
  if (dX)
    for (size_t i = 0; i < (size_t)r->b->batch * img; i++) dX[i] = REF(zero)();
  for (int b = 0; b < r->b->batch; b++)
    for (int oy = 0; oy < l->oh; oy++)
      for (int ox = 0; ox < l->ow; ox++)
        for (int co = 0; co < l->c_out; co++) {
          const size_t o = (size_t)b * oimg + ((size_t)oy * l->ow + ox) * l->c_out + co;
          RT acc = bb ? bb[co] : REF(zero)();
          if (dY && gb) gb[co] = ADD(gb[co], dY[o]);
          for (int ky = 0; ky < l->k; ky++)
            for (int kx = 0; kx < l->k; kx++) {
              const int iy = oy * l->stride - l->pad + ky, ix = ox * l->stride - l->pad + kx;
              if (iy < 0 || iy >= l->h || ix < 0 || ix >= l->w) continue;
              for (int ci = 0; ci < l->c_in; ci++) {
                const size_t xi = (size_t)b * img + ((size_t)iy * l->w + ix) * l->c_in + ci;
                const size_t wi = ((size_t)(ky * l->k + kx) * l->c_in + ci) * l->c_out + co;
                if (!dY) {
                  acc = ADD(acc, MUL(X[xi], M[wi]));
                } else {
                  gM[wi] = ADD(gM[wi], MUL(X[xi], dY[o]));
                  if (dX) dX[xi] = ADD(dX[xi], MUL(dY[o], M[wi]));
                }
              }
            }
          if (!dY) Y[o] = acc;
        }
}

static void REF(act_fwd)(kvi_act a, const RT *X, RT *Y, size_t n) {
  for (size_t i = 0; i < n; i++)
    Y[i] = a == KVI_ACT_NONE || RE(X[i]) > 0 ? X[i] : a == KVI_ACT_ELU ? EXPM1(X[i]) : REF(zero)();
}

/* ELU: dx = dy (x > 0), dy (y + 1) = dy e^x (x <= 0); ReLU: dy or 0. */
static void REF(act_bwd)(kvi_act a, const RT *X, const RT *dY, RT *dX, size_t n) {
  for (size_t i = 0; i < n; i++)
    dX[i] = a == KVI_ACT_NONE || RE(X[i]) > 0 ? dY[i]
            : a == KVI_ACT_ELU                ? MUL(dY[i], EXP(X[i]))
                                              : REF(zero)();
}

/* 2x2 max-pooling, stride 2: the first maximum in the order (0,0), (0,1), (1,0), (1,1). */
static void REF(pool_fwd)(REF(ctx) * r, const kvi_pool *l, const RT *X, RT *Y, int32_t *arg) {
  const size_t img = (size_t)l->h * l->w * l->c, oimg = (size_t)l->oh * l->ow * l->c;
  for (int b = 0; b < r->b->batch; b++)
    for (int oy = 0; oy < l->oh; oy++)
      for (int ox = 0; ox < l->ow; ox++)
        for (int ch = 0; ch < l->c; ch++) {
          int32_t best = -1;
          for (int t = 0; t < 4; t++) {
            const int32_t off = (int32_t)((((2 * oy + t / 2) * l->w) + 2 * ox + t % 2) * l->c + ch);
            if (best < 0 || RE(X[(size_t)b * img + off]) > RE(X[(size_t)b * img + best]))
              best = off;
          }
          const size_t o = (size_t)b * oimg + ((size_t)oy * l->ow + ox) * l->c + ch;
          Y[o] = X[(size_t)b * img + best];
          arg[o] = best;
        }
}

static void REF(pool_bwd)(REF(ctx) * r, const kvi_pool *l, const RT *dY, RT *dX,
                          const int32_t *arg) {
  const size_t img = (size_t)l->h * l->w * l->c, oimg = (size_t)l->oh * l->ow * l->c;
  for (size_t i = 0; i < (size_t)r->b->batch * img; i++) dX[i] = REF(zero)();
  for (int b = 0; b < r->b->batch; b++)
    for (size_t o = 0; o < oimg; o++)
      dX[(size_t)b * img + arg[(size_t)b * oimg + o]] =
          ADD(dX[(size_t)b * img + arg[(size_t)b * oimg + o]], dY[(size_t)b * oimg + o]);
}

static kvi_status REF(forward)(REF(ctx) * r) {
  const kvi_net *net = r->net;
  const int B = r->b->batch;
  for (int i = 0; i < net->nlayers; i++) {
    const kvi_layer *L = &net->layers[i];
    const RT *X = r->acts[i];
    RT *Y = r->acts[i + 1];
    if (L->ops == &kvi_dense_ops)
      REF(dense_fwd)(r, L->state, X, Y);
    else if (L->ops == &kvi_conv_ops)
      REF(conv_pass)(r, L->state, X, Y, NULL, NULL);
    else if (L->ops == &kvi_act_ops)
      REF(act_fwd)(*(const kvi_act *)L->state, X, Y, (size_t)B * L->in_size);
    else if (L->ops == &kvi_pool_ops)
      REF(pool_fwd)(r, L->state, X, Y, r->arg[i]);
    else if (L->ops == &kvi_flatten_ops)
      memcpy(Y, X, (size_t)B * L->in_size * sizeof(RT));
    else
      return kvi_fail(KVI_ERR_UNSUPPORTED, "reference network: kind '%s' is not built in",
                      L->ops->kind);
  }
  return KVI_OK;
}

static void REF(backward)(REF(ctx) * r, const RT *dOut) {
  const kvi_net *net = r->net;
  const int B = r->b->batch;
  const RT *dY = dOut;
  for (int i = net->nlayers - 1; i >= 0; i--) {
    const kvi_layer *L = &net->layers[i];
    RT *dX = i > 0 ? r->dx[i] : NULL;
    if (L->ops == &kvi_dense_ops)
      REF(dense_bwd)(r, L->state, r->acts[i], dY, dX);
    else if (L->ops == &kvi_conv_ops)
      REF(conv_pass)(r, L->state, r->acts[i], NULL, dY, dX);
    else if (dX && L->ops == &kvi_act_ops)
      REF(act_bwd)(*(const kvi_act *)L->state, r->acts[i], dY, dX, (size_t)B * L->in_size);
    else if (dX && L->ops == &kvi_pool_ops)
      REF(pool_bwd)(r, L->state, dY, dX, r->arg[i]);
    else if (dX)
      memcpy(dX, dY, (size_t)B * L->in_size * sizeof(RT));
    dY = dX;
  }
}

/* The mean loss of the outputs and its output gradient dout (eq. L1, L2). */
static kvi_status REF(loss)(REF(ctx) * r, RT *f) {
  const kvi_curv_batch *b = r->b;
  const int B = b->batch, K = r->net->out_size;
  const RT *z = r->acts[r->net->nlayers];
  RT total = REF(zero)();
  if (b->loss == KVI_LOSS_XENT) {
    for (int i = 0; i < B; i++) {
      const RT *zi = z + (size_t)i * K;
      if (b->labels[i] < 0 || b->labels[i] >= K)
        return kvi_fail(KVI_ERR_ARG, "label %d of row %d outside [0, %d)", b->labels[i], i, K);
      int a = 0;
      for (int k = 1; k < K; k++) a = RE(zi[k]) > RE(zi[a]) ? k : a;
      RT se = REF(zero)();
      for (int k = 0; k < K; k++) se = ADD(se, EXP(SUB(zi[k], zi[a])));
      const RT lse = ADD(zi[a], LOG(se));
      total = ADD(total, SUB(lse, zi[b->labels[i]]));
      for (int k = 0; k < K; k++) {
        RT q = EXP(SUB(zi[k], lse));
        if (k == b->labels[i]) q = SUB(q, MK(1.0, 0.0));
        r->dout[(size_t)i * K + k] = DIV(q, MK((double)B, 0.0));
      }
    }
    *f = DIV(total, MK((double)B, 0.0));
    return KVI_OK;
  }
  const double beta = exp((double)b->log_beta);
  for (size_t i = 0; i < (size_t)B * K; i++) {
    const RT res = SUB(z[i], MK((double)b->T[i], 0.0));
    total = ADD(total, MUL(res, res));
    r->dout[i] = MUL(res, MK(beta / B, 0.0));
  }
  *f = ADD(MUL(total, MK(0.5 * beta / B, 0.0)),
           MK(-0.5 * K * (double)b->log_beta + 0.5 * K * log(6.283185307179586), 0.0));
  return KVI_OK;
}
