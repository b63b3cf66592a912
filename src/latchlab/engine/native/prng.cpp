// JAX's random numbers for the latch and bit relay tasks, bit for bit: the members' keys,
// each seed's longest sequences and labels, the train/validation splits, and the keys, bits,
// normal values and chrono biases of the members' initial parameters, that
// latchlab/engine/data.py otherwise makes with jax.random on XLA (whose compilations took
// 0.2-1.2 s each and whose Threefry ran at a tenth of this speed).
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
#include <vector>

static inline uint32_t rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

// threefry2x32(key, (x0, x1)), in place: JAX's threefry2x32 primitive, unrolled
static inline void threefry(uint32_t k0, uint32_t k1, uint32_t& x0, uint32_t& x1) {
  const uint32_t k2 = k0 ^ k1 ^ 0x1BD11BDAu;
#define LATCH_R(r) x0 += x1, x1 = rotl(x1, r), x1 ^= x0
#define LATCH_R0 LATCH_R(13), LATCH_R(15), LATCH_R(26), LATCH_R(6)
#define LATCH_R1 LATCH_R(17), LATCH_R(29), LATCH_R(16), LATCH_R(24)
  x0 += k0, x1 += k1;
  LATCH_R0, x0 += k1, x1 += k2 + 1u;
  LATCH_R1, x0 += k2, x1 += k0 + 2u;
  LATCH_R0, x0 += k0, x1 += k1 + 3u;
  LATCH_R1, x0 += k1, x1 += k2 + 4u;
  LATCH_R0, x0 += k2, x1 += k0 + 5u;
#undef LATCH_R
#undef LATCH_R0
#undef LATCH_R1
}

struct Key {
  uint32_t a, b;
};
// split(key, n)[i], and fold_in(key, i)
static inline Key child(Key k, uint32_t i) {
  uint32_t x0 = 0, x1 = i;
  threefry(k.a, k.b, x0, x1);
  return {x0, x1};
}
static inline uint32_t bits32(Key k, uint32_t i) {
  uint32_t x0 = 0, x1 = i;
  threefry(k.a, k.b, x0, x1);
  return x0 ^ x1;
}

static inline float as_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t as_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float F(uint32_t u) { return as_float(u); }  // a constant by its bits, as XLA's IR writes it
#define FMA __builtin_fmaf
// a multiply-add of XLA's that LLVM fuses at its usual optimisation levels, not at level 0
#define MAD(a, b, c) (FUSED ? FMA(a, b, c) : (a) * (b) + (c))

// XLA:CPU's log(a) for a > 0 (Cephes' logf: the mantissa in [sqrt(1/2), sqrt(2)), three
// interleaved polynomial chains), and its special values
static inline float xla_log(float a) {
  float m = std::max(a, F(0x00800000));
  uint32_t mb = as_bits(m);
  float e = (float)((int32_t)(mb >> 23) - 127) + 1.0f;
  float mant = as_float((mb & 0x807FFFFFu) | 0x3F000000u);
  bool lo = mant < F(0x3F3504F3);
  float x = (mant + -1.0f) + (lo ? mant : 0.0f);
  if (lo) e = e - 1.0f;
  float z = x * x, z3 = x * z;
  float p = FMA(x, F(0x3D9021BB), F(0xBDEBD1B8));
  float q = FMA(x, F(0xBDFE5D4F), F(0x3E11E9BF));
  p = FMA(p, x, F(0x3DEF251A));
  q = FMA(q, x, F(0xBE2AAE50));
  q = FMA(p, z3, q);
  float r = FMA(x, F(0x3E4CCEAC), F(0xBE7FFFFC));
  r = FMA(r, x, F(0x3EAAAAAA));
  q = FMA(q, z3, r);
  float s = FMA(q, z3, e * F(0xB95E8083));
  float y = FMA(e, F(0x3F318000), (x - 0.5f * z) + s);
  if (!(a > 0.0f)) return a == 0.0f ? -__builtin_inff() : __builtin_nanf("");
  return a == __builtin_inff() ? a : y;
}

// XLA:CPU's log1p(w): a rational approximation for |w| < sqrt(2) - 1, else log(1 + w).
// FUSED: its multiply-adds fused, as LLVM contracts them at XLA's usual optimisation
// levels; unfused, as at level 0 (``data._init``'s). XLA's log fuses its own either way.
template <bool FUSED = true> static inline float xla_log1p(float w) {
  float w2 = w * w;
  float num = 1.0f, den = 4.527e-05f;
  const uint32_t cn[6] = {0x417101AD, 0x42A6185B, 0x435DC32D, 0x439A8CA3, 0x43586D8A, 0x42707982};
  const uint32_t cd[6] = {0x3EFF40C5, 0x40D284FA, 0x41EF4B9C, 0x4273CC76, 0x426473AD, 0x41A05101};
  for (int k = 0; k < 6; ++k) num = MAD(num, w, F(cn[k])), den = MAD(den, w, F(cd[k]));
  float small = w + MAD(-0.5f, w2, (w * w2) * (den / num));
  return __builtin_fabsf(w) < F(0x3ED413CD) ? small : xla_log(w + 1.0f);
}

// jax.random.normal's value for 32 random bits: sqrt(2) erfinv(u), u = max(lo, 2 f + lo)
// with f in [0, 1) from the top 23 bits and lo = -1 + 2^-24; FUSED as for xla_log1p
template <bool FUSED = true> static inline float normal(uint32_t bits) {
  const float lo = F(0xBF7FFFFF);
  float f = as_float((bits >> 9) | 0x3F800000u) + -1.0f;
  float u = std::max(MAD(f, 2.0f, lo), lo);
  float l = xla_log1p<FUSED>(u * -u);
  bool lt = l > -5.0f;
  float w = lt ? -2.5f - l : __builtin_sqrtf(-l) + -3.0f;
  static const uint32_t c_lt[9] = {0x32F16588, 0x34B84B36, 0xB66C7357, 0xB6935AC1, 0x396532DB,
                                   0xBAA45408, 0xBB88E4EF, 0x3E7C8F63, 0x3FC02E2F};
  static const uint32_t c_ge[9] = {0xB951F09B, 0x38D3B56B, 0x3AB0DC72, 0xBB70BDE7, 0x3BBC127B,
                                   0xBBF9C5D7, 0x3C1AA57E, 0x3F8036DB, 0x40354F7E};
  float p = MAD(F(lt ? c_lt[0] : c_ge[0]), w, F(lt ? c_lt[1] : c_ge[1]));
  for (int k = 2; k < 9; ++k) p = MAD(w, p, F(lt ? c_lt[k] : c_ge[k]));
  if (__builtin_fabsf(u) == 1.0f) p = __builtin_inff();
  return (u * p) * F(0x3FB504F3);
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

// f(i) for i in [0, n), in blocks of 16 (a whole number of vectors on every build), the last
// overlapping the one before (f must write the same values again): a loop over all n left
// n mod 8 values to scalar code, each as slow as a vector (rows of 100 normals: 3.1 ns a
// draw, against 2.4 for rows of 96; in blocks, 2.7)
enum { BLOCK = 16 };
template <class Fn>
static inline void in_blocks(int n, Fn f) {
  if (n < BLOCK) {
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  for (int i0 = 0; i0 < n; i0 += BLOCK) {
    const int s = std::min(i0, n - BLOCK);
    for (int i = s; i < s + BLOCK; ++i) f(i);
  }
}

// (n, T) unit normals, step t of sequence i from fold_in(key, t)'s bits i
// (the steps' keys as two arrays: GCC vectorises the loop over t then, 4x faster than over Keys)
static void unit_noise(Key key, int n, int T, float* e) {
  std::vector<uint32_t> ka(T), kb(T);
  for (int t = 0; t < T; ++t) {
    Key k = child(key, (uint32_t)t);
    ka[t] = k.a, kb[t] = k.b;
  }
  for (int i = 0; i < n; ++i) {
    float* row = e + (int64_t)i * T;
    in_blocks(T, [&](int t) { row[t] = normal(bits32(Key{ka[t], kb[t]}, (uint32_t)i)); });
  }
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
int prng_hardware_fma(void) {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__)
  return 1;
#else
  return 0;
#endif
}

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
void prng_normal(int64_t n, const uint32_t* bits, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = normal(bits[i]);
}
void prng_normal_unfused(int64_t n, const uint32_t* bits, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = normal<false>(bits[i]);
}

// out (R, n): log(uniform(keys[r], (n,), lo, hi[r])) of keys (R, 2), as ``data._init``
// computes a chrono initialisation's forget biases: XLA fuses the uniform into the log's
// loop, and there its multiply-add is one fused instruction (alone it is two roundings)
void prng_log_uniform(int R, const uint32_t* keys, int n, float lo, const float* hi, float* out) {
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < n; ++i) {
      const float f = as_float((bits32(Key{keys[2 * r], keys[2 * r + 1]}, (uint32_t)i) >> 9) | 0x3F800000u) - 1.0f;
      out[(size_t)r * n + i] = xla_log(std::max(lo, FMA(f, hi[r] - lo, lo)));
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
      in_blocks(n, [&](int i) { row[i] = normal(bits32(kj, (uint32_t)i)) * s; });
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
