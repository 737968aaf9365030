/* JSON DOM parser (RFC 8259) and the accessors of parsed values (see json_write.c for the
 * writer).
 *
 * Parser layout: a document owns a list of memory chunks; every node, string and child array
 * lives in them, so kvi_json_free releases everything at once. Children of an array or object
 * are stored contiguously (items[0..n)), keys of an object in a parallel array (the node layout
 * is in io_internal.h). While a container is parsed its children sit on one shared scratch
 * stack and are copied into the document when the container closes, so nesting costs no extra
 * allocations per level.
 *
 * Locale: strtod follows the C locale's decimal point; if a program has switched LC_NUMERIC to
 * a locale with ',' the '.' of a number is swapped for it before conversion. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kronvi/io.h"
#include "io/io_internal.h"

/* ======================================================================================= */
/* DOM                                                                                     */
/* ======================================================================================= */

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
  kvi__jstr key;
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
static bool parse_string(parser *p, kvi__jstr *out) {
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
      size_t k = kvi__utf8_seq(u + i, end - i);
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
  char pt = kvi__locale_point();
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
      kvi__jstr js;
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
