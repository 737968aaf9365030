/* File reading for the loaders: zlib's gz* functions read gzipped and plain files alike, so
 * every loader accepts both. Messages name the file and what went wrong. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/data_internal.h"

/* gzerror's message without the "<path>: " prefix zlib puts in front */
static const char *kvi__gzmsg(kvi__reader *r, int *errnum) {
  const char *msg = gzerror((gzFile)r->gz, errnum);
  size_t lp = strlen(r->path);
  if (msg && strncmp(msg, r->path, lp) == 0 && msg[lp] == ':' && msg[lp + 1] == ' ') msg += lp + 2;
  return msg ? msg : "unknown zlib error";
}

kvi_status kvi__reader_open(kvi__reader *r, const char *path, const char *what) {
  r->gz = NULL;
  r->path = path;
  r->what = what;
  r->gzipped = false;
  if (!path || !path[0]) return kvi_fail(KVI_ERR_ARG, "%s: no path given", what);
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return kvi_fail(KVI_ERR_IO, "cannot read %s '%s': it is a directory, expected a file", what,
                    path);
  errno = 0;
  gzFile gz = gzopen(path, "rb");
  if (!gz) {
    int e = errno;
    return kvi_fail(KVI_ERR_IO, "cannot open %s '%s': %s\nHINT: check the path (--data DIR)", what,
                    path, e ? strerror(e) : "out of memory");
  }
  gzbuffer(gz, 1u << 17);
  r->gz = gz;
  r->gzipped = gzdirect(gz) == 0;
  return KVI_OK;
}

void kvi__reader_close(kvi__reader *r) {
  if (r->gz) gzclose_r((gzFile)r->gz);
  r->gz = NULL;
}

kvi_status kvi__reader_read(kvi__reader *r, void *buf, size_t n, size_t *got) {
  gzFile gz = (gzFile)r->gz;
  unsigned char *p = buf;
  size_t done = 0;
  *got = 0;
  while (done < n) {
    size_t want = n - done;
    if (want > (1u << 30)) want = 1u << 30;
    int k = gzread(gz, p + done, (unsigned)want);
    if (k < 0) {
      int errnum = 0;
      const char *msg = kvi__gzmsg(r, &errnum);
      if (errnum == Z_ERRNO)
        return kvi_fail(KVI_ERR_IO, "read error in %s '%s': %s", r->what, r->path, strerror(errno));
      return kvi_fail(KVI_ERR_FORMAT,
                      "%s '%s': corrupt gzip data (%s)\nHINT: test the file with `gzip -t`; "
                      "re-download it if that fails",
                      r->what, r->path, msg);
    }
    if (k == 0) break;
    done += (size_t)k;
  }
  *got = done;
  return KVI_OK;
}

kvi_status kvi__reader_read_all(kvi__reader *r, size_t max, unsigned char **buf, size_t *got) {
  size_t cap = max < (1u << 20) ? max : (1u << 20), len = 0;
  *buf = NULL;
  *got = 0;
  unsigned char *b = malloc(cap + 1);
  if (!b) return kvi_fail(KVI_ERR_NOMEM, "out of memory reading %s '%s'", r->what, r->path);
  while (max > 0) {
    if (len == cap) {
      if (cap >= max) break; /* read max bytes: the caller checks for more */
      size_t ncap = cap > max / 2 ? max : cap * 2;
      unsigned char *nb = realloc(b, ncap + 1);
      if (!nb) {
        free(b);
        return kvi_fail(KVI_ERR_NOMEM, "out of memory reading %s '%s' (%zu bytes)", r->what,
                        r->path, ncap);
      }
      b = nb;
      cap = ncap;
    }
    size_t g = 0;
    kvi_status s = kvi__reader_read(r, b + len, cap - len, &g);
    if (s != KVI_OK) {
      free(b);
      return s;
    }
    len += g;
    if (len < cap) break; /* end of data */
  }
  b[len] = 0;
  *buf = b;
  *got = len;
  return KVI_OK;
}

kvi_status kvi__reader_expect_end(kvi__reader *r, const char *hint) {
  unsigned char extra[16];
  size_t g = 0;
  kvi_status s = kvi__reader_read(r, extra, sizeof extra, &g);
  if (s != KVI_OK) return s;
  if (g)
    return kvi_fail(KVI_ERR_FORMAT,
                    "%s '%s' has more data than its header declares (trailing bytes)%s%s", r->what,
                    r->path, hint ? "\nHINT: " : "", hint ? hint : "");
  /* a gzip stream cut inside its 8-byte trailer still returned all the data */
  int errnum = 0;
  const char *msg = kvi__gzmsg(r, &errnum);
  if (errnum == Z_BUF_ERROR)
    return kvi_fail(KVI_ERR_FORMAT,
                    "%s '%s': gzip stream is truncated (%s)\nHINT: the download may be "
                    "incomplete; test the file with `gzip -t`",
                    r->what, r->path, msg);
  return KVI_OK;
}

bool kvi__path_join(char *out, size_t cap, const char *dir, const char *name) {
  size_t ld = strlen(dir);
  bool slash = ld > 0 && dir[ld - 1] == '/';
  int k = snprintf(out, cap, "%s%s%s", dir, (slash || ld == 0) ? "" : "/", name);
  return k >= 0 && (size_t)k < cap;
}

bool kvi__file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool kvi__dir_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void kvi__byte_scale(kvi_real lut[256]) {
  for (int i = 0; i < 256; i++) lut[i] = (kvi_real)((double)i / 255.0);
}
