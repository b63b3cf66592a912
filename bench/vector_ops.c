// What other vector operations cost beside multiply-adds on this CPU. bench/experiments.py's
// bound counts a cell's flops at the matrix product's rate (about two multiply-adds a cycle
// on a Zen 4 or 5) and its tanh at the kernels' tanh rate: each elementwise operation a flop,
// half a multiply-add, and Adam's divisions and square roots not at all. What those cost
// depends on which execution units they share with the multiply-adds.
//
//   cc -O2 -march=native bench/vector_ops.c -o /tmp/vector_ops && /tmp/vector_ops
//   (-march=x86-64-v3 for the AVX2 code on an AVX-512 CPU)
//
// Each loop issues independent instructions (10 multiply-add accumulators, enough to cover
// their latency at two a cycle; they and the rest fit AVX2's 16 registers) on AVX-512
// vectors where the build has them, else AVX2. Cycles come from the clock of a chain of
// dependent integer adds (one a cycle), in the same process. Each mix is printed against
// the multiply-adds alone, and as the multiply-add slots one of its other instructions took
// (0: it ran beside them; 1: it took one's place). docs/benchmarks.md has a Zen 5's numbers.
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#ifdef __AVX512F__
typedef __m512 V;
#define SET1 _mm512_set1_ps
#define ISA "AVX-512"
#else
typedef __m256 V;
#define SET1 _mm256_set1_ps
#define ISA "AVX2"
#endif
// one instruction on whole vectors (the register names give its width), kept where it is
// written: the compiler may neither merge it with another nor take it out of the loop
#define MA(a) __asm__ volatile("vfmadd231ps %1, %2, %0" : "+v"(a) : "v"(x), "v"(y))
#define OP(b, ins) __asm__ volatile(ins " %1, %2, %0" : "=v"(b) : "v"(x), "v"(y))
#define OP1(b, ins) __asm__ volatile(ins " %1, %0" : "=v"(b) : "v"(x))

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

enum { N = 20000000 };

static double ghz(void) {  // a chain of dependent adds: one a cycle
  unsigned long x = 0;
  double t = now();
  for (long i = 0; i < 4 * (long)N; i++) __asm__ volatile("add $1, %0" : "+r"(x));
  return 4.0 * N / (now() - t) / 1e9;
}

// cycles an iteration of 10 multiply-adds and, for kind k > 0, four other instructions
// (multiply, add, max) or one (divide, square root); every vector a named variable, so that
// each stays in a register
static double mix(int k, double clock) {
  V x = SET1(1.0f), y = SET1(0.5f), z = SET1(0.0f);
  V a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z, a8 = z, a9 = z, b0 = z, b1 = z, b2 = z, b3 = z;
#define LOOP(...)                                                                               \
  for (long i = 0; i < N; i++) {                                                                \
    MA(a0); MA(a1); MA(a2); MA(a3); MA(a4); MA(a5); MA(a6); MA(a7); MA(a8); MA(a9); __VA_ARGS__ \
  }
#define FOUR(ins) OP(b0, ins); OP(b1, ins); OP(b2, ins); OP(b3, ins);
  double t = now();
  switch (k) {
    case 0: LOOP() break;
    case 1: LOOP(FOUR("vmulps")) break;
    case 2: LOOP(FOUR("vaddps")) break;
    case 3: LOOP(FOUR("vmaxps")) break;
    case 4: LOOP(OP(b0, "vdivps");) break;
    default: LOOP(OP1(b0, "vsqrtps");) break;
  }
#undef LOOP
#undef FOUR
  return (now() - t) * clock * 1e9 / N;
}

int main(void) {
  const double clock = ghz();
  const double base = mix(0, clock);
  printf("%s, %.2f GHz (an add chain); 10 multiply-adds: %.2f cycles (%.2f a cycle)\n", ISA, clock, base, 10 / base);
  const char *name[] = {"", "multiply", "add", "max", "divide", "square root"};
  const int extra[] = {0, 4, 4, 4, 1, 1};
  for (int k = 1; k <= 5; k++) {
    double c = mix(k, clock);
    printf("10 multiply-adds + %d %-11s: %.2f cycles, %.2fx the multiply-adds alone; one took %.2f multiply-add slots\n",
           extra[k], name[k], c, c / base, (c - base) * (10 / base) / extra[k]);
  }
  return 0;
}
