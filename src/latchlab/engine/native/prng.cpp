// JAX's random numbers for the latch and bit relay tasks, bit for bit: the members' keys,
// each seed's longest sequences and labels, the train/validation splits, the keys, bits,
// normal values and chrono biases of the members' initial parameters, and random guessing's
// uniform guesses, that latchlab/engine/data.py otherwise makes with jax.random on XLA (whose
// compilations took 0.2-1.2 s each and whose Threefry ran at a tenth of this speed).
//
// - Threefry-2x32 (20 rounds) with JAX's partitionable counters (jax_threefry_partitionable,
//   JAX's default): split(key, n)[i] = threefry(key, (0, i)), fold_in(key, t) = the same
//   with i = t, and 32 random bits i = the xor of threefry(key, (0, i))'s two words.
// - permutation: JAX's sort-based shuffle, ``rounds`` stable sorts by fresh random bits.
// - normal: uniform(-1 + 2^-24, 1) from the bits' top 23, then sqrt(2) erfinv(u) as
//   XLA:CPU computes it (its erfinv polynomial and its own log1p and log, with the same
//   fused multiply-adds its LLVM code generator makes; unoptimised, as ``data._init`` is
//   compiled, only the log's are fused: ``prng_normal_unfused``). This file is built with
//   -ffp-contract=off so that every fused multiply-add is one written here.
//   latchlab/engine/native/__init__.py's ``prng()`` uses the library only after checking
//   normal() against JAX on every one of the 2^23 possible inputs, and a sequence family
//   against the JAX generator (a CPU or XLA that rounds otherwise keeps the JAX path).
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <thread>
#include <type_traits>
#include <vector>

#include "simd.h"

// inlined wherever called: GCC left a draw of two vectors as calls (normal, xla_log,
// threefry), its packs passed through memory
#define LATCH_ALWAYS inline __attribute__((always_inline))

// ---------------------------------------------------------------- N vectors as one value
// Pk<V, N>: N SIMD vectors, each operation applied to all N in turn. A draw is a chain of
// about 230 mostly dependent instructions (Threefry's rounds, then the log, the division and
// erfinv's polynomial): one vector at a time, the core waited on it (2.8 ns a draw on a Zen
// 5); N chains side by side fill its pipes. Values of type V, or of its elements (a scalar
// on either side of an operation applies to every lane).
typedef uint32_t vu __attribute__((vector_size(LATCH_VBYTES)));
template <class V, int N> struct Pk {
  V v[N];
};
template <class V> using elem_t = std::remove_reference_t<decltype(V{}[0])>;
#define LATCH_PK_OP(op)                                                                                      \
  template <class V, int N> static LATCH_ALWAYS Pk<V, N> operator op(const Pk<V, N>& a, const Pk<V, N>& b) { \
    Pk<V, N> r;                                                                                              \
    for (int n = 0; n < N; n++) r.v[n] = a.v[n] op b.v[n];                                                   \
    return r;                                                                                                \
  }                                                                                                          \
  template <class V, int N> static LATCH_ALWAYS Pk<V, N> operator op(const Pk<V, N>& a, elem_t<V> b) {       \
    Pk<V, N> r;                                                                                              \
    for (int n = 0; n < N; n++) r.v[n] = a.v[n] op b;                                                        \
    return r;                                                                                                \
  }                                                                                                          \
  template <class V, int N> static LATCH_ALWAYS Pk<V, N> operator op(elem_t<V> a, const Pk<V, N>& b) {       \
    Pk<V, N> r;                                                                                              \
    for (int n = 0; n < N; n++) r.v[n] = a op b.v[n];                                                        \
    return r;                                                                                                \
  }
LATCH_PK_OP(+)
LATCH_PK_OP(-)
LATCH_PK_OP(*)
LATCH_PK_OP(/)
LATCH_PK_OP(^)
LATCH_PK_OP(&)
LATCH_PK_OP(|)
#undef LATCH_PK_OP
// comparisons: a mask of each lane (all bits set where true)
#define LATCH_PK_CMP(op)                                                                               \
  template <int N> static LATCH_ALWAYS Pk<vi, N> operator op(const Pk<vf, N>& a, const Pk<vf, N>& b) { \
    Pk<vi, N> r;                                                                                       \
    for (int n = 0; n < N; n++) r.v[n] = (vi)(a.v[n] op b.v[n]);                                       \
    return r;                                                                                          \
  }                                                                                                    \
  template <int N> static LATCH_ALWAYS Pk<vi, N> operator op(const Pk<vf, N>& a, float b) {            \
    Pk<vi, N> r;                                                                                       \
    for (int n = 0; n < N; n++) r.v[n] = (vi)(a.v[n] op b);                                            \
    return r;                                                                                          \
  }
LATCH_PK_CMP(<)
LATCH_PK_CMP(>)
LATCH_PK_CMP(==)
#undef LATCH_PK_CMP
template <int N> static LATCH_ALWAYS Pk<vf, N> operator-(const Pk<vf, N>& a) {
  Pk<vf, N> r;
  for (int n = 0; n < N; n++) r.v[n] = -a.v[n];
  return r;
}
template <int N> static LATCH_ALWAYS Pk<vu, N> operator<<(const Pk<vu, N>& a, int s) {
  Pk<vu, N> r;
  for (int n = 0; n < N; n++) r.v[n] = a.v[n] << s;
  return r;
}
template <int N> static LATCH_ALWAYS Pk<vu, N> operator>>(const Pk<vu, N>& a, int s) {
  Pk<vu, N> r;
  for (int n = 0; n < N; n++) r.v[n] = a.v[n] >> s;
  return r;
}
// m ? a : b lane by lane
template <class V, int N> static LATCH_ALWAYS Pk<V, N> sel(const Pk<vi, N>& m, const Pk<V, N>& a, const Pk<V, N>& b) {
  Pk<V, N> r;
  for (int n = 0; n < N; n++) r.v[n] = m.v[n] ? a.v[n] : b.v[n];
  return r;
}
template <class V, int N> static LATCH_ALWAYS Pk<V, N> sel(const Pk<vi, N>& m, const Pk<V, N>& a, elem_t<V> b) {
  Pk<V, N> r;
  for (int n = 0; n < N; n++) r.v[n] = m.v[n] ? a.v[n] : (V{} + b);
  return r;
}
template <class V, int N> static LATCH_ALWAYS Pk<V, N> splat_pk(elem_t<V> a) {
  Pk<V, N> r;
  for (int n = 0; n < N; n++) r.v[n] = V{} + a;
  return r;
}
// the bits of one as the other (no conversion), and int32 to float (rounded)
template <int N> static LATCH_ALWAYS Pk<vf, N> as_floats(const Pk<vu, N>& a) {
  Pk<vf, N> r;
  for (int n = 0; n < N; n++) r.v[n] = (vf)a.v[n];
  return r;
}
template <int N> static LATCH_ALWAYS Pk<vu, N> as_words(const Pk<vf, N>& a) {
  Pk<vu, N> r;
  for (int n = 0; n < N; n++) r.v[n] = (vu)a.v[n];
  return r;
}
template <int N> static LATCH_ALWAYS Pk<vf, N> int_to_float(const Pk<vu, N>& a) {
  Pk<vf, N> r;
  for (int n = 0; n < N; n++) r.v[n] = __builtin_convertvector((vi)a.v[n], vf);
  return r;
}
// a square root a lane (one rounding), as an instruction (the fused multiply-add: simd.h)
static LATCH_ALWAYS vf vsqrt(vf a) {
#if defined(__AVX512F__) && LATCH_VBYTES == 64
  return (vf)_mm512_sqrt_ps((__m512)a);
#elif defined(__AVX__) && LATCH_VBYTES == 32
  return (vf)_mm256_sqrt_ps((__m256)a);
#elif defined(__SSE__) && LATCH_VBYTES == 16
  return (vf)_mm_sqrt_ps((__m128)a);
#else
  vf r;
  for (int l = 0; l < LANES; l++) r[l] = __builtin_sqrtf(a[l]);
  return r;
#endif
}
template <int N> static LATCH_ALWAYS Pk<vf, N> sqroot(const Pk<vf, N>& a) {
  Pk<vf, N> r;
  for (int n = 0; n < N; n++) r.v[n] = vsqrt(a.v[n]);
  return r;
}
template <int N> static LATCH_ALWAYS Pk<vf, N> absval(const Pk<vf, N>& a) {
  Pk<vf, N> r;
  for (int n = 0; n < N; n++) r.v[n] = vabs(a.v[n]);
  return r;
}
// N vectors from memory at p and to memory at p (any alignment)
template <class V, int N> static LATCH_ALWAYS Pk<V, N> load(const elem_t<V>* p) {
  Pk<V, N> r;
  memcpy(r.v, p, sizeof(r.v));
  return r;
}
template <int N> static LATCH_ALWAYS void store(float* p, const Pk<vf, N>& a) { memcpy(p, a.v, sizeof(a.v)); }

// ---------------------------------------------------------------- Threefry

template <class W> static LATCH_ALWAYS W rotl(W x, int r) { return (x << r) | (x >> (32 - r)); }

// threefry2x32(key, (x0, x1)), in place: JAX's threefry2x32 primitive, unrolled; on words,
// or on packs of vectors of them (a key and a counter a lane)
template <class W> static LATCH_ALWAYS void threefry(W k0, W k1, W& x0, W& x1) {
  const W k2 = k0 ^ k1 ^ 0x1BD11BDAu;
#define LATCH_R(r) x0 = x0 + x1, x1 = rotl(x1, r), x1 = x1 ^ x0
#define LATCH_R0 LATCH_R(13), LATCH_R(15), LATCH_R(26), LATCH_R(6)
#define LATCH_R1 LATCH_R(17), LATCH_R(29), LATCH_R(16), LATCH_R(24)
  x0 = x0 + k0, x1 = x1 + k1;
  LATCH_R0, x0 = x0 + k1, x1 = x1 + (k2 + 1u);
  LATCH_R1, x0 = x0 + k2, x1 = x1 + (k0 + 2u);
  LATCH_R0, x0 = x0 + k0, x1 = x1 + (k1 + 3u);
  LATCH_R1, x0 = x0 + k1, x1 = x1 + (k2 + 4u);
  LATCH_R0, x0 = x0 + k2, x1 = x1 + (k0 + 5u);
#undef LATCH_R
#undef LATCH_R0
#undef LATCH_R1
}

struct Key {
  uint32_t a, b;
};
// split(key, n)[i], and fold_in(key, i)
static LATCH_ALWAYS Key child(Key k, uint32_t i) {
  uint32_t x0 = 0, x1 = i;
  threefry(k.a, k.b, x0, x1);
  return {x0, x1};
}
static LATCH_ALWAYS uint32_t bits32(Key k, uint32_t i) {
  uint32_t x0 = 0, x1 = i;
  threefry(k.a, k.b, x0, x1);
  return x0 ^ x1;
}

static LATCH_ALWAYS float F(uint32_t u) { return as_float(u); }  // a constant by its bits (simd.h)

// pack versions of a multiply-add's forms (a constant broadcast to every lane)
template <int N> static LATCH_ALWAYS Pk<vf, N> fmadd(const Pk<vf, N>& a, const Pk<vf, N>& b, const Pk<vf, N>& c) {
  Pk<vf, N> r;
  for (int n = 0; n < N; n++) r.v[n] = vfma(a.v[n], b.v[n], c.v[n]);
  return r;
}
template <int N> static LATCH_ALWAYS Pk<vf, N> fmadd(const Pk<vf, N>& a, const Pk<vf, N>& b, float c) {
  return fmadd(a, b, splat_pk<vf, N>(c));
}
template <int N> static LATCH_ALWAYS Pk<vf, N> fmadd(const Pk<vf, N>& a, float b, const Pk<vf, N>& c) {
  return fmadd(a, splat_pk<vf, N>(b), c);
}
template <int N> static LATCH_ALWAYS Pk<vf, N> fmadd(const Pk<vf, N>& a, float b, float c) {
  return fmadd(a, splat_pk<vf, N>(b), splat_pk<vf, N>(c));
}
// a multiply-add of XLA's that LLVM fuses at its usual optimisation levels, not at level 0
template <bool FUSED, int N, class B, class C> static LATCH_ALWAYS Pk<vf, N> mad(const Pk<vf, N>& a, B b, C c) {
  if constexpr (FUSED) return fmadd(a, b, c);
  else return a * b + c;
}

// XLA:CPU's log(a) for a > 0 (Cephes' logf: the mantissa in [sqrt(1/2), sqrt(2)), three
// interleaved polynomial chains), and its special values
template <int N> static LATCH_ALWAYS Pk<vf, N> xla_log(const Pk<vf, N>& a) {
  using P = Pk<vf, N>;
  const float tiny = F(0x00800000);
  const P m = sel(a < tiny, splat_pk<vf, N>(tiny), a);  // std::max(a, tiny)
  const Pk<vu, N> mb = as_words(m);
  P e = int_to_float((mb >> 23) - 127u) + 1.0f;
  const P mant = as_floats((mb & 0x807FFFFFu) | 0x3F000000u);
  const Pk<vi, N> lo = mant < F(0x3F3504F3);
  const P x = (mant + -1.0f) + sel(lo, mant, 0.0f);
  e = sel(lo, e - 1.0f, e);
  const P z = x * x, z3 = x * z;
  P p = fmadd(x, F(0x3D9021BB), F(0xBDEBD1B8));
  P q = fmadd(x, F(0xBDFE5D4F), F(0x3E11E9BF));
  p = fmadd(p, x, F(0x3DEF251A));
  q = fmadd(q, x, F(0xBE2AAE50));
  q = fmadd(p, z3, q);
  P r = fmadd(x, F(0x3E4CCEAC), F(0xBE7FFFFC));
  r = fmadd(r, x, F(0x3EAAAAAA));
  q = fmadd(q, z3, r);
  const P s = fmadd(q, z3, e * F(0xB95E8083));
  const P y = fmadd(e, F(0x3F318000), (x - 0.5f * z) + s);
  const P special = sel(a == 0.0f, splat_pk<vf, N>(-__builtin_inff()), splat_pk<vf, N>(__builtin_nanf("")));
  return sel(a > 0.0f, sel(a == __builtin_inff(), a, y), special);
}

// XLA:CPU's log1p(w): a rational approximation for |w| < sqrt(2) - 1, else log(1 + w).
// FUSED: its multiply-adds fused, as LLVM contracts them at XLA's usual optimisation
// levels; unfused, as at level 0 (``data._init``'s). XLA's log fuses its own either way.
template <bool FUSED, int N> static LATCH_ALWAYS Pk<vf, N> xla_log1p(const Pk<vf, N>& w) {
  using P = Pk<vf, N>;
  const P w2 = w * w;
  P num = splat_pk<vf, N>(1.0f), den = splat_pk<vf, N>(4.527e-05f);
  const uint32_t cn[6] = {0x417101AD, 0x42A6185B, 0x435DC32D, 0x439A8CA3, 0x43586D8A, 0x42707982};
  const uint32_t cd[6] = {0x3EFF40C5, 0x40D284FA, 0x41EF4B9C, 0x4273CC76, 0x426473AD, 0x41A05101};
  for (int k = 0; k < 6; ++k) num = mad<FUSED>(num, w, F(cn[k])), den = mad<FUSED>(den, w, F(cd[k]));
  const P small = w + mad<FUSED>(w2, -0.5f, (w * w2) * (den / num));
  return sel(absval(w) < F(0x3ED413CD), small, xla_log(w + 1.0f));
}

// jax.random.normal's value for 32 random bits: sqrt(2) erfinv(u), u = max(lo, 2 f + lo)
// with f in [0, 1) from the top 23 bits and lo = -1 + 2^-24; FUSED as for xla_log1p
template <bool FUSED, int N> static LATCH_ALWAYS Pk<vf, N> normal(const Pk<vu, N>& bits) {
  using P = Pk<vf, N>;
  const float lo = F(0xBF7FFFFF);
  const P f = as_floats((bits >> 9) | 0x3F800000u) + -1.0f;
  const P a = mad<FUSED>(f, 2.0f, lo);
  const P u = sel(a < lo, splat_pk<vf, N>(lo), a);  // std::max(a, lo)
  const P l = xla_log1p<FUSED>(u * -u);
  const Pk<vi, N> lt = l > -5.0f;
  const P w = sel(lt, -2.5f - l, sqroot(-l) + -3.0f);
  static const uint32_t c_lt[9] = {0x32F16588, 0x34B84B36, 0xB66C7357, 0xB6935AC1, 0x396532DB,
                                   0xBAA45408, 0xBB88E4EF, 0x3E7C8F63, 0x3FC02E2F};
  static const uint32_t c_ge[9] = {0xB951F09B, 0x38D3B56B, 0x3AB0DC72, 0xBB70BDE7, 0x3BBC127B,
                                   0xBBF9C5D7, 0x3C1AA57E, 0x3F8036DB, 0x40354F7E};
  const auto c = [&](int k) { return sel(lt, splat_pk<vf, N>(F(c_lt[k])), splat_pk<vf, N>(F(c_ge[k]))); };
  P p = mad<FUSED>(w, c(0), c(1));  // c0 w + c1 (the product's order does not change it)
  for (int k = 2; k < 9; ++k) p = mad<FUSED>(w, p, c(k));
  p = sel(absval(u) == 1.0f, splat_pk<vf, N>(__builtin_inff()), p);
  return (u * p) * F(0x3FB504F3);
}

// 32 random bits of each lane's key (k0, k1) and counter c: the xor of threefry's two words
template <int N> static LATCH_ALWAYS Pk<vu, N> bits32(const Pk<vu, N>& k0, const Pk<vu, N>& k1, const Pk<vu, N>& c) {
  Pk<vu, N> x0 = splat_pk<vu, N>(0u), x1 = c;
  threefry(k0, k1, x0, x1);
  return x0 ^ x1;
}
// lanes 0, 1, ..., N LANES - 1, plus i0
template <int N> static LATCH_ALWAYS Pk<vu, N> counters(uint32_t i0) {
  Pk<vu, N> r;
  for (int n = 0; n < N; n++)
    for (int l = 0; l < LANES; l++) r.v[n][l] = (uint32_t)(n * LANES + l);
  return r + i0;
}

// Vectors a draw: each operation of a draw for this many vectors in turn (``Pk``). Rows of
// 100 normals on a Zen 5, old over new (bench/prng_ab.py): AVX-512 1 vector 1.10, 2 1.54, 4
// 2.04, 6 2.37, 8 2.32; its AVX2 build 1 0.64, 2 1.21, 4 1.66, 6 2.04, 8 2.00.
// LATCH_DRAW_VECTORS overrides it, for measurements.
#ifndef LATCH_DRAW_VECTORS
#define LATCH_DRAW_VECTORS 6
#endif
enum { DV = LATCH_DRAW_VECTORS, DW = DV * LANES };
template <int N> using Vecs = std::integral_constant<int, N>;

// along's last values: the M vectors of values from s, of which those before n are kept
// (for the m < DV vectors left, M the least that holds them)
template <int M, class Fn> static LATCH_ALWAYS void last(int m, int64_t s, int64_t n, float* out, Fn& f) {
  if constexpr (M < DV) {
    if (m > M) return last<M + 1>(m, s, n, out, f);
  }
  float tmp[M * LANES];
  store(tmp, f(Vecs<M>(), s));
  memcpy(out + s, tmp, sizeof(float) * std::min<int64_t>(M * LANES, n - s));
}
// out[k] for k in [0, n) from f(Vecs<N>(), k0), which gives the N LANES values k0, k0 + 1,
// ...: DW at a time, then the fewest vectors that hold the rest as one pack, overlapping the
// values before them (f gives those again), or from 0 if there are none (f then computes
// values past n, which are not kept). Bengio 1994's rows of 20 draws, two vectors, took 1.27
// times as long one vector after the other.
template <class Fn> static inline void along(int64_t n, float* out, Fn f) {
  int64_t k0 = 0;
  for (; k0 + DW <= n; k0 += DW) store(out + k0, f(Vecs<DV>(), k0));
  if (k0 == n) return;
  const int m = (int)((n - k0 + LANES - 1) / LANES);
  last<1>(m, std::max<int64_t>(0, n - (int64_t)m * LANES), n, out, f);
}

// out[i] = normal(bits[i]), i < n
template <bool FUSED> static void normals(int64_t n, const uint32_t* bits, float* out) {
  uint32_t b[DW] = {};  // fewer than DW: from a copy, the lanes past n zeros
  if (n < DW) memcpy(b, bits, sizeof(uint32_t) * std::max<int64_t>(n, 0));
  const uint32_t* from = n < DW ? b : bits;
  along(n, out, [&](auto v, int64_t k0) { return normal<FUSED>(load<vu, decltype(v)::value>(from + k0)); });
}

// a (n) of (32 bits, position) pairs, positions in order, sorted by their high 32 bits (ties
// in position order: the order std::sort gives the pairs, which are distinct): least
// significant digit first, 11, 11 and 10 bits, each pass stable; ``b``: scratch of n. For n
// of 10^4 (a sweep's labels and splits), 3 passes took a tenth of std::sort's time
static void radix_sort_high(uint64_t* a, uint64_t* b, int n) {
  static constexpr int SHIFT[3] = {32, 43, 54}, WIDTH[3] = {11, 11, 10};
  std::vector<uint32_t> count(3 << 11, 0);
  for (int j = 0; j < n; ++j)
    for (int d = 0; d < 3; ++d) ++count[(d << 11) + ((a[j] >> SHIFT[d]) & ((1u << WIDTH[d]) - 1))];
  for (int d = 0; d < 3; ++d) {
    uint32_t* c = &count[d << 11];
    uint32_t at = 0;
    for (int k = 0; k < 1 << WIDTH[d]; ++k) {
      const uint32_t m = c[k];
      c[k] = at, at += m;
    }
    for (int j = 0; j < n; ++j) b[c[(a[j] >> SHIFT[d]) & ((1u << WIDTH[d]) - 1)]++] = a[j];
    std::swap(a, b);
  }
  // three passes: the sorted pairs are in the scratch array; back to a
  memcpy(b, a, sizeof(uint64_t) * n);
}

// from how many values ``shuffle`` sorts by radix: std::sort took 3.5 us for 1024 against
// radix's 3.9, 7.0 against 6.2 for 2001 (``prng_differences`` checks a shuffle of 2001
// against JAX's), 360 against 27 for 10^4 (Zen 5)
enum { RADIX_FROM = 1024 };

// JAX's permutation of x (n values) by key: ``rounds`` stable sorts by fresh 32-bit keys
template <class T>
static void shuffle(Key key, T* x, int n, int rounds, std::vector<uint64_t>& tmp, std::vector<T>& moved) {
  tmp.resize(2 * (size_t)n), moved.resize(n);
  for (int r = 0; r < rounds; ++r) {
    Key sub = child(key, 1);
    key = child(key, 0);
    for (int j = 0; j < n; ++j) tmp[j] = (uint64_t)bits32(sub, (uint32_t)j) << 32 | (uint32_t)j;
    // (bits, position): ties keep their order, as a stable sort
    if (n >= RADIX_FROM) radix_sort_high(tmp.data(), tmp.data() + n, n);
    else std::sort(tmp.begin(), tmp.begin() + n);
    for (int j = 0; j < n; ++j) moved[j] = x[(uint32_t)tmp[j]];
    std::copy(moved.begin(), moved.end(), x);
  }
}

// run f(r) for r in [0, R) on ``threads`` threads, members taken in turn
template <class Fn>
static void each_member(int R, int threads, Fn f) {
  threads = std::max(1, std::min(threads, R));
  std::vector<std::thread> pool;
  for (int w = 1; w < threads; ++w)
    pool.emplace_back([=] {
      for (int r = w; r < R; r += threads) f(r);
    });
  for (int r = 0; r < R; r += threads) f(r);
  for (auto& t : pool) t.join();
}

// (n, T) unit normals, step t of sequence i from fold_in(key, t)'s bits i: the array's values
// in order (k = i T + t), DW at a time, each lane's step key read from the steps' keys laid
// out again past T (lane j of a block starting at step r has step (r + j) mod T, and sequence
// k0 / T + (r + j) / T)
static void unit_noise(Key key, int n, int T, float* e) {
  if (n <= 0 || T <= 0) return;
  std::vector<uint32_t> ka(T + DW), kb(T + DW), d(T + DW);
  for (int t = 0; t < T; ++t) {
    Key k = child(key, (uint32_t)t);
    ka[t] = k.a, kb[t] = k.b;
  }
  for (int j = 0; j < T + DW; ++j) ka[j] = ka[j % T], kb[j] = kb[j % T], d[j] = (uint32_t)(j / T);
  along((int64_t)n * T, e, [&](auto v, int64_t k0) {
    constexpr int N = decltype(v)::value;
    const int r = (int)(k0 % T);
    const uint32_t i0 = (uint32_t)(k0 / T);
    return normal<true>(bits32(load<vu, N>(&ka[r]), load<vu, N>(&kb[r]), load<vu, N>(&d[r]) + i0));
  });
}

static void balanced_labels(Key key, int n, int rounds, int32_t* y) {
  std::vector<uint64_t> tmp;
  std::vector<int32_t> moved;
  for (int i = 0; i < n; ++i) y[i] = i % 2;
  shuffle(key, y, n, rounds, tmp, moved);
}

extern "C" {

// 1 if fused multiply-adds are instructions of this build (else __builtin_fmaf is a library
// call, tens of times slower than JAX: latchlab then keeps the JAX path)
int prng_hardware_fma(void) { return LATCH_HARDWARE_FMA; }

// keys (R, 3, 2): each seed's (data, split, init) keys, split(PRNGKey(seed), 3); seeds < 2^32
void prng_member_keys(int R, const uint32_t* seeds, uint32_t* keys) {
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 3; ++j) {
      Key k = child(Key{0, seeds[r]}, (uint32_t)j);
      keys[(r * 3 + j) * 2] = k.a, keys[(r * 3 + j) * 2 + 1] = k.b;
    }
}

// out[i] = normal(bits[i]): what latchlab checks against JAX on every input; unfused: as
// XLA computes it unoptimised (``data._init``, compiled at level 0)
void prng_normal(int64_t n, const uint32_t* bits, float* out) { normals<true>(n, bits, out); }
void prng_normal_unfused(int64_t n, const uint32_t* bits, float* out) { normals<false>(n, bits, out); }

// out (R, n): log(uniform(keys[r], (n,), lo, hi[r])) of keys (R, 2), as ``data._init``
// computes a chrono initialisation's forget biases: XLA fuses the uniform into the log's
// loop, and there its multiply-add is one fused instruction (alone it is two roundings)
void prng_log_uniform(int R, const uint32_t* keys, int n, float lo, const float* hi, float* out) {
  for (int r = 0; r < R; ++r) {
    along(n, out + (size_t)r * n, [&](auto v, int64_t i0) {
      constexpr int N = decltype(v)::value;
      const Pk<vu, N> k0 = splat_pk<vu, N>(keys[2 * r]), k1 = splat_pk<vu, N>(keys[2 * r + 1]);
      const Pk<vf, N> f = as_floats((bits32(k0, k1, counters<N>((uint32_t)i0)) >> 9) | 0x3F800000u) - 1.0f;
      const Pk<vf, N> a = fmadd(f, hi[r] - lo, lo);
      return xla_log(sel(a > lo, a, splat_pk<vf, N>(lo)));  // std::max(lo, a)
    });
  }
}

// children (R, n, 2): split(keys[r], n); bits (R, n): random_bits(keys[r], 32, (n,)), each
// of the R keys (R, 2)
void prng_children(int R, const uint32_t* keys, int n, uint32_t* children) {
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < n; ++i) {
      Key k = child(Key{keys[2 * r], keys[2 * r + 1]}, (uint32_t)i);
      children[(r * n + i) * 2] = k.a, children[(r * n + i) * 2 + 1] = k.b;
    }
}
void prng_bits(int R, const uint32_t* keys, int n, uint32_t* bits) {
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < n; ++i) bits[(size_t)r * n + i] = bits32(Key{keys[2 * r], keys[2 * r + 1]}, (uint32_t)i);
}

// out (R, count, P): uniform(fold_in(keys[r], first + j), (P,), lo, hi) for j < count, of keys
// (R, 2): the guesses of latchlab.experiments.guessing (``guesses``), a guess a lane (its key,
// then its P draws, 23 random bits as a float in [1, 2), less 1, times hi - lo plus lo in one
// rounding, as XLA fuses it there, and at least lo)
void prng_guesses(int R, const uint32_t* keys, int first, int count, int P, float lo, float hi, float* out,
                  int threads) {
  each_member(R, threads, [&](int r) {
    const Pk<vu, DV> ka = splat_pk<vu, DV>(keys[2 * r]), kb = splat_pk<vu, DV>(keys[2 * r + 1]);
    float* o = out + (size_t)r * count * P;
    for (int j0 = 0; j0 < count; j0 += DW) {
      Pk<vu, DV> g0 = splat_pk<vu, DV>(0u), g1 = counters<DV>((uint32_t)(first + j0));
      threefry(ka, kb, g0, g1);  // each lane's key: fold_in(key, first + j)
      for (int p = 0; p < P; ++p) {
        const Pk<vf, DV> f = as_floats((bits32(g0, g1, splat_pk<vu, DV>((uint32_t)p)) >> 9) | 0x3F800000u) - 1.0f;
        const Pk<vf, DV> a = fmadd(f, hi - lo, lo);
        float v[DW];
        store(v, sel(a > lo, a, splat_pk<vf, DV>(lo)));  // std::max(lo, a)
        for (int l = 0; l < DW && j0 + l < count; ++l) o[(size_t)(j0 + l) * P + p] = v[l];
      }
    }
  });
}

// tasks.latch(key, n, T, noise, signal_len) of R data keys (R, 2): x (R, n, T), y (R, n)
void prng_latch(int R, const uint32_t* keys, int n, int T, const float* noise, const int32_t* signal_len, int rounds,
                float* x, int32_t* y, int threads) {
  each_member(R, threads, [&](int r) {
    Key k{keys[2 * r], keys[2 * r + 1]};
    int32_t* yr = y + (int64_t)r * n;
    float* xr = x + (int64_t)r * n * T;
    balanced_labels(child(k, 0), n, rounds, yr);
    unit_noise(child(k, 1), n, T, xr);
    const float s = noise[r];
    const int L = std::min(signal_len[r], T);
    for (int i = 0; i < n; ++i) {  // x = signal + noise e, the signal 1 or 0 times the sign (so
      float* row = xr + (int64_t)i * T;  // a noise of 0 gives JAX's signed zeros); XLA rounds noise e first
      const float sign = yr[i] ? 1.0f : -1.0f, off = 0.0f * sign;
      for (int t = 0; t < L; ++t) row[t] = sign + s * row[t];
      for (int t = L; t < T; ++t) row[t] = off + s * row[t];
    }
  });
}

// bit relay's draws of R data keys: unit noise e (R, n, T), first signs a (R, n), labels y (R, n)
void prng_bit_relay(int R, const uint32_t* keys, int n, int T, int rounds, float* e, float* a, int32_t* y,
                    int threads) {
  each_member(R, threads, [&](int r) {
    Key k{keys[2 * r], keys[2 * r + 1]};
    balanced_labels(child(k, 0), n, rounds, y + (int64_t)r * n);
    Key ka = child(k, 1);
    for (int i = 0; i < n; ++i) a[(int64_t)r * n + i] = bits32(ka, (uint32_t)i) < 0x80000000u ? 1.0f : -1.0f;
    unit_noise(child(k, 2), n, T, e + (int64_t)r * n * T);
  });
}

// bengio1994's members of R seeds (< 2^32): (k_init, k_data) = split(PRNGKey(seed)) and
// (k_tr, k_te) = split(k_data), as keys (R, 2) each; the initial inputs h (R, 2, L) =
// uniform(k_init, (2, L), -1, 1) * h_init (its 23 random bits as a float in [1, 2), less 1,
// times 2 less 1, at least -1: every step exact or rounded once, as XLA computes them)
void prng_b94_members(int R, const uint32_t* seeds, int L, float h_init, float* h, uint32_t* k_tr, uint32_t* k_te) {
  for (int r = 0; r < R; ++r) {
    Key seed{0, seeds[r]}, k_init = child(seed, 0), k_data = child(seed, 1);
    Key tr = child(k_data, 0), te = child(k_data, 1);
    k_tr[2 * r] = tr.a, k_tr[2 * r + 1] = tr.b, k_te[2 * r] = te.a, k_te[2 * r + 1] = te.b;
    for (int i = 0; i < 2 * L; ++i) {
      float f = as_float((bits32(k_init, (uint32_t)i) >> 9) | 0x3F800000u) - 1.0f;
      h[(int64_t)r * 2 * L + i] = std::max(-1.0f, f * 2.0f + -1.0f) * h_init;
    }
  }
}

// bengio1994's noise of R members (keys (R, 2)) at the steps after the L trainable ones,
// time-major (R, T - L, n): step j's n draws normal(fold_in(key, j), (n,)), times sd[r]
void prng_b94_noise(int R, const uint32_t* keys, int L, int T, int n, const float* sd, float* out, int threads) {
  each_member(R, threads, [&](int r) {
    const Key k{keys[2 * r], keys[2 * r + 1]};
    const float s = sd[r];
    for (int j = L; j < T; ++j) {
      const Key kj = child(k, (uint32_t)j);
      float* row = out + ((int64_t)r * (T - L) + (j - L)) * n;
      along(n, row, [&](auto v, int64_t i0) {
        constexpr int N = decltype(v)::value;
        return normal<true>(bits32(splat_pk<vu, N>(kj.a), splat_pk<vu, N>(kj.b), counters<N>((uint32_t)i0))) * s;
      });
    }
  });
}

// tasks.split of R members' 0/1 labels y (R, n) by their split keys (R, 2): sorted
// training (R, n - n_val) and validation (R, n_val) indices; tail[r] picks the tail split
void prng_split(int R, const uint32_t* keys, const int32_t* y, int n, int n_val, int n_pos, const uint8_t* tail,
                int rounds, int32_t* tr, int32_t* va, int threads) {
  each_member(R, threads, [&](int r) {
    const int32_t* yr = y + (int64_t)r * n;
    std::vector<uint8_t> is_val(n, 0);
    if (tail[r]) {  // rank in the order positives first (stably); the last n_val are validation
      int n1 = 0;
      for (int i = 0; i < n; ++i) n1 += yr[i] == 1;
      int c1 = 0, c0 = 0;
      for (int i = 0; i < n; ++i) {
        int rank = yr[i] == 1 ? c1++ : n1 + c0++;
        is_val[i] = rank >= n - n_val;
      }
    } else {  // the first n_pos positives and n_val - n_pos negatives of a permutation
      std::vector<int32_t> perm(n), moved;
      std::vector<uint64_t> tmp;
      for (int i = 0; i < n; ++i) perm[i] = i;
      shuffle(Key{keys[2 * r], keys[2 * r + 1]}, perm.data(), n, rounds, tmp, moved);
      int c1 = 0, c0 = 0;
      for (int j = 0; j < n; ++j) {
        bool pos = yr[perm[j]] == 1;
        is_val[perm[j]] = pos ? ++c1 <= n_pos : ++c0 <= n_val - n_pos;
      }
    }
    // jnp.nonzero(.., size=...): the first indices in order, padded with 0
    int32_t *t = tr + (int64_t)r * (n - n_val), *v = va + (int64_t)r * n_val;
    int nt = 0, nv = 0;
    for (int i = 0; i < n; ++i) {
      if (is_val[i]) {
        if (nv < n_val) v[nv++] = i;
      } else if (nt < n - n_val) {
        t[nt++] = i;
      }
    }
    std::fill(t + nt, t + (n - n_val), 0);
    std::fill(v + nv, v + n_val, 0);
  });
}
}
