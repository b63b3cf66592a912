// One block of the one-unit path, forward and backward, in two revisions of kernels.cpp
// compiled into one program (bench/block_ab.py writes KERNELS_OLD and KERNELS_NEW: each
// source up to its extern "C" functions, in a namespace of its own). The two take turns,
// ten passes each per round, and each keeps its fastest pass: a shared machine's load
// slows them alike. Prints nanoseconds a member-step (16 rows) of each and whether the
// two left the same bits (gradient sums and final states).
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#if defined(__SSE__)
#include <immintrin.h>  // here, before the namespaces (each revision includes its own simd.h)
#endif
using clk = std::chrono::steady_clock;

#define BENCH_BODY                                                                               \
  struct Bench {                                                                                 \
    Block b;                                                                                     \
    Shape s;                                                                                     \
    int T, nm;                                                                                   \
    double fwd = 1e30, bwd = 1e30;                                                               \
    explicit Bench(int T_) : T(T_) {                                                             \
      const int B = 16;                                                                          \
      nm = LATCH_PER_BLOCK;                                                                      \
      s = shape(VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER, 0, 0, 1, 1, 2);                 \
      block_alloc(b, s, nm * B / L, T);                                                          \
      std::vector<int32_t> t0(nm);                                                               \
      for (int i = 0; i < nm; i++) t0[i] = (i * 7) % 5; /* members of different lengths */      \
      lane_layout(b, 0, nm, B, t0.data());                                                       \
      std::mt19937 rng(1);                                                                       \
      std::normal_distribution<float> nd(0.0f, 0.5f);                                            \
      std::vector<float> params((size_t)nm * s.P);                                               \
      for (auto &p : params) p = nd(rng);                                                        \
      refresh_params(b, s, params.data(), 0, nm, B);                                             \
      for (auto &v : b.xb)                                                                       \
        for (int l = 0; l < L; l++) v[l] = nd(rng);                                              \
    }                                                                                            \
    void pass() {                                                                                \
      FlushSubnormals flush;                                                                     \
      auto t1 = clk::now();                                                                      \
      dispatch_forward(s, b, T, true);                                                           \
      auto t2 = clk::now();                                                                      \
      for (auto &d : b.dh)                                                                       \
        for (int l = 0; l < L; l++) d[l] = 0.01f * l;                                            \
      dispatch_backward(s, b, T);                                                                \
      auto t3 = clk::now();                                                                      \
      fwd = std::min(fwd, std::chrono::duration<double>(t2 - t1).count());                       \
      bwd = std::min(bwd, std::chrono::duration<double>(t3 - t2).count());                       \
    }                                                                                            \
    std::vector<float> out() const {                                                             \
      std::vector<float> o;                                                                      \
      for (auto &v : b.acc)                                                                      \
        for (int l = 0; l < L; l++) o.push_back(v[l]);                                           \
      for (auto &v : b.h)                                                                        \
        for (int l = 0; l < L; l++) o.push_back(v[l]);                                           \
      return o;                                                                                  \
    }                                                                                            \
  };

namespace old_ {
#include KERNELS_OLD
BENCH_BODY
}  // namespace old_
namespace new_ {
#include KERNELS_NEW
BENCH_BODY
}  // namespace new_

int main(int argc, char **argv) {
  const int T = argc > 1 ? atoi(argv[1]) : 200, rounds = argc > 2 ? atoi(argv[2]) : 20;
  old_::Bench a(T);
  new_::Bench b(T);
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < 10; k++) a.pass();
    for (int k = 0; k < 10; k++) b.pass();
  }
  auto oa = a.out(), ob = b.out();
  bool same = oa.size() == ob.size() && memcmp(oa.data(), ob.data(), oa.size() * sizeof(float)) == 0;
  const double ns = 1e9 / ((double)T * a.nm);
  printf("forward %.2f %.2f backward %.2f %.2f %s\n", a.fwd * ns, b.fwd * ns, a.bwd * ns, b.bwd * ns,
         same ? "same" : "different");
  return 0;
}
