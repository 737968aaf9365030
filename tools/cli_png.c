/* PNG pictures of the command line (vae sample / reconstruct, report --png): libpng encodes into
 * memory, kvi_write_file_atomic puts the file in place (a failure leaves nothing behind). */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
  unsigned char *data;
  size_t len, cap;
  bool oom;
  char msg[128];
} png_mem;

static void png_mem_write(png_structp png, png_bytep src, png_size_t n) {
  png_mem *m = png_get_io_ptr(png);
  if (m->oom) return;
  if (m->len + n > m->cap) {
    size_t cap = m->cap ? m->cap : 1 << 16;
    while (cap < m->len + n) cap *= 2;
    unsigned char *d = realloc(m->data, cap);
    if (!d) {
      m->oom = true;
      png_error(png, "out of memory");
    }
    m->data = d, m->cap = cap;
  }
  memcpy(m->data + m->len, src, n);
  m->len += n;
}

static void png_mem_flush(png_structp png) { (void)png; }

static void png_on_error(png_structp png, png_const_charp msg) {
  png_mem *m = png_get_error_ptr(png);
  snprintf(m->msg, sizeof m->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Encodes rows of `channels` (1: gray, 3: RGB) bytes per pixel into m. */
static bool png_encode(png_mem *m, const unsigned char *px, int w, int h, int channels) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, m, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    snprintf(m->msg, sizeof m->msg, "libpng could not start");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, m, png_mem_write, png_mem_flush);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + (size_t)y * w * channels));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

kvi_status cli_write_png(const char *path, const unsigned char *px, int w, int h, int channels) {
  if (!path || !px || w < 1 || h < 1 || w > 1 << 15 || h > 1 << 15 ||
      (channels != 1 && channels != 3))
    return kvi_fail(KVI_ERR_ARG, "PNG of %d x %d pixels, %d channels: bad size", w, h, channels);
  png_mem m;
  memset(&m, 0, sizeof m);
  kvi_status s = png_encode(&m, px, w, h, channels)
                     ? kvi_write_file_atomic(path, m.data, m.len)
                     : kvi_fail(KVI_ERR_IO, "%s: libpng: %s", path, m.msg);
  free(m.data);
  return s;
}

kvi_status cli_png_grid(const char *path, const kvi_real *img, int n, int h, int w, int cols,
                        int scale) {
  if (n < 1 || h < 1 || w < 1 || cols < 1 || scale < 1)
    return kvi_fail(KVI_ERR_ARG, "image grid: bad sizes");
  if (cols > n) cols = n;
  const int pad = 2, rows = (n + cols - 1) / cols;
  const int64_t W = pad + (int64_t)cols * (w * scale + pad),
                H = pad + (int64_t)rows * (h * scale + pad);
  if (W > 1 << 15 || H > 1 << 15)
    return kvi_fail(KVI_ERR_ARG,
                    "image grid of %lld x %lld pixels is too large (fewer images or "
                    "a smaller --scale)",
                    (long long)W, (long long)H);
  unsigned char *px = malloc((size_t)W * H);
  if (!px) return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  memset(px, 64, (size_t)W * H); /* gray frame */
  for (int k = 0; k < n; k++) {
    const int r0 = pad + (k / cols) * (h * scale + pad), c0 = pad + (k % cols) * (w * scale + pad);
    for (int y = 0; y < h * scale; y++)
      for (int x = 0; x < w * scale; x++) {
        double v = img[(size_t)k * h * w + (size_t)(y / scale) * w + x / scale];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        px[(size_t)(r0 + y) * W + c0 + x] = (unsigned char)(255.0 * v + 0.5);
      }
  }
  kvi_status s = cli_write_png(path, px, (int)W, (int)H, 1);
  free(px);
  return s;
}
