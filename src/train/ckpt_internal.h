/* Private to the checkpoint code (checkpoint.c writes, checkpoint_load.c reads). */
#ifndef KRONVI_CKPT_INTERNAL_H
#define KRONVI_CKPT_INTERNAL_H

#include "kronvi/io.h"
#include "kronvi/train.h"

/* Version 2: optimizer state per view by name, noise precision as a parameter, data
 * preparation recorded. Version 1 (flat "optim.m"/"optim.v" with the writer's alignment gaps)
 * is still read. */
#define KVI_CKPT_VERSION 2

/* Writes the keys of a net's configuration into the open JSON object. */
void kvi__ckpt_net_json(kvi_json_buf *jb, const kvi_net *net);

/* Reads a number / integer field of obj, checked against [lo, hi]; absent, not a number, NaN or
 * out of range fails with a message naming "<where>.<key>". */
kvi_status kvi__ckpt_num(double *out, const kvi_json *obj, const char *where, const char *key,
                         double lo, double hi, const char *path);
kvi_status kvi__ckpt_int(int64_t *out, const kvi_json *obj, const char *where, const char *key,
                         int64_t lo, int64_t hi, const char *path);
/* An opened checkpoint: the file and its parsed "kronvi" metadata. */
typedef struct {
  kvi_st_file *f;
  kvi_json *root;
  int version;
} kvi__ckpt_file;
/* Opens path, parses the "kronvi" metadata and checks its version (1 to KVI_CKPT_VERSION). */
kvi_status kvi__ckpt_open(kvi__ckpt_file *c, const char *path);
void kvi__ckpt_close(kvi__ckpt_file *c);

/* Reads a seed written as a decimal string. */
kvi_status kvi__ckpt_seed(uint64_t *out, const kvi_json *obj, const char *where, const char *key,
                          const char *path);
/* Reads the net configuration written by kvi__ckpt_net_json. */
kvi_status kvi__ckpt_read_net(kvi_net_config *nc, const char **arch, int *in_size,
                              const kvi_json *obj, const char *where, const char *path);

/* Writes the optimizer kind and its first-order settings (lr, Adam's and SGD's constants, weight
 * decay) as keys of the open JSON object. */
void kvi__ckpt_opt_json(kvi_json_buf *jb, const kvi_opt_config *o);

#endif
