/* One program with both libraries (tests/api/install.sh). This file is compiled twice: as is, it
 * is the libkronvi half (kvi_... names) and main; with -DKVI_BOTH_F64 the libkronvi_f64 half
 * (KVI_DOUBLE: the same calls named kvid_...). Each half trains a tiny network and checks the
 * precision its library reports. */
#ifdef KVI_BOTH_F64
#define KVI_DOUBLE 1
#define KVI_BOTH_TRAIN train_f64
#define KVI_BOTH_PREC "f64"
#else
#define KVI_BOTH_TRAIN train_f32
#define KVI_BOTH_PREC "f32"
#endif
#include <kronvi/kronvi.h>
#include <stdio.h>
#include <string.h>

int KVI_BOTH_TRAIN(void);

int KVI_BOTH_TRAIN(void) {
  kvi_real x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
  int32_t y[4] = {0, 1, 1, 0};
  kvi_dset *ds = NULL;
  kvi_network *net = NULL;
  kvi_learner *l = NULL;
  kvi_scores sc;
  int rc = kvi_dset_create(&ds, x, 4, 2, y, 2) || kvi_network_create(&net, "2-8-2", 0, "batch=4") ||
           kvi_learner_create(&l, net, NULL, "epochs=2 batch=4") ||
           kvi_learner_fit(l, ds, NULL, NULL) || kvi_network_evaluate(net, ds, 2, 1, 3, &sc);
  const char *v = kvi_version(NULL, NULL, NULL);
  printf(KVI_BOTH_PREC " library: %s, %s\n", v, rc ? kvi_error_message() : "trained");
  rc = rc || strstr(v, KVI_BOTH_PREC) == NULL;
  kvi_learner_free(l), kvi_network_free(net), kvi_dset_free(ds);
  return rc;
}

#ifndef KVI_BOTH_F64
int train_f64(void); /* the other compilation */

int main(void) { return train_f32() || train_f64(); }
#endif
