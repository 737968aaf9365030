/* Atomic file writer (kvi_atomic_*, kvi_write_file_atomic) and whole-file reader
 * (kvi_read_file), used by the safetensors and JSON code and by the callers of the module.
 *
 * Atomic replacement: write "<path>.tmp.<pid>" with checked writes, fflush + fsync + close it,
 * rename it over the target, then fsync the directory so the rename survives a crash. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "kronvi/io.h"
#include "io/io_internal.h"

/* ======================================================================================= */
/* atomic file writer                                                                      */
/* ======================================================================================= */

struct kvi_atomic_file {
  FILE *fp;
  char *path;
  char *tmp;
  kvi_status err; /* first write failure, replayed by commit */
  char msg[400];
};

/* Directory part of path ("." if none). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return kvi__dup_str(".");
  size_t n = (slash == path) ? 1 : (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, path, n);
  d[n] = 0;
  return d;
}

static void atomic_release(kvi_atomic_file *f, bool remove_tmp) {
  if (f->fp) fclose(f->fp);
  if (remove_tmp && f->tmp) remove(f->tmp);
  free(f->path);
  free(f->tmp);
  free(f);
}

void kvi_atomic_abort(kvi_atomic_file *f) {
  if (f) atomic_release(f, true);
}

kvi_status kvi_atomic_open(kvi_atomic_file **out, const char *path) {
  if (!out) return kvi_fail(KVI_ERR_ARG, "kvi_atomic_open: NULL output pointer");
  *out = NULL;
  if (!path || !path[0]) return kvi_fail(KVI_ERR_ARG, "kvi_atomic_open: empty file name");
  struct stat sb;
  bool keep_mode = false;
  if (stat(path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode))
      return kvi_fail(KVI_ERR_IO, "%s: is a directory, cannot write a file there", path);
    keep_mode = S_ISREG(sb.st_mode);
  }
  kvi_atomic_file *f = calloc(1, sizeof *f);
  size_t cap = strlen(path) + 48;
  if (f) f->path = kvi__dup_str(path);
  if (f) f->tmp = malloc(cap);
  if (!f || !f->path || !f->tmp) {
    if (f) atomic_release(f, false);
    return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory", path);
  }
  long pid = (long)getpid();
  int err = 0;
  for (int k = 0; k < 100; k++) {
    if (k == 0)
      snprintf(f->tmp, cap, "%s.tmp.%ld", path, pid);
    else
      snprintf(f->tmp, cap, "%s.tmp.%ld.%d", path, pid, k);
    f->fp = fopen(f->tmp, "wbx"); /* C11 exclusive create: never clobbers another writer */
    if (f->fp) break;
    err = errno;
    if (err != EEXIST) break;
  }
  if (!f->fp) {
    char *dir = dir_of(path);
    const char *hint = "";
    char hbuf[300];
    if (err == ENOENT) {
      snprintf(hbuf, sizeof hbuf, "\nHINT: does the directory '%s' exist?", dir ? dir : ".");
      hint = hbuf;
    } else if (err == EACCES || err == EROFS) {
      snprintf(hbuf, sizeof hbuf, "\nHINT: the directory '%s' is not writable", dir ? dir : ".");
      hint = hbuf;
    }
    kvi_status st = kvi_fail(KVI_ERR_IO, "%s: cannot create temporary file '%s': %s%s", path,
                             f->tmp, strerror(err), hint);
    free(dir);
    atomic_release(f, false);
    return st;
  }
  if (keep_mode) (void)fchmod(fileno(f->fp), sb.st_mode & 07777); /* best effort */
  f->err = KVI_OK;
  *out = f;
  return KVI_OK;
}

static kvi_status atomic_fail(kvi_atomic_file *f, const char *what, int err) {
  if (f->err == KVI_OK) {
    f->err = KVI_ERR_IO;
    snprintf(f->msg, sizeof f->msg, "%s: %s '%s': %s%s", f->path, what, f->tmp, strerror(err),
             err == ENOSPC ? "\nHINT: the disk is full" : "");
  }
  return kvi_fail(f->err, "%s", f->msg);
}

kvi_status kvi_atomic_write(kvi_atomic_file *f, const void *data, size_t len) {
  if (!f) return kvi_fail(KVI_ERR_ARG, "kvi_atomic_write: NULL file");
  if (f->err != KVI_OK) return kvi_fail(f->err, "%s", f->msg);
  if (len == 0) return KVI_OK;
  if (!data) {
    f->err = KVI_ERR_ARG;
    snprintf(f->msg, sizeof f->msg, "%s: kvi_atomic_write given NULL data of %zu bytes", f->path,
             len);
    return kvi_fail(f->err, "%s", f->msg);
  }
  errno = 0;
  if (fwrite(data, 1, len, f->fp) != len)
    return atomic_fail(f, "write failed on", errno ? errno : EIO);
  return KVI_OK;
}

kvi_status kvi_atomic_commit(kvi_atomic_file *f) {
  if (!f) return kvi_fail(KVI_ERR_ARG, "kvi_atomic_commit: NULL file");
  kvi_status st = KVI_OK;
  if (f->err != KVI_OK) {
    st = kvi_fail(f->err, "%s", f->msg);
    atomic_release(f, true);
    return st;
  }
  errno = 0;
  if (fflush(f->fp) != 0) {
    st = atomic_fail(f, "write failed on", errno ? errno : EIO);
  } else if (fsync(fileno(f->fp)) != 0) {
    st = atomic_fail(f, "fsync failed on", errno);
  }
  FILE *fp = f->fp;
  f->fp = NULL;
  if (fclose(fp) != 0 && st == KVI_OK) st = atomic_fail(f, "close failed on", errno);
  if (st == KVI_OK && rename(f->tmp, f->path) != 0) st = atomic_fail(f, "cannot rename", errno);
  if (st != KVI_OK) {
    atomic_release(f, true);
    return st;
  }
  /* make the rename itself durable */
  char *dir = dir_of(f->path);
  if (!dir) {
    atomic_release(f, false);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int err = 0;
  if (fd < 0 || fsync(fd) != 0) err = errno;
  if (fd >= 0) close(fd);
  /* some file systems cannot fsync a directory (EINVAL): nothing more can be done there */
  if (err && err != EINVAL && err != ENOTSUP)
    st = kvi_fail(KVI_ERR_IO,
                  "%s: the file was replaced, but fsync of directory '%s' failed: %s (the "
                  "rename may not survive a crash)",
                  f->path, dir, strerror(err));
  free(dir);
  atomic_release(f, false);
  return st;
}

kvi_status kvi_write_file_atomic(const char *path, const void *data, size_t len) {
  kvi_atomic_file *f;
  kvi_status st = kvi_atomic_open(&f, path);
  if (st != KVI_OK) return st;
  st = kvi_atomic_write(f, data, len);
  if (st != KVI_OK) {
    kvi_atomic_abort(f);
    return st;
  }
  return kvi_atomic_commit(f);
}

/* ======================================================================================= */
/* whole-file reader                                                                       */
/* ======================================================================================= */

/* Opens a regular file for reading and returns its size. */
kvi_status kvi__open_regular(FILE **fp, long long *size, const char *path) {
  *fp = NULL;
  if (!path || !path[0]) return kvi_fail(KVI_ERR_ARG, "empty file name");
  FILE *f = fopen(path, "rb");
  if (!f)
    return kvi_fail(
        KVI_ERR_IO, "%s: cannot open: %s%s", path, strerror(errno),
        errno == ENOENT ? "\nHINT: check the path (relative to the current directory)" : "");
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0) {
    int e = errno;
    fclose(f);
    return kvi_fail(KVI_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    fclose(f);
    return kvi_fail(KVI_ERR_IO, "%s: not a regular file%s", path,
                    S_ISDIR(sb.st_mode) ? " (it is a directory)" : "");
  }
  *fp = f;
  *size = (long long)sb.st_size;
  return KVI_OK;
}

kvi_status kvi_read_file(char **data, size_t *len, const char *path, size_t max_len) {
  if (!data || !len) return kvi_fail(KVI_ERR_ARG, "kvi_read_file: NULL output pointer");
  *data = NULL;
  *len = 0;
  FILE *f;
  long long size;
  kvi_status st = kvi__open_regular(&f, &size, path);
  if (st != KVI_OK) return st;
  if ((max_len && (unsigned long long)size > max_len) || (unsigned long long)size >= SIZE_MAX) {
    fclose(f);
    return kvi_fail(KVI_ERR_FORMAT, "%s: file is %lld bytes, more than the limit of %zu", path,
                    size, max_len);
  }
  char *buf = malloc((size_t)size + 1);
  if (!buf) {
    fclose(f);
    return kvi_fail(KVI_ERR_NOMEM, "%s: out of memory reading %lld bytes", path, size);
  }
  size_t got = fread(buf, 1, (size_t)size, f);
  int e = ferror(f) ? errno : 0;
  fclose(f);
  if (got != (size_t)size) {
    free(buf);
    return kvi_fail(KVI_ERR_IO, "%s: read %zu of %lld bytes%s%s", path, got, size,
                    e ? ": " : " (file shrank while reading?)", e ? strerror(e) : "");
  }
  buf[got] = 0;
  *data = buf;
  *len = got;
  return KVI_OK;
}
