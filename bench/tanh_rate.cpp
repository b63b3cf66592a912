// The transcendental rate of the arithmetic bound (bench/seed_sweep.py, ``trans_rate``): the
// kernels' own tanh (simd.h's vtanh_clamped, XLA:CPU's rational approximation, the one every
// tanh and sigmoid gate of the native kernels evaluates) over n independent floats in cache,
// reps times, at the instruction set's full vector width. Built as the kernels are (their
// flags and -march), with simd.h from latchlab/engine/native on the include path.
#include <stdint.h>

#include "simd.h"

// Eight vectors at a time, their instructions interleaved: the fastest of 1, 2, 4 and 8 on a
// Zen 3 (1.95, 2.10, 2.16 and 2.16-2.25 x 10^9 a second, one core).
extern "C" void tanh_loop(float *x, int n, int reps) {  // x: n floats (n / LANES a multiple of 8), aligned
  FlushSubnormals flush;
  vf *v = (vf *)x;
  for (int r = 0; r < reps; r++)
    for (int i = 0; i + 8 <= n / LANES; i += 8) {
      vf t[8];
      for (int u = 0; u < 8; u++) t[u] = vtanh_clamped(v[i + u], 7.90531110763549805f);
      for (int u = 0; u < 8; u++) v[i + u] = t[u];
    }
}

// the instruction set it was built for (simd.h's LATCH_ISA), as the kernels name theirs
extern "C" const char *tanh_isa(void) { return LATCH_ISA; }
