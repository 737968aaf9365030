/* JSON writer (string builder) and DOM parser (RFC 8259).
 *
 * Parser layout: a document owns a list of memory chunks; every node, string and child array
 * lives in them, so kvi_json_free releases everything at once. Children of an array or object
 * are stored contiguously (items[0..n)), keys of an object in a parallel array. While a
 * container is parsed its children sit on one shared scratch stack and are copied into the
 * document when the container closes, so nesting costs no extra allocations per level.
 *
 * Locale: printf/strtod follow the C locale's decimal point; if a program has switched
 * LC_NUMERIC to a locale with ',' the '.' is swapped in both directions, so output stays JSON. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/io.h"

/* ======================================================================================= */
/* shared helpers                                                                          */
/* ======================================================================================= */

static char locale_point(void) {
  const struct lconv *lc = localeconv();
  return (lc && lc->decimal_point && lc->decimal_point[0]) ? lc->decimal_point[0] : '.';
}

/* Length of the valid UTF-8 sequence starting at s[0] (s[0] >= 0x80), 0 if invalid: rejects
 * overlong forms, surrogates (U+D800..DFFF) and code points above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  size_t n;
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (avail < n) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return n;
}

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
    size_t k = utf8_seq(u + i, n - i);
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
  char pt = locale_point();
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

/* ======================================================================================= */
/* DOM                                                                                     */
/* ======================================================================================= */

typedef struct {
  char *s;
  size_t len;
} jstr;

struct kvi_json {
  kvi_json_type type;
  bool is_int;  /* number literal without fraction/exponent that fits int64 */
  bool is_root; /* the node embedded in a doc (what kvi_json_free accepts) */
  bool b;
  double num;
  int64_t ival;
  size_t n;        /* string bytes, array elements or object members */
  char *str;       /* STRING: NUL-terminated */
  kvi_json *items; /* ARRAY/OBJECT: n values */
  jstr *keys;      /* OBJECT: n keys */
};

typedef struct chunk {
  struct chunk *next;
  size_t cap, used;
  max_align_t data[];
} chunk;

typedef struct {
  kvi_json root; /* first member: a doc pointer is a root pointer */
  chunk *chunks;
} doc;

static void *doc_alloc(doc *d, size_t bytes) {
  bytes = (bytes + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  if (bytes == 0) bytes = sizeof(max_align_t);
  chunk *c = d->chunks;
  if (!c || c->cap - c->used < bytes) {
    size_t cap = 4096; /* then doubling up to 16 MiB per chunk */
    if (c && c->cap < 16u * 1024 * 1024) cap = c->cap * 2;
    if (cap < bytes) cap = bytes;
    chunk *nc = malloc(sizeof(chunk) + cap);
    if (!nc) return NULL;
    nc->cap = cap;
    nc->used = 0;
    /* keep the partly used chunk in front when the new one is an oversized one-off */
    if (c && cap == bytes && c->cap - c->used > 4096) {
      nc->next = c->next;
      c->next = nc;
      nc->used = bytes;
      return nc->data;
    }
    nc->next = c;
    d->chunks = nc;
    c = nc;
  }
  void *p = (char *)c->data + c->used;
  c->used += bytes;
  return p;
}

static void doc_free(doc *d) {
  for (chunk *c = d->chunks; c;) {
    chunk *next = c->next;
    free(c);
    c = next;
  }
  free(d);
}

void kvi_json_free(kvi_json *root) {
  if (root && root->is_root) doc_free((doc *)root);
}

/* ---- parser ---------------------------------------------------------------------------- */

typedef struct {
  kvi_json v;
  jstr key;
  size_t key_off;
} entry;

typedef struct {
  const char *s;
  size_t len, pos;
  int depth, max_depth;
  doc *d;
  entry *stk;
  size_t nstk, capstk;
  kvi_status err;
  size_t err_off;
  char msg[200];
} parser;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static bool
perr(parser *p, kvi_status st, size_t off, const char *fmt, ...) {
  if (p->err != KVI_OK) return false;
  p->err = st;
  p->err_off = off;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, sizeof p->msg, fmt, ap);
  va_end(ap);
  return false;
}

static bool nomem(parser *p) { return perr(p, KVI_ERR_NOMEM, p->pos, "out of memory"); }

/* "'x'", "end of input" or "byte 0x89" describing what is at offset off. */
static void describe(const parser *p, size_t off, char *buf, size_t cap) {
  if (off >= p->len) {
    snprintf(buf, cap, "end of input");
    return;
  }
  unsigned char c = (unsigned char)p->s[off];
  if (c >= 0x21 && c < 0x7f)
    snprintf(buf, cap, "'%c'", c);
  else if (c == ' ')
    snprintf(buf, cap, "a space");
  else
    snprintf(buf, cap, "byte 0x%02x", c);
}

static bool expected(parser *p, const char *what) {
  char found[32];
  describe(p, p->pos, found, sizeof found);
  return perr(p, KVI_ERR_FORMAT, p->pos, "expected %s, found %s", what, found);
}

static void skip_ws(parser *p) {
  while (p->pos < p->len) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static bool push(parser *p, const entry *e) {
  if (p->nstk == p->capstk) {
    size_t cap = p->capstk ? 2 * p->capstk : 64;
    entry *ns = realloc(p->stk, cap * sizeof *ns);
    if (!ns) return nomem(p);
    p->stk = ns;
    p->capstk = cap;
  }
  p->stk[p->nstk++] = *e;
  return true;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool read_hex4(parser *p, size_t at, unsigned *out) {
  unsigned v = 0;
  for (size_t i = 0; i < 4; i++) {
    if (at + i >= p->len)
      return perr(p, KVI_ERR_FORMAT, p->len, "unterminated \\u escape (end of input)");
    int h = hexval(p->s[at + i]);
    if (h < 0) {
      p->pos = at + i;
      return expected(p, "a hex digit in \\u escape");
    }
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return true;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* p->pos at the opening quote. Decodes into document memory. */
static bool parse_string(parser *p, jstr *out) {
  size_t start = p->pos;
  size_t i = start + 1;
  /* pass 1: find the closing quote (decoded text is never longer than the raw text) */
  for (;;) {
    if (i >= p->len)
      return perr(p, KVI_ERR_FORMAT, start,
                  "unterminated string (no closing '\"' before end of input)");
    char c = p->s[i];
    if (c == '"') break;
    i += (c == '\\') ? 2 : 1;
  }
  size_t end = i;
  char *o = doc_alloc(p->d, end - start);
  if (!o) return nomem(p);
  size_t n = 0;
  const unsigned char *u = (const unsigned char *)p->s;
  for (i = start + 1; i < end;) {
    unsigned char c = u[i];
    if (c < 0x20) {
      p->pos = i;
      return perr(p, KVI_ERR_FORMAT, i,
                  "control character 0x%02x in string (must be escaped, e.g. \\n or \\u%04x)", c,
                  c);
    }
    if (c >= 0x80) {
      size_t k = utf8_seq(u + i, end - i);
      if (!k) return perr(p, KVI_ERR_FORMAT, i, "invalid UTF-8 byte 0x%02x in string", c);
      memcpy(o + n, u + i, k);
      n += k;
      i += k;
      continue;
    }
    if (c != '\\') {
      o[n++] = (char)c;
      i++;
      continue;
    }
    char e = p->s[i + 1];
    switch (e) {
      case '"':
        o[n++] = '"';
        break;
      case '\\':
        o[n++] = '\\';
        break;
      case '/':
        o[n++] = '/';
        break;
      case 'b':
        o[n++] = '\b';
        break;
      case 'f':
        o[n++] = '\f';
        break;
      case 'n':
        o[n++] = '\n';
        break;
      case 'r':
        o[n++] = '\r';
        break;
      case 't':
        o[n++] = '\t';
        break;
      case 'u': {
        unsigned cp;
        if (!read_hex4(p, i + 2, &cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned lo;
          if (i + 7 >= end || p->s[i + 6] != '\\' || p->s[i + 7] != 'u')
            return perr(p, KVI_ERR_FORMAT, i,
                        "lone high surrogate \\u%04X (expected a \\uDC00-\\uDFFF escape after it)",
                        cp);
          if (!read_hex4(p, i + 8, &lo)) return false;
          if (lo < 0xDC00 || lo > 0xDFFF)
            return perr(p, KVI_ERR_FORMAT, i + 6,
                        "\\u%04X after high surrogate \\u%04X is not a low surrogate", lo, cp);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return perr(p, KVI_ERR_FORMAT, i, "lone low surrogate \\u%04X", cp);
        }
        n += put_utf8(o + n, cp);
        i += 6;
        continue;
      }
      default: {
        p->pos = i + 1;
        char found[32];
        describe(p, i + 1, found, sizeof found);
        return perr(p, KVI_ERR_FORMAT, i, "invalid escape '\\' followed by %s", found);
      }
    }
    i += 2;
  }
  o[n] = 0;
  out->s = o;
  out->len = n;
  p->pos = end + 1;
  return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool parse_number(parser *p, kvi_json *v) {
  size_t start = p->pos, i = start;
  const char *s = p->s;
  bool neg = false, integral = true;
  if (s[i] == '-') neg = true, i++;
  if (i >= p->len || !is_digit(s[i])) {
    p->pos = i;
    return expected(p, "a digit in number");
  }
  if (s[i] == '0' && i + 1 < p->len && is_digit(s[i + 1]))
    return perr(p, KVI_ERR_FORMAT, i, "invalid number: leading zero");
  while (i < p->len && is_digit(s[i])) i++;
  if (i < p->len && s[i] == '.') {
    integral = false;
    i++;
    if (i >= p->len || !is_digit(s[i])) {
      p->pos = i;
      return expected(p, "a digit after '.' in number");
    }
    while (i < p->len && is_digit(s[i])) i++;
  }
  if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
    integral = false;
    i++;
    if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= p->len || !is_digit(s[i])) {
      p->pos = i;
      return expected(p, "a digit in the exponent of number");
    }
    while (i < p->len && is_digit(s[i])) i++;
  }
  size_t n = i - start;
  char small[64];
  char *buf = n < sizeof small ? small : malloc(n + 1);
  if (!buf) return nomem(p);
  memcpy(buf, s + start, n);
  buf[n] = 0;
  char pt = locale_point();
  if (pt != '.') {
    char *dot = strchr(buf, '.');
    if (dot) *dot = pt;
  }
  errno = 0;
  double x = strtod(buf, NULL);
  if (buf != small) free(buf);
  if (isinf(x)) return perr(p, KVI_ERR_FORMAT, start, "number out of the range of a double");
  v->type = KVI_JSON_NUMBER;
  v->num = x;
  if (integral) {
    /* exact int64: accumulate as negative to reach INT64_MIN */
    int64_t acc = 0;
    bool fits = true;
    for (size_t k = start + (neg ? 1 : 0); k < i; k++) {
      int d = s[k] - '0';
      if (acc < (INT64_MIN + d) / 10) {
        fits = false;
        break;
      }
      acc = acc * 10 - d;
    }
    if (fits && !neg && acc == INT64_MIN) fits = false;
    if (fits) {
      v->is_int = true;
      v->ival = neg ? acc : -acc;
    }
  }
  p->pos = i;
  return true;
}

static bool parse_literal(parser *p, const char *word, size_t wlen) {
  if (p->len - p->pos < wlen || memcmp(p->s + p->pos, word, wlen) != 0) {
    char what[32];
    snprintf(what, sizeof what, "'%s'", word);
    /* point at the first mismatching byte */
    size_t k = 0;
    while (p->pos + k < p->len && k < wlen && p->s[p->pos + k] == word[k]) k++;
    p->pos += k;
    return expected(p, what);
  }
  p->pos += wlen;
  return true;
}

static int cmp_entry_key(const void *a, const void *b) {
  const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
  size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
  int c = memcmp(x->key.s, y->key.s, n);
  if (c) return c;
  if (x->key.len != y->key.len) return x->key.len < y->key.len ? -1 : 1;
  return x->key_off < y->key_off ? -1 : (x->key_off > y->key_off);
}

static bool check_duplicates(parser *p, size_t base, size_t n) {
  if (n < 2) return true;
  entry **idx = malloc(n * sizeof *idx);
  if (!idx) return nomem(p);
  for (size_t k = 0; k < n; k++) idx[k] = &p->stk[base + k];
  qsort(idx, n, sizeof *idx, cmp_entry_key);
  const entry *dup = NULL;
  for (size_t k = 1; k < n; k++) {
    if (idx[k]->key.len == idx[k - 1]->key.len &&
        memcmp(idx[k]->key.s, idx[k - 1]->key.s, idx[k]->key.len) == 0 &&
        (!dup || idx[k]->key_off < dup->key_off))
      dup = idx[k];
  }
  bool ok = true;
  if (dup) {
    p->pos = dup->key_off;
    ok = perr(p, KVI_ERR_FORMAT, dup->key_off, "duplicate key \"%.60s\" in object", dup->key.s);
  }
  free(idx);
  return ok;
}

static bool parse_value(parser *p, kvi_json *v);

/* '[' or '{' at p->pos. */
static bool parse_container(parser *p, kvi_json *v, bool obj) {
  if (p->depth >= p->max_depth)
    return perr(p, KVI_ERR_FORMAT, p->pos, "nesting deeper than %d levels", p->max_depth);
  p->depth++;
  p->pos++;
  char close = obj ? '}' : ']';
  size_t base = p->nstk;
  skip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == close) {
    p->pos++;
  } else {
    for (;;) {
      entry e;
      memset(&e, 0, sizeof e);
      skip_ws(p);
      if (obj) {
        if (p->pos >= p->len || p->s[p->pos] != '"') {
          if (p->pos < p->len && p->s[p->pos] == '}' && p->nstk > base)
            return perr(p, KVI_ERR_FORMAT, p->pos, "trailing comma before '}'");
          return expected(p, p->nstk > base ? "a string key after ','" : "a string key or '}'");
        }
        e.key_off = p->pos;
        if (!parse_string(p, &e.key)) return false;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') return expected(p, "':' after object key");
        p->pos++;
      } else if (p->pos < p->len && p->s[p->pos] == ']' && p->nstk > base) {
        return perr(p, KVI_ERR_FORMAT, p->pos, "trailing comma before ']'");
      }
      if (!parse_value(p, &e.v)) return false;
      if (!push(p, &e)) return false;
      skip_ws(p);
      if (p->pos < p->len && p->s[p->pos] == ',') {
        p->pos++;
        continue;
      }
      if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        break;
      }
      return expected(p, obj ? "',' or '}' after object member" : "',' or ']' after array element");
    }
  }
  size_t n = p->nstk - base;
  if (obj && !check_duplicates(p, base, n)) return false;
  v->type = obj ? KVI_JSON_OBJECT : KVI_JSON_ARRAY;
  v->n = n;
  if (n) {
    v->items = doc_alloc(p->d, n * sizeof *v->items);
    if (!v->items) return nomem(p);
    if (obj) {
      v->keys = doc_alloc(p->d, n * sizeof *v->keys);
      if (!v->keys) return nomem(p);
    }
    for (size_t k = 0; k < n; k++) {
      v->items[k] = p->stk[base + k].v;
      if (obj) v->keys[k] = p->stk[base + k].key;
    }
  }
  p->nstk = base;
  p->depth--;
  return true;
}

static bool parse_value(parser *p, kvi_json *v) {
  memset(v, 0, sizeof *v);
  skip_ws(p);
  if (p->pos >= p->len) return expected(p, "a value");
  char c = p->s[p->pos];
  switch (c) {
    case '{':
      return parse_container(p, v, true);
    case '[':
      return parse_container(p, v, false);
    case '"': {
      jstr js;
      if (!parse_string(p, &js)) return false;
      v->type = KVI_JSON_STRING;
      v->str = js.s;
      v->n = js.len;
      return true;
    }
    case 't':
      v->type = KVI_JSON_BOOL;
      v->b = true;
      return parse_literal(p, "true", 4);
    case 'f':
      v->type = KVI_JSON_BOOL;
      return parse_literal(p, "false", 5);
    case 'n':
      v->type = KVI_JSON_NULL;
      return parse_literal(p, "null", 4);
    default:
      if (c == '-' || is_digit(c)) return parse_number(p, v);
      return expected(p, "a value (object, array, string, number, true, false or null)");
  }
}

kvi_status kvi_json_parse_ex(kvi_json **out, const char *s, size_t len, int max_depth,
                             size_t *err_offset) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "kvi_json_parse: NULL output pointer");
  *out = NULL;
  if (!s && len) return kvi_fail(KVI_ERR_ARG, "kvi_json_parse: NULL text with length %zu", len);
  parser p;
  memset(&p, 0, sizeof p);
  p.s = s ? s : "";
  p.len = len;
  /* recursion uses the C stack: cap the depth far below what would exhaust it */
  p.max_depth = max_depth > 0 ? (max_depth < 4096 ? max_depth : 4096) : KVI_JSON_MAX_DEPTH;
  p.err = KVI_OK;
  p.d = calloc(1, sizeof *p.d);
  if (!p.d) return kvi_fail(KVI_ERR_NOMEM, "JSON: out of memory");
  if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) p.pos = 3; /* UTF-8 byte order mark */
  kvi_json root;
  if (parse_value(&p, &root)) {
    skip_ws(&p);
    if (p.pos < p.len) expected(&p, "end of input after the top-level value");
  }
  free(p.stk);
  if (p.err != KVI_OK) {
    doc_free(p.d);
    if (err_offset) *err_offset = p.err_off;
    if (p.err == KVI_ERR_NOMEM) return kvi_fail(KVI_ERR_NOMEM, "JSON: out of memory while parsing");
    size_t line = 1, col = 1;
    for (size_t k = 0; k < p.err_off && k < len; k++) {
      if (s[k] == '\n')
        line++, col = 1;
      else
        col++;
    }
    return kvi_fail(p.err, "JSON: %s at byte %zu (line %zu, column %zu)", p.msg, p.err_off, line,
                    col);
  }
  p.d->root = root;
  p.d->root.is_root = true;
  *out = &p.d->root;
  return KVI_OK;
}

kvi_status kvi_json_parse(kvi_json **out, const char *s, size_t len) {
  return kvi_json_parse_ex(out, s, len, 0, NULL);
}

kvi_status kvi_json_parse_file(kvi_json **out, const char *path) {
  if (out) *out = NULL;
  if (!out || !path) return kvi_fail(KVI_ERR_ARG, "kvi_json_parse_file: NULL argument");
  char *text;
  size_t len;
  kvi_status st = kvi_read_file(&text, &len, path, 0);
  if (st != KVI_OK) return st;
  st = kvi_json_parse(out, text, len);
  free(text);
  if (st != KVI_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kvi_last_error());
    return kvi_fail(st, "%s: %s", path, msg);
  }
  return KVI_OK;
}

/* ---- accessors ------------------------------------------------------------------------- */

kvi_json_type kvi_json_kind(const kvi_json *v) { return v ? v->type : KVI_JSON_NULL; }

const char *kvi_json_type_name(kvi_json_type t) {
  switch (t) {
    case KVI_JSON_NULL:
      return "null";
    case KVI_JSON_BOOL:
      return "boolean";
    case KVI_JSON_NUMBER:
      return "number";
    case KVI_JSON_STRING:
      return "string";
    case KVI_JSON_ARRAY:
      return "array";
    case KVI_JSON_OBJECT:
      return "object";
  }
  return "unknown";
}

size_t kvi_json_len(const kvi_json *v) {
  return (v && (v->type == KVI_JSON_ARRAY || v->type == KVI_JSON_OBJECT)) ? v->n : 0;
}

const kvi_json *kvi_json_at(const kvi_json *v, size_t i) {
  return (i < kvi_json_len(v)) ? &v->items[i] : NULL;
}

const char *kvi_json_key_at(const kvi_json *v, size_t i) {
  return (v && v->type == KVI_JSON_OBJECT && i < v->n) ? v->keys[i].s : NULL;
}

size_t kvi_json_key_len(const kvi_json *v, size_t i) {
  return (v && v->type == KVI_JSON_OBJECT && i < v->n) ? v->keys[i].len : 0;
}

const kvi_json *kvi_json_get(const kvi_json *obj, const char *key) {
  if (!obj || obj->type != KVI_JSON_OBJECT || !key) return NULL;
  size_t kl = strlen(key);
  for (size_t i = 0; i < obj->n; i++)
    if (obj->keys[i].len == kl && memcmp(obj->keys[i].s, key, kl) == 0) return &obj->items[i];
  return NULL;
}

double kvi_json_num(const kvi_json *v) {
  return (v && v->type == KVI_JSON_NUMBER) ? v->num : (double)NAN;
}

bool kvi_json_int(const kvi_json *v, int64_t *out) {
  if (!v || v->type != KVI_JSON_NUMBER || !v->is_int) return false;
  if (out) *out = v->ival;
  return true;
}

const char *kvi_json_str(const kvi_json *v) {
  return (v && v->type == KVI_JSON_STRING) ? v->str : NULL;
}

size_t kvi_json_str_len(const kvi_json *v) { return (v && v->type == KVI_JSON_STRING) ? v->n : 0; }

bool kvi_json_bool(const kvi_json *v) { return v && v->type == KVI_JSON_BOOL && v->b; }
bool kvi_json_is_null(const kvi_json *v) { return v && v->type == KVI_JSON_NULL; }

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
      if (v->is_int)
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
