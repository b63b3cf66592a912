// latchlab's native CPU kernels: whole training epochs and validation passes of LSTM,
// lstm_nofg, SRNN, GRU and JANET ensembles of any size (one-unit cells below, H units in
// "cells of H units" further down), with hand-derived backward passes (the
// LSTM's is latchlab/engine/bptt.py's; each cell's update rule is latchlab/core/cells.py's),
// the optimisers of latchlab/engine/train.py and the heads of latchlab/core/model.py
// (dense2, dense1; linear and seq_softmax, and inputs of F > 1 channels, on the H-unit path).
//
// Why: XLA:CPU runs a recurrence as a while loop with several kernels per time step over
// (members x batch) rows; for one-unit cells each kernel does a few flops per row, so the
// loop costs 15-18 ns per row-step (docs/benchmarks.md). Here a block of rows runs the
// whole sequence with its state in registers and its stored activations in L2, L rows
// to a SIMD vector (GCC's vector extensions, which clang shares, at the instruction set's
// width, below).
//
// Layout (one unit): rows are lanes; lane l of vector v is row v*L + l of a block, row = member * B + b.
// Parameters per member, flat: kernel (F G), recurrent (H G), bias (G), a reset_after GRU's
// recurrent bias (G), head kernel (H O), head bias (O); G = 4 (lstm: i, f, g, o), 3
// (lstm_nofg: i, g, o; gru: z, r, h), 2 (janet: f, c), 1 (srnn); O = 2 (dense2), 1 (dense1,
// linear) or K (seq_softmax); F = H = 1 on this path.
//
// Built by latchlab/engine/native/__init__.py, which passes the codes of cell kinds, gate
// activations, heads and optimisers from its tables (-DLATCH_KIND_LSTM=1, ...) and the
// variant (-DVARIANT_KIND, -DVARIANT_RSIG, -DVARIANT_RESET_AFTER); latch_code() hands the
// codes back for its test.
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(LATCH_KIND_SRNN) || !defined(VARIANT_KIND) || !defined(VARIANT_RSIG) || !defined(VARIANT_RESET_AFTER)
#error "build through latchlab.engine.native: the codes and the variant come from its tables (-DLATCH_...)"
#endif

#include "simd.h"

// Members per block (each member's batch of 16 rows fills 16 / L vectors): the block's
// stored activations, T x 7 x 16 x 4 bytes per member for the LSTM (90 KB at T = 200),
// stay in L2. Measured per instruction set (docs/benchmarks.md, "Instruction sets"): 8
// on AVX-512, 4 on AVX2 and the portable build (358 KB at T = 200: many AVX2 CPUs have
// 512 KB of L2). LATCH_PER_BLOCK overrides it.
#ifndef LATCH_PER_BLOCK
#if LATCH_VBYTES == 64
#define LATCH_PER_BLOCK 8
#else
#define LATCH_PER_BLOCK 4
#endif
#endif

// Vectors an SRNN's one-unit forward pass takes through a step at a time: 4 in the AVX2
// build, where the tanh's constants do not fit the 16 registers and a vector's step is one
// long chain (on a Zen 3: bench/block_ab.py's forward pass 1.2-1.5 times faster with 4,
// 1.20 with 2, 1.31 with 8; bench/kernel_ab.py's epochs 1.05-1.08, validation 1.11-1.18;
// docs/benchmarks.md); one elsewhere, not measured. The LSTMs' gates the same way made
// block_ab's forward passes 1.07-1.11 times faster and epochs no faster: not kept.
// LATCH_FWD_VECTORS overrides it.
#ifndef LATCH_FWD_VECTORS
#if LATCH_VBYTES == 32 && LATCH_VREGS == 16
#define LATCH_FWD_VECTORS 4
#else
#define LATCH_FWD_VECTORS 1
#endif
#endif

// Columns of the H-unit path's pre-activations (``affine``) activated at a time: 4 in the
// AVX2 build, a tanh (or sigmoid gate) of 4 vectors at once, its constants loaded once for
// the 4 (the 16 registers do not keep them); on a Zen 3, bench/kernel_ab.py's 8-unit epochs
// old over new: SRNN 1.03-1.06, with sigmoid gates GRU 1.04-1.07, the others 0.96-1.04 (noise);
// 8 at a time spilled (SRNN 0.94), 2 gained less (docs/benchmarks.md). The cells' own
// activations after ``affine`` (an LSTM's tanh(c), a reset_after GRU's gates and candidate,
// JANET's) take as many units at a time: with sigmoid gates, reset_after GRU 1.10-1.13, LSTM
// 1.02-1.06; with hard-sigmoid gates 0.98-1.04 (noise). One elsewhere, not measured. The
// same operations on every lane either way. LATCH_ACT_VECTORS overrides it.
#ifndef LATCH_ACT_VECTORS
#if LATCH_VBYTES == 32 && LATCH_VREGS == 16
#define LATCH_ACT_VECTORS 4
#else
#define LATCH_ACT_VECTORS 1
#endif
#endif

// Validation rows a member takes through a pass, in vectors: 2, so that a block's forward
// pass has twice as many independent chains as members (with one vector a member, a one-unit
// forward pass waited on its chain of steps). On a Zen 3 (AVX2), the seed's two splits
// validated in 2.19-2.35 s against 2.46-2.59 s (docs/benchmarks.md); 4 was no faster than 2.
// Results do not depend on it: each row's lane runs the same operations, and each member's
// sums take its rows in order. LATCH_EVAL_VECTORS overrides it.
#ifndef LATCH_EVAL_VECTORS
#define LATCH_EVAL_VECTORS 2
#endif

enum { L = LANES };
enum Kind {
  SRNN = LATCH_KIND_SRNN,
  LSTM = LATCH_KIND_LSTM,
  LSTM_NOFG = LATCH_KIND_LSTM_NOFG,
  GRU = LATCH_KIND_GRU,
  JANET = LATCH_KIND_JANET
};
enum Rsig { SIGMOID = LATCH_RSIG_SIGMOID, HARD = LATCH_RSIG_HARD_SIGMOID, HARD3 = LATCH_RSIG_HARD_SIGMOID_KERAS3 };
enum Head {
  DENSE2 = LATCH_HEAD_DENSE2,
  DENSE1 = LATCH_HEAD_DENSE1,
  LINEAR = LATCH_HEAD_LINEAR,
  SEQ = LATCH_HEAD_SEQ_SOFTMAX
};
// the linear head's metric, |z - y| < this: latchlab.core.model.REGRESSION_TOLERANCE, passed
// by the build as the double's hexadecimal literal (rounded to float as JAX rounds it)
static const float REGRESSION_TOLERANCE = (float)LATCH_REGRESSION_TOLERANCE;
enum Opt { ADAM = LATCH_OPTIMIZER_ADAM, SGD = LATCH_OPTIMIZER_SGD, RMSPROP = LATCH_OPTIMIZER_RMSPROP };

// XLA:CPU's tanh: the same values as JAX's up to Eigen's clamp, +-7.90531 (jaxlib's emitter
// clamps at +-7.99881: beyond 7.905 the two differ in the last bit, within every test's
// tolerance; stored results were made with this one)
static constexpr float TANH_CLAMP = 7.90531110763549805f;
static inline vf vtanh(vf a) { return vtanh_clamped(a, TANH_CLAMP); }

// the sigmoid as 0.5 + 0.5 tanh(z / 2): its operations before and after the tanh
static inline vf sigmoid_in(vf z) { return 0.5f * z; }
static inline vf sigmoid_out(vf t) { return 0.5f + 0.5f * t; }
template <int RSIG> static inline vf gate(vf z) {
  if (RSIG == SIGMOID) return sigmoid_out(vtanh(sigmoid_in(z)));
  const float k = RSIG == HARD ? 0.2f : 1.0f / 6.0f;
  return vmin(vmax(k * z + 0.5f, splat(0.0f)), splat(1.0f));
}

// d gate / d z from the gate's value s (a hard sigmoid's slope where it is not clipped:
// k z + 0.5 in (0, 1) exactly where s is)
template <int RSIG> static inline vf dgate(vf s) {
  if (RSIG == SIGMOID) return s * (1.0f - s);
  const float k = RSIG == HARD ? 0.2f : 1.0f / 6.0f;
  return ((s > 0.0f) & (s < 1.0f)) ? splat(k) : splat(0.0f);
}

#ifndef STORE_GATES
#define STORE_GATES 1
#endif
// stored per step: LSTMs h, c, tanh(z_g), tanh(c), and the gate values if STORE_GATES (else
// the backward pass recomputes them); SRNN h, tanh(z); GRU h, z, r, h~ and the reset gate's
// operand q; JANET c, f, i, tanh(z_c)
constexpr int n_gates(int kind) { return kind == SRNN ? 1 : kind == LSTM ? 4 : kind == JANET ? 2 : 3; }

template <int KIND, int RSIG> constexpr int n_stored() {
  if (KIND == GRU) return 5;
  if (KIND == JANET) return 4;
  return KIND == SRNN ? 2 : (RSIG == SIGMOID || STORE_GATES) ? 4 + (KIND == LSTM ? 3 : 2) : 4;
}

static inline vf blend(vf m, vf a, vf b) { return m * a + (1.0f - m) * b; }  // m in {0, 1}
// 1 in the lanes whose first valid step t0 is at or before t, else 0 (blend's mask)
static inline vf begun(int t, vf t0) { return (vf)((vi)(splat((float)t) >= t0) & (vi)splat(1.0f)); }

struct Shape {
  int kind, rsig, reset_after, head, opt, H, F;  // ..., units, input channels
  int G, O, Pc, P;  // gates, head outputs, cell parameters and parameters per member
};

// Cell parameters: kernel (F, G H), recurrent (H, G H), bias (G H; a reset_after GRU's input
// then recurrent bias, 2 G H), row-major as latchlab.core.cells lays them out; then the
// head's kernel (H, O) and bias (O).
static Shape shape(int kind, int rsig, int reset_after, int head, int opt, int H, int F, int O) {
  const int G = n_gates(kind), GH = G * H;
  const int Pc = GH * (F + H) + (reset_after ? 2 : 1) * GH;
  return Shape{kind, rsig, reset_after, head, opt, H, F, G, O, Pc, Pc + H * O + O};
}

// What the one-unit path trains (its lanes hold one scalar input and a dense head's logits);
// everything else takes the path of cells of H units.
static bool one_unit(const Shape &s) { return s.H == 1 && s.F == 1 && (s.head == DENSE2 || s.head == DENSE1); }

// One library per (cell kind, gate activation, reset_after): latchlab/engine/native builds
// the variants a sweep uses (-DVARIANT_KIND=k -DVARIANT_RSIG=r -DVARIANT_RESET_AFTER=a); an
// SRNN has no gates, its variant is (SRNN, SIGMOID, 0), and only a GRU has reset_after = 1.
// Calls for another variant are rejected.
static bool valid(const Shape &s) {
  const bool outputs = s.head == DENSE2                      ? s.O == 2
                       : (s.head == DENSE1 || s.head == LINEAR) ? s.O == 1
                                                                : s.head == SEQ && s.O >= 1;
  return s.kind == VARIANT_KIND && s.rsig == VARIANT_RSIG && s.reset_after == VARIANT_RESET_AFTER && s.H >= 1 &&
         s.F >= 1 && outputs && (s.opt == ADAM || s.opt == SGD || s.opt == RMSPROP);
}

// One block: nv vectors of lanes, rows from members [m0, m0 + nm).
struct Block {
  int nv, tstart, pc;  // pc: parameters a lane (Shape::P; its first Shape::Pc the cell's)
  std::vector<int> t0min, t0max;  // per vector
  std::vector<vf> t0lane;         // per vector: each lane's first valid step
  std::vector<vf> par;            // (nv, P): each lane's parameters, the cell's then the head's
  std::vector<vf> xb;             // (T, nv) inputs, time-major
  // or, from ``gather_batch``, vector v's input at step t >= t0min[v] is xp[v][(t - t0min[v]) xs]
  std::vector<const vf *> xp;
  size_t xs = 0;
  std::vector<vf> st;             // (T, nv, NS) stored activations
  std::vector<vf> h, c, dh;       // (nv); dh: dL/dh_T from the head, for ``backward``
  std::vector<vf> gt;             // (nv, G): an LSTM step's gate values (``forward``)
  std::vector<vf> acc;            // (Pc, nv) gradient accumulators
};

// Whether the cell carries a memory cell c beside h (the LSTMs); JANET's state is its c, kept in h.
constexpr bool has_c(int kind) { return kind == LSTM || kind == LSTM_NOFG; }

// ``forward`` of an SRNN block of exactly NV vectors (a block of the build's one-vector
// members, or their validation passes): the vectors' states stay in registers through the
// steps, where ``forward``'s loop over any number of vectors kept each h[v] in memory, a
// store and a load on every step's chain (the seed sweep's SRNN epochs 1.08 times faster,
// its validation 1.04). The same operations, so the same bits. LATCH_SRNN_REGS=0 leaves it
// out (the tests compare the two).
#ifndef LATCH_SRNN_REGS
#define LATCH_SRNN_REGS 1
#endif
template <int NV, bool LAID>
static void forward_srnn_regs(Block &b, int T, bool store) {
  const int pc = b.pc, G = n_gates(SRNN);
  vf *sts = b.st.data();
  const vf *par = b.par.data(), *xb = b.xb.data(), *t0lane = b.t0lane.data(), *const *xp = b.xp.data();
  const size_t xs = b.xs;
  const int *t0min = b.t0min.data(), *t0max = b.t0max.data();
  vf h[NV];
#pragma GCC unroll 16
  for (int v = 0; v < NV; v++) h[v] = splat(0.0f);
  for (int t = b.tstart; t < T; t++) {
    vf *st = &sts[(size_t)t * NV * 2];
#pragma GCC unroll 16
    for (int v = 0; v < NV; v++) {
      if (t < t0min[v]) continue;
      const vf *W = &par[(size_t)v * pc], *U = W + G, *B = W + 2 * G;
      const vf x = LAID ? xp[v][(size_t)(t - t0min[v]) * xs] : xb[(size_t)t * NV + v];
      vf hp = h[v];
      vf hn = vtanh(x * W[0] + hp * U[0] + B[0]);
      if (store) { st[v * 2] = hp; st[v * 2 + 1] = hn; }
      if (t < t0max[v]) hn = blend(begun(t, t0lane[v]), hn, hp);
      h[v] = hn;
    }
  }
#pragma GCC unroll 16
  for (int v = 0; v < NV; v++) b.h[v] = h[v];
}

// Forward pass over the block's sequences; stores what the backward pass needs if `store`.
// RA: a reset_after GRU (its recurrent biases follow the other cell parameters); LAID: the
// inputs are read through b.xp (``gather_batch``), else from b.xb (an indirection the
// training passes do not pay: their epochs took 2-5 % longer with it).
template <int KIND, int RSIG, int RA, bool LAID>
static void forward(Block &b, int T, bool store) {
  if constexpr (KIND == SRNN && LATCH_SRNN_REGS && LATCH_FWD_VECTORS == 1) {
    if (b.nv == LATCH_PER_BLOCK) return forward_srnn_regs<LATCH_PER_BLOCK, LAID>(b, T, store);
    if (b.nv == LATCH_PER_BLOCK * LATCH_EVAL_VECTORS)
      return forward_srnn_regs<LATCH_PER_BLOCK * LATCH_EVAL_VECTORS, LAID>(b, T, store);
  }
  const int nv = b.nv, G = n_gates(KIND), pc = b.pc;
  constexpr int NS = n_stored<KIND, RSIG>();
  // the block's arrays as pointers, which stay in registers (read through the vectors, each
  // was loaded again from the block after every store)
  vf *h = b.h.data(), *c = b.c.data(), *gts = b.gt.data(), *sts = b.st.data();
  const vf *par = b.par.data(), *xb = b.xb.data(), *t0lane = b.t0lane.data(), *const *xp = b.xp.data();
  const size_t xs = b.xs;
  const int *t0min = b.t0min.data(), *t0max = b.t0max.data();
  const auto input = [&](int t, int v) { return LAID ? xp[v][(size_t)(t - t0min[v]) * xs] : xb[(size_t)t * nv + v]; };
  for (int v = 0; v < nv; v++) h[v] = c[v] = splat(0.0f);
  const int gi = 0, gf = 1, gg = KIND == LSTM ? 2 : 1, go = KIND == LSTM ? 3 : 2;
  for (int t = b.tstart; t < T; t++) {
    vf *st = &sts[(size_t)t * nv * NS];
    // the LSTMs: every vector's gates and candidate tanh first (into gts), then the cells:
    // each loop's vectors are independent chains of one tanh (a vector's chain of two, the
    // candidate's tanh then the cell's, kept the core waiting)
    for (int v = 0; has_c(KIND) && v < nv; v++) {
      if (t < t0min[v]) continue;
      const vf *W = &par[(size_t)v * pc], *U = W + G, *B = W + 2 * G;
      vf x = input(t, v), hp = h[v], *gt = &gts[(size_t)v * G];
      gt[gi] = gate<RSIG>(x * W[gi] + hp * U[gi] + B[gi]);
      gt[gg] = vtanh(x * W[gg] + hp * U[gg] + B[gg]);
      gt[go] = gate<RSIG>(x * W[go] + hp * U[go] + B[go]);
      if (KIND == LSTM) gt[gf] = gate<RSIG>(x * W[gf] + hp * U[gf] + B[gf]);
    }
    // an SRNN's vectors NF at a time while all NF have begun (the same operations per lane,
    // interleaved: more chains in the core's window, and each constant loaded once for NF)
    constexpr int NF = LATCH_FWD_VECTORS;
    int v0 = 0;
    if (KIND == SRNN && NF > 1) {
      for (; v0 + NF <= nv; v0 += NF) {
        bool all = true;
        for (int j = 0; j < NF; j++) all = all && t >= t0min[v0 + j];
        if (!all) break;
        vf z[NF], hp[NF];
        for (int j = 0; j < NF; j++) {
          const vf *W = &par[(size_t)(v0 + j) * pc];
          hp[j] = h[v0 + j];
          // h U rounded, then x W + h U fused and b added, as the one-vector step compiles
          // (pinned: the compiler may otherwise fuse either product)
          vf hu = hp[j] * W[1];
          pin(hu);
          z[j] = input(t, v0 + j) * W[0] + hu + W[2];
        }
        vtanh_clamped_n<NF>(z, TANH_CLAMP);
        for (int j = 0; j < NF; j++) {
          const int v = v0 + j;
          vf hn = z[j];
          if (store) { vf *sv = st + (size_t)v * NS; sv[0] = hp[j]; sv[1] = hn; }
          if (t < t0max[v]) {
            vf m = begun(t, t0lane[v]);
            hn = blend(m, hn, hp[j]);
          }
          h[v] = hn;
        }
      }
    }
    for (int v = v0; v < nv; v++) {
      if (t < t0min[v]) continue;
      const vf *W = &par[(size_t)v * pc], *U = W + G, *B = W + 2 * G;
      vf x = input(t, v), hp = h[v], *sv = st + (size_t)v * NS;
      vf hn, cn;
      if (KIND == SRNN) {
        hn = vtanh(x * W[0] + hp * U[0] + B[0]);
        if (store) { sv[0] = hp; sv[1] = hn; }
      } else if (KIND == GRU) {  // z, r, h~ = rsig(.), rsig(.), tanh(x W_h + b_h + r q)
        vf az = x * W[0] + hp * U[0] + B[0], ar = x * W[1] + hp * U[1] + B[1];
        vf q = hp * U[2];  // reset_after: r (h U_h + c_h); else (r h) U_h, the same for one unit
        if (RA) {
          const vf *C = W + 3 * G;
          az += C[0]; ar += C[1]; q += C[2];
        }
        vf z = gate<RSIG>(az), r = gate<RSIG>(ar);
        vf hh = vtanh(x * W[2] + B[2] + r * q);
        hn = z * hp + (1.0f - z) * hh;
        if (store) { sv[0] = hp; sv[1] = z; sv[2] = r; sv[3] = hh; sv[4] = q; }
      } else if (KIND == JANET) {  // s = x W_f + c U_f + b_f; c = rsig(s) c + rsig(1 - s) tanh(.)
        vf s = x * W[0] + hp * U[0] + B[0];
        vf f = gate<RSIG>(s), i = gate<RSIG>(1.0f - s), g = vtanh(x * W[1] + hp * U[1] + B[1]);
        hn = f * hp + i * g;
        if (store) { sv[0] = hp; sv[1] = f; sv[2] = i; sv[3] = g; }
      } else {
        const vf *gt = &gts[(size_t)v * G];
        vf cp = c[v], i = gt[gi], g = gt[gg], o = gt[go];
        vf f = KIND == LSTM ? gt[gf] : splat(1.0f);
        cn = f * cp + i * g;
        vf tc = vtanh(cn);
        hn = o * tc;
        if (store) {
          sv[0] = hp; sv[1] = cp; sv[2] = g; sv[3] = tc;
          if (NS > 4) {
            sv[4] = i; sv[5] = o;
            if (KIND == LSTM) sv[6] = f;
          }
        }
      }
      if (t < t0max[v]) {
        vf m = begun(t, t0lane[v]);
        hn = blend(m, hn, hp);
        if (has_c(KIND)) cn = blend(m, cn, c[v]);
      }
      h[v] = hn;
      if (has_c(KIND)) c[v] = cn;
    }
  }
}

// One step back of one vector: its sums A, dh and dc from step t's output to step t - 1's;
// st the vector's stored activations of the step, x its input, m its lanes' mask.
template <int KIND, int RSIG, int RA, int NA>
static inline void step_back(vf (&A)[NA], vf &dh, vf &dc, const vf *W, const vf *U, const vf *B, const vf *st, vf x,
                             vf m, bool masked) {
  constexpr int G = n_gates(KIND);
  constexpr int NS = n_stored<KIND, RSIG>();
  if constexpr (KIND == SRNN) {
    vf hp = st[0], th = st[1];
    vf dz = (masked ? m * dh : dh) * (1.0f - th * th);  // m = 1 unless masked: one multiply fewer on the chain
    A[0] += dz * x; A[1] += dz * hp; A[2] += dz;
    vf dhp = dz * U[0];
    dh = masked ? blend(m, dhp, dh) : dhp;
    return;
  }
  if constexpr (KIND == GRU) {  // h = z h_prev + (1 - z) h~, h~ = tanh(x W_h + b_h + r q)
    vf hp = st[0], z = st[1], r = st[2], hh = st[3], q = st[4];
    vf d = m * dh;
    vf dah = d * (1.0f - z) * (1.0f - hh * hh);
    vf daz = d * (hp - hh) * dgate<RSIG>(z);
    vf dar = dah * q * dgate<RSIG>(r);
    vf dq = dah * r;
    vf dhp = d * z + daz * U[0] + dar * U[1] + dq * U[2];
    A[0] += daz * x; A[G] += daz * hp; A[2 * G] += daz;
    A[1] += dar * x; A[G + 1] += dar * hp; A[2 * G + 1] += dar;
    A[2] += dah * x; A[G + 2] += dq * hp; A[2 * G + 2] += dah;
    if (RA) { A[3 * G] += daz; A[3 * G + 1] += dar; A[3 * G + 2] += dq; }
    dh = masked ? blend(m, dhp, dh) : dhp;
    return;
  }
  if constexpr (KIND == JANET) {  // c = f c_prev + i g, f = rsig(s), i = rsig(1 - s), g = tanh(z_c)
    vf cp = st[0], f = st[1], i = st[2], g = st[3];
    vf d = m * dh;
    vf ds = d * cp * dgate<RSIG>(f) - d * g * dgate<RSIG>(i);
    vf dzc = d * i * (1.0f - g * g);
    vf dhp = d * f + ds * U[0] + dzc * U[1];
    A[0] += ds * x; A[G] += ds * cp; A[2 * G] += ds;
    A[1] += dzc * x; A[G + 1] += dzc * cp; A[2 * G + 1] += dzc;
    dh = masked ? blend(m, dhp, dh) : dhp;
    return;
  }
  const int gi = 0, gf = 1, gg = KIND == LSTM ? 2 : 1, go = KIND == LSTM ? 3 : 2;
  vf hp = st[0], cp = st[1], g = st[2], tc = st[3];
  vf i, o, f = splat(1.0f), di, dof, df = splat(0.0f);
  if (NS > 4) {
    i = st[4]; o = st[5];
    if (KIND == LSTM) f = st[6];
  } else {
    i = gate<RSIG>(x * W[gi] + hp * U[gi] + B[gi]);
    o = gate<RSIG>(x * W[go] + hp * U[go] + B[go]);
    if (KIND == LSTM) f = gate<RSIG>(x * W[gf] + hp * U[gf] + B[gf]);
  }
  di = dgate<RSIG>(i); dof = dgate<RSIG>(o);
  if (KIND == LSTM) df = dgate<RSIG>(f);
  vf dcc = dc + dh * o * (1.0f - tc * tc);
  vf dzi = m * (dcc * g * di);
  vf dzg = m * (dcc * i * (1.0f - g * g));
  vf dzo = m * (dh * tc * dof);
  vf dhp = dzi * U[gi] + dzg * U[gg] + dzo * U[go];
  A[gi] += dzi * x; A[G + gi] += dzi * hp; A[2 * G + gi] += dzi;
  A[gg] += dzg * x; A[G + gg] += dzg * hp; A[2 * G + gg] += dzg;
  A[go] += dzo * x; A[G + go] += dzo * hp; A[2 * G + go] += dzo;
  if (KIND == LSTM) {
    vf dzf = m * (dcc * cp * df);
    dhp += dzf * U[gf];
    A[gf] += dzf * x; A[G + gf] += dzf * hp; A[2 * G + gf] += dzf;
  }
  vf dcp = dcc * f;
  if (masked) { dhp = blend(m, dhp, dh); dcp = blend(m, dcp, dc); }
  dh = dhp; dc = dcp;
}

// Backward pass from b.dh (dL/dh_T); accumulates dW, dU, db (and a reset_after GRU's
// recurrent bias gradient) per lane into b.acc. A vector's lanes are independent of the
// other vectors', so NV vectors at a time run back through all their steps, with their
// sums, dh and dc in registers (step by step over every vector, the sums went to memory
// and back each step); each lane's sums take the steps in the same order either way.
template <int KIND, int RSIG, int RA, int NV>
static inline void backward_vectors(Block &b, int T, int v0) {
  const int nv = b.nv, pc = b.pc;
  const vf *par = b.par.data(), *sts = b.st.data(), *xb = b.xb.data(), *t0lane = b.t0lane.data();
  const int *t0max = b.t0max.data();
  constexpr int G = n_gates(KIND), NA = (RA ? 4 : 3) * G;
  constexpr int NS = n_stored<KIND, RSIG>();
  vf A[NV][NA], dh[NV], dc[NV];
  int tlo[NV], tmin = T;
  for (int j = 0; j < NV; j++) {
    for (int k = 0; k < NA; k++) A[j][k] = splat(0.0f);
    dh[j] = b.dh[v0 + j]; dc[j] = splat(0.0f);
    tlo[j] = std::max(b.tstart, b.t0min[v0 + j]);
    tmin = std::min(tmin, tlo[j]);
  }
  // the steps where every vector's every lane has begun, without the mask's branches (with
  // them in the loop, GCC kept one vector's dh in memory: its chain went through a store
  // and a load every step), then the rest
  int tall = tmin;
  for (int j = 0; j < NV; j++) tall = std::max(tall, std::max(tlo[j], b.t0max[v0 + j]));
  int t = T - 1;
  for (; t >= tall; t--) {
    for (int j = 0; j < NV; j++) {
      const int v = v0 + j;
      const vf *W = &par[(size_t)v * pc], *U = W + G, *B = W + 2 * G;
      const vf *st = &sts[((size_t)t * nv + v) * NS];
      step_back<KIND, RSIG, RA, NA>(A[j], dh[j], dc[j], W, U, B, st, xb[(size_t)t * nv + v], splat(1.0f), false);
    }
  }
  for (; t >= tmin; t--) {
    for (int j = 0; j < NV; j++) {
      if (NV > 1 && t < tlo[j]) continue;
      const int v = v0 + j;
      const vf *W = &par[(size_t)v * pc], *U = W + G, *B = W + 2 * G;
      const vf *st = &sts[((size_t)t * nv + v) * NS];
      vf x = xb[(size_t)t * nv + v];
      vf m = splat(1.0f);
      bool masked = t < t0max[v];
      if (masked) m = begun(t, t0lane[v]);
      step_back<KIND, RSIG, RA, NA>(A[j], dh[j], dc[j], W, U, B, st, x, m, masked);
    }
  }
  for (int j = 0; j < NV; j++) {
    for (int k = 0; k < NA; k++) b.acc[(size_t)k * nv + v0 + j] = A[j][k];
  }
}

// Vectors the backward pass takes at a time: two independent chains of steps for the core,
// except an LSTM's, whose 12 sums and 4 recurrent weights a vector leave no registers for a
// second (measured, old over new: SRNN, GRU, JANET 1.03-1.11 on AVX-512 and AVX2, the LSTM
// 0.88 on AVX-512 on a Zen 4; docs/benchmarks.md), but with sigmoid gates in the AVX2 build
// (its LSTM's backward pass 1.23-1.52 in four runs; with hard-sigmoid gates it went either
// way with the machine's state). LATCH_BWD_VECTORS overrides it: the Python side's
// ``native.tuning`` sets 2 for a Zen 5, where the LSTM's epochs were 1.07-1.11 faster.
constexpr int bwd_vectors(int kind, int rsig) {
#ifdef LATCH_BWD_VECTORS
  (void)kind, (void)rsig;
  return LATCH_BWD_VECTORS;
#else
  return kind != LSTM || (LATCH_VBYTES == 32 && LATCH_VREGS == 16 && rsig == SIGMOID) ? 2 : 1;
#endif
}
template <int KIND, int RSIG, int RA>
static void backward(Block &b, int T) {
  constexpr int NV = bwd_vectors(KIND, RSIG);
  int v = 0;
  for (; v + NV <= b.nv; v += NV) backward_vectors<KIND, RSIG, RA, NV>(b, T, v);
  for (; v < b.nv; v++) backward_vectors<KIND, RSIG, RA, 1>(b, T, v);
}

// exp and log of float vectors (Cephes' expf and logf, as Eigen vectorises them: within 2
// ulp), for the heads (``vhead``) and seq_softmax's K exponentials per row and step (a scalar
// expf per lane cost more than the cell's step). vexp clamps its argument below at -87.3 (e^-87.3 ~ 1e-38, the
// smallest normal float: nothing smaller survives the flush of subnormals anyway); vlog
// takes positive normal floats.
static inline vf vexp(vf x) {
  x = vmin(vmax(x, splat(-87.3365447505531f)), splat(88.3762626647949f));
  const vf fx = x * 1.44269504088896341f + 0.5f;
  vf n = __builtin_convertvector(__builtin_convertvector(fx, vi), vf);  // toward zero
  n = n > fx ? n - 1.0f : n;                                           // floor
  vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  return p * (vf)((__builtin_convertvector(n, vi) + 127) << 23);  // times 2^n
}

static inline vf vlog(vf x) {
  const vi bits = (vi)x;
  vi e = ((bits >> 23) & 0xff) - 126;
  const vf m = (vf)((bits & 0x007fffff) | 0x3f000000);  // x = m 2^e, m in [0.5, 1)
  const vi small = m < 0.707106781186547524f;            // then x = (2 m) 2^(e - 1)
  e += small;                                            // (the mask is -1)
  const vf a = (m - 1.0f) + (small ? m : splat(0.0f)), z = a * a;
  const vf ef = __builtin_convertvector(e, vf);
  vf y = a * 7.0376836292e-2f + -1.1514610310e-1f;
  y = y * a + 1.1676998740e-1f;
  y = y * a + -1.2420140846e-1f;
  y = y * a + 1.4249322787e-1f;
  y = y * a + -1.6668057665e-1f;
  y = y * a + 2.0000714765e-1f;
  y = y * a + -2.4999993993e-1f;
  y = y * a + 3.3333331174e-1f;
  y = y * a * z;
  y = y + ef * -2.12194440e-4f;
  y = y - 0.5f * z;
  return a + y + ef * 0.693359375f;
}

// A head's loss, metric and dL/dz for L rows at once (one a lane), from their logits z0, z1
// (dense2; dense1 and linear read z0), labels y (dense2, dense1: 0 or 1) or targets yv
// (linear), and example weights w (already divided by the member's total weight; 0 for
// padding). dense2: with d the other class's logit minus the label's, the loss is
// softplus(d) = max(d, 0) + log1p(e^-|d|) and dL/d(the other logit) = sigmoid(d) w (softmax
// minus one-hot; argmax ties go to class 0); dense1: the logistic loss of z0 and dL/dz0 =
// (sigmoid(z0) - y) w; linear (latchlab.core.model): (z0 - yv)^2, hit |z0 - yv| <
// REGRESSION_TOLERANCE, dL/dz0 = 2 (z0 - yv) w. One vexp, one vlog and three divisions a
// vector, exact in both tails; a NaN logit gives a NaN loss and gradient. (A scalar expf and
// logf a row, with branches on the label and the sign, took as long as an SRNN's step over
// its whole sequence: docs/benchmarks.md.)
struct HeadOut {
  vf loss, hit, d0, d1;
};
static inline HeadOut vhead(int head, vf z0, vf z1, vi y, vf yv, vf w) {
  const vf one = splat(1.0f), zero = splat(0.0f);
  if (head == LINEAR) {
    const vf err = z0 - yv;
    return {err * err, vabs(err) < REGRESSION_TOLERANCE ? one : zero, 2.0f * err * w, zero};
  }
  const vi is1 = y != 0;
  const vf d = head == DENSE2 ? (is1 ? z0 - z1 : z1 - z0) : z0;
  const vf e = vexp(-vabs(d)), u = 1.0f + e;
  const vf sig = (d >= 0.0f ? one : e) / u;  // sigmoid(d)
  // log1p(e) as log(u) corrected for u's rounding (NaN with d: ((u - 1) - e) / u)
  const vf softplus = vmax(d, zero) + (vlog(u) - ((u - 1.0f) - e) / u);
  if (head == DENSE2) {
    const vf d1 = (is1 ? -sig : sig) * w;
    return {softplus, (z1 > z0) == is1 ? one : zero, -d1, d1};
  }
  return {softplus - (is1 ? z0 : zero), (z0 > 0.0f) == is1 ? one : zero, (sig - (is1 ? one : zero)) * w, zero};
}

// The blocks of a call (per_block members each, the last maybe fewer), handed out largest
// first: a block's work is the sum of its members' steps (each steps from its own start).
// The threads take them through one shared counter, so the smallest come last and the
// threads finish together (in member order, a call's tail had left a core idle for up to
// its longest block; docs/benchmarks.md); the last two are cut in halves, so that the tail
// a thread waits for is at most half a small block. A member's numbers do not depend on
// the blocks.
struct Blocks {
  std::vector<int> first, size;  // the blocks' first members and sizes, in the order handed out
  Blocks(int R, int per_block, int T, const int32_t *t0) {
    for (int m0 = 0; m0 < R; m0 += per_block) {
      first.push_back(m0);
      size.push_back(R - m0 < per_block ? R - m0 : per_block);
    }
    largest_first(T, t0);
    for (int k = 0, n = (int)first.size(); k < 2 && k < n; k++) {  // the two smallest, in halves
      const int i = n - 1 - k, h = size[i] / 2;
      if (h < 1) continue;
      first.push_back(first[i] + h);
      size.push_back(size[i] - h);
      size[i] = h;
    }
    largest_first(T, t0);
  }
  void largest_first(int T, const int32_t *t0) {
    const int n = (int)first.size();
    std::vector<int64_t> work(n);
    std::vector<int> ix(n);
    for (int i = 0; i < n; i++) {
      for (int m = first[i]; m < first[i] + size[i]; m++) work[i] += T - t0[m];
      ix[i] = i;
    }
    std::stable_sort(ix.begin(), ix.end(), [&](int a, int b) { return work[a] > work[b]; });
    std::vector<int> f(n), s(n);
    for (int i = 0; i < n; i++) { f[i] = first[ix[i]]; s[i] = size[ix[i]]; }
    first.swap(f);
    size.swap(s);
  }
  // The next block's first member and size; false when every block is taken.
  bool next(int *counter, int *m0, int *nm) {
    const int i = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    if (i >= (int)first.size()) return false;
    *m0 = first[i];
    *nm = size[i];
    return true;
  }
};

// Which member each lane serves: its first valid step, per vector the range of them.
static void lane_layout(Block &b, int m0, int nm, int B, const int32_t *t0) {
  const int nv = b.nv;
  int ts = 1 << 30;
  for (int v = 0; v < nv; v++) {
    int lo = 1 << 30, hi = 0;
    for (int l = 0; l < L; l++) {
      int m = (v * L + l) / B;
      int t = t0[m0 + (m < nm ? m : nm - 1)];  // padding lanes: copies of the last member, weight 0
      b.t0lane[v][l] = (float)t;
      lo = t < lo ? t : lo;
      hi = t > hi ? t : hi;
    }
    b.t0min[v] = lo; b.t0max[v] = hi;
    ts = lo < ts ? lo : ts;
  }
  b.tstart = ts;
}

// Each member's parameters into its lanes (before every step: the optimiser moved them).
static void refresh_params(Block &b, const Shape &s, const float *params, int m0, int nm, int B) {
  const int nv = b.nv, P = s.P;
  if (B % L == 0) {  // every vector serves one member
    for (int v = 0; v < nv; v++) {
      const float *p = params + (size_t)(m0 + v * L / B) * P;
      for (int k = 0; k < P; k++) b.par[(size_t)v * P + k] = splat(p[k]);
    }
    return;
  }
  for (int v = 0; v < nv; v++)
    for (int l = 0; l < L; l++) {
      int m = (v * L + l) / B;
      const float *p = params + (size_t)(m0 + (m < nm ? m : nm - 1)) * P;
      for (int k = 0; k < P; k++) b.par[(size_t)v * P + k][l] = p[k];
    }
}

// Lane j of the result: lane P::lane(j) of a's lanes then b's (0 ... 2L - 1), a mask known
// when compiling. GCC's __builtin_shuffle takes it as a vector, clang's __builtin_shufflevector
// (GCC has it only since 12) as constants; the same permutation either way.
template <class P, size_t... J> static inline vf pick(vf a, vf b, std::index_sequence<J...>) {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, P::lane(J)...);
#else
  return __builtin_shuffle(a, b, vi{P::lane(J)...});
#endif
}
template <class P> static inline vf pick(vf a, vf b) { return pick<P>(a, b, std::make_index_sequence<L>{}); }

template <int S> struct Xor {
  static constexpr int lane(int j) { return j ^ S; }
};
template <int S> static inline vf fold(vf a) { return a + pick<Xor<S>>(a, a); }  // lane j plus lane j ^ S

template <int S> static inline vf folds(vf a) {  // every lane: the sum of its 2S-lane group
  a = fold<S>(a);
  if constexpr (S > 1) return folds<S / 2>(a);
  return a;
}

static inline float hsum(vf a) { return folds<L / 2>(a)[0]; }  // tree sum of the lanes

// Lane sums of 2S vectors, each held as groups of 2S lanes (a vector's partial sums) in x and
// y: the result's groups, of S lanes, are x's groups then y's, each lane p of a group its
// lanes p and p + S added, the pair ``fold<S>`` adds.
template <int S, int HI> struct Pair {
  static constexpr int lane(int l) {
    const int n = L / (2 * S), g = l / S, p = l % S;  // n groups in x, and in y
    return (g < n ? 0 : L) + 2 * S * (g < n ? g : g - n) + p + HI * S;
  }
};
template <int S> static inline vf fold_pair(vf x, vf y) { return pick<Pair<S, 0>>(x, y) + pick<Pair<S, 1>>(x, y); }
template <int S> static inline void fold_pairs(const vf *in, vf *t) {  // in's 2S vectors into t's S
  for (int m = 0; m < S; m++) t[m] = fold_pair<S>(in[2 * m], in[2 * m + 1]);
  if constexpr (S > 1) fold_pairs<S / 2>(t, t);
}
// L vectors' lane sums in one vector: lane i is hsum(a[i]), bit for bit (the same pairs added
// in the same order), in L - 1 additions and 2 (L - 1) shuffles instead of L log2(L) and
// L log2(L)
static inline vf hsums(const vf *a) {
  vf t[L / 2];
  fold_pairs<L / 2>(a, t);
  return t[0];
}

static void block_alloc(Block &b, const Shape &s, int nv, int T) {
  const int NS = n_stored<VARIANT_KIND, VARIANT_RSIG>();  // the library's variant (``valid``)
  b.nv = nv; b.pc = s.P;
  b.t0min.assign(nv, 0); b.t0max.assign(nv, 0); b.t0lane.assign(nv, vf{});
  b.par.assign((size_t)s.P * nv, vf{}); b.xb.assign((size_t)T * nv, vf{});
  b.st.assign((size_t)T * NS * nv, vf{});
  b.h.assign(nv, vf{}); b.c.assign(nv, vf{}); b.dh.assign(nv, vf{});
  b.gt.assign((size_t)s.G * nv, vf{});
  b.acc.assign((size_t)s.Pc * nv, vf{});
}

typedef float vfu __attribute__((vector_size(LATCH_VBYTES), aligned(4)));  // an unaligned vector

// In-place L x L transpose: rounds swap the off-diagonal s x s blocks, s = L / 2, ..., 2, 1.
template <int S, bool B> struct Swap {
  static constexpr int lane(int j) { return B ? ((j & S) ? L + j : j + S) : ((j & S) ? L + j - S : j); }
};
template <int S> static inline void swap_blocks(vf &a, vf &b) {
  vf a2 = pick<Swap<S, false>>(a, b), b2 = pick<Swap<S, true>>(a, b);
  a = a2;
  b = b2;
}

template <int S> static inline void transpose_round(vf *r) {
  for (int i = 0; i < L; i++)
    if (!(i & S)) swap_blocks<S>(r[i], r[i + S]);
}

template <int S> static inline void transpose(vf *r) {
  transpose_round<S>(r);
  if constexpr (S > 1) transpose<S / 2>(r);
}

// A vector stored at o: a vector's address if ALIGNED, else any float's (through vfu, named
// here: clang drops an aligned(4) typedef's alignment from a template argument)
template <bool ALIGNED> static inline void put(float *o, vf x) {
  if constexpr (ALIGNED) *(vf *)o = x;
  else *(vfu *)o = x;
}
// Rows of fewer than L steps, and at least this many: one tile of masked loads (AVX-512, where
// a vector holds 16 steps), not step by step with a load a lane (the seed overlay's rows of
// 5, 10 and 15 steps; one-unit SRNN epochs at T = 10 and 15, old over new, 1.23 and 1.50, at
// T = 5 1.05, T = 2-4 0.94-1.05; docs/benchmarks.md). 0: never (the AVX2 build's rows of fewer
// than its 8 steps gained nothing).
#ifndef LATCH_MASKED_ROWS
#if LATCH_VBYTES == 64 && defined(__AVX512F__)
#define LATCH_MASKED_ROWS 5
#else
#define LATCH_MASKED_ROWS 0
#endif
#endif
// Rows src[0, L) at steps [t, T) time-major: step t's vector (lane l from row l) at o + t
// stride L (stride in vectors). L rows x L steps at a time: contiguous loads, transposed in
// registers. The last T mod L steps are the last L steps' tile, which overlaps the one before
// (written again with the same values; lane by lane, they took a third of the gather's samples
// in the seed's sweep, whose lengths are rarely multiples of L); in rows of fewer than L
// steps, one masked tile (LATCH_MASKED_ROWS) or step by step.
template <bool ALIGNED> static inline void time_major(const float *const *src, int t, int T, float *o, size_t stride) {
  const auto tile = [&](int t) {
    vf r[L];
    for (int l = 0; l < L; l++) r[l] = *(const vfu *)(src[l] + t);
    transpose<L / 2>(r);
    for (int j = 0; j < L; j++) put<ALIGNED>(o + (size_t)(t + j) * stride * L, r[j]);
  };
  const bool tiles = T - t >= L;
  for (; t + L <= T; t += L) tile(t);
  if (tiles && t < T) tile(T - L);
  if (tiles) return;
#if LATCH_MASKED_ROWS
  if (T - t >= LATCH_MASKED_ROWS) {  // the n < L steps as a tile: masked loads read nothing past them
    const int n = T - t;
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    vf r[L];
    for (int l = 0; l < L; l++) r[l] = (vf)_mm512_maskz_loadu_ps(m, src[l] + t);
    transpose<L / 2>(r);
    for (int j = 0; j < n; j++) put<ALIGNED>(o + (size_t)(t + j) * stride * L, r[j]);
    return;
  }
#endif
  for (; t < T; t++) {
    vf c;
    for (int l = 0; l < L; l++) c[l] = src[l][t];
    put<ALIGNED>(o + (size_t)t * stride * L, c);
  }
}

// Member r's sequences: example e's step t (t0[r] <= t < T) is xrow[r][e * xstride[r] + t - t0[r]].
// With F channels, xrow and xstride hold F x R entries, channel-major: ``channel(f, R)``.
struct Inputs {
  const float *const *xrow;
  const int64_t *xstride;
  const int32_t *t0;
  const float *at(int r, int e, int t) const { return xrow[r] + (int64_t)e * xstride[r] + (t - t0[r]); }
  Inputs channel(int f, int R) const { return Inputs{xrow + (size_t)f * R, xstride + (size_t)f * R, t0}; }
};

// The block's input rows for examples ex[row] (member m0 + row / B), time-major: one
// vector per time step from L rows (a gather; row by row with strided stores was 3x slower).
static void gather(Block &b, const Inputs &in, int T, int m0, int nm, int B, const int32_t *ex) {
  const int nv = b.nv;
  const float *src[L];
  for (int v = 0; v < nv; v++) {
    if (B % L == 0) {  // the vector's rows are one member's: its row pointer and stride once
      const int mem = m0 + v * L / B;
      const float *x0 = in.at(mem, 0, 0);
      const int64_t xs = in.xstride[mem];
      const int32_t *e = ex + (size_t)v * L;
      for (int l = 0; l < L; l++) src[l] = x0 + e[l] * xs;  // indexed from step 0: only steps >= t0 are read
    } else {
      int last = 0;
      for (int l = 0; l < L; l++) {
        int row = v * L + l, m = row / B;
        if (m < nm) last = row;
        int r = m < nm ? row : last;  // padding lanes read a real row (their weight is 0)
        int mem = m0 + r / B;
        src[l] = in.at(mem, ex[r], 0);
      }
    }
    for (int t = b.t0min[v]; t < b.t0max[v]; t++) {  // lanes of members of different lengths
      vf out;
      for (int l = 0; l < L; l++) out[l] = t >= (int)b.t0lane[v][l] ? src[l][t] : 0.0f;
      b.xb[(size_t)t * nv + v] = out;
    }
    time_major<true>(src, b.t0max[v], T, (float *)(b.xb.data() + v), nv);
  }
}

// The block's inputs for batch st read where ``latch_batch_rows`` laid its members' rows
// out, time-major (B a multiple of L: a vector holds one member's rows; the rows aligned to
// a vector): member m's rows at step t from its first step t0 are the B floats at brow[m] +
// (st bsteps[m] + t - t0) B. Nothing is gathered or copied: a seed's members at every length
// validate on the same rows, laid out once for all of them and every epoch, where ``gather``
// transposes each member's rows again in every pass.
static void gather_batch(Block &b, const float *const *brow, const int32_t *bsteps, int st, int m0, int B) {
  const int nv = b.nv;
  b.xp.resize(nv);
  b.xs = B / L;
  for (int v = 0; v < nv; v++) {
    const int m = m0 + v * L / B;
    b.xp[v] = (const vf *)(brow[m] + (size_t)st * bsteps[m] * B + (v * L) % B);
  }
}

// Whether every member of the block has its rows laid out by ``latch_batch_rows``, long
// enough for its steps.
static bool batch_rows_cover(const float *const *brow, const int32_t *bsteps, int B, int T, int m0, int nm,
                             const int32_t *t0) {
  if (!brow || !bsteps || B % L) return false;
  for (int m = m0; m < m0 + nm; m++)
    if (!brow[m] || (uintptr_t)brow[m] % sizeof(vf) || bsteps[m] < T - t0[m]) return false;
  return true;
}

static void dispatch_forward(const Shape &, Block &b, int T, bool store, bool laid = false) {
  if (laid)
    forward<VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER, true>(b, T, store);
  else
    forward<VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER, false>(b, T, store);
}

static void dispatch_backward(const Shape &, Block &b, int T) {
  backward<VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER>(b, T);
}

struct Corrections {  // Adam's step factor sqrt(1 - b2^n) / (1 - b1^n), computed once per step count
  int32_t n = -1;
  float a = 0;
  // each parameter's learning rate, its member's, for members [m0, m0 + nm) (``update_members``)
  std::vector<float> lr;
  int m0 = -1, nm = -1;
};

// One optimiser step over n values (params p, moments mu and nu, gradients g), value k at
// rate[k]; Adam's step factor a. optax's SGD; scale_by_rms(decay=0.9, eps=1e-7, initial_scale=0);
// Keras' Adam (train.scale_by_keras_adam: b1 0.9, b2 0.999, eps 1e-7 added before the correction).
static void step_values(const Shape &s, int n, float *p, float *mu, float *nu, const float *g, const float *rate,
                        float a) {
  if (s.opt == SGD) {
    for (int k = 0; k < n; k++) p[k] -= rate[k] * g[k];
  } else if (s.opt == RMSPROP) {
    for (int k = 0; k < n; k++) {
      nu[k] = 0.1f * (g[k] * g[k]) + 0.9f * nu[k];
      p[k] -= rate[k] * (g[k] * (1.0f / sqrtf(nu[k] + 1e-7f)));
    }
  } else {
    for (int k = 0; k < n; k++) {
      mu[k] = mu[k] + (g[k] - mu[k]) * 0.1f;
      nu[k] = nu[k] + (g[k] * g[k] - nu[k]) * (float)(1.0 - 0.999);
      float u = (mu[k] * a) / (sqrtf(nu[k]) + 1e-7f);
      p[k] -= rate[k] * u;
    }
  }
}

// Adam's next step count after n, and its corrections in bc
static int32_t next_count(int32_t n, Corrections &bc) {
  n = n < INT32_MAX ? n + 1 : INT32_MAX;
  if (bc.n != n) bc.n = n, bc.a = adam_factor(n);
  return n;
}

// After a training step: each of members [m0, m0 + nm)'s optimiser step from its gradient
// (grad, nm x P). Members whose step counts agree (every member of a sweep's call) take one
// pass over their nm P values, which GCC vectorises: member by member, a one-unit cell's 7
// to 19 values were too few for its vector loop, and each took scalar code (a square root and
// three divisions for Adam). The same operations on each value, so the same numbers.
static void update_members(const Shape &s, int m0, int nm, float *params, float *mu, float *nu, int32_t *count,
                           const float *grad, const float *lr, Corrections &bc) {
  const int P = s.P;
  if (bc.m0 != m0 || bc.nm != nm) {
    bc.lr.resize((size_t)nm * P);
    for (int m = 0; m < nm; m++) std::fill(&bc.lr[(size_t)m * P], &bc.lr[(size_t)(m + 1) * P], lr[m0 + m]);
    bc.m0 = m0, bc.nm = nm;
  }
  const size_t at = (size_t)m0 * P;
  bool same = true;
  for (int m = 1; m < nm; m++) same &= count[m0 + m] == count[m0];
  if (same) {
    if (s.opt == ADAM) {
      const int32_t c = next_count(count[m0], bc);
      std::fill(count + m0, count + m0 + nm, c);
    }
    step_values(s, nm * P, params + at, mu + at, nu + at, grad, bc.lr.data(), bc.a);
    return;
  }
  for (int m = 0; m < nm; m++) {
    const size_t k = (size_t)m * P;
    if (s.opt == ADAM) count[m0 + m] = next_count(count[m0 + m], bc);
    step_values(s, P, params + at + k, mu + at + k, nu + at + k, grad + k, &bc.lr[k], bc.a);
  }
}

// After an epoch: each member's example-weighted mean loss and metric.
static void epoch_means(int m0, int nm, const float *lsum, const float *asum, const float *wsum, float *loss,
                        float *acc) {
  for (int m = 0; m < nm; m++) {
    loss[m0 + m] = lsum[m] / wsum[m];
    acc[m0 + m] = asum[m] / wsum[m];
  }
}

// The one-unit path's head on every row of block b at once (``vhead``), from its last states
// b.h: row r's label y[r] and weight w[r] (nv L rows, padding rows' weight 0), each lane's
// head parameters from b.par. Writes each row's loss, metric and dL/dz (d0, d1) and, with
// `grad`, b.dh (dL/dh through the head's kernel).
static void unit_head(const Shape &s, Block &b, const int32_t *y, const float *w, float *loss, float *hit, float *d0,
                      float *d1, bool grad) {
  for (int v = 0; v < b.nv; v++) {
    const vf *hp = &b.par[(size_t)v * b.pc + s.Pc], h = b.h[v];
    const bool two = s.head == DENSE2;  // head parameters: dense2 k0 k1 b0 b1, dense1 k0 b0
    vi yl;
    vf wl;
    memcpy(&yl, y + (size_t)v * L, sizeof yl);
    memcpy(&wl, w + (size_t)v * L, sizeof wl);
    const HeadOut o = vhead(s.head, h * hp[0] + hp[two ? 2 : 1], two ? h * hp[1] + hp[3] : splat(0.0f), yl, vf{}, wl);
    memcpy(loss + (size_t)v * L, &o.loss, sizeof o.loss);
    memcpy(hit + (size_t)v * L, &o.hit, sizeof o.hit);
    memcpy(d0 + (size_t)v * L, &o.d0, sizeof o.d0);
    memcpy(d1 + (size_t)v * L, &o.d1, sizeof o.d1);
    if (grad) b.dh[v] = two ? o.d0 * hp[0] + o.d1 * hp[1] : o.d0 * hp[0];
  }
}

// A block's rows' head inputs and outputs (``unit_head``), nv L each.
struct HeadRows {
  std::vector<int32_t> y;
  std::vector<float> w, loss, hit, d0, d1;
  void size(int n) {  // zeros: padding rows keep label 0 and weight 0
    y.assign(n, 0);
    for (auto *a : {&w, &loss, &hit, &d0, &d1}) a->assign(n, 0.0f);
  }
};

// ----------------------------------------------------------------------- cells of H units
// Cells of H > 1 units, and whatever the one-unit code above does not train (``one_unit``:
// inputs of F > 1 channels, the linear and seq_softmax heads), with any H; the one-unit code
// stays for one-unit cells on scalar inputs with a dense head, where its blocks of members
// packed into lanes are faster. A member's rows fill V = ceil(B / L) vectors of its
// own (padding lanes have weight 0), so its weights are scalars broadcast from its flat
// parameters: the input and recurrent products are matrix-vector products with rows in the
// lanes. The forward pass stores a record per step and vector; the backward pass stores each
// step's pre-activation gradients, and the weight gradients are then one product over time
// and lanes (``outer``) instead of (F + H) x G H updates per step. seq_softmax reads h at
// every step: its logits' gradients enter dh before each step's backward pass, and are kept
// per step for the head's own weight gradients (one more ``outer``).
//   record: h_prev (H), gate values (G H: rsig(.) for gates, tanh(.) for the candidate),
//           extras (LSTMs: c_prev and tanh(c); GRU: q = h U_h + c_h if reset_after, else
//           r h_prev; JANET: its input gate i)
//   gradient record: dL/d pre-activation (G H) for the kernel and bias; a reset_after GRU
//           adds dL/dq (H), which the candidate's recurrent weights and biases take
constexpr int n_extra(int kind) { return has_c(kind) ? 2 : (kind == GRU || kind == JANET) ? 1 : 0; }
constexpr int n_record(int kind, int H) { return H + n_gates(kind) * H + n_extra(kind) * H; }
constexpr int n_grad_record(int kind, int ra, int H) { return n_gates(kind) * H + (kind == GRU && ra ? H : 0); }

struct HBlock {
  int nv, V, H, GH, NS, ND, F;  // vectors, vectors per member, units, gate columns, record sizes, channels
  int nr, r0;                   // vectors a pass keeps records of (train_h), and the pass's first
  std::vector<int> t0;          // per vector: its member's first valid step
  std::vector<vf> st, dz;       // (T, nr, NS), (T, nr, ND)
  std::vector<vf> h, c, dh, dc, tmp;  // (nv, H)
  std::vector<vf> pre, rq;            // (nv, G H)
  std::vector<vf> xin;                // (T, nv, F) inputs when F > 1 (one channel: the gather's own)
  // seq_softmax (``seq_alloc``): per step and vector each lane's category (-1: none), whether
  // any lane has one, dL/dz (O vectors, training); per vector each lane's loss weight per
  // step, number of steps with a category and of symbol steps (y > 0), summed
  // cross-entropy and hits; logits
  std::vector<vi> ys;
  std::vector<char> live;
  std::vector<vf> dhead, cw, nsteps, nsym, ce, hits, z;
  vf *rec(int t, int v) { return &st[((size_t)t * nr + v - r0) * NS]; }
  vf *grec(int t, int v) { return &dz[((size_t)t * nr + v - r0) * ND]; }
};

// out[j] = act(bias[j] + sum_f x[f] W[f ld + j] + sum_k h[k] U[k ld + j]), j < J (rows of W
// and U broadcast; 8 independent chains): a step's pre-activations, each column's sum in
// registers from the bias to the last term, in this order (a bias stored first, then each
// product added in a pass of its own, gave the same numbers and took 5-8 % longer), and
// their activation while they are there: stored once, not stored, reloaded, activated and
// stored again. One activation a call (an LSTM's gates and candidate take three calls: a
// choice per column was compiled as both activations and a select).
struct Linear {
  vf operator()(vf z) const { return z; }
  template <int N> void many(vf (&)[N]) const {}
};
struct Tanh {
  vf operator()(vf z) const { return vtanh(z); }
  template <int N> void many(vf (&z)[N]) const { vtanh_clamped_n<N>(z, TANH_CLAMP); }
};
template <int RSIG> struct Gate {
  vf operator()(vf z) const { return gate<RSIG>(z); }
  template <int N> void many(vf (&z)[N]) const {
    if constexpr (RSIG == SIGMOID) {  // gate's operations, the tanh of all N at once
      for (int n = 0; n < N; n++) z[n] = sigmoid_in(z[n]);
      vtanh_clamped_n<N>(z, TANH_CLAMP);
      for (int n = 0; n < N; n++) z[n] = sigmoid_out(z[n]);
    } else {
      for (int n = 0; n < N; n++) z[n] = gate<RSIG>(z[n]);
    }
  }
};
// f(std::integral_constant<int, N>{}, u0) for units [u0, u0 + N) covering [0, H): NA at a
// time (an activation of NA vectors, as ``affine``'s), then the rest one at a time
template <int NA, class Fn> static inline void by_units(int H, Fn f) {
  int u = 0;
  if constexpr (NA > 1)
    for (; u + NA <= H; u += NA) f(std::integral_constant<int, NA>{}, u);
  for (; u < H; u++) f(std::integral_constant<int, 1>{}, u);
}
template <class Act = Linear>
static inline void affine(const float *bias, const vf *x, int F, const float *W, const vf *h, int K, const float *U,
                          int ld, int J, vf *out, Act act = {}) {
  int j = 0;
  for (; j + 8 <= J; j += 8) {
    vf acc[8];
    for (int q = 0; q < 8; q++) acc[q] = splat(bias[j + q]);
    for (int f = 0; f < F; f++) {
      const vf xf = x[f];
      const float *m = W + (size_t)f * ld + j;
      for (int q = 0; q < 8; q++) acc[q] += xf * m[q];
    }
    for (int k = 0; k < K; k++) {
      const vf hk = h[k];
      const float *m = U + (size_t)k * ld + j;
      for (int q = 0; q < 8; q++) acc[q] += hk * m[q];
    }
    if constexpr (LATCH_ACT_VECTORS > 1) {
      constexpr int NA = LATCH_ACT_VECTORS;
      static_assert(8 % NA == 0, "LATCH_ACT_VECTORS divides a block's 8 columns");
      for (int q0 = 0; q0 < 8; q0 += NA) {
        vf z[NA];
        for (int q = 0; q < NA; q++) z[q] = acc[q0 + q];
        act.template many<NA>(z);
        for (int q = 0; q < NA; q++) out[j + q0 + q] = z[q];
      }
    } else {
      for (int q = 0; q < 8; q++) out[j + q] = act(acc[q]);
    }
  }
  for (; j < J; j++) {
    vf acc = splat(bias[j]);
    for (int f = 0; f < F; f++) acc += x[f] * W[(size_t)f * ld + j];
    for (int k = 0; k < K; k++) acc += h[k] * U[(size_t)k * ld + j];
    out[j] = act(acc);
  }
}

// out[k] += sum_j d[j] M[k ld + j], k < K (the transposed product of the backward pass);
// SET: out[k] = the sum, from +0 as out's zeros were (not stored, then loaded)
template <bool SET = false>
static inline void matvec_t(const vf *d, int J, const float *M, int ld, int K, vf *out) {
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    vf acc[8];
    for (int q = 0; q < 8; q++) acc[q] = SET ? vf{} : out[k + q];
    for (int j = 0; j < J; j++) {
      const vf dj = d[j];
      for (int q = 0; q < 8; q++) acc[q] += dj * M[(size_t)(k + q) * ld + j];
    }
    for (int q = 0; q < 8; q++) out[k + q] = acc[q];
  }
  for (; k < K; k++) {
    vf acc = SET ? vf{} : out[k];
    for (int j = 0; j < J; j++) acc += d[j] * M[(size_t)k * ld + j];
    out[k] = acc;
  }
}

// One row of an outer product's left side: its vector at step t is a[t sa] (sa = 0: the same
// vector every step: a bias's ones), and its J sums go to out[0, J).
struct Row {
  const vf *a;
  size_t sa;
  float *out;
};

// ``outer``'s last step: each row's sums of L columns at once (``hsums``); 0 (for tests and
// measurements): one column at a time (``hsum``), the same bits
#ifndef LATCH_GROUP_SUMS
#define LATCH_GROUP_SUMS 1
#endif

// A block of KB rows and JB columns of ``outer``: 20 accumulators (5 x 4) where there are 32
// vector registers (AVX-512, NEON), 8 (2 x 4) where there are 16 (AVX2, SSE; 3 x 3 was no
// faster). LATCH_OUTER_KB and LATCH_OUTER_JB override them, for measurements.
#ifndef LATCH_OUTER_KB
#if LATCH_VREGS == 32
#define LATCH_OUTER_KB 5
#define LATCH_OUTER_JB 4
#else
#define LATCH_OUTER_KB 2
#define LATCH_OUTER_JB 4
#endif
#endif
enum { OUTER_KB = LATCH_OUTER_KB, OUTER_JB = LATCH_OUTER_JB };

// acc[p la + q] = sum over steps t0 <= t < t1 of row p's vector times E_t[q] (E_t = E + t se),
// p < KB, q < JB, in step order, the accumulators in registers throughout. Each step's
// KB + JB vectors are loaded once and pinned in registers: left to itself GCC folded every
// use of a row into a multiply-add's memory operand, 20 loads for 16 multiply-adds, and
// zmm loads from L2 are what this loop waits on (docs/benchmarks.md).
template <int KB, int JB>
static inline void outer_block(const Row *r, const vf *E, size_t se, int t0, int t1, vf *acc_m, int la) {
  static_assert(KB <= 5 && JB <= 4, "outer_block names at most 5 rows and 4 columns");
  vf acc[KB][JB];
  for (int p = 0; p < KB; p++)
    for (int q = 0; q < JB; q++) acc[p][q] = vf{};
  const vf *a[KB];
  for (int p = 0; p < KB; p++) a[p] = r[p].a + (size_t)t0 * r[p].sa;
  const vf *e = E + (size_t)t0 * se;
  for (int t = t0; t < t1; t++, e += se) {
    vf a0{}, a1{}, a2{}, a3{}, a4{}, e0{}, e1{}, e2{}, e3{};  // named: a pinned array element went to the stack
#define LATCH_ROW(p)           \
  if constexpr (KB > p) {      \
    a##p = *a[p];              \
    a[p] += r[p].sa;           \
    pin(a##p);                 \
  }
#define LATCH_COLUMN(q)    \
  if constexpr (JB > q) {  \
    e##q = e[q];           \
    pin(e##q);             \
  }
    LATCH_ROW(0) LATCH_ROW(1) LATCH_ROW(2) LATCH_ROW(3) LATCH_ROW(4)
    LATCH_COLUMN(0) LATCH_COLUMN(1) LATCH_COLUMN(2) LATCH_COLUMN(3)
#undef LATCH_ROW
#undef LATCH_COLUMN
    const vf av[5] = {a0, a1, a2, a3, a4}, ev[4] = {e0, e1, e2, e3};
    for (int p = 0; p < KB; p++)
      for (int q = 0; q < JB; q++) acc[p][q] += av[p] * ev[q];
  }
  for (int p = 0; p < KB; p++)
    for (int q = 0; q < JB; q++) acc_m[p * la + q] = acc[p][q];
}

template <int KB>
static void outer_rows(const Row *r, const vf *E, size_t se, int J, int t0, int T, vf *acc) {
  int j = 0;
  for (; j + OUTER_JB <= J; j += OUTER_JB) outer_block<KB, OUTER_JB>(r, E + j, se, t0, T, acc + j, J);
  for (; j < J; j++) outer_block<KB, 1>(r, E + j, se, t0, T, acc + j, J);
}

// r[k].out[j] += sum over steps t0 <= t < T and lanes of row k's vector times E_t[j], k < K,
// j < J: blocks of rows and columns over every step; each accumulator takes the steps in
// order, then its lanes' tree sum. A cell's weight gradients go through one call for all
// their rows (inputs, bias, recurrent), so each step's columns are loaded once for a block
// of rows of any kind.
static void outer(const Row *r, int K, const vf *E, size_t se, int J, int t0, int T) {
  thread_local std::vector<vf> acc;  // every sum written by its block
  if (acc.size() < (size_t)K * J) acc.resize((size_t)K * J);
  int k = 0;
  for (; k + OUTER_KB <= K; k += OUTER_KB) outer_rows<OUTER_KB>(r + k, E, se, J, t0, T, &acc[(size_t)k * J]);
  vf *rest = &acc[(size_t)k * J];
  switch (K - k) {  // the last rows
    case 4: outer_rows<4>(r + k, E, se, J, t0, T, rest); break;
    case 3: outer_rows<3>(r + k, E, se, J, t0, T, rest); break;
    case 2: outer_rows<2>(r + k, E, se, J, t0, T, rest); break;
    case 1: outer_rows<1>(r + k, E, se, J, t0, T, rest); break;
    default: break;
  }
  for (k = 0; k < K; k++) {
    int j = 0;
#if LATCH_GROUP_SUMS
    for (; j + L <= J; j += L) {  // L columns' sums at once
      vfu *o = (vfu *)(r[k].out + j);
      *o = *o + hsums(&acc[(size_t)k * J + j]);
    }
#endif
    for (; j < J; j++) r[k].out[j] += hsum(acc[(size_t)k * J + j]);
  }
}

// K rows a, a + 1, ... (each stepping by sa) with sums into out, out + ld, ..., appended to rs
static void rows(std::vector<Row> &rs, const vf *a, size_t sa, int K, float *out, int ld) {
  for (int k = 0; k < K; k++) rs.push_back({a + k, sa, out + (size_t)k * ld});
}

static void hblock_alloc(HBlock &b, int kind, int ra, int H, int F, int nv, int V, int T, int Tin, int nr) {
  const int GH = n_gates(kind) * H;
  b.nv = nv; b.V = V; b.H = H; b.GH = GH; b.F = F; b.nr = nr; b.r0 = 0;
  if (F > 1) b.xin.resize((size_t)Tin * nv * F);
  b.NS = n_record(kind, H);
  b.ND = n_grad_record(kind, ra, H);
  b.t0.assign(nv, 0);
  b.st.resize((size_t)T * nr * b.NS); b.dz.resize((size_t)T * nr * b.ND);
  b.h.assign((size_t)nv * H, vf{}); b.c.assign((size_t)nv * H, vf{});
  b.dh.assign((size_t)nv * H, vf{}); b.dc.assign((size_t)nv * H, vf{}); b.tmp.assign((size_t)nv * H, vf{});
  b.pre.assign((size_t)nv * GH, vf{}); b.rq.assign((size_t)nv * GH, vf{});
}

// The H-unit path is built twice: for any H (HC = 0, H read from the block) and for cells
// of FIXED_H units (HC = FIXED_H), the follow-ups' bit relay as the asker ran it, whose
// loops the compiler then unrolls: an epoch of 8-unit GRUs 6-7 % shorter, of SRNNs 8-9 %,
// of LSTMs 1 % (docs/benchmarks.md). Both give the same numbers.
constexpr int FIXED_H = 8;
// A pass of train_h keeps its vectors' step records within half the core's L2, as the
// C library reports it (1 MB when it does not): an 8-unit LSTM's epoch at batch 256 took
// 1.7 times batch 16's when a member's 16 vectors went through at once, and where the L2 is
// 512 KB a fixed 1 MB left the 8-unit GRU's epoch 5-10 % slower than one vector a pass
// (docs/benchmarks.md). LATCH_RECORD_BYTES overrides it (tests: one vector a pass).
static size_t record_bytes() {
#ifdef LATCH_RECORD_BYTES
  return LATCH_RECORD_BYTES;
#else
  static const size_t bytes = [] {
    long l2 = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return l2 > 0 ? (size_t)l2 / 2 : (size_t)1 << 20;
  }();
  return bytes;
#endif
}

// One step of vector v (its member's parameters p) from h (and c) on inputs x (F vectors);
// stores the record if `store`.
template <int KIND, int RSIG, int RA, int HC>
static inline void hforward(HBlock &b, const float *p, const vf *x, int t, int v, bool store) {
  const int H = HC ? HC : b.H, GH = HC ? n_gates(KIND) * HC : b.GH;
  const float *W = p, *U = p + (size_t)b.F * GH, *Bi = U + (size_t)H * GH, *C = Bi + GH;
  vf *h = &b.h[(size_t)v * H], *c = &b.c[(size_t)v * H], *pre = &b.pre[(size_t)v * GH];
  vf *rec = store ? b.rec(t, v) : nullptr, *act = store ? rec + H : nullptr, *ext = store ? rec + H + GH : nullptr;
  if (store) memcpy((void *)rec, (const void *)h, sizeof(vf) * H);
  // the activations go straight to the record when it is kept (its gate values have the
  // pre-activations' layout), else to ``pre``
  vf *a = store ? act : pre;
  if (KIND == SRNN) {
    affine(Bi, x, b.F, W, h, H, U, GH, GH, a, Tanh{});
    memcpy((void *)h, (const void *)a, sizeof(vf) * H);
  } else if (KIND == LSTM || KIND == LSTM_NOFG) {
    const int gg = KIND == LSTM ? 2 : 1, go = KIND == LSTM ? 3 : 2;
    // the gates and the candidate's tanh with the pre-activations, then the cells: each
    // loop's units are independent chains of one tanh (a unit's chain of two kept the core
    // waiting)
    const int j1 = gg * H, j2 = j1 + H;  // the candidate's columns
    affine(Bi, x, b.F, W, h, H, U, GH, j1, a, Gate<RSIG>{});
    affine(Bi + j1, x, b.F, W + j1, h, H, U + j1, GH, H, a + j1, Tanh{});
    affine(Bi + j2, x, b.F, W + j2, h, H, U + j2, GH, GH - j2, a + j2, Gate<RSIG>{});
    by_units<LATCH_ACT_VECTORS>(H, [&](auto n, int u0) {
      constexpr int N = decltype(n)::value;
      vf tc[N];
      for (int k = 0; k < N; k++) {
        const int u = u0 + k;
        vf i = a[u], g = a[gg * H + u], f = KIND == LSTM ? a[H + u] : splat(1.0f);
        vf cp = c[u];
        if (store) ext[u] = cp;
        c[u] = tc[k] = f * cp + i * g;
      }
      vtanh_clamped_n<N>(tc, TANH_CLAMP);
      for (int k = 0; k < N; k++) {
        const int u = u0 + k;
        h[u] = a[go * H + u] * tc[k];
        if (store) ext[H + u] = tc[k];
      }
    });
  } else if (KIND == GRU && RA) {  // q = h U + c (all three blocks), h~ = tanh(x W_h + b_h + r q_h)
    vf *rq = &b.rq[(size_t)v * GH];
    affine(Bi, x, b.F, W, nullptr, 0, U, GH, GH, pre);  // x W + b
    affine(C, nullptr, 0, nullptr, h, H, U, GH, GH, rq);  // h U + c
    by_units<LATCH_ACT_VECTORS>(H, [&](auto n, int u0) {
      constexpr int N = decltype(n)::value;
      vf z[N], r[N], hh[N];
      for (int k = 0; k < N; k++) z[k] = pre[u0 + k] + rq[u0 + k], r[k] = pre[H + u0 + k] + rq[H + u0 + k];
      Gate<RSIG>{}.template many<N>(z);
      Gate<RSIG>{}.template many<N>(r);
      for (int k = 0; k < N; k++) hh[k] = pre[2 * H + u0 + k] + r[k] * rq[2 * H + u0 + k];
      vtanh_clamped_n<N>(hh, TANH_CLAMP);
      for (int k = 0; k < N; k++) {
        const int u = u0 + k;
        if (store) { act[u] = z[k]; act[H + u] = r[k]; act[2 * H + u] = hh[k]; ext[u] = rq[2 * H + u]; }
        h[u] = z[k] * h[u] + (1.0f - z[k]) * hh[k];
      }
    });
  } else if (KIND == GRU) {  // h~ = tanh(x W_h + b_h + (r h) U_h)
    vf *rh = &b.tmp[(size_t)v * H];
    affine(Bi, x, b.F, W, h, H, U, GH, 2 * H, a, Gate<RSIG>{});  // z and r
    for (int u = 0; u < H; u++) rh[u] = a[H + u] * h[u];
    affine(Bi + 2 * H, x, b.F, W + 2 * H, rh, H, U + 2 * H, GH, H, a + 2 * H, Tanh{});  // the candidate
    for (int u = 0; u < H; u++) {
      vf z = a[u], hh = a[2 * H + u];
      if (store) ext[u] = rh[u];
      h[u] = z * h[u] + (1.0f - z) * hh;
    }
  } else {  // JANET: both gates from one pre-activation
    affine(Bi, x, b.F, W, h, H, U, GH, GH, pre);
    by_units<LATCH_ACT_VECTORS>(H, [&](auto n, int u0) {
      constexpr int N = decltype(n)::value;
      vf f[N], i[N], g[N];
      for (int k = 0; k < N; k++) f[k] = pre[u0 + k], i[k] = 1.0f - pre[u0 + k], g[k] = pre[H + u0 + k];
      Gate<RSIG>{}.template many<N>(f);
      Gate<RSIG>{}.template many<N>(i);
      vtanh_clamped_n<N>(g, TANH_CLAMP);
      for (int k = 0; k < N; k++) {
        const int u = u0 + k;
        if (store) { act[u] = f[k]; act[H + u] = g[k]; ext[u] = i[k]; }
        h[u] = f[k] * h[u] + i[k] * g[k];
      }
    });
  }
}

// The step's backward pass for vector v: from dh (and dc) at step t's output to step t - 1's.
template <int KIND, int RSIG, int RA, int HC>
static inline void hbackward(HBlock &b, const float *p, int t, int v) {
  const int H = HC ? HC : b.H, GH = HC ? n_gates(KIND) * HC : b.GH;
  const float *U = p + (size_t)b.F * GH;
  const vf *rec = b.rec(t, v), *hp = rec, *act = rec + H, *ext = rec + H + GH;
  vf *dh = &b.dh[(size_t)v * H], *dc = &b.dc[(size_t)v * H], *d = b.grec(t, v);
  if (KIND == SRNN) {
    for (int u = 0; u < H; u++) d[u] = dh[u] * (1.0f - act[u] * act[u]);
    matvec_t<true>(d, GH, U, GH, H, dh);
  } else if (KIND == LSTM || KIND == LSTM_NOFG) {
    const int gg = KIND == LSTM ? 2 : 1, go = KIND == LSTM ? 3 : 2;
    for (int u = 0; u < H; u++) {
      vf i = act[u], g = act[gg * H + u], o = act[go * H + u], cp = ext[u], tc = ext[H + u];
      vf dcc = dc[u] + dh[u] * o * (1.0f - tc * tc);
      d[u] = dcc * g * dgate<RSIG>(i);
      d[gg * H + u] = dcc * i * (1.0f - g * g);
      d[go * H + u] = dh[u] * tc * dgate<RSIG>(o);
      if (KIND == LSTM) {
        vf f = act[H + u];
        d[H + u] = dcc * cp * dgate<RSIG>(f);
        dc[u] = dcc * f;
      } else {
        dc[u] = dcc;
      }
    }
    matvec_t<true>(d, GH, U, GH, H, dh);
  } else if (KIND == GRU && RA) {
    for (int u = 0; u < H; u++) {
      vf z = act[u], r = act[H + u], hh = act[2 * H + u], q = ext[u], du = dh[u];
      vf dah = du * (1.0f - z) * (1.0f - hh * hh);
      d[u] = du * (hp[u] - hh) * dgate<RSIG>(z);
      d[2 * H + u] = dah;
      d[GH + u] = dah * r;  // dq
      d[H + u] = dah * q * dgate<RSIG>(r);
      dh[u] = du * z;
    }
    matvec_t(d, 2 * H, U, GH, H, dh);
    matvec_t(d + GH, H, U + 2 * H, GH, H, dh);
  } else if (KIND == GRU) {
    vf *drh = &b.tmp[(size_t)v * H];
    for (int u = 0; u < H; u++) {
      vf z = act[u], hh = act[2 * H + u], du = dh[u];
      d[u] = du * (hp[u] - hh) * dgate<RSIG>(z);
      d[2 * H + u] = du * (1.0f - z) * (1.0f - hh * hh);
      drh[u] = splat(0.0f);
    }
    matvec_t(d + 2 * H, H, U + 2 * H, GH, H, drh);  // dL/d(r h)
    for (int u = 0; u < H; u++) {
      vf r = act[H + u];
      d[H + u] = drh[u] * hp[u] * dgate<RSIG>(r);
      dh[u] = dh[u] * act[u] + drh[u] * r;
    }
    matvec_t(d, 2 * H, U, GH, H, dh);
  } else {  // JANET
    for (int u = 0; u < H; u++) {
      vf f = act[u], g = act[H + u], i = ext[u], du = dh[u];
      d[u] = du * hp[u] * dgate<RSIG>(f) - du * g * dgate<RSIG>(i);
      d[H + u] = du * i * (1.0f - g * g);
      dh[u] = du * f;
    }
    matvec_t(d, GH, U, GH, H, dh);
  }
}

// Vector v's weight gradients, summed over its steps and lanes, into g (its member's); xb
// the block's inputs, (T, nv, F). Each call of ``outer`` takes every row that multiplies the
// same columns: the inputs' (dW), the bias's (db) and the recurrent rows (dU; a reset_after
// GRU's recurrent bias, dc).
static void hgradients(HBlock &b, int kind, int ra, const vf *xb, int T, int v, float *g) {
  const int H = b.H, GH = b.GH, F = b.F, t0 = b.t0[v];
  const size_t sr = (size_t)b.nr * b.NS, sd = (size_t)b.nr * b.ND, sx = (size_t)b.nv * F;
  const vf *hp = b.rec(0, v), *ext = hp + H + GH, *d = b.grec(0, v), *x = xb + (size_t)v * F;
  float *dW = g, *dU = g + (size_t)F * GH, *db = dU + (size_t)H * GH, *dc = db + GH;
  static const vf one = splat(1.0f);
  thread_local std::vector<Row> rs;
  rs.clear();
  const auto inputs = [&](int j) {  // the inputs' and the bias's rows for columns from j
    rows(rs, x, sx, F, dW + j, GH);
    rows(rs, &one, 0, 1, db + j, GH);
  };
  const auto sums = [&](const vf *E, int J) {  // the rows so far against J columns of E
    outer(rs.data(), (int)rs.size(), E, sd, J, t0, T);
    rs.clear();
  };
  inputs(0);
  rows(rs, hp, sr, H, dU, GH);
  if (kind != GRU) {
    sums(d, GH);
  } else if (ra) {  // the candidate's recurrent part takes dq, as its recurrent bias does
    rows(rs, &one, 0, 1, dc, GH);
    sums(d, 2 * H);
    inputs(2 * H);
    sums(d + 2 * H, H);
    rows(rs, hp, sr, H, dU + 2 * H, GH);
    rows(rs, &one, 0, 1, dc + 2 * H, GH);
    sums(d + GH, H);
  } else {  // the candidate's recurrent weights multiply r h_prev
    sums(d, 2 * H);
    inputs(2 * H);
    rows(rs, ext, sr, H, dU + 2 * H, GH);
    sums(d + 2 * H, H);
  }
}

// A head on the last state (dense2, dense1, linear) of H units on vector group h (H vectors:
// rows in lanes); per lane the label y (dense2, dense1) or target yv (linear) and the weight
// w (already divided by the member's weight; 0 for padding). Adds the loss and metric
// (weighted) to lsum, asum; with `grad`, sets dh and adds the head's gradients into gk (H O),
// gb (O).
static void hhead(int head, int H, const float *K, const float *hb, const vf *h, const int32_t *y, const float *yv,
                  const float *w, float *lsum, float *asum, bool grad, vf *dh, float *gk, float *gb) {
  const int O = head == DENSE2 ? 2 : 1;
  vf z[2] = {splat(hb[0]), splat(O > 1 ? hb[1] : 0.0f)};
  for (int u = 0; u < H; u++)
    for (int o = 0; o < O; o++) z[o] += h[u] * K[u * O + o];
  vi yl;
  vf yvl, wl;
  memcpy(&yl, y, sizeof yl); memcpy(&yvl, yv, sizeof yvl); memcpy(&wl, w, sizeof wl);
  const HeadOut o = vhead(head, z[0], z[1], yl, yvl, wl);
  for (int l = 0; l < L; l++) { *lsum += o.loss[l] * w[l]; *asum += o.hit[l] * w[l]; }
  const vf d[2] = {o.d0, o.d1};
  if (!grad) return;
  for (int o = 0; o < O; o++) gb[o] += hsum(d[o]);
  for (int u = 0; u < H; u++) {
    vf du = d[0] * K[u * O];
    if (O > 1) du += d[1] * K[u * O + 1];
    dh[u] = du;
    for (int o = 0; o < O; o++) gk[u * O + o] += hsum(h[u] * d[o]);
  }
}

static void seq_alloc(HBlock &b, int T, int O, bool grad) {
  const size_t n = (size_t)T * b.nv;
  b.ys.resize(n); b.live.resize(n);
  if (grad) b.dhead.resize(n * O);
  b.cw.assign(b.nv, vf{}); b.nsteps.assign(b.nv, vf{}); b.nsym.assign(b.nv, vf{});
  b.ce.assign(b.nv, vf{}); b.hits.assign(b.nv, vf{}); b.z.resize(O);
}

// Targets: labels (dense2, dense1: int 0/1) or values (linear: float), per example (R, N)
// in training and per validation slot (R, Nv) in validation; or categories per step
// (seq_softmax: -1 where a step has none, as on left padding), each member's (N, T) array,
// read by example. N: the examples a member has.
struct Targets {
  const int32_t *label;
  const float *value;
  const int32_t *steps;
  int N;
  const int32_t *row(int r, int e, int T) const { return steps + ((size_t)r * N + e) * T; }
};

static bool targets_ok(const Shape &s, const Targets &tg) {
  return s.head == SEQ ? tg.steps && tg.N >= 1 : s.head == LINEAR ? tg.value != nullptr : tg.label != nullptr;
}

// A block's examples and targets for every step of the epoch, looked up at its start
// from each member's positions (row prow[r] of pos (D, S B): into its training examples
// train (R, Ntr); members of one seed shuffle alike and share a row) and
// its examples' labels or values (R, N), by the thread that trains it (looked up in Python
// before the call, the epoch waited on one core; one at a time in the steps, the random
// reads stalled them). The block's member m has its B examples of step st at
// ex[at(m, st)], and their targets at the same offset in label or value.
struct Slots {
  std::vector<int32_t> ex, label;
  std::vector<float> value;
  size_t SB = 0, B = 0;
  size_t at(int m, int st) const { return m * SB + st * B; }
  // whether member r's positions, training examples and targets equal member r - 1's (a
  // seed's members at every length share them): its slots are then a copy of the last
  // member's, not looked up again at random (9 % of an SRNN epoch's samples in the seed's grid)
  bool same_as_last(const int32_t *pos, const int32_t *prow, const int32_t *train, const Targets &tg, int r,
                    int Ntr) const {
    const auto same = [](const void *a, size_t n) { return !memcmp((const char *)a - n, a, n); };
    const bool same_pos = prow[r] == prow[r - 1] ||
                          !memcmp(pos + (size_t)prow[r] * SB, pos + (size_t)prow[r - 1] * SB, SB * 4);
    return same_pos && same(train + (size_t)r * Ntr, (size_t)Ntr * 4) &&
           (!tg.label || same(tg.label + (size_t)r * tg.N, (size_t)tg.N * 4)) &&
           (!tg.value || same(tg.value + (size_t)r * tg.N, (size_t)tg.N * 4));
  }
  void copy_last(int m) {
    memcpy(&ex[m * SB], &ex[(m - 1) * SB], SB * 4);
    if (!label.empty()) memcpy(&label[m * SB], &label[(m - 1) * SB], SB * 4);
    if (!value.empty()) memcpy(&value[m * SB], &value[(m - 1) * SB], SB * 4);
  }
  // fills the slots of members [m0, m0 + nm); false if a position or an example is out of range
  bool fill(const int32_t *pos, const int32_t *prow, const int32_t *train, int Ntr, const Targets &tg, int m0, int nm,
            int S, int B_) {
    B = B_;
    SB = (size_t)S * B;
    ex.resize(nm * SB);
    label.resize(tg.label ? nm * SB : 0);
    value.resize(tg.value ? nm * SB : 0);
    for (int m = 0; m < nm; m++) {
      const int32_t *p = pos + (size_t)prow[m0 + m] * SB, *tr = train + (size_t)(m0 + m) * Ntr;
      if (m > 0 && same_as_last(pos, prow, train, tg, m0 + m, Ntr)) {  // a seed's members at other lengths
        copy_last(m);
        continue;
      }
      // the examples, then their targets, each loop over local pointers: with both in one
      // loop, every store to the slots made the compiler reload the targets' pointers
      int32_t *e_m = &ex[m * SB];
      for (size_t j = 0; j < SB; j++) {
        const int32_t q = p[j];
        if (q < 0 || q >= Ntr) return false;
        const int32_t e = tr[q];
        if (e < 0 || e >= tg.N) return false;
        e_m[j] = e;
      }
      const auto targets = [&](const auto *all, auto &slot) {  // labels or values
        if (!all) return;
        const auto *y = all + (size_t)(m0 + m) * tg.N;
        auto *o = &slot[m * SB];
        for (size_t j = 0; j < SB; j++) o[j] = y[e_m[j]];
      };
      targets(tg.label, label);
      targets(tg.value, value);
    }
    return true;
  }
};

// seq_softmax: the block's categories per step for examples ex (`rows` a member, V L; the
// first n of them real, the rest without a category), whether any lane of a vector has one
// at a step, and per lane how many steps have one and how many a symbol (y > 0).
static void seq_targets(HBlock &b, const Targets &tg, int T, int m0, int nm, int rows, int n, const int32_t *ex) {
  const int nv = b.nv, V = b.V;
  const int32_t *src[L];
  for (int v = 0; v < nm * V; v++) {
    const int m = v / V;
    for (int l = 0; l < L; l++) {
      const int k = (v % V) * L + l;
      src[l] = k < n ? tg.row(m0 + m, ex[(size_t)m * rows + k], T) : nullptr;
    }
    vf ns = {}, nsy = {};
    for (int t = 0; t < T; t++) {
      vi y;
      for (int l = 0; l < L; l++) y[l] = src[l] ? src[l][t] : -1;
      const vi on = y >= 0;
      bool any = false;
      for (int l = 0; l < L; l++) any |= on[l] != 0;
      b.ys[(size_t)t * nv + v] = y;
      b.live[(size_t)t * nv + v] = any;
      ns += on ? splat(1.0f) : splat(0.0f);
      nsy += y > 0 ? splat(1.0f) : splat(0.0f);
    }
    b.nsteps[v] = ns; b.nsym[v] = nsy;
  }
}

// seq_softmax at step t of vector v: logits z = bias + h K (O classes; h null: a padded
// step's zero state), each lane's cross-entropy -log softmax(z)[y] (lanes without a category
// take no part) added to b.ce, its hit (a symbol, y > 0, with argmax z == y, ties to the
// first class) to b.hits. With d (O vectors): dL/dz = (softmax(z) - onehot(y)) b.cw into d,
// and with dh too d K^T added to dh (H vectors).
static void hseq(HBlock &b, int O, const float *K, const float *bias, const vf *h, int t, int v, vf *d, vf *dh) {
  vf *z = b.z.data();
  const vi y = b.ys[(size_t)t * b.nv + v];
  affine(bias, nullptr, 0, nullptr, h, h ? b.H : 0, K, O, O, z);
  vf mx = z[0], zy = splat(0.0f), sum = splat(0.0f);
  vi arg = vi{};
  for (int k = 1; k < O; k++) {
    const vi gt = z[k] > mx;
    mx = gt ? z[k] : mx;
    arg = gt ? vi{} + k : arg;
  }
  for (int k = 0; k < O; k++) {  // logsumexp as jax.nn's: log(sum exp(z - max)) + max
    const vf e = vexp(z[k] - mx);
    if (d) d[k] = e;
    sum += e;
    zy = y == k ? z[k] : zy;
  }
  const vi on = y >= 0;
  b.ce[v] += on ? (vlog(sum) + mx) - zy : splat(0.0f);
  b.hits[v] += ((y > 0) & (arg == y)) ? splat(1.0f) : splat(0.0f);
  if (!d) return;
  const vf c = on ? b.cw[v] : splat(0.0f), cs = c / sum;
  for (int k = 0; k < O; k++) d[k] = d[k] * cs - (y == k ? c : splat(0.0f));
  if (dh) matvec_t(d, O, K, O, b.H, dh);
}

// seq_softmax's weight gradients of vector v into gk (H O), then gb (O): dK sums h_t dL/dz_t
// over its valid steps and lanes (h_t is step t + 1's record, the last step's the final
// state), db sums dL/dz_t over every step (a padded step's logits are the bias).
static void seq_gradients(HBlock &b, int O, int T, int v, float *gk) {
  const int H = b.H, t0 = b.t0[v], nv = b.nv;
  const size_t sr = (size_t)b.nr * b.NS, sd = (size_t)nv * O;
  const vf *d = &b.dhead[(size_t)v * O];
  static const vf one = splat(1.0f);
  thread_local std::vector<Row> rs;
  rs.clear();
  if (t0 < T - 1) {
    rows(rs, b.rec(1, v), sr, H, gk, O);
    outer(rs.data(), H, d, sd, O, t0, T - 1);
    rs.clear();
  }
  rows(rs, &b.h[(size_t)v * H], 0, H, gk, O);
  if (t0 < T) outer(rs.data(), H, d, sd, O, T - 1, T);
  const Row bias = {&one, 0, gk + (size_t)H * O};
  outer(&bias, 1, d, sd, O, 0, T);
}

// The block's inputs, (T, nv, F), for examples ex (`rows` a member): each channel gathered as
// one-unit inputs are, then interleaved (one channel: the gather's own array).
static const vf *channels(Block &xb, HBlock &b, const Inputs &in, int R, int T, int m0, int nm, int rows,
                          const int32_t *ex) {
  const int F = b.F, nv = b.nv;
  if (F == 1) {
    gather(xb, in, T, m0, nm, rows, ex);
    return xb.xb.data();
  }
  for (int f = 0; f < F; f++) {
    gather(xb, in.channel(f, R), T, m0, nm, rows, ex);
    for (int v = 0; v < nv; v++)
      for (int t = b.t0[v]; t < T; t++) b.xin[((size_t)t * nv + v) * F + f] = xb.xb[(size_t)t * nv + v];
  }
  return b.xin.data();
}

// The block's inputs for a training step: member m's rows are vectors [m V, m V + V) (with
// V L rows a member: its padding rows read its first example, ex).
static const vf *hgather(Block &xb, HBlock &b, const Inputs &in, int R, int T, int m0, int nm, int B,
                         const int32_t *ex_m, size_t ex_stride, std::vector<int32_t> &ex) {
  const int Bp = b.V * L;
  ex.assign((size_t)nm * Bp, 0);
  for (int m = 0; m < nm; m++)
    for (int k = 0; k < Bp; k++) ex[(size_t)m * Bp + k] = ex_m[m * ex_stride + (k < B ? k : 0)];
  return channels(xb, b, in, R, T, m0, nm, Bp, ex.data());
}

template <int KIND, int RSIG, int RA, int HC>
static int train_h(const Shape &s, int R, int T, const Inputs &in, int S, int B, const int32_t *pos, int Ntr,
                   const int32_t *train, const Targets &tg, const float *weight, const int32_t *prow, float *params,
                   float *mu, float *nu, int32_t *count, const float *lr, float *loss, float *acc, int per_block,
                   int *next_block) {
  const int H = s.H, F = s.F, V = (B + L - 1) / L, Pc = s.Pc, O = s.O;
  const bool seq = s.head == SEQ;
  Block xb;
  HBlock b;
  Corrections bc;
  Slots slots;
  std::vector<int32_t> ex, yl;
  std::vector<float> grad, wl, yvl, wsum, lsum, asum, wstep, inv, lm, am;
  Blocks blocks(R, per_block, T, in.t0);
  int m0, nm;
  while (blocks.next(next_block, &m0, &nm)) {
    if (!slots.fill(pos, prow, train, Ntr, tg, m0, nm, S, B)) return -2;
    const int nv = nm * V;
    // each member's weight in the current step, its inverse, and its loss and metric sums
    wstep.assign(nm, 0.0f); inv.assign(nm, 0.0f); lm.assign(nm, 0.0f); am.assign(nm, 0.0f);
    // vectors a pass takes: as many as keep their records within record_bytes() (a batch of
    // 256 rows is 16 vectors a member, 9 MB of an 8-unit LSTM's records at T = 100); a
    // seq_softmax head's step gradients take every vector at once
    const size_t per_vector = (size_t)T * (n_record(KIND, H) + n_grad_record(KIND, RA, H)) * sizeof(vf);
    const int chunk = seq ? nv : std::max(1, (int)std::min((size_t)nv, record_bytes() / per_vector));
    hblock_alloc(b, KIND, RA, H, F, nv, V, T, T, chunk);
    if (seq) seq_alloc(b, T, O, true);
    xb.nv = nv; xb.t0min.assign(nv, 0); xb.t0max.assign(nv, 0); xb.t0lane.assign(nv, vf{});
    xb.xb.assign((size_t)T * nv, vf{});
    lane_layout(xb, m0, nm, V * L, in.t0);
    int tstart = T;
    for (int v = 0; v < nv; v++) {
      b.t0[v] = in.t0[m0 + v / V];
      tstart = b.t0[v] < tstart ? b.t0[v] : tstart;
    }
    grad.assign((size_t)nm * s.P, 0.0f);
    lsum.assign(nm, 0.0f); asum.assign(nm, 0.0f); wsum.assign(nm, 0.0f);
    yl.assign(L, 0); yvl.assign(L, 0.0f); wl.assign(L, 0.0f);
    for (int st = 0; st < S; st++) {
      const vf *x = hgather(xb, b, in, R, T, m0, nm, B, &slots.ex[slots.at(0, st)], slots.SB, ex);
      std::fill(b.h.begin(), b.h.end(), vf{});
      std::fill(b.c.begin(), b.c.end(), vf{});
      std::fill(b.dc.begin(), b.dc.end(), vf{});
      memset(grad.data(), 0, sizeof(float) * grad.size());
      if (seq) {  // dL/dh enters at every step, below
        seq_targets(b, tg, T, m0, nm, V * L, B, ex.data());
        std::fill(b.dh.begin(), b.dh.end(), vf{});
      }
      for (int m = 0; m < nm; m++) {
        const float *w = weight + ((size_t)prow[m0 + m] * S + st) * B;
        float n = 0.0f;
        for (int k = 0; k < B; k++) n += w[k];
        wstep[m] = n;
        inv[m] = 1.0f / (n > 1e-12f ? n : 1e-12f);
        lm[m] = am[m] = 0.0f;
      }
      // the vectors in passes of `chunk`: forward, head, backward and weight gradients; a
      // member's sums take its vectors in order whatever the passes, so the numbers do not
      // depend on them
      for (int c0 = 0; c0 < nv; c0 += chunk) {
        const int c1 = std::min(nv, c0 + chunk);
        b.r0 = c0;
        for (int t = tstart; t < T; t++)
          for (int v = c0; v < c1; v++)
            if (t >= b.t0[v])
              hforward<KIND, RSIG, RA, HC>(b, params + (size_t)(m0 + v / V) * s.P, x + ((size_t)t * nv + v) * F, t,
                                           v, true);
        for (int v = c0; v < c1; v++) {
          const int m = v / V, q = v % V;
          const float *w = weight + ((size_t)prow[m0 + m] * S + st) * B;
          const size_t at = slots.at(m, st);  // the step's targets in the slots
          if (seq) {  // a sequence's loss is its steps' mean: each step's weight w / steps
            for (int l = 0; l < L; l++) {
              int k = q * L + l;
              float ns = b.nsteps[v][l];
              b.cw[v][l] = k < B ? w[k] * inv[m] / (ns > 1.0f ? ns : 1.0f) : 0.0f;
            }
            b.ce[v] = b.hits[v] = vf{};
            continue;
          }
          for (int l = 0; l < L; l++) {
            int k = q * L + l;
            yl[l] = k < B && tg.label ? slots.label[at + k] : 0;
            yvl[l] = k < B && tg.value ? slots.value[at + k] : 0.0f;
            wl[l] = k < B ? w[k] * inv[m] : 0.0f;
          }
          const float *hp = params + (size_t)(m0 + m) * s.P + Pc;
          float *g = &grad[(size_t)m * s.P];
          hhead(s.head, H, hp, hp + H * O, &b.h[(size_t)v * H], yl.data(), yvl.data(), wl.data(), &lm[m], &am[m], true,
                &b.dh[(size_t)v * H], g + Pc, g + Pc + H * O);
        }
        for (int t = T - 1; t >= (seq ? 0 : tstart); t--)
          for (int v = c0; v < c1; v++) {
            const float *p = params + (size_t)(m0 + v / V) * s.P;
            const bool valid = t >= b.t0[v];
            if (seq) {
              const size_t i = (size_t)t * nv + v;
              vf *d = &b.dhead[i * O];
              if (b.live[i]) {
                const vf *h = !valid ? nullptr : t == T - 1 ? &b.h[(size_t)v * H] : b.rec(t + 1, v);
                hseq(b, O, p + Pc, p + Pc + H * O, h, t, v, d, valid ? &b.dh[(size_t)v * H] : nullptr);
              } else {
                for (int k = 0; k < O; k++) d[k] = vf{};
              }
            }
            if (valid) hbackward<KIND, RSIG, RA, HC>(b, p, t, v);
          }
        for (int v = c0; v < c1; v++) {
          float *g = &grad[(size_t)(v / V) * s.P];
          hgradients(b, KIND, RA, x, T, v, g);
          if (seq) seq_gradients(b, O, T, v, g + Pc);
        }
      }
      for (int m = 0; m < nm; m++) {
        const float n = wstep[m];
        if (seq) {  // the batch's loss and metric
          const float *w = weight + ((size_t)prow[m0 + m] * S + st) * B;
          for (int k = 0; k < B; k++) {
            const int v = m * V + k / L, l = k % L;
            const float ns = b.nsteps[v][l], nsy = b.nsym[v][l];
            lm[m] += b.ce[v][l] / (ns > 1.0f ? ns : 1.0f) * (w[k] * inv[m]);
            am[m] += b.hits[v][l] / (nsy > 1.0f ? nsy : 1.0f) * (w[k] * inv[m]);
          }
        }
        lsum[m] += lm[m] * n; asum[m] += am[m] * n; wsum[m] += n;
      }
      update_members(s, m0, nm, params, mu, nu, count, grad.data(), lr, bc);
    }
    epoch_means(m0, nm, lsum.data(), asum.data(), wsum.data(), loss, acc);
  }
  return 0;
}

template <int KIND, int RSIG, int RA, int HC>
static void evaluate_h(const Shape &s, int R, int T, const Inputs &in, int Nv, const int32_t *val, const Targets &tg,
                       const float *params, float *loss, float *acc, int per_block, int *next_block) {
  const int H = s.H, F = s.F, O = s.O, Pc = s.Pc;
  const bool seq = s.head == SEQ;
  Block xb;
  HBlock b;
  std::vector<int32_t> ex, yl(L);
  std::vector<float> yvl(L), wl(L);
  Blocks blocks(R, per_block, T, in.t0);
  int m0, nm;
  while (blocks.next(next_block, &m0, &nm)) {
    const int nv = nm;  // one vector a member
    hblock_alloc(b, KIND, RA, H, F, nv, 1, 0, T, nv);
    if (seq) seq_alloc(b, T, O, false);
    xb.nv = nv; xb.t0min.assign(nv, 0); xb.t0max.assign(nv, 0); xb.t0lane.assign(nv, vf{});
    xb.xb.assign((size_t)T * nv, vf{});
    lane_layout(xb, m0, nm, L, in.t0);
    int tstart = T;
    for (int v = 0; v < nv; v++) {
      b.t0[v] = in.t0[m0 + v];
      tstart = b.t0[v] < tstart ? b.t0[v] : tstart;
    }
    std::vector<double> ls(nm, 0.0), as(nm, 0.0);
    for (int start = 0; start < Nv; start += L) {
      const int nb = Nv - start < L ? Nv - start : L;
      ex.assign((size_t)nm * L, 0);
      for (int m = 0; m < nm; m++)
        for (int k = 0; k < L; k++) ex[(size_t)m * L + k] = val[(size_t)(m0 + m) * Nv + (k < nb ? start + k : 0)];
      const vf *x = channels(xb, b, in, R, T, m0, nm, L, ex.data());
      if (seq) {
        seq_targets(b, tg, T, m0, nm, L, nb, ex.data());
        std::fill(b.ce.begin(), b.ce.end(), vf{});
        std::fill(b.hits.begin(), b.hits.end(), vf{});
      }
      std::fill(b.h.begin(), b.h.end(), vf{});
      std::fill(b.c.begin(), b.c.end(), vf{});
      for (int t = seq ? 0 : tstart; t < T; t++)
        for (int v = 0; v < nv; v++) {
          const float *p = params + (size_t)(m0 + v) * s.P;
          const bool valid = t >= b.t0[v];
          if (valid) hforward<KIND, RSIG, RA, HC>(b, p, x + ((size_t)t * nv + v) * F, t, v, false);
          if (seq && b.live[(size_t)t * nv + v])
            hseq(b, O, p + Pc, p + Pc + H * O, valid ? &b.h[(size_t)v * H] : nullptr, t, v, nullptr, nullptr);
        }
      for (int m = 0; m < nm; m++) {
        if (seq) {
          for (int l = 0; l < nb; l++) {
            const float ns = b.nsteps[m][l], nsy = b.nsym[m][l];
            ls[m] += b.ce[m][l] / (ns > 1.0f ? ns : 1.0f);
            as[m] += b.hits[m][l] / (nsy > 1.0f ? nsy : 1.0f);
          }
          continue;
        }
        const float *hp = params + (size_t)(m0 + m) * s.P + Pc;
        for (int l = 0; l < L; l++) {
          const size_t i = (size_t)(m0 + m) * Nv + start + l;
          yl[l] = l < nb && tg.label ? tg.label[i] : 0;
          yvl[l] = l < nb && tg.value ? tg.value[i] : 0.0f;
          wl[l] = l < nb ? 1.0f : 0.0f;
        }
        float lm = 0.0f, am = 0.0f;
        hhead(s.head, H, hp, hp + H * O, &b.h[(size_t)m * H], yl.data(), yvl.data(), wl.data(), &lm, &am, false,
              nullptr, nullptr, nullptr);
        ls[m] += lm; as[m] += am;
      }
    }
    for (int m = 0; m < nm; m++) {
      loss[m0 + m] = (float)(ls[m] / Nv);
      acc[m0 + m] = (float)(as[m] / Nv);
    }
  }
}

extern "C" {

// The codes this library was built with, entry i as (group, name, code); -1 past the end.
// latchlab.engine.native reads them back to check its tables against the C++ names.
static const struct { const char *group, *name; int code; } CODES[] = {
    {"kind", "srnn", SRNN}, {"kind", "lstm", LSTM}, {"kind", "lstm_nofg", LSTM_NOFG},
    {"kind", "gru", GRU}, {"kind", "janet", JANET},
    {"rsig", "sigmoid", SIGMOID}, {"rsig", "hard_sigmoid", HARD}, {"rsig", "hard_sigmoid_keras3", HARD3},
    {"head", "dense2", DENSE2}, {"head", "dense1", DENSE1}, {"head", "linear", LINEAR}, {"head", "seq_softmax", SEQ},
    {"optimizer", "adam", ADAM}, {"optimizer", "sgd", SGD}, {"optimizer", "rmsprop", RMSPROP},
};

int latch_code(int i, const char **group, const char **name) {
  if (i < 0 || i >= (int)(sizeof(CODES) / sizeof(CODES[0]))) return -1;
  *group = CODES[i].group;
  *name = CODES[i].name;
  return CODES[i].code;
}

// What this build chose for its instruction set: floats per vector, members per block.
int latch_lanes(void) { return L; }
int latch_per_block(void) { return LATCH_PER_BLOCK; }
const char *latch_isa(void) { return LATCH_ISA; }
// Validation rows a member's pass takes in the one-unit path.
int latch_eval_rows(void) { return L * LATCH_EVAL_VECTORS; }

// Rows ex[0, n) of x (row e's step j at x[e xstride + j]) in batches of B (n and B multiples
// of L), time-major: out[(s Tf + j) B + k] = x[ex[s B + k] xstride + j] for batch s < n / B,
// step j < Tf and row k < B: the validation rows of members that share them (a seed's, at
// every length), for ``latch_evaluate``'s brow. -1 if n or B is not a multiple of L.
int latch_batch_rows(const float *x, int64_t xstride, int Tf, const int32_t *ex, int n, int B, float *out) {
  if (n % L || B % L || B <= 0 || Tf < 0) return -1;
  for (int i = 0; i < n; i += L) {  // L rows at a time
    const int s = i / B, k = i % B;
    const float *src[L];
    for (int l = 0; l < L; l++) src[l] = x + (int64_t)ex[i + l] * xstride;
    time_major<false>(src, 0, Tf, out + (size_t)s * Tf * B + k, B / L);
  }
  return 0;
}

// One training epoch for members [0, R) in blocks of `per_block` members; threads share
// the work through `next_block` (each call takes blocks until none are left).
//   kind, rsig, reset_after: the library's variant (else -1); H units, F input channels;
//   head, opt: codes of CODES, O the head's outputs (dense2: 2; dense1, linear: 1;
//   seq_softmax: its classes);
//   member r's channel f starts at xrow[f R + r] (see Inputs), valid from step t0[r] to T - 1;
//   pos, weight (D, S, B): each step's positions in a member's training examples train
//   (R, Ntr), and their weights, member r's in row prow[r] (R; members of one seed share
//   theirs); the examples' targets (Targets, N examples a member): y
//   (R, N) labels (dense2, dense1), yv (R, N) values (linear), or ysteps (R, N, T) categories
//   per step (seq_softmax); the others may be null; -2 if a position or example is out of range;
//   params (R, P), mu/nu (R, P), count (R): updated in place; lr (R);
//   loss, acc (R): the epoch's example-weighted means (each batch before its update).
int latch_train_epoch(int kind, int rsig, int reset_after, int H, int F, int head, int O, int opt, int R, int T,
                      const float *const *xrow, const int64_t *xstride, const int32_t *t0, int S, int B,
                      const int32_t *pos, int Ntr, const int32_t *train, const int32_t *y_all, const float *yv_all,
                      int N, const int32_t *ysteps, const float *weight, const int32_t *prow, float *params, float *mu,
                      float *nu, int32_t *count, const float *lr, float *loss, float *acc, int per_block,
                      int *next_block) {
  const Shape s = shape(kind, rsig, reset_after, head, opt, H, F, O);
  const Targets tg{y_all, yv_all, ysteps, N};
  if (!valid(s) || !targets_ok(s, tg)) return -1;
  FlushSubnormals flush;
  const int Pc = s.Pc;
  const Inputs in{xrow, xstride, t0};
  if (!one_unit(s)) {
    if (s.H == FIXED_H)
      return train_h<VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER, FIXED_H>(
          s, R, T, in, S, B, pos, Ntr, train, tg, weight, prow, params, mu, nu, count, lr, loss, acc, per_block,
          next_block);
    return train_h<VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER, 0>(
        s, R, T, in, S, B, pos, Ntr, train, tg, weight, prow, params, mu, nu, count, lr, loss, acc, per_block,
        next_block);
  }
  Block b;
  Corrections bc;
  Slots slots;
  std::vector<int32_t> ex;
  std::vector<float> grad, wsum, lsum, asum, wn;
  HeadRows hr;
  Blocks blocks(R, per_block, T, in.t0);
  int m0, nm;
  while (blocks.next(next_block, &m0, &nm)) {
    if (!slots.fill(pos, prow, train, Ntr, tg, m0, nm, S, B)) return -2;
    int nv = (nm * B + L - 1) / L;
    block_alloc(b, s, nv, T);
    lane_layout(b, m0, nm, B, t0);
    ex.assign((size_t)nv * L, 0);
    grad.assign((size_t)nm * s.P, 0.0f);
    lsum.assign(nm, 0.0f); asum.assign(nm, 0.0f); wsum.assign(nm, 0.0f); wn.assign(nm, 0.0f);
    hr.size(nv * L);
    for (int st = 0; st < S; st++) {
      refresh_params(b, s, params, m0, nm, B);
      for (int m = 0; m < nm; m++) memcpy(&ex[(size_t)m * B], &slots.ex[slots.at(m, st)], sizeof(int32_t) * B);
      gather(b, in, T, m0, nm, B, ex.data());
      dispatch_forward(s, b, T, true);
      memset(grad.data(), 0, sizeof(float) * grad.size());
      for (int m = 0; m < nm; m++) {  // each row's label, and its weight over its member's
        const float *w = weight + ((size_t)prow[m0 + m] * S + st) * B;
        float n = 0.0f;
        for (int k = 0; k < B; k++) n += w[k];
        const float inv = 1.0f / (n > 1e-12f ? n : 1e-12f);
        wn[m] = n;
        memcpy(&hr.y[(size_t)m * B], &slots.label[slots.at(m, st)], sizeof(int32_t) * B);
        for (int k = 0; k < B; k++) hr.w[(size_t)m * B + k] = w[k] * inv;
      }
      unit_head(s, b, hr.y.data(), hr.w.data(), hr.loss.data(), hr.hit.data(), hr.d0.data(), hr.d1.data(), true);
      for (int m = 0; m < nm; m++) {  // each member's sums over its rows, in order
        const float *w = weight + ((size_t)prow[m0 + m] * S + st) * B;
        const float n = wn[m], inv = 1.0f / (n > 1e-12f ? n : 1e-12f);
        float lm = 0.0f, am = 0.0f, *g = &grad[(size_t)m * s.P + Pc];
        // the head's gradients summed in registers (in memory, each row's sums waited on the
        // last row's stores), in the same order from the same zeros
        float g0 = g[0], g1 = g[1], g2 = head == DENSE2 ? g[2] : 0.0f, g3 = head == DENSE2 ? g[3] : 0.0f;
        for (int k = 0; k < B; k++) {
          const int row = m * B + k;
          const float h = b.h[row / L][row % L], d0 = hr.d0[row], d1 = hr.d1[row];
          lm += hr.loss[row] * w[k]; am += hr.hit[row] * w[k];
          if (head == DENSE2) {
            g0 += d0 * h; g1 += d1 * h; g2 += d0; g3 += d1;
          } else {
            g0 += d0 * h; g1 += d0;
          }
        }
        g[0] = g0; g[1] = g1;
        if (head == DENSE2) { g[2] = g2; g[3] = g3; }
        lsum[m] += lm * inv * n; asum[m] += am * inv * n; wsum[m] += n;
      }
      for (int row = nm * B; row < nv * L; row++) b.dh[row / L][row % L] = 0.0f;
      dispatch_backward(s, b, T);
      if (B % L == 0) {
        for (int v = 0; v < nv; v++) {
          float *g = &grad[(size_t)(v * L / B) * s.P];
          for (int k = 0; k < Pc; k++) g[k] += hsum(b.acc[(size_t)k * nv + v]);
        }
      } else {
        for (int row = 0; row < nm * B; row++) {
          float *g = &grad[(size_t)(row / B) * s.P];
          for (int k = 0; k < Pc; k++) g[k] += b.acc[(size_t)k * nv + row / L][row % L];
        }
      }
      update_members(s, m0, nm, params, mu, nu, count, grad.data(), lr, bc);
    }
    epoch_means(m0, nm, lsum.data(), asum.data(), wsum.data(), loss, acc);
  }
  return 0;
}

// Validation: every member's mean loss and metric over its examples val (R, Nv), their
// targets (as latch_train_epoch's) labels yv or values yvv (R, Nv), or categories ysteps (R,
// N, T) read by example; brow, bsteps (R, or null): member r's validation rows as
// ``latch_batch_rows`` lays them out in batches of ``latch_eval_rows()`` (the last padded
// with its first example; null: gathered from xrow), bsteps[r] steps a row; the one-unit
// cells read them (the same numbers either way).
int latch_evaluate(int kind, int rsig, int reset_after, int H, int F, int head, int O, int R, int T,
                   const float *const *xrow, const int64_t *xstride, const int32_t *t0, int Nv, const int32_t *val,
                   const int32_t *yv, const float *yvv, int N, const int32_t *ysteps, const float *params, float *loss,
                   float *acc, int per_block, int *next_block, const float *const *brow, const int32_t *bsteps) {
  const Shape s = shape(kind, rsig, reset_after, head, ADAM, H, F, O);
  const Targets tg{yv, yvv, ysteps, N};
  if (!valid(s) || !targets_ok(s, tg)) return -1;
  FlushSubnormals flush;
  const int Bv = L * LATCH_EVAL_VECTORS;  // validation rows per member and pass
  const Inputs in{xrow, xstride, t0};
  if (!one_unit(s)) {
    if (s.H == FIXED_H)
      evaluate_h<VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER, FIXED_H>(s, R, T, in, Nv, val, tg, params, loss, acc,
                                                                           per_block, next_block);
    else
      evaluate_h<VARIANT_KIND, VARIANT_RSIG, VARIANT_RESET_AFTER, 0>(s, R, T, in, Nv, val, tg, params, loss, acc,
                                                                     per_block, next_block);
    return 0;
  }
  Block b;
  std::vector<int32_t> ex;
  HeadRows hr;  // weights 0: no gradients
  Blocks blocks(R, per_block, T, in.t0);
  int m0, nm;
  while (blocks.next(next_block, &m0, &nm)) {
    int nv = nm * LATCH_EVAL_VECTORS;
    block_alloc(b, s, nv, T);
    lane_layout(b, m0, nm, Bv, t0);
    refresh_params(b, s, params, m0, nm, Bv);
    ex.assign((size_t)nv * L, 0);
    hr.size(nv * L);
    std::vector<double> lsum(nm, 0.0), asum(nm, 0.0);
    const bool laid_out = batch_rows_cover(brow, bsteps, Bv, T, m0, nm, t0);
    for (int start = 0; start < Nv; start += Bv) {
      if (laid_out) {
        gather_batch(b, brow, bsteps, start / Bv, m0, Bv);
      } else {
        for (int m = 0; m < nm; m++)
          for (int k = 0; k < Bv; k++) ex[m * Bv + k] = val[(size_t)(m0 + m) * Nv + (start + k < Nv ? start + k : 0)];
        gather(b, in, T, m0, nm, Bv, ex.data());
      }
      dispatch_forward(s, b, T, false, laid_out);
      for (int m = 0; m < nm; m++)  // the pass's labels (0 past the member's last row)
        for (int k = 0; k < Bv; k++) hr.y[m * Bv + k] = start + k < Nv ? yv[(size_t)(m0 + m) * Nv + start + k] : 0;
      unit_head(s, b, hr.y.data(), hr.w.data(), hr.loss.data(), hr.hit.data(), hr.d0.data(), hr.d1.data(), false);
      for (int m = 0; m < nm; m++)
        for (int k = 0; k < Bv && start + k < Nv; k++) {
          lsum[m] += hr.loss[m * Bv + k];
          asum[m] += hr.hit[m * Bv + k];
        }
    }
    for (int m = 0; m < nm; m++) {
      loss[m0 + m] = (float)(lsum[m] / Nv);
      acc[m0 + m] = (float)(asum[m] / Nv);
    }
  }
  return 0;
}

}  // extern "C"
