// Random weight guessing (Hochreiter & Schmidhuber 1996; latchlab/experiments/guessing.py holds
// the nets, their JAX definition and the search): whether each guess classifies every one of
// its run's training sequences, and the nets' outputs, natively.
//
// Why here and not in XLA: most guesses fail on their first training sequence or two, but XLA
// evaluates a block of guesses on a fixed number of sequences (the screen, 10 of 100), every
// guess to the end of each. Here a chunk of guesses (up to CHUNK vectors, a guess a lane) runs
// one sequence at a time, and only the guesses that passed it run the next: the same verdict
// as the whole set. The literal parity net, which never solves, spends 8 million guesses a
// full-scale row, 945 steps each (1.7 sequences) instead of 5500.
//
// The same bits as JAX: each net's operations in XLA:CPU's order, with the fused multiply-adds
// its LLVM code generator makes (a sum of two products fuses the first, a product added to a
// sum fuses it), XLA's tanh (simd.h, clamped as jaxlib 0.10.2 clamps it), and its sigmoid as
// XLA computes jax.nn.sigmoid, 1 / (1 + exp(-z)), with its exp (Cephes' polynomial).
// tests/experiments/test_guess.py compares the outputs with JAX's bit for bit.
//
// Layout: x (R, n, T) each run's sequences, left-padded (sequence i of run r is
// x[r][i][start[r][i] .. T)); y (R, n) classes; theta (S, B, P) each task's guesses, task s on
// run run[s]. Built by latchlab/engine/native/__init__.py (``guessing``), which passes the
// net codes of its table (-DLATCH_NET_LATCH1=0, ...).
#include <stdint.h>

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#if !defined(LATCH_NET_LATCH1) || !defined(LATCH_NET_LATCH2) || !defined(LATCH_NET_LATCH2_NET) || \
    !defined(LATCH_NET_PARITY)
#error "build through latchlab.engine.native: the net codes come from its table (-DLATCH_NET_...)"
#endif

#define LATCH_TANH_INLINE inline __attribute__((always_inline))
#include "simd.h"

enum Net { LATCH1 = LATCH_NET_LATCH1, LATCH2 = LATCH_NET_LATCH2, LATCH2_NET = LATCH_NET_LATCH2_NET, PARITY = LATCH_NET_PARITY };
// parity's options, as bits of ``flags``
enum { HIDDEN_TANH = 1, LAYERED = 2, OUTPUT_BIAS = 4 };
// vectors in flight, each operation for all of them in turn: enough independent chains to hide
// the sigmoid's latency (a block of the literal parity net's 40 runs' guesses, on a Zen 5:
// AVX-512 4 vectors 18.9 ms, 8 8.8-8.9, 12 8.8, 16 13.1; AVX2 4 21.7, 6 17.8, 8 17.0, 12 18.9)
enum { BLOCK = 8 };
// vectors of guesses a task takes: as its guesses fail, its stages stay BLOCK vectors wide for
// longer (a block of the literal parity net's 40 runs' guesses, on a Zen 5: chunks of 8
// vectors 14.7 ms, of 64 vectors 8.9 ms, the same verdicts)
enum { CHUNK = 64 };

static constexpr float CLAMP = 7.99881172180175781f;  // bengio94.cpp: XLA:CPU's clamp

static LATCH_TANH_INLINE vf vfloor(vf a) {
#if defined(__AVX512F__) && LATCH_VBYTES == 64
  return (vf)_mm512_roundscale_ps((__m512)a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#elif defined(__AVX__) && LATCH_VBYTES == 32
  return (vf)_mm256_floor_ps((__m256)a);
#elif defined(__SSE4_1__) && LATCH_VBYTES == 16
  return (vf)_mm_floor_ps((__m128)a);
#else
  vf r;
  for (int l = 0; l < LANES; l++) r[l] = __builtin_floorf(a[l]);
  return r;
#endif
}

static LATCH_TANH_INLINE vf bits_float(uint32_t u) { return splat(as_float(u)); }  // a constant by its bits

// XLA:CPU's 1 / (1 + exp(-z)) of N vectors in place: its exp is Cephes' (range reduction by
// ln 2 in two parts, a degree-5 polynomial), its clamps selects that keep a NaN, each fused
// multiply-add its own. Each operation for all N in turn (as simd.h's tanh): N independent
// chains side by side, which one vector's chain of about 25 dependent operations is not.
template <int N> static LATCH_TANH_INLINE void vsigmoid_n(vf (&z)[N]) {
  vf x[N], fx[N], r[N], p[N];
  for (int n = 0; n < N; n++) {
    x[n] = -z[n];
    x[n] = x[n] < -87.8f ? splat(-87.8f) : x[n];
    x[n] = x[n] > 88.8f ? splat(88.8f) : x[n];
  }
  for (int n = 0; n < N; n++) fx[n] = vfloor(vfma(x[n], bits_float(0x3FB8AA3B), splat(0.5f)));
  for (int n = 0; n < N; n++) {
    fx[n] = fx[n] < -127.0f ? splat(-127.0f) : fx[n];
    fx[n] = fx[n] > 127.0f ? splat(127.0f) : fx[n];
  }
  for (int n = 0; n < N; n++) r[n] = vfma(-bits_float(0x3F318000), fx[n], x[n]);
  for (int n = 0; n < N; n++) r[n] = vfma(-bits_float(0xB95E8083), fx[n], r[n]);
  for (int n = 0; n < N; n++) p[n] = vfma(r[n], bits_float(0x39506967), bits_float(0x3AB743CE));
  for (int n = 0; n < N; n++) p[n] = vfma(p[n], r[n], bits_float(0x3C088908));
  for (int n = 0; n < N; n++) p[n] = vfma(p[n], r[n], bits_float(0x3D2AA9C1));
  for (int n = 0; n < N; n++) p[n] = vfma(p[n], r[n], bits_float(0x3E2AAAAA));
  for (int n = 0; n < N; n++) p[n] = vfma(p[n], r[n], splat(0.5f));
  for (int n = 0; n < N; n++) p[n] = vfma(p[n], r[n] * r[n], r[n]) + 1.0f;
  for (int n = 0; n < N; n++) {
    const vf two_n = (vf)((__builtin_convertvector(fx[n], vi) + 127) << 23);
    z[n] = 1.0f / vfma(p[n], two_n, splat(1.0f));
  }
}

struct Call {
  int net, flags, S, B, P, n, T;
  const float *theta;
  const int32_t *run;
  const float *x;
  const int32_t *start, *y;
  float lo, hi, tol;
  int sign;         // the criterion: 1 sign, 0 abs
  uint8_t *solved;  // (S, B) whether each guess solves its run's set (guess_solved), or null
  float *out;       // (S, B, n) every output (guess_outputs), or null
  std::atomic<int> next{0};
};

// Outputs at the end of sequence ``i`` of run ``r`` for K vectors of guesses, their
// parameters in ``th`` (P vectors each), by the net NET (parity with FLAGS).
template <int NET, int FLAGS, int K>
static void run_vectors(const Call &c, int r, int i, const vf (*th)[8], vf *out) {
  const float *x = c.x + ((size_t)r * c.n + i) * c.T;
  const int t0 = c.start[(size_t)r * c.n + i];
  const vf zero = splat(0.0f);
  if constexpr (NET == PARITY) {
    constexpr bool tanh_h = FLAGS & HIDDEN_TANH, layered = FLAGS & LAYERED, bias_o = FLAGS & OUTPUT_BIAS;
    vf h[K], o[K], zh[K], zo[K];  // th[k]: whx, whh, who, bh, wox, woh, woo, bo
    for (int k = 0; k < K; k++) h[k] = o[k] = zero;
    for (int t = t0; t < c.T; t++) {
      const vf xt = splat(x[t]);
      for (int k = 0; k < K; k++) zh[k] = vfma(th[k][2], o[k], vfma(th[k][0], xt, th[k][1] * h[k])) + th[k][3];
      if constexpr (!layered)  // the output from the previous step's h, beside the hidden unit
        for (int k = 0; k < K; k++) zo[k] = vfma(th[k][6], o[k], vfma(th[k][4], xt, th[k][5] * h[k]));
      if constexpr (tanh_h) vtanh_clamped_n<K>(zh, CLAMP);
      else vsigmoid_n<K>(zh);
      if constexpr (layered)
        for (int k = 0; k < K; k++) zo[k] = vfma(th[k][6], o[k], vfma(th[k][4], xt, th[k][5] * zh[k]));
      if constexpr (bias_o)
        for (int k = 0; k < K; k++) zo[k] = zo[k] + th[k][7];
      vsigmoid_n<K>(zo);
      for (int k = 0; k < K; k++) h[k] = zh[k], o[k] = zo[k];
    }
    for (int k = 0; k < K; k++) out[k] = o[k];
  } else {
    // the first step from the state 0: latch1's free input of the sequence's class (its
    // first element's sign), latch2's first element through v; th[k]: latch1 (w, h_0, h_1),
    // latch2 (w, v, b)
    vf y[K];
    const vf x0 = splat(x[t0]);
    for (int k = 0; k < K; k++) {
      if constexpr (NET == LATCH1) y[k] = vfma(th[k][0], zero, x[t0] > 0.0f ? th[k][2] : th[k][1]);
      else y[k] = vfma(th[k][0], zero, th[k][1] * x0) + th[k][2];
    }
    vtanh_clamped_n<K>(y, CLAMP);
    for (int t = t0 + 1; t < c.T; t++) {  // then the noise (latch2: through v; latch2_net: not)
      const vf xt = splat(x[t]);
      for (int k = 0; k < K; k++) {
        if constexpr (NET == LATCH1) y[k] = vfma(th[k][0], y[k], xt);
        else if constexpr (NET == LATCH2) y[k] = vfma(th[k][0], y[k], th[k][1] * xt) + th[k][2];
        else y[k] = vfma(th[k][0], y[k], xt) + th[k][2];
      }
      vtanh_clamped_n<K>(y, CLAMP);
    }
    for (int k = 0; k < K; k++) out[k] = y[k];
  }
}

typedef void (*RunFn)(const Call &, int, int, const vf (*)[8], vf *);

template <int NET, int FLAGS, int... K> static RunFn pick_k(int k, std::integer_sequence<int, K...>) {
  static const RunFn by_k[] = {run_vectors<NET, FLAGS, K + 1>...};
  return by_k[k - 1];
}
template <int NET, int FLAGS> static RunFn pick(int k) {
  return pick_k<NET, FLAGS>(k, std::make_integer_sequence<int, BLOCK>());
}

// run_vectors for the call's net and k vectors (1 <= k <= BLOCK)
static RunFn choose(const Call &c, int k) {
  switch (c.net) {
    case LATCH1: return pick<LATCH1, 0>(k);
    case LATCH2: return pick<LATCH2, 0>(k);
    case LATCH2_NET: return pick<LATCH2_NET, 0>(k);
  }
  switch (c.flags) {
#define GUESS_PARITY(F) \
  case F: return pick<PARITY, F>(k);
    GUESS_PARITY(0) GUESS_PARITY(1) GUESS_PARITY(2) GUESS_PARITY(3) GUESS_PARITY(4) GUESS_PARITY(5) GUESS_PARITY(6)
#undef GUESS_PARITY
  }
  return pick<PARITY, 7>(k);
}

// Guesses [g0, g1) of task s (at most CHUNK vectors of them): with ``solved``, sequence after
// sequence on the guesses that passed every one before (their verdicts in c.solved), BLOCK
// vectors at a time; with ``out``, every guess on every sequence.
static void chunk(const Call &c, int s, int g0, int g1) {
  const int r = c.run[s];
  int live[CHUNK * LANES], n_live = 0;
  for (int g = g0; g < g1; g++) live[n_live++] = g;
  vf th[BLOCK][8];
  vf out[BLOCK];
  const float mid = 0.5f * (c.lo + c.hi);
  for (int i = 0; i < c.n && n_live; i++) {
    const bool one = c.y[(size_t)r * c.n + i] == 1;
    const float d = one ? c.hi : c.lo;
    int kept = 0;
    for (int j0 = 0; j0 < n_live; j0 += BLOCK * LANES) {  // live[j0 ..] BLOCK vectors at a time
      const int m = n_live - j0 < BLOCK * LANES ? n_live - j0 : BLOCK * LANES, K = (m + LANES - 1) / LANES;
      for (int k = 0; k < K; k++)
        for (int l = 0; l < LANES; l++) {
          const int j = k * LANES + l, g = live[j0 + (j < m ? j : 0)];
          for (int p = 0; p < c.P; p++) th[k][p][l] = c.theta[((size_t)s * c.B + g) * c.P + p];
          for (int p = c.P; p < 8; p++) th[k][p][l] = 0.0f;
        }
      choose(c, K)(c, r, i, th, out);
      for (int j = 0; j < m; j++) {  // kept <= j0 + j: the kept guesses overwrite only visited ones
        const int g = live[j0 + j];
        const float o = out[j / LANES][j % LANES], e = o - d;
        if (c.out) c.out[((size_t)s * c.B + g) * c.n + i] = o;
        if (c.out || (c.sign ? (o > mid) == one : (e < 0.0f ? -e : e) < c.tol)) live[kept++] = g;
      }
    }
    n_live = kept;
  }
  if (c.solved) {
    for (int g = g0; g < g1; g++) c.solved[(size_t)s * c.B + g] = 0;
    for (int j = 0; j < n_live; j++) c.solved[(size_t)s * c.B + live[j]] = 1;
  }
}

static int run_call(Call &c, int threads) {
  if (c.S < 0 || c.B < 0 || c.P < 1 || c.P > 8 || c.n < 1 || c.T < 1 || threads < 1) return -1;
  if (c.net != LATCH1 && c.net != LATCH2 && c.net != LATCH2_NET && c.net != PARITY) return -2;
  if (c.flags < 0 || c.flags > 7 || (c.net != PARITY && c.flags)) return -2;
  const int per = CHUNK * LANES, chunks = (c.B + per - 1) / per, tasks = c.S * chunks;
  auto work = [&c, per, chunks, tasks]() {
    FlushSubnormals flush;
    for (int k; (k = c.next.fetch_add(1)) < tasks;) {
      const int s = k / chunks, g0 = (k % chunks) * per, g1 = g0 + per < c.B ? g0 + per : c.B;
      chunk(c, s, g0, g1);
    }
  };
  const int n = threads < tasks ? threads : (tasks ? tasks : 1);
  std::vector<std::thread> pool;
  for (int t = 1; t < n; t++) pool.emplace_back(work);
  work();
  for (auto &t : pool) t.join();
  return 0;
}

extern "C" {

// solved[s][g] = 1 if guess g of task s (theta[s][g], P weights) classifies every sequence
// of run run[s] (x, start, y: (R, n, T), (R, n), (R, n)) under the criterion (sign, else
// |output - target| < tol; targets lo for class 0, hi for class 1), else 0. 0 on success, < 0
// for arguments out of range.
int guess_solved(int net, int flags, int S, int B, int P, const float *theta, const int32_t *run, int n, int T,
                 const float *x, const int32_t *start, const int32_t *y, float lo, float hi, float tol, int sign,
                 int threads, uint8_t *solved) {
  Call c{net, flags, S, B, P, n, T, theta, run, x, start, y, lo, hi, tol, sign, solved, nullptr};
  return run_call(c, threads);
}

// out[s][g][i]: the output of guess g of task s at the end of sequence i of run run[s].
int guess_outputs(int net, int flags, int S, int B, int P, const float *theta, const int32_t *run, int n, int T,
                  const float *x, const int32_t *start, const int32_t *y, int threads, float *out) {
  Call c{net, flags, S, B, P, n, T, theta, run, x, start, y, 0.0f, 1.0f, 0.0f, 0, nullptr, out};
  return run_call(c, threads);
}

// 1 where the build has a fused multiply-add instruction (XLA:CPU fuses there; elsewhere it
// does not, and a library fmaf would be slow): latchlab uses the library only then
int guess_hardware_fma(void) { return LATCH_HARDWARE_FMA; }

// the instruction set the build chose its vectors for (simd.h)
const char *guess_isa(void) { return LATCH_ISA; }
}
