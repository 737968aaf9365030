/* The stable API: library information, errors, threads, the option parser, optimizers. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

#define KVI__STR2(x) #x
#define KVI__STR(x) KVI__STR2(x)

const char *kvi_version(int *major, int *minor, int *patch) {
  if (major) *major = KVI_VERSION_MAJOR;
  if (minor) *minor = KVI_VERSION_MINOR;
  if (patch) *patch = KVI_VERSION_PATCH;
  return KVI__STR(KVI_VERSION_MAJOR) "." KVI__STR(KVI_VERSION_MINOR) "." KVI__STR(
      KVI_VERSION_PATCH) " " KVI_REAL_NAME;
}

const char *kvi_error_message(void) { return kvi_last_error(); }
const char *kvi_status_message(kvi_status s) { return kvi_status_str(s); }

kvi_status kvi_set_num_threads(int n) {
  if (n < 1 || n > 1024) return kvi_fail(KVI_ERR_ARG, "thread count %d outside [1, 1024]", n);
  kvi_set_threads(n);
  return KVI_OK;
}

int kvi_num_threads(void) { return kvi_get_threads(); }

/* ---- options ------------------------------------------------------------------------------ */
static bool kvi__opt_sep(char c) { return c == ',' || isspace((unsigned char)c); }

int kvi__opts_next(kvi__opts *o) {
  if (!o->s) return 0;
  while (*o->s && kvi__opt_sep(*o->s)) o->s++;
  if (!*o->s) return 0;
  const char *start = o->s, *eq = NULL;
  while (*o->s && !kvi__opt_sep(*o->s)) {
    if (*o->s == '=' && !eq) eq = o->s;
    o->s++;
  }
  size_t klen = eq ? (size_t)(eq - start) : 0, vlen = eq ? (size_t)(o->s - eq - 1) : 0;
  if (!eq || klen == 0 || vlen == 0 || klen >= sizeof o->key || vlen >= sizeof o->val) {
    kvi_fail(KVI_ERR_ARG, "option '%.*s': expected key=value", (int)(o->s - start), start);
    return -1;
  }
  memcpy(o->key, start, klen), o->key[klen] = '\0';
  memcpy(o->val, eq + 1, vlen), o->val[vlen] = '\0';
  return 1;
}

kvi_status kvi__opt_double(const kvi__opts *o, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(o->val, &end);
  if (*end || errno || !isfinite(v) || v < lo || v > hi)
    return kvi_fail(KVI_ERR_ARG, "option %s=%s: expected a number in [%g, %g]", o->key, o->val, lo,
                    hi);
  *out = v;
  return KVI_OK;
}

kvi_status kvi__opt_int(const kvi__opts *o, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(o->val, &end, 10);
  if (*end || errno || v < lo || v > hi)
    return kvi_fail(KVI_ERR_ARG, "option %s=%s: expected an integer in [%ld, %ld]", o->key, o->val,
                    lo, hi);
  *out = (int)v;
  return KVI_OK;
}

kvi_status kvi__opt_u64(const kvi__opts *o, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(o->val, &end, 10);
  if (*end || errno || o->val[0] == '-')
    return kvi_fail(KVI_ERR_ARG, "option %s=%s: expected a non-negative integer", o->key, o->val);
  *out = (uint64_t)v;
  return KVI_OK;
}

kvi_status kvi__opt_bool(const kvi__opts *o, bool *out) {
  if (!strcmp(o->val, "1") || !strcmp(o->val, "true")) return *out = true, KVI_OK;
  if (!strcmp(o->val, "0") || !strcmp(o->val, "false")) return *out = false, KVI_OK;
  return kvi_fail(KVI_ERR_ARG, "option %s=%s: expected 0 or 1", o->key, o->val);
}

kvi_status kvi__opt_unknown(const kvi__opts *o, const char *what, const char *known) {
  return kvi_fail(KVI_ERR_ARG, "%s: unknown option '%s' (known: %s)", what, o->key, known);
}

/* ---- optimizers --------------------------------------------------------------------------- */
kvi_status kvi_optim_create(kvi_optim **out, const char *kind) {
  KVI__NEED(out, "kvi_optim_create");
  *out = NULL;
  kvi_opt_kind k = KVI_OPT_ADAM;
  if (kind && kvi_opt_parse(&k, kind)) return KVI_ERR_ARG;
  kvi_optim *o = calloc(1, sizeof *o);
  if (!o) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  o->cfg = kvi_opt_config_default(k);
  *out = o;
  return KVI_OK;
}

/* The setting of that name in c, NULL (with a message) if none; *is_int: an integer or 0/1. */
static double *kvi__optim_field(kvi_opt_config *c, const char *key, int *kind_out) {
  static const char *reals[] = {"lr", "momentum", "weight_decay", "damping", "ema", "kl_clip"};
  double *rp[] = {&c->lr, &c->momentum, &c->weight_decay, &c->damping, &c->ema, &c->kl_clip};
  for (int i = 0; i < 6; i++)
    if (!strcmp(key, reals[i])) return *kind_out = 0, rp[i];
  if (!strcmp(key, "inverse_every")) return *kind_out = 1, NULL;
  if (!strcmp(key, "nesterov")) return *kind_out = 2, NULL;
  if (!strcmp(key, "ekfac")) return *kind_out = 3, NULL;
  *kind_out = -1;
  return NULL;
}

#define KVI__OPTIM_KEYS \
  "lr, momentum, weight_decay, damping, ema, kl_clip, inverse_every, nesterov, ekfac"

kvi_status kvi_optim_set(kvi_optim *o, const char *key, double value) {
  KVI__NEED(o, "kvi_optim_set");
  KVI__NEED(key, "kvi_optim_set");
  if (!isfinite(value)) return kvi_fail(KVI_ERR_ARG, "kvi_optim_set: %s must be finite", key);
  int kind;
  double *f = kvi__optim_field(&o->cfg, key, &kind);
  if (kind < 0)
    return kvi_fail(KVI_ERR_ARG, "kvi_optim_set: unknown setting '%s' (known: %s)", key,
                    KVI__OPTIM_KEYS);
  if (kind == 0) {
    if (value < 0 || (!strcmp(key, "lr") && value <= 0))
      return kvi_fail(KVI_ERR_ARG, "kvi_optim_set: %s = %g out of range", key, value);
    *f = value;
  } else if (kind == 1) {
    if (value < 1 || value > 1e9 || value != floor(value))
      return kvi_fail(KVI_ERR_ARG, "kvi_optim_set: inverse_every = %g must be an integer >= 1",
                      value);
    o->cfg.inverse_every = (int)value;
  } else {
    if (value != 0 && value != 1)
      return kvi_fail(KVI_ERR_ARG, "kvi_optim_set: %s = %g must be 0 or 1", key, value);
    if (kind == 2) o->cfg.nesterov = value != 0;
    if (kind == 3) o->cfg.ekfac = value != 0;
  }
  return KVI_OK;
}

kvi_status kvi_optim_get(const kvi_optim *o, const char *key, double *value) {
  KVI__NEED(o, "kvi_optim_get");
  KVI__NEED(key, "kvi_optim_get");
  KVI__NEED(value, "kvi_optim_get");
  kvi_opt_config c = o->cfg;
  int kind;
  double *f = kvi__optim_field(&c, key, &kind);
  if (kind < 0)
    return kvi_fail(KVI_ERR_ARG, "kvi_optim_get: unknown setting '%s' (known: %s)", key,
                    KVI__OPTIM_KEYS);
  *value = kind == 0   ? *f
           : kind == 1 ? c.inverse_every
           : kind == 2 ? (double)c.nesterov
                       : (double)c.ekfac;
  return KVI_OK;
}

const char *kvi_optim_kind(const kvi_optim *o) { return o ? kvi_opt_name(o->cfg.kind) : ""; }

void kvi_optim_free(kvi_optim *o) { free(o); }
