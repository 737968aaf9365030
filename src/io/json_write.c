/* JSON writer: a string builder that emits RFC 8259 text (kvi_jb_*), including kvi_jb_value,
 * which writes back a parsed value (see json_parse.c for the parser).
 *
 * Locale: printf/strtod follow the C locale's decimal point; if a program has switched
 * LC_NUMERIC to a locale with ',' the '.' is swapped in, so output stays JSON. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/io.h"
#include "io/io_internal.h"

/* ======================================================================================= */
/* writer                                                                                  */
/* ======================================================================================= */

void kvi_jb_init(kvi_json_buf *jb, bool pretty) {
  memset(jb, 0, sizeof *jb);
  jb->pretty = pretty;
  jb->err = KVI_OK;
}

void kvi_jb_free(kvi_json_buf *jb) {
  if (!jb) return;
  free(jb->buf);
  bool pretty = jb->pretty;
  kvi_jb_init(jb, pretty);
}

kvi_status kvi_jb_status(const kvi_json_buf *jb) { return jb ? jb->err : KVI_ERR_ARG; }

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static bool
jb_fail(kvi_json_buf *jb, kvi_status st, const char *fmt, ...) {
  if (jb->err != KVI_OK) return false;
  int k = snprintf(jb->errmsg, sizeof jb->errmsg, "JSON writer: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(jb->errmsg + k, sizeof jb->errmsg - (size_t)k, fmt, ap);
  va_end(ap);
  jb->err = kvi_fail(st, "%s", jb->errmsg);
  return false;
}

static bool jb_error(kvi_json_buf *jb, kvi_status st, const char *what) {
  return jb_fail(jb, st, "%s", what);
}

static bool jb_reserve(kvi_json_buf *jb, size_t extra) {
  if (jb->err != KVI_OK) return false;
  if (jb->len + extra + 1 <= jb->cap) return true;
  if (extra > ((size_t)-1) / 4 - jb->len) return jb_error(jb, KVI_ERR_NOMEM, "text too large");
  size_t cap = jb->cap ? jb->cap : 256;
  while (cap < jb->len + extra + 1) cap *= 2;
  char *nb = realloc(jb->buf, cap);
  if (!nb) return jb_fail(jb, KVI_ERR_NOMEM, "out of memory growing the text to %zu bytes", cap);
  jb->buf = nb;
  jb->cap = cap;
  return true;
}

static void jb_put(kvi_json_buf *jb, const char *s, size_t n) {
  if (!jb_reserve(jb, n)) return;
  memcpy(jb->buf + jb->len, s, n);
  jb->len += n;
  jb->buf[jb->len] = 0;
}

static void jb_putc(kvi_json_buf *jb, char c) { jb_put(jb, &c, 1); }

static void jb_newline(kvi_json_buf *jb, int depth) {
  if (!jb->pretty) return;
  if (!jb_reserve(jb, 1 + 2 * (size_t)depth)) return;
  jb->buf[jb->len++] = '\n';
  for (int i = 0; i < 2 * depth; i++) jb->buf[jb->len++] = ' ';
  jb->buf[jb->len] = 0;
}

/* Separator and indentation before a value; false if a value is not allowed here. */
static bool jb_pre_value(kvi_json_buf *jb) {
  if (jb->err != KVI_OK) return false;
  if (jb->depth == 0) {
    if (jb->done) return jb_error(jb, KVI_ERR_STATE, "a second top-level value");
    return true;
  }
  int t = jb->depth - 1;
  if (jb->kind[t] == 'o') {
    if (!jb->want_val) return jb_error(jb, KVI_ERR_STATE, "a value inside an object needs a key");
    jb->want_val = false;
    return true;
  }
  if (jb->nonempty[t]) jb_putc(jb, ',');
  jb->nonempty[t] = true;
  jb_newline(jb, jb->depth);
  return jb->err == KVI_OK;
}

static void jb_post_value(kvi_json_buf *jb) {
  if (jb->depth == 0) jb->done = true;
}

static void jb_write_string(kvi_json_buf *jb, const char *s, size_t n);

/* Writes a key (n bytes, may contain NULs) and the ':' after it. */
static void jb_keyn(kvi_json_buf *jb, const char *key, size_t n) {
  if (jb->err != KVI_OK) return;
  if (jb->depth == 0 || jb->kind[jb->depth - 1] != 'o' || jb->want_val) {
    jb_error(jb, KVI_ERR_STATE,
             jb->want_val ? "a key where a value is due" : "a key outside an object");
    return;
  }
  if (!key) {
    jb_error(jb, KVI_ERR_ARG, "NULL key");
    return;
  }
  int t = jb->depth - 1;
  if (jb->nonempty[t]) jb_putc(jb, ',');
  jb->nonempty[t] = true;
  jb_newline(jb, jb->depth);
  jb_write_string(jb, key, n);
  jb_put(jb, jb->pretty ? ": " : ":", jb->pretty ? 2 : 1);
  jb->want_val = true;
}

void kvi_jb_key(kvi_json_buf *jb, const char *key) { jb_keyn(jb, key, key ? strlen(key) : 0); }

static void jb_begin(kvi_json_buf *jb, char kind) {
  if (!jb_pre_value(jb)) return;
  if (jb->depth >= KVI_JSON_MAX_DEPTH) {
    jb_error(jb, KVI_ERR_ARG, "nesting deeper than KVI_JSON_MAX_DEPTH");
    return;
  }
  jb_putc(jb, kind == 'o' ? '{' : '[');
  jb->kind[jb->depth] = kind;
  jb->nonempty[jb->depth] = false;
  jb->depth++;
}

static void jb_end(kvi_json_buf *jb, char kind) {
  if (jb->err != KVI_OK) return;
  if (jb->depth == 0 || jb->kind[jb->depth - 1] != kind) {
    jb_error(jb, KVI_ERR_STATE,
             kind == 'o' ? "end_object without a matching begin_object"
                         : "end_array without a matching begin_array");
    return;
  }
  if (jb->want_val) {
    jb_error(jb, KVI_ERR_STATE, "end_object right after a key (the key has no value)");
    return;
  }
  jb->depth--;
  if (jb->nonempty[jb->depth]) jb_newline(jb, jb->depth);
  jb_putc(jb, kind == 'o' ? '}' : ']');
  jb_post_value(jb);
}

void kvi_jb_begin_object(kvi_json_buf *jb) { jb_begin(jb, 'o'); }
void kvi_jb_end_object(kvi_json_buf *jb) { jb_end(jb, 'o'); }
void kvi_jb_begin_array(kvi_json_buf *jb) { jb_begin(jb, 'a'); }
void kvi_jb_end_array(kvi_json_buf *jb) { jb_end(jb, 'a'); }

/* Validated, escaped, quoted string; no value-state checks. */
static void jb_write_string(kvi_json_buf *jb, const char *s, size_t n) {
  if (jb->err != KVI_OK) return;
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  /* validate first so that a bad string leaves no partial output */
  for (size_t i = 0; i < n;) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = kvi__utf8_seq(u + i, n - i);
    if (!k) {
      jb_fail(jb, KVI_ERR_ARG, "string is not valid UTF-8 (byte 0x%02x at offset %zu)", u[i], i);
      return;
    }
    i += k;
  }
  jb_putc(jb, '"');
  size_t run = 0; /* start of the pending run of bytes that need no escape */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = u[i];
    char esc[7];
    size_t elen = 0;
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c, elen = 2;
    } else if (c < 0x20) {
      esc[0] = '\\';
      elen = 2;
      switch (c) {
        case '\b':
          esc[1] = 'b';
          break;
        case '\f':
          esc[1] = 'f';
          break;
        case '\n':
          esc[1] = 'n';
          break;
        case '\r':
          esc[1] = 'r';
          break;
        case '\t':
          esc[1] = 't';
          break;
        default:
          memcpy(esc + 1, "u00", 3);
          esc[4] = hex[c >> 4];
          esc[5] = hex[c & 15];
          elen = 6;
      }
    } else {
      continue;
    }
    jb_put(jb, s + run, i - run);
    jb_put(jb, esc, elen);
    run = i + 1;
  }
  jb_put(jb, s + run, n - run);
  jb_putc(jb, '"');
}

void kvi_jb_strn(kvi_json_buf *jb, const char *s, size_t n) {
  if (!s && n) {
    jb_error(jb, KVI_ERR_ARG, "NULL string with a non-zero length");
    return;
  }
  if (!jb_pre_value(jb)) return;
  jb_write_string(jb, s ? s : "", n);
  jb_post_value(jb);
}

void kvi_jb_str(kvi_json_buf *jb, const char *s) {
  if (!s)
    kvi_jb_null(jb);
  else
    kvi_jb_strn(jb, s, strlen(s));
}

static void jb_raw_value(kvi_json_buf *jb, const char *s) {
  if (!jb_pre_value(jb)) return;
  jb_put(jb, s, strlen(s));
  jb_post_value(jb);
}

/* Shortest of %.15g/%.16g/%.17g that reads back to the same double, with '.' as the point. */
static void format_double(char *buf, size_t cap, double x) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, cap, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
  char pt = kvi__locale_point();
  if (pt != '.')
    for (char *p = buf; *p; p++)
      if (*p == pt) *p = '.';
}

void kvi_jb_num(kvi_json_buf *jb, double x) {
  if (!isfinite(x)) {
    kvi_jb_null(jb);
    return;
  }
  char buf[40];
  format_double(buf, sizeof buf, x);
  jb_raw_value(jb, buf);
}

void kvi_jb_int(kvi_json_buf *jb, int64_t x) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)x);
  jb_raw_value(jb, buf);
}

void kvi_jb_bool(kvi_json_buf *jb, bool b) { jb_raw_value(jb, b ? "true" : "false"); }
void kvi_jb_null(kvi_json_buf *jb) { jb_raw_value(jb, "null"); }

void kvi_jb_kv_str(kvi_json_buf *jb, const char *key, const char *s) {
  kvi_jb_key(jb, key);
  kvi_jb_str(jb, s);
}
void kvi_jb_kv_num(kvi_json_buf *jb, const char *key, double x) {
  kvi_jb_key(jb, key);
  kvi_jb_num(jb, x);
}
void kvi_jb_kv_int(kvi_json_buf *jb, const char *key, int64_t x) {
  kvi_jb_key(jb, key);
  kvi_jb_int(jb, x);
}
void kvi_jb_kv_bool(kvi_json_buf *jb, const char *key, bool b) {
  kvi_jb_key(jb, key);
  kvi_jb_bool(jb, b);
}

kvi_status kvi_jb_take(kvi_json_buf *jb, char **out, size_t *len) {
  if (out) *out = NULL;
  if (len) *len = 0;
  if (!jb || !out) return kvi_fail(KVI_ERR_ARG, "kvi_jb_take: NULL argument");
  kvi_status st = jb->err;
  if (st != KVI_OK)
    kvi_fail(st, "%s", jb->errmsg);
  else if (jb->depth > 0)
    st = kvi_fail(KVI_ERR_STATE, "JSON writer: %d container(s) still open at kvi_jb_take",
                  jb->depth);
  else if (!jb->done)
    st = kvi_fail(KVI_ERR_STATE, "JSON writer: nothing was written before kvi_jb_take");
  if (st != KVI_OK) {
    kvi_jb_free(jb);
    return st;
  }
  *out = jb->buf;
  if (len) *len = jb->len;
  jb->buf = NULL;
  kvi_jb_free(jb);
  return KVI_OK;
}

/* ---- parsed values ---------------------------------------------------------------------- */

void kvi_jb_value(kvi_json_buf *jb, const kvi_json *v) {
  if (!v) {
    if (jb->err == KVI_OK) jb_error(jb, KVI_ERR_ARG, "kvi_jb_value: NULL value");
    return;
  }
  switch (v->type) {
    case KVI_JSON_NULL:
      kvi_jb_null(jb);
      break;
    case KVI_JSON_BOOL:
      kvi_jb_bool(jb, v->b);
      break;
    case KVI_JSON_NUMBER:
      /* "-0" parses as the integer 0 with num = -0.0: write num to keep the sign */
      if (v->is_int && !(v->ival == 0 && signbit(v->num)))
        kvi_jb_int(jb, v->ival);
      else
        kvi_jb_num(jb, v->num);
      break;
    case KVI_JSON_STRING:
      kvi_jb_strn(jb, v->str, v->n);
      break;
    case KVI_JSON_ARRAY:
      kvi_jb_begin_array(jb);
      for (size_t i = 0; i < v->n; i++) kvi_jb_value(jb, &v->items[i]);
      kvi_jb_end_array(jb);
      break;
    case KVI_JSON_OBJECT:
      kvi_jb_begin_object(jb);
      for (size_t i = 0; i < v->n; i++) {
        jb_keyn(jb, v->keys[i].s, v->keys[i].len);
        kvi_jb_value(jb, &v->items[i]);
      }
      kvi_jb_end_object(jb);
      break;
  }
}
