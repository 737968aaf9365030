/* kronvi report --png: one picture per weight layer of which weights, rows and columns survive
 * pruning (log alpha <= threshold, the rule of kvi_sparsity_compute). The picture has a row of
 * pixels per row of W (an input: a unit of the layer below, or a convolution tap (ky, kx, ci)) and
 * a column per column of W (an output unit or filter):
 *   white       a kept weight
 *   black       a pruned weight whose row and column keep other weights
 *   dark red    a row with no weight left (the input is not used)
 *   dark blue   a column with no weight left (the unit is dead)
 *   purple      both
 * A side shorter than 128 pixels is stretched by an integer factor (at most 16). */
#define _XOPEN_SOURCE 700 /* stat */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static int stretch(int n) {
  const int s = n < 128 ? (128 + n - 1) / n : 1;
  return s > 16 ? 16 : s;
}

/* The picture of one layer from its keep mask (n, m). */
static kvi_status layer_png(const char *path, const unsigned char *keep, int n, int m) {
  unsigned char *row = calloc((size_t)n, 1), *col = calloc((size_t)m, 1);
  const int sy = stretch(n), sx = stretch(m), H = n * sy, W = m * sx;
  unsigned char *px = malloc((size_t)H * W * 3);
  if (!row || !col || !px) {
    free(row), free(col), free(px);
    return kvi_fail(KVI_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      if (keep[(size_t)i * m + j]) row[i] = col[j] = 1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      const int i = y / sy, j = x / sx;
      unsigned char c[3] = {0, 0, 0};
      if (keep[(size_t)i * m + j])
        c[0] = c[1] = c[2] = 255;
      else if (!row[i] && !col[j])
        c[0] = 90, c[1] = 30, c[2] = 110;
      else if (!row[i])
        c[0] = 130, c[1] = 25, c[2] = 25;
      else if (!col[j])
        c[0] = 25, c[1] = 50, c[2] = 140;
      memcpy(px + ((size_t)y * W + x) * 3, c, 3);
    }
  kvi_status s = cli_write_png(path, px, W, H, 3);
  free(row), free(col), free(px);
  return s;
}

int cli_report_png(kvi_net *net, double threshold, const char *prefix) {
  struct stat st;
  const size_t len = strlen(prefix);
  const bool dir =
      (len && prefix[len - 1] == '/') || (stat(prefix, &st) == 0 && S_ISDIR(st.st_mode));
  int nd = 0;
  kvi_net_dense(net, 0, &nd);
  for (int k = 0; k < nd; k++) {
    const kvi_dense *l = kvi_net_dense(net, k, NULL);
    char path[4096];
    if (snprintf(path, sizeof path, "%s%s%s.png", prefix, dir && prefix[len - 1] != '/' ? "/" : "",
                 l->name) >= (int)sizeof path) {
      fprintf(stderr, "kronvi: --png %s: path too long\n", prefix);
      return 1;
    }
    if (!cli_check_writable("--png", path)) return 1;
    const size_t nm = (size_t)l->n * l->m;
    kvi_real *la = kvi_alloc(nm * sizeof *la);
    unsigned char *keep = malloc(nm);
    kvi_status s = la && keep ? kvi_dense_log_alpha(la, net->params, l) : KVI_ERR_NOMEM;
    size_t kept = 0;
    for (size_t i = 0; !s && i < nm; i++) kept += keep[i] = !(la[i] > threshold);
    if (!s) s = layer_png(path, keep, l->n, l->m);
    kvi_free(la), free(keep);
    if (s) return cli_error("--png");
    printf("wrote %s: %s, %d x %d, %zu of %zu weights kept\n", path, l->name, l->n, l->m, kept, nm);
  }
  return 0;
}
