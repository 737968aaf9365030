/* The reference network in first-order polynomial (dual-number) arithmetic (docs/curv.md,
 * "Checks"): (a + b eps)(c + d eps) = ac + (ad + bc) eps, eps^2 = 0, so the eps parts carry
 * exact directional derivatives: of the outputs (J v), of the loss (g . v) and, through the
 * backward, of the gradient (H v). */
#include <math.h>

#include "kronvi/curv.h"

typedef struct {
  double v, d; /* value, eps part */
} kvi__dual;

static inline kvi__dual kvi__dmk(double v, double d) { return (kvi__dual){v, d}; }
static inline kvi__dual kvi__dadd(kvi__dual a, kvi__dual b) {
  return kvi__dmk(a.v + b.v, a.d + b.d);
}
static inline kvi__dual kvi__dsub(kvi__dual a, kvi__dual b) {
  return kvi__dmk(a.v - b.v, a.d - b.d);
}
static inline kvi__dual kvi__dmul(kvi__dual a, kvi__dual b) {
  return kvi__dmk(a.v * b.v, a.v * b.d + a.d * b.v);
}
static inline kvi__dual kvi__ddiv(kvi__dual a, kvi__dual b) {
  return kvi__dmk(a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v));
}
static inline kvi__dual kvi__dexp(kvi__dual a) {
  const double e = exp(a.v);
  return kvi__dmk(e, e * a.d);
}
static inline kvi__dual kvi__dexpm1(kvi__dual a) { return kvi__dmk(expm1(a.v), exp(a.v) * a.d); }
static inline kvi__dual kvi__dlog(kvi__dual a) { return kvi__dmk(log(a.v), a.d / a.v); }

#define RT kvi__dual
#define RE(a) ((a).v)
#define MK(x, d) kvi__dmk((x), (d))
#define ADD kvi__dadd
#define SUB kvi__dsub
#define MUL kvi__dmul
#define DIV kvi__ddiv
#define EXP kvi__dexp
#define EXPM1 kvi__dexpm1
#define LOG kvi__dlog
#define REF(name) kvi__dual_##name
#include "curv/ref_impl.h"

kvi_status kvi_curv_dual(const kvi_net *net, const kvi_curv_batch *b, const kvi_real *v, double *f,
                         double *df, double *g, double *Hv, double *Jv) {
  if (!net || !b || !b->X || b->batch <= 0)
    return kvi_fail(KVI_ERR_ARG, "curv_dual: NULL argument or batch %d", b ? b->batch : 0);
  kvi__dual_ctx r;
  kvi_status s = kvi__dual_init(&r, net, b, v, 1.0);
  if (s) return s;
  kvi__dual loss = {0, 0};
  s = kvi__dual_forward(&r);
  if (!s) s = kvi__dual_loss(&r, &loss);
  if (!s) {
    if (g || Hv) kvi__dual_backward(&r, r.dout);
    if (f) *f = loss.v;
    if (df) *df = loss.d;
    for (size_t i = 0; i < net->params->n; i++) {
      if (g) g[i] = r.grad[i].v;
      if (Hv) Hv[i] = r.grad[i].d;
    }
    const kvi__dual *z = r.acts[net->nlayers];
    for (size_t i = 0; Jv && i < (size_t)b->batch * net->out_size; i++) Jv[i] = z[i].d;
  }
  kvi__dual_free(&r);
  return s;
}

kvi_status kvi_curv_dual_vjp(const kvi_net *net, const kvi_curv_batch *b, const double *u,
                             double *JTu) {
  if (!net || !b || !b->X || b->batch <= 0 || !u || !JTu)
    return kvi_fail(KVI_ERR_ARG, "curv_dual_vjp: NULL argument or batch %d", b ? b->batch : 0);
  kvi__dual_ctx r;
  kvi_status s = kvi__dual_init(&r, net, b, NULL, 1.0);
  if (s) return s;
  if (!(s = kvi__dual_forward(&r))) {
    for (size_t i = 0; i < (size_t)b->batch * net->out_size; i++) r.dout[i] = kvi__dmk(u[i], 0);
    kvi__dual_backward(&r, r.dout);
    for (size_t i = 0; i < net->params->n; i++) JTu[i] = r.grad[i].v;
  }
  kvi__dual_free(&r);
  return s;
}
