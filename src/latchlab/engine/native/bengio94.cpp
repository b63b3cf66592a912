// Bengio, Simard & Frasconi (1994)'s latch, trained natively (latchlab/experiments/bengio1994.py
// holds the model, its JAX trainer and the experiment). One tanh neuron per member:
//
//   a_t = w tanh(a_{t-1}) + u_t,   a_0 = 0,   x_T = tanh(a_T),
//   u_t = h[c][t - 1] for t <= L (trainable, per class c), the member's noise after;
//   C / P = 1/(2P) sum_p (x_T^p - d^p)^2,   d = +target (class 1), -target (class 0).
//
// Full-batch steps of the optimiser (SGD, Adam, RMSprop as optax defines them,
// latchlab/engine/train.py's ``direction``) on the gradient of C / P; before the first step and
// every ``check_every`` steps a member is tested on its test set: it has converged when every
// test output has its target's sign and 1/2 mean (x_T - d)^2 < threshold, and then stops.
//
// Why here and not in XLA: the recurrence is one tanh and one multiply-add a step; XLA:CPU
// runs it as a while loop over (members x sequences) rows at ~10 ns a row-step for the
// training step (reverse mode) and streams every test set through memory at each check.
// Here:
// * a thread trains LANES members at once, one per lane of a SIMD vector, so a training step
//   over the n_train sequences is n_train independent vector recurrences (no lane idles
//   while any member is left: a lane whose member finishes takes the next one);
// * a check runs one member's test sequences LANES to a vector, a block of vectors at a
//   time, and stops as soon as the member cannot pass (a wrong sign, or a partial loss sum
//   already at the threshold: the sum of non-negative terms only grows), which decides the
//   same as the whole pass; the final metrics are whole passes. Before it, the first vector
//   of every lane's member runs at once (``screen``: a block of members, not of one
//   member's sequences), which settles most checks in training without the BLOCK vectors
//   a check ran before it could stop (a third of the kernel's time went to checks; the
//   full-scale trials took 0.27 s, now 0.245 s, the same bits);
// * the first L steps are the same for every sequence of a class: computed once per class
//   (forward, and backward on the class's summed gradient, which is linear in it).
//
// Layout: member m's noise at steps L+1..T is scale[m] times its unit draws, time-major:
// x[m][t * n + i] for step L + 1 + t of sequence i (n sequences), each product rounded to float
// before its use (``scaled``); sequence i has class i % 2 (so lane l of a vector of LANES
// consecutive sequences from an even one has class l % 2). Members with one seed share its
// draws (x[m] the same array, read to each member's length): the scaled copies a member,
// written by numpy before the call, took 0.025 s of the trials' 0.18 s and 270 MB.
//
// Built by latchlab/engine/native/__init__.py (``bengio94``), which passes the optimiser codes
// of its table (-DLATCH_OPTIMIZER_ADAM=0, ...).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <atomic>
#include <thread>
#include <vector>

#if !defined(LATCH_OPTIMIZER_ADAM) || !defined(LATCH_OPTIMIZER_SGD) || !defined(LATCH_OPTIMIZER_RMSPROP)
#error "build through latchlab.engine.native: the optimiser codes come from its table (-DLATCH_OPTIMIZER_...)"
#endif

// the tanh inlined wherever it is called: GCC 12 left it a call in the checks' loops once
// they also scaled the noise (the AVX2 trials 8 % slower)
#define LATCH_TANH_INLINE inline __attribute__((always_inline))
#include "simd.h"

typedef float vf_u __attribute__((vector_size(LATCH_VBYTES), aligned(4)));  // an unaligned load
enum Opt { ADAM = LATCH_OPTIMIZER_ADAM, SGD = LATCH_OPTIMIZER_SGD, RMSPROP = LATCH_OPTIMIZER_RMSPROP };
enum { BLOCK = 8 };  // vectors of sequences in flight: enough independent tanh to hide latency
// a training chunk's (forward and back): 20 training sequences as 10 and 10 took 0.94-0.95 of
// the time of 7, 7 and 6 (AVX-512 and AVX2 builds); all 20 in one chunk, 1.04 of 10 and 10
enum { TBLOCK = 10 };

static inline vf load(const float *p) { return *(const vf_u *)p; }

// u s rounded to float before its use: the multiply-add that takes it (W tanh(a) + u s) may
// not fuse the product (-ffp-contract=fast), so the noise is the same float as the product
// numpy, or prng_b94_noise, rounds and stores. ``pin`` hides it where a vector is a
// register; elsewhere a trip through memory does.
static inline vf scaled(vf u, vf s) {
  vf x = u * s;
#if LATCH_PINS
  pin(x);
#else
  volatile vf kept = x;
  x = kept;
#endif
  return x;
}

// XLA:CPU's float32 tanh as jaxlib 0.10.2's emitter clamps it, at +-7.99881172: jnp.tanh's
// values bit for bit (2.3 million inputs). kernels.cpp keeps Eigen's +-7.90531: the same up
// to there.
static constexpr float CLAMP = 7.99881172180175781f;
static inline vf vtanh(vf a) { return vtanh_clamped(a, CLAMP); }

static inline vf vsqrt(vf a) {
  vf out = a;
  for (int l = 0; l < LANES; l++) out[l] = sqrtf(a[l]);
  return out;
}

static inline float hsum(vf a) {  // in lane order (fixed: a partial sum never exceeds the whole)
  float s = 0.0f;
  for (int l = 0; l < LANES; l++) s += a[l];
  return s;
}

// What every member of a call shares, and the call's arrays (member m at offset m of each).
struct Problem {
  int R, T, L, n_train, n_test, opt, budget, check_every;
  float lr, target, threshold;
  const float *const *x_train, *const *x_test;  // (R) unit draws: (>= T - L, n_train), (>= T - L, n_test)
  const float *scale;                           // (R) each member's noise scale
  const float *w0, *h0;                         // (R,), (R, 2, L) initial parameters
  float *w, *h;                                 // final parameters, as w0 and h0
  int32_t *converged, *epochs, *test_errors;
  float *train_loss, *test_loss;
  std::vector<float> a;       // Adam's step factor sqrt(1 - b2^n) / (1 - b1^n) at step n = 1..budget
  std::atomic<int> next{0};   // the next member a lane takes
  int steps() const { return T - L; }
  const float *train(int m) const { return x_train[m]; }
  const float *test(int m) const { return x_test[m]; }
};

static vf lane_class() {  // 1.0 in odd lanes (class 1), 0.0 in even ones
  vf c = {};
  for (int l = 0; l < LANES; l++) c[l] = (float)(l % 2);
  return c;
}

// each lane's target: +target in odd lanes (class 1), -target in even ones
static vf lane_targets(const Problem &p) { return lane_class() * (2.0f * p.target) - p.target; }

// ----------------------------------------------------------------------------- a check

struct Metrics {
  float loss = 0;  // 1/2 mean (x_T - d)^2
  int errors = 0;  // outputs whose sign is not their target's
  bool complete = false;  // every sequence seen (else the check stopped early: not converged)
  bool converged = false;
};

// x_T of K vectors of sequences from their state a_L (A) through the noise steps at x (rows of
// ``stride`` floats, scaled by S).
template <int K>
static inline void run_vectors(const float *x, int steps, int stride, vf S, vf W, vf A, vf *out) {
  vf a[K];
  for (int j = 0; j < K; j++) a[j] = A;
  for (int t = 0; t < steps; t++) {
    const float *xt = x + (size_t)t * stride;
    for (int j = 0; j < K; j++) a[j] = W * vtanh(a[j]) + scaled(load(xt + j * LANES), S);
  }
  for (int j = 0; j < K; j++) out[j] = vtanh(a[j]);
}

static void run_any(int k, const float *x, int steps, int stride, vf S, vf W, vf A, vf *out) {
  switch (k) {
#define B94_CASE(K) \
  case K: return run_vectors<K>(x, steps, stride, S, W, A, out);
    B94_CASE(1) B94_CASE(2) B94_CASE(3) B94_CASE(4) B94_CASE(5) B94_CASE(6) B94_CASE(7) B94_CASE(8)
#undef B94_CASE
  }
}

// The last ``n < LANES`` sequences of a row, in the first lanes of one vector (the rest 0):
// read one by one, as a whole vector would read past the member's data.
static void run_tail(const float *x, int n, int steps, int stride, vf S, vf W, vf A, vf *out) {
  vf a = A;
  for (int t = 0; t < steps; t++) {
    vf u = {};
    for (int l = 0; l < n; l++) u[l] = x[(size_t)t * stride + l];
    a = W * vtanh(a) + scaled(u, S);
  }
  *out = vtanh(a);
}

// a_L of each lane's class (lane l: class l % 2) from w and h (2, L): the first L steps.
static vf class_states(int L, float w, const float *h) {
  vf W = splat(w), a = splat(0.0f);
  for (int t = 0; t < L; t++) {
    vf u = {};
    for (int l = 0; l < LANES; l++) u[l] = h[(l % 2) * L + t];
    a = W * vtanh(a) + u;
  }
  return a;
}

// A running tally of outputs y against their targets: per lane, the sum of squared errors
// and (negated) the count of wrong signs.
struct Tally {
  vf S = splat(0.0f);
  vi E = vi{} + 0;
  void add(vf y, vf odd, vf D, int valid_lanes) {
    vi lane = {};
    for (int l = 0; l < LANES; l++) lane[l] = l;
    vi valid = lane < valid_lanes;
    vf e = y - D;
    S += valid ? e * e : splat(0.0f);
    vi right = odd > 0.5f ? (y > 0.0f) : (y < 0.0f);  // false for 0 and NaN, as sign() !=
    E -= valid & ~right;                              // a true mask is -1
  }
  int errors() const {
    int e = 0;
    for (int l = 0; l < LANES; l++) e += E[l];
    return e;
  }
  float loss(int n) const { return 0.5f * (hsum(S) / (float)n); }
  // whether no further sequences can make a set of n pass: a wrong sign, or a loss already
  // at the threshold (a partial sum of non-negative terms only grows)
  bool cannot_pass(int n, float threshold) const { return errors() > 0 || loss(n) >= threshold; }
};

// The metrics of parameters (w, h) on the n sequences of x (T - L rows of n, scaled by s).
// With ``stop``, returns as soon as they cannot pass (``Tally::cannot_pass``): ``complete``
// false, not converged.
static Metrics evaluate(const Problem &p, const float *x, float s, int n, float w, const float *h, bool stop) {
  const vf S = splat(s), W = splat(w), A = class_states(p.L, w, h), odd = lane_class();
  const vf D = lane_targets(p);
  Tally tally;
  Metrics m;
  const int full = n / LANES, tail = n % LANES;
  for (int v0 = 0; v0 < full; v0 += BLOCK) {
    const int k = full - v0 < BLOCK ? full - v0 : BLOCK;
    vf y[BLOCK];
    run_any(k, x + (size_t)v0 * LANES, p.steps(), n, S, W, A, y);
    for (int j = 0; j < k; j++) tally.add(y[j], odd, D, LANES);
    if (stop && (v0 + k < full || tail) && tally.cannot_pass(n, p.threshold)) return m;
  }
  if (tail) {
    vf y;
    run_tail(x + (size_t)full * LANES, tail, p.steps(), n, S, W, A, &y);
    tally.add(y, odd, D, tail);
  }
  m.errors = tally.errors();
  m.loss = tally.loss(n);
  m.complete = true;
  m.converged = m.errors == 0 && m.loss < p.threshold;
  return m;
}

// Which of K members (parameters w[j], h[j], test sets x[j] scaled by s[j]) cannot pass a
// check on the first LANES sequences alone (n >= LANES): the members' first vectors run
// together, K independent recurrences where evaluate's first block is one member's. ``evaluate`` with
// ``stop`` decides the same for them (the tally after a block includes this vector's), and
// most members in training fail here.
template <int K>
static void screen(const Problem &p, const float *const *x, const float *s, const float *w, const float *const *h,
                   bool *out) {
  const vf odd = lane_class(), D = lane_targets(p);
  vf S[K], W[K], a[K];
  for (int j = 0; j < K; j++) S[j] = splat(s[j]), W[j] = splat(w[j]), a[j] = class_states(p.L, w[j], h[j]);
  for (int t = 0; t < p.steps(); t++) {
    vf y[K];
    for (int j = 0; j < K; j++) y[j] = a[j];
    vtanh_clamped_n<K>(y, CLAMP);
    for (int j = 0; j < K; j++) a[j] = W[j] * y[j] + scaled(load(x[j] + (size_t)t * p.n_test), S[j]);
  }
  vtanh_clamped_n<K>(a, CLAMP);
  for (int j = 0; j < K; j++) {
    Tally tally;
    tally.add(a[j], odd, D, LANES);
    out[j] = tally.cannot_pass(p.n_test, p.threshold);
  }
}

static void screen_any(int k, const Problem &p, const float *const *x, const float *s, const float *w,
                       const float *const *h, bool *out) {
  switch (k) {
#define B94_CASE(K) \
  case K: return screen<K>(p, x, s, w, h, out);
    B94_CASE(1) B94_CASE(2) B94_CASE(3) B94_CASE(4) B94_CASE(5) B94_CASE(6) B94_CASE(7) B94_CASE(8)
#undef B94_CASE
  }
}

// ----------------------------------------------------------------------------- training

// A thread's LANES members, one per lane (member -1: an idle lane, all zeros).
struct Lanes {
  int member[LANES], epoch[LANES];
  vf W, mW, vW;                   // w and its optimiser moments
  std::vector<vf> H, mH, vH, gH;  // (2 L): h[c][t] at c L + t
  std::vector<vf> X;              // (steps, n_train): the members' training noise
  std::vector<vf> Y, yc;          // (steps, TBLOCK) tanh(a) of a chunk; (2 L) of the classes
};

// One chunk of K training sequences [i0, i0 + K) forward and backward from the classes'
// a_L (aL): adds dC/dw (over the noise steps) to gW and dC/da_L to its class's D.
//   forward:  y_t = tanh(a_{L+t}), a_{L+t+1} = W y_t + x_t;
//   backward: delta_T = (x_T - d) / P (1 - x_T^2); gW += delta_{t+1} y_t;
//             delta_t = delta_{t+1} W (1 - y_t^2).
template <int K>
static void chunk(const Problem &p, Lanes &b, int i0, const vf *aL, vf *gW, vf *D) {
  const int steps = p.steps(), n = p.n_train;
  const float invP = 1.0f / (float)n;
  const vf W = b.W;
  vf a[K], g[K], dl[K];
  for (int j = 0; j < K; j++) a[j] = aL[(i0 + j) % 2], g[j] = splat(0.0f);
  for (int t = 0; t < steps; t++) {
    const vf *xt = &b.X[(size_t)t * n + i0];
    vf *yt = &b.Y[(size_t)t * TBLOCK];
    for (int j = 0; j < K; j++) {
      vf y = vtanh(a[j]);
      yt[j] = y;
      a[j] = W * y + xt[j];
    }
  }
  for (int j = 0; j < K; j++) {
    vf xT = vtanh(a[j]);
    float d = (i0 + j) % 2 ? p.target : -p.target;
    dl[j] = (xT - d) * invP * (1.0f - xT * xT);
  }
  for (int t = steps - 1; t >= 0; t--) {
    const vf *yt = &b.Y[(size_t)t * TBLOCK];
    for (int j = 0; j < K; j++) {
      g[j] += dl[j] * yt[j];
      dl[j] = dl[j] * W * (1.0f - yt[j] * yt[j]);
    }
  }
  for (int j = 0; j < K; j++) *gW += g[j], D[(i0 + j) % 2] += dl[j];
}

static void chunk_any(int k, const Problem &p, Lanes &b, int i0, const vf *aL, vf *gW, vf *D) {
  switch (k) {
#define B94_CASE(K) \
  case K: return chunk<K>(p, b, i0, aL, gW, D);
    B94_CASE(1) B94_CASE(2) B94_CASE(3) B94_CASE(4) B94_CASE(5) B94_CASE(6) B94_CASE(7) B94_CASE(8)
    B94_CASE(9) B94_CASE(10)
#undef B94_CASE
  }
}

// p <- p - lr u, u the optimiser's direction from the gradient g (its moments m, v).
static inline void optimise(const Problem &p, vf &x, vf &m, vf &v, vf g, vf a) {
  if (p.opt == SGD) {
    x -= p.lr * g;
  } else if (p.opt == RMSPROP) {  // optax.scale_by_rms(decay=0.9, eps=1e-7, initial_scale=0)
    v = 0.1f * (g * g) + 0.9f * v;
    x -= p.lr * (g * (1.0f / vsqrt(v + 1e-7f)));
  } else {  // Keras' Adam (train.scale_by_keras_adam: b1 0.9, b2 0.999, eps 1e-7 before the correction)
    m = m + (g - m) * 0.1f;
    v = v + (g * g - v) * (float)(1.0 - 0.999);
    x -= p.lr * ((m * a) / (vsqrt(v) + 1e-7f));
  }
}

// One full-batch step of every lane's member.
static void step(const Problem &p, Lanes &b) {
  const int L = p.L, n = p.n_train;
  // the classes' first L steps: yc = tanh(a_t), t = 0..L-1, and a_L
  vf aL[2];
  for (int c = 0; c < 2; c++) {
    vf a = splat(0.0f);
    for (int t = 0; t < L; t++) {
      vf y = vtanh(a);
      b.yc[c * L + t] = y;
      a = b.W * y + b.H[c * L + t];
    }
    aL[c] = a;
  }
  vf gW = splat(0.0f), D[2] = {splat(0.0f), splat(0.0f)};
  const int chunks = (n + TBLOCK - 1) / TBLOCK;  // balanced: 26 sequences as 8, 9, 9
  for (int c = 0, i0 = 0; c < chunks; c++) {
    const int k = (n - i0) / (chunks - c);
    chunk_any(k, p, b, i0, aL, &gW, D);
    i0 += k;
  }
  // back through the first L steps, per class: dC/dh[c][t] = D_c at step t + 1
  for (int c = 0; c < 2; c++) {
    for (int t = L - 1; t >= 0; t--) {
      vf y = b.yc[c * L + t];
      b.gH[c * L + t] = D[c];
      gW += D[c] * y;
      D[c] = D[c] * b.W * (1.0f - y * y);
    }
  }
  vf a = splat(1.0f);
  if (p.opt == ADAM) {
    for (int l = 0; l < LANES; l++) {
      int e = b.member[l] >= 0 ? b.epoch[l] : 0;  // this step is number e + 1
      a[l] = p.a[e];
    }
  }
  optimise(p, b.W, b.mW, b.vW, gW, a);
  for (int k = 0; k < 2 * L; k++) optimise(p, b.H[k], b.mH[k], b.vH[k], b.gH[k], a);
}

// Member m's results from its final parameters (w, h); ``check``: the metrics of its last
// check, when complete (else its test set is run again, whole).
static void finish(Problem &p, int m, bool converged, int epochs, float w, const float *h, Metrics check) {
  const int L = p.L;
  p.w[m] = w;
  for (int k = 0; k < 2 * L; k++) p.h[(size_t)m * 2 * L + k] = h[k];
  if (!check.complete) check = evaluate(p, p.test(m), p.scale[m], p.n_test, w, h, false);
  Metrics tr = evaluate(p, p.train(m), p.scale[m], p.n_train, w, h, false);
  p.converged[m] = converged;
  p.epochs[m] = epochs;
  p.train_loss[m] = tr.loss;
  p.test_loss[m] = check.loss;
  p.test_errors[m] = check.errors;
}

static void set_lane(vf &v, int l, float x) { v[l] = x; }

// Lane l takes the next member that does not pass its check before training (those finish
// at epoch 0), or goes idle.
static void refill(Problem &p, Lanes &b, int l) {
  const int L = p.L, steps = p.steps(), n = p.n_train;
  int m;
  while ((m = p.next.fetch_add(1, std::memory_order_relaxed)) < p.R) {
    const float w = p.w0[m], *h = p.h0 + (size_t)m * 2 * L;
    Metrics c = evaluate(p, p.test(m), p.scale[m], p.n_test, w, h, true);
    if (!c.converged && p.budget > 0) break;
    finish(p, m, c.converged, 0, w, h, c);
  }
  const bool idle = m >= p.R;
  const float *x = idle ? nullptr : p.train(m);
  const float s = idle ? 0.0f : p.scale[m];
  b.member[l] = idle ? -1 : m;
  b.epoch[l] = 0;
  set_lane(b.W, l, idle ? 0.0f : p.w0[m]);
  set_lane(b.mW, l, 0.0f), set_lane(b.vW, l, 0.0f);
  for (int k = 0; k < 2 * L; k++) {
    set_lane(b.H[k], l, idle ? 0.0f : p.h0[(size_t)m * 2 * L + k]);
    set_lane(b.mH[k], l, 0.0f), set_lane(b.vH[k], l, 0.0f);
  }
  for (int t = 0; t < steps; t++)
    for (int i = 0; i < n; i++) set_lane(b.X[(size_t)t * n + i], l, idle ? 0.0f : x[(size_t)t * n + i] * s);
}

static void worker(Problem *pp) {
  FlushSubnormals ftz;
  Problem &p = *pp;
  const int L = p.L, steps = p.steps();
  Lanes b;
  b.W = b.mW = b.vW = splat(0.0f);
  b.H.assign(2 * L, splat(0.0f)), b.mH = b.vH = b.gH = b.yc = b.H;
  b.X.assign((size_t)steps * p.n_train, splat(0.0f));
  b.Y.assign((size_t)steps * TBLOCK, splat(0.0f));
  std::vector<float> h(LANES * 2 * L);  // the lanes' h, read out of the vectors
  for (int l = 0; l < LANES; l++) refill(p, b, l);
  for (;;) {
    int lanes[LANES], k = 0;  // the lanes with a member
    for (int l = 0; l < LANES; l++)
      if (b.member[l] >= 0) lanes[k++] = l;
    if (!k) return;
    for (int e = 0; e < p.check_every; e++) {
      step(p, b);
      for (int l = 0; l < LANES; l++) b.epoch[l]++;
    }
    // the check: the members' first test vectors together, then whole checks of the rest
    const float *x[LANES], *hp[LANES];
    float s[LANES], w[LANES];
    bool fails[LANES] = {};
    for (int j = 0; j < k; j++) {
      const int l = lanes[j];
      for (int i = 0; i < 2 * L; i++) h[(size_t)l * 2 * L + i] = b.H[i][l];
      x[j] = p.test(b.member[l]), s[j] = p.scale[b.member[l]], w[j] = b.W[l], hp[j] = &h[(size_t)l * 2 * L];
    }
    if (p.n_test >= LANES)
      for (int j = 0; j < k; j += BLOCK)
        screen_any(k - j < BLOCK ? k - j : BLOCK, p, x + j, s + j, w + j, hp + j, fails + j);
    for (int j = 0; j < k; j++) {
      const int l = lanes[j], m = b.member[l];
      const Metrics c = fails[j] ? Metrics{} : evaluate(p, x[j], s[j], p.n_test, w[j], hp[j], true);
      if (c.converged || b.epoch[l] >= p.budget) {
        finish(p, m, c.converged, c.converged ? b.epoch[l] : p.budget, w[j], hp[j], c);
        refill(p, b, l);
      }
    }
  }
}

extern "C" {

// Train members 0..R-1 (see the top of this file) on ``threads`` threads, member m's noise
// scale[m] times its unit draws x_train[m] and x_test[m] (arrays of at least T - L rows of
// n_train and n_test, time-major; members may share them); each member's
// results go to its entries of w, h, converged, epochs (the check at which it converged, else
// budget), train_loss, test_loss and test_errors (of its final parameters). Returns 0, or a
// negative code for arguments it cannot take.
int b94_train(int R, int T, int L, int n_train, int n_test, const float *const *x_train, const float *const *x_test,
              const float *scale, const float *w0, const float *h0, int opt, float lr, float target, float threshold,
              int budget, int check_every, int threads, float *w, float *h, int32_t *converged, int32_t *epochs,
              float *train_loss, float *test_loss, int32_t *test_errors) {
  if (R < 0 || L < 1 || T <= L || n_train < 2 || n_train % 2 || n_test < 1) return -1;
  if (opt != ADAM && opt != SGD && opt != RMSPROP) return -3;
  if (budget < 0 || check_every < 1 || budget % check_every || threads < 1) return -4;
  Problem p;
  p.R = R, p.T = T, p.L = L, p.n_train = n_train, p.n_test = n_test, p.opt = opt, p.budget = budget;
  p.check_every = check_every;
  p.lr = lr, p.target = target, p.threshold = threshold;
  p.x_train = x_train, p.x_test = x_test, p.scale = scale, p.w0 = w0, p.h0 = h0, p.w = w, p.h = h;
  p.converged = converged, p.epochs = epochs, p.test_errors = test_errors;
  p.train_loss = train_loss, p.test_loss = test_loss;
  // Adam's step factor in float32, as train.scale_by_keras_adam computes it; entry e is step e + 1's
  p.a.resize(budget + 1);
  for (int e = 0; e <= budget; e++) p.a[e] = adam_factor(e + 1);
  const int n = threads < (R + LANES - 1) / LANES ? threads : (R + LANES - 1) / LANES;
  std::vector<std::thread> pool;
  for (int i = 1; i < n; i++) pool.emplace_back(worker, &p);
  if (R > 0) worker(&p);
  for (auto &t : pool) t.join();
  return 0;
}

int b94_lanes() { return LANES; }
}
