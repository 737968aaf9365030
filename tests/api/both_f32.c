/* One program with both libraries (tests/api/install.sh): this file uses libkronvi (kvi_...),
 * both_f64.c libkronvi_f64 (kvid_...). Each trains a tiny network and checks its precision. */
#include <kronvi/kronvi.h>
#include <stdio.h>
#include <string.h>

int train_f64(void); /* both_f64.c */

int main(void) {
  float x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
  int32_t y[4] = {0, 1, 1, 0};
  kvi_dset *ds = NULL;
  kvi_network *net = NULL;
  kvi_learner *l = NULL;
  kvi_scores sc;
  int rc = kvi_dset_create(&ds, x, 4, 2, y, 2) || kvi_network_create(&net, "2-8-2", 0, "batch=4") ||
           kvi_learner_create(&l, net, NULL, "epochs=2 batch=4") ||
           kvi_learner_fit(l, ds, NULL, NULL) || kvi_network_evaluate(net, ds, 2, 1, 3, &sc);
  const char *v = kvi_version(NULL, NULL, NULL);
  printf("f32 library: %s, %s\n", v, rc ? kvi_error_message() : "trained");
  rc = rc || strstr(v, "f32") == NULL;
  kvi_learner_free(l), kvi_network_free(net), kvi_dset_free(ds);
  return rc || train_f64();
}
