/* Single-precision build (what the CLI uses): kvi_st_read_reals converts F64 and F32 tensors into
 * float, rounding F64 to nearest, and refuses an F64 value outside float range instead of
 * turning it into an infinity. */
#include <float.h>

#include "kronvi/io.h"
#include "kvi_test.h"

int main(void) {
  CHECK(sizeof(kvi_real) == sizeof(float));
  char path[512];
  snprintf(path, sizeof path, "%s/test32_st.safetensors", kvi_test_dir());
  const double d[4] = {0.1, -2.5, 1e-300, 3.0e38};
  const float f[3] = {1.5f, -0.0f, FLT_MAX};
  const double big[2] = {1.0, 1e39};
  kvi_st_tensor t[3] = {
      {"d", "F64", 2, {2, 2}, d}, {"f", "F32", 1, {3}, f}, {"big", "F64", 1, {2}, big}};
  CHECK_OK(kvi_safetensors_write(path, t, 3, NULL, NULL, 0));
  kvi_st_file *st = NULL;
  CHECK_OK(kvi_safetensors_open(&st, path));
  float out[4] = {0};
  CHECK_OK(kvi_st_read_reals(out, 4, st, "d"));
  CHECK(out[0] == 0.1f && out[1] == -2.5f && out[2] == 0.0f && out[3] == 3.0e38f);
  CHECK_OK(kvi_st_read_reals(out, 3, st, "f"));
  CHECK(memcmp(out, f, sizeof f) == 0);
  CHECK_FAILS(kvi_st_read_reals(out, 2, st, "big"));
  CHECK(kvi_st_read_reals(out, 2, st, "big") == KVI_ERR_NONFINITE);
  CHECK(strstr(kvi_last_error(), "outside the range of float") != NULL);
  kvi_safetensors_close(st);
  remove(path);
  TEST_MAIN_END();
}
