// What latchlab's native sources (kernels.cpp, bengio94.cpp, prng.cpp, guessing.cpp) share:
// the SIMD vector of the instruction set, the fused multiply-add, the tanh of XLA:CPU, and the
// flush of subnormal floats. Included by each; latchlab/engine/native/__init__.py hashes it
// with each source.
#pragma once
#include <math.h>
#include <stdint.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

// Vector width per instruction set (the compiler's -march): one register of 16 floats on
// AVX-512 (32 registers), 8 on AVX2 (16 registers; 64-byte vectors there are pairs of
// halves, and GCC moved their lanes one by one through the stack: the kernels
// were slower than XLA, docs/benchmarks.md), 4 elsewhere (NEON, SSE: GCC lowers the
// portable vector extensions to them). LATCH_VBYTES overrides it, for measurements.
#ifndef LATCH_VBYTES
#if defined(__AVX512F__)
#define LATCH_VBYTES 64
#elif defined(__AVX2__)
#define LATCH_VBYTES 32
#else
#define LATCH_VBYTES 16
#endif
#endif
#if defined(__AVX512F__)
#define LATCH_ISA "avx512"
#elif defined(__AVX2__)
#define LATCH_ISA "avx2"
#elif defined(__ARM_NEON)
#define LATCH_ISA "neon"
#else
#define LATCH_ISA "portable"
#endif

// Vector registers of the instruction set: 32 with AVX-512 and on aarch64, 16 otherwise
#if defined(__AVX512F__) || defined(__aarch64__)
#define LATCH_VREGS 32
#else
#define LATCH_VREGS 16
#endif

typedef float vf __attribute__((vector_size(LATCH_VBYTES)));
typedef int32_t vi __attribute__((vector_size(LATCH_VBYTES)));
enum { LANES = LATCH_VBYTES / 4 };

static inline vf splat(float a) { return vf{} + a; }
// the float of bits u (a constant by its bits, as XLA's IR writes it)
static inline __attribute__((always_inline)) float as_float(uint32_t u) {
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// Adam's step factor at step n, sqrt(1 - b2^n) / (1 - b1^n) in float32 (Keras' Adam, as
// train.scale_by_keras_adam computes it: its learning rate applied apart)
static inline float adam_factor(int32_t n) {
  return sqrtf(1.0f - powf(0.999f, (float)n)) / (1.0f - powf(0.9f, (float)n));
}
// vmin(a, b) = a < b ? a : b and vmax(a, b) = a > b ? a : b, which is how x86's minps and
// maxps are defined (b when either is NaN or both are zeros). GCC does not turn the selects
// into them (it emits a compare and a blend: two instructions each), so on x86 they are
// called by name (LATCH_PS: the intrinsic of the vector's width); the numbers are the same.
#if defined(__AVX512F__) && LATCH_VBYTES == 64
#define LATCH_PS(op, a, b) (vf) _mm512_##op##_ps((__m512)(a), (__m512)(b))
#elif defined(__AVX__) && LATCH_VBYTES == 32
#define LATCH_PS(op, a, b) (vf) _mm256_##op##_ps((__m256)(a), (__m256)(b))
#elif defined(__SSE__) && LATCH_VBYTES == 16
#define LATCH_PS(op, a, b) (vf) _mm_##op##_ps((__m128)(a), (__m128)(b))
#endif
#ifdef LATCH_PS
static inline vf vmin(vf a, vf b) { return LATCH_PS(min, a, b); }
static inline vf vmax(vf a, vf b) { return LATCH_PS(max, a, b); }
#else
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
#endif
// x held in a register from here on: an empty instruction that reads and writes it there, so
// the compiler cannot fold its later uses into memory operands (each a load of its own), nor
// see what computed it. Only where a vector is one register (x86: "v", aarch64: "w";
// LATCH_PINS 1); a no-op otherwise, and with LATCH_NO_PIN (for measurements).
#if defined(LATCH_NO_PIN)
#define LATCH_PINS 0
static inline void pin(vf &) {}
#elif (LATCH_VBYTES == 64 && defined(__AVX512F__)) || (LATCH_VBYTES == 32 && defined(__AVX__)) || \
    (LATCH_VBYTES == 16 && defined(__SSE__))
#define LATCH_PINS 1
static inline void pin(vf &x) { __asm__("" : "+v"(x)); }
#elif LATCH_VBYTES == 16 && defined(__aarch64__)
#define LATCH_PINS 1
static inline void pin(vf &x) { __asm__("" : "+w"(x)); }
#else
#define LATCH_PINS 0
static inline void pin(vf &) {}
#endif

// a fused multiply-add a lane (one rounding), as an instruction: where a source must fuse
// exactly the products another code generator fuses (prng.cpp, guessing.cpp). Where the
// instruction set has none (LATCH_HARDWARE_FMA 0: x86-64 before AVX2), __builtin_fmaf is a
// library call, tens of times slower, and those sources' libraries are not used.
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__)
#define LATCH_HARDWARE_FMA 1
#else
#define LATCH_HARDWARE_FMA 0
#endif
static inline __attribute__((always_inline)) vf vfma(vf a, vf b, vf c) {
#if defined(__AVX512F__) && LATCH_VBYTES == 64
  return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__) && LATCH_VBYTES == 32
  return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif defined(__FMA__) && LATCH_VBYTES == 16
  return (vf)_mm_fmadd_ps((__m128)a, (__m128)b, (__m128)c);
#else  // a lane at a time (aarch64's vectoriser makes it one instruction)
  vf r;
  for (int l = 0; l < LANES; l++) r[l] = __builtin_fmaf(a[l], b[l], c[l]);
  return r;
#endif
}
// |a|: the sign bit cleared (one instruction; a < 0 ? -a : a took three)
static inline vf vabs(vf a) { return (vf)((vi)a & 0x7fffffff); }

// XLA:CPU's float32 tanh, Eigen's rational approximation, with its argument clamped to
// [-clamp, clamp] (each source says which clamp it keeps, and why): x P(x^2) / Q(x^2), both
// by Horner's rule from the highest power, and the argument itself where |a| < 0.0004.
static constexpr float TANH_P[7] = {-2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f,
                                    5.12229709037114e-08f,  1.48572235717979e-05f, 6.37261928875436e-04f,
                                    4.89352455891786e-03f};
static constexpr float TANH_Q[4] = {1.19825839466702e-06f, 1.18534705686654e-04f, 2.26843463243900e-03f,
                                    4.89352518554385e-03f};
// N vectors' tanh in place, each of its operations for all N in turn (the same operations on
// every lane, whatever N): each constant is loaded once for the N where too few registers
// keep them. A source may define LATCH_TANH_INLINE before including this file (bengio94.cpp
// makes it always_inline).
#ifndef LATCH_TANH_INLINE
#define LATCH_TANH_INLINE inline
#endif
template <int N> static LATCH_TANH_INLINE void vtanh_clamped_n(vf (&a)[N], float clamp) {
  vf x[N], x2[N], p[N], q[N];
  for (int n = 0; n < N; n++) x[n] = vmin(vmax(a[n], splat(-clamp)), splat(clamp));
  for (int n = 0; n < N; n++) x2[n] = x[n] * x[n];
  for (int n = 0; n < N; n++) p[n] = x2[n] * TANH_P[0] + TANH_P[1];
#pragma GCC unroll 8
  for (int k = 2; k < 7; k++)
    for (int n = 0; n < N; n++) p[n] = x2[n] * p[n] + TANH_P[k];
  for (int n = 0; n < N; n++) p[n] = x[n] * p[n];
  for (int n = 0; n < N; n++) q[n] = x2[n] * TANH_Q[0] + TANH_Q[1];
#pragma GCC unroll 8
  for (int k = 2; k < 4; k++)
    for (int n = 0; n < N; n++) q[n] = x2[n] * q[n] + TANH_Q[k];
  for (int n = 0; n < N; n++) a[n] = vabs(a[n]) < 0.0004f ? a[n] : p[n] / q[n];
}
// one vector's
static LATCH_TANH_INLINE vf vtanh_clamped(vf a, float clamp) {
  vf v[1] = {a};
  vtanh_clamped_n<1>(v, clamp);
  return v[0];
}

// Subnormal floats flushed to zero while a kernel runs, as XLA:CPU does (JAX on the CPU
// computes 2e-38 * 0.01 as 0): gradients decaying backward through long sequences went
// subnormal, and each such operation took a microcode assist (the GRU's epoch 3.5x, the
// LSTM's 2.2x slower, docs/benchmarks.md). Per thread; the caller's mode is restored on return.
struct FlushSubnormals {
#if defined(__SSE__)
  unsigned saved = __builtin_ia32_stmxcsr();
  FlushSubnormals() { __builtin_ia32_ldmxcsr(saved | 0x8040); }  // FTZ | DAZ
  ~FlushSubnormals() { __builtin_ia32_ldmxcsr(saved); }
#elif defined(__aarch64__)  // the register by name (GCC's builtins for it are not clang's)
  static uint64_t fpcr() {
    uint64_t r;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(r));
    return r;
  }
  static void set_fpcr(uint64_t r) { __asm__ __volatile__("msr fpcr, %0" : : "r"(r)); }
  uint64_t saved = fpcr();
  FlushSubnormals() { set_fpcr(saved | (1UL << 24)); }  // FZ
  ~FlushSubnormals() { set_fpcr(saved); }
#endif
};
