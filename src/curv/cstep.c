/* The reference network in complex arithmetic at theta + i h v: the complex-step derivative
 * (docs/curv.md, "Checks"). For real-analytic code, f(x + i h v) = f(x) + i h f'(x) v + O(h^2),
 * so Im f / h is the directional derivative without the cancellation of a finite difference;
 * with h = 2^-50 the h^2 terms are below the precision of the real parts. */
#include <complex.h>
#include <math.h>

#include "kronvi/curv.h"

static inline double complex kvi__cmk(double x, double d) { return x + I * d; }
static inline double complex kvi__cadd(double complex a, double complex b) { return a + b; }
static inline double complex kvi__csub(double complex a, double complex b) { return a - b; }
static inline double complex kvi__cmul(double complex a, double complex b) { return a * b; }
static inline double complex kvi__cdiv(double complex a, double complex b) { return a / b; }
static inline double complex kvi__cexpm1(double complex a) {
  /* expm1(x + iy) = expm1(x) cos y - 2 sin^2(y/2) + i e^x sin y: accurate for small x */
  const double x = creal(a), y = cimag(a), s = sin(0.5 * y);
  return (expm1(x) * cos(y) - 2 * s * s) + I * (exp(x) * sin(y));
}

#define RT double complex
#define RE(a) creal(a)
#define MK(x, d) kvi__cmk((x), (d))
#define ADD kvi__cadd
#define SUB kvi__csub
#define MUL kvi__cmul
#define DIV kvi__cdiv
#define EXP cexp
#define EXPM1 kvi__cexpm1
#define LOG clog
#define REF(name) kvi__cstep_##name
#include "curv/ref_impl.h"

kvi_status kvi_curv_cstep(const kvi_net *net, const kvi_curv_batch *b, const kvi_real *v, double h,
                          double *df, double *Hv, double *Jv) {
  if (!net || !b || !b->X || b->batch <= 0 || !v)
    return kvi_fail(KVI_ERR_ARG, "curv_cstep: NULL argument or batch %d", b ? b->batch : 0);
  if (!(h >= 0 && h < 1e-3)) return kvi_fail(KVI_ERR_ARG, "complex step h = %g", h);
  const double step = h > 0 ? h : ldexp(1.0, -50);
  kvi__cstep_ctx r;
  kvi_status s = kvi__cstep_init(&r, net, b, v, step);
  if (s) return s;
  double complex loss = 0;
  s = kvi__cstep_forward(&r);
  if (!s) s = kvi__cstep_loss(&r, &loss);
  if (!s) {
    if (Hv) kvi__cstep_backward(&r, r.dout);
    if (df) *df = cimag(loss) / step;
    for (size_t i = 0; Hv && i < net->params->n; i++) Hv[i] = cimag(r.grad[i]) / step;
    const double complex *z = r.acts[net->nlayers];
    for (size_t i = 0; Jv && i < (size_t)b->batch * net->out_size; i++) Jv[i] = cimag(z[i]) / step;
  }
  kvi__cstep_free(&r);
  return s;
}
