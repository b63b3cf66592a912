// Replays one call of latchlab's native kernels from a file, for tests/armtools.py: built
// for ARM (aarch64, NEON) and run under user-mode emulation, it lets the Python side train
// through the ARM build exactly as through its own. The source it replays is included
// whole: latchlab/engine/native/kernels.cpp, bengio94.cpp with -DREPLAY_BENGIO94, prng.cpp
// with -DREPLAY_PRNG or guessing.cpp with -DREPLAY_GUESSING.
//
//   arm_replay info              prints the build's instruction set, lanes and block
//   arm_replay IN OUT            runs the call in IN, writes its results to OUT
//
// IN: int32 entry (0 latch_train_epoch, 1 latch_evaluate, 2 b94_train, 3-13 prng_member_keys,
// prng_normal, prng_latch, prng_bit_relay, prng_split, prng_b94_members, prng_b94_noise,
// prng_normal_unfused, prng_log_uniform, prng_children, prng_bits; 14 guess_outputs, 15
// guess_solved, 16 prng_guesses); int32 n, then n
// int32 scalars (a float's bits where the entry takes a float); then the arrays, each an
// int64 byte count (-1 for a null pointer) and its bytes. The kernels' input rows come as one
// array of floats, with each row's offset into it (int64); b94_train's training and test noise
// as one array each, its members' rows one member after another.
// OUT: int32 return code, int32 the block counter after the call (b94_train: 0), then the
// arrays the call wrote (train: params, mu, nu, count, loss, acc; evaluate: loss, acc;
// b94_train: w, h, converged, epochs, train_loss, test_loss, test_errors; the prng and guess
// entries their outputs in their order).
#include <cstdio>
#include <cstring>
#include <vector>

#if defined(REPLAY_BENGIO94)
#include "bengio94.cpp"
#elif defined(REPLAY_PRNG)
#include "prng.cpp"
#elif defined(REPLAY_GUESSING)
#include "guessing.cpp"
#else
#include "kernels.cpp"
#endif

namespace {

struct Reader {
  FILE *f;
  int32_t i32() {
    int32_t v;
    if (fread(&v, 4, 1, f) != 1) throw 1;
    return v;
  }
  std::vector<char> array(bool *null) {
    int64_t n;
    if (fread(&n, 8, 1, f) != 1) throw 1;
    *null = n < 0;
    std::vector<char> a(n > 0 ? n : 0);
    if (n > 0 && fread(a.data(), 1, n, f) != (size_t)n) throw 1;
    return a;
  }
};

struct Array {
  std::vector<char> bytes;
  bool null = false;
  template <class T> T *ptr() { return null ? nullptr : reinterpret_cast<T *>(bytes.data()); }
};

void put(FILE *f, Array &a) { fwrite(a.bytes.data(), 1, a.bytes.size(), f); }

}  // namespace

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "info")) {
#if defined(REPLAY_BENGIO94)
    printf("%s %d 1\n", LATCH_ISA, b94_lanes());
#elif defined(REPLAY_PRNG)
    printf("%s %d 1\n", prng_hardware_fma() ? "fma" : "no-fma", 1);
#elif defined(REPLAY_GUESSING)
    printf("%s %d %d\n", guess_hardware_fma() ? guess_isa() : "no-fma", (int)LANES, (int)BLOCK);
#else
    printf("%s %d %d\n", latch_isa(), latch_lanes(), latch_per_block());
#endif
    return 0;
  }
  if (argc != 3) return 2;
  FILE *in = fopen(argv[1], "rb");
  if (!in) return 2;
  Reader r{in};
  int entry, n;
  std::vector<int> s;
  std::vector<Array> a;
  try {
    entry = r.i32();
    n = r.i32();
    for (int i = 0; i < n; i++) s.push_back(r.i32());
    for (;;) {
      int c = fgetc(in);
      if (c == EOF) break;
      ungetc(c, in);
      Array x;
      x.bytes = r.array(&x.null);
      a.push_back(std::move(x));
    }
  } catch (int) {
    return 3;
  }
  fclose(in);
  int rc, counter = 0;
  FILE *out = fopen(argv[2], "wb");
  if (!out) return 2;
#if defined(REPLAY_BENGIO94)
  if (entry == 2 && n == 12 && a.size() == 5) {
    // R, T, L, n_train, n_test, opt, lr, target, threshold, budget, check_every, threads;
    // x_train, x_test (each member's T - L rows, one member after another), scale, w0, h0
    int R = s[0], L = s[2], steps = s[1] - s[2];
    float f[3];
    memcpy(f, &s[6], sizeof f);
    std::vector<const float *> x_train(R), x_test(R);
    for (int m = 0; m < R; m++) {
      x_train[m] = a[0].ptr<float>() + (size_t)m * steps * s[3];
      x_test[m] = a[1].ptr<float>() + (size_t)m * steps * s[4];
    }
    Array w, h, converged, epochs, train_loss, test_loss, test_errors;
    for (Array *o : {&w, &converged, &epochs, &train_loss, &test_loss, &test_errors}) o->bytes.resize(4 * R);
    h.bytes.resize(4 * R * 2 * L);
    rc = b94_train(R, s[1], L, s[3], s[4], x_train.data(), x_test.data(), a[2].ptr<float>(), a[3].ptr<float>(),
                   a[4].ptr<float>(), s[5], f[0], f[1], f[2], s[9], s[10], s[11], w.ptr<float>(), h.ptr<float>(),
                   converged.ptr<int32_t>(), epochs.ptr<int32_t>(), train_loss.ptr<float>(), test_loss.ptr<float>(),
                   test_errors.ptr<int32_t>());
    fwrite(&rc, 4, 1, out);
    fwrite(&counter, 4, 1, out);
    for (Array *o : {&w, &h, &converged, &epochs, &train_loss, &test_loss, &test_errors}) put(out, *o);
  } else {
    return 3;
  }
#elif defined(REPLAY_PRNG)
  rc = 0;
  std::vector<Array> o;  // what the call writes
  auto sized = [&](std::initializer_list<size_t> bytes) {
    for (size_t b : bytes) o.emplace_back().bytes.resize(b);
  };
  if (entry == 3 && n == 1 && a.size() == 1) {  // R; seeds
    sized({24u * s[0]});
    prng_member_keys(s[0], a[0].ptr<uint32_t>(), o[0].ptr<uint32_t>());
  } else if (entry == 4 && n == 0 && a.size() == 1) {  // ; bits
    int64_t k = a[0].bytes.size() / 4;
    sized({4u * k});
    prng_normal(k, a[0].ptr<uint32_t>(), o[0].ptr<float>());
  } else if (entry == 5 && n == 5 && a.size() == 3) {  // R, n, T, rounds, threads; keys, noise, signal_len
    size_t rn = (size_t)s[0] * s[1];
    sized({4 * rn * s[2], 4 * rn});
    prng_latch(s[0], a[0].ptr<uint32_t>(), s[1], s[2], a[1].ptr<float>(), a[2].ptr<int32_t>(), s[3],
               o[0].ptr<float>(), o[1].ptr<int32_t>(), s[4]);
  } else if (entry == 6 && n == 5 && a.size() == 1) {  // R, n, T, rounds, threads; keys
    size_t rn = (size_t)s[0] * s[1];
    sized({4 * rn * s[2], 4 * rn, 4 * rn});
    prng_bit_relay(s[0], a[0].ptr<uint32_t>(), s[1], s[2], s[3], o[0].ptr<float>(), o[1].ptr<float>(),
                   o[2].ptr<int32_t>(), s[4]);
  } else if (entry == 7 && n == 6 && a.size() == 3) {  // R, n, n_val, n_pos, rounds, threads; keys, y, tail
    sized({4u * s[0] * (s[1] - s[2]), 4u * s[0] * s[2]});
    prng_split(s[0], a[0].ptr<uint32_t>(), a[1].ptr<int32_t>(), s[1], s[2], s[3], a[2].ptr<uint8_t>(), s[4],
               o[0].ptr<int32_t>(), o[1].ptr<int32_t>(), s[5]);
  } else if (entry == 8 && n == 3 && a.size() == 1) {  // R, L, h_init's bits; seeds
    float h_init;
    memcpy(&h_init, &s[2], 4);
    sized({8u * s[0] * s[1], 8u * s[0], 8u * s[0]});
    prng_b94_members(s[0], a[0].ptr<uint32_t>(), s[1], h_init, o[0].ptr<float>(), o[1].ptr<uint32_t>(),
                     o[2].ptr<uint32_t>());
  } else if (entry == 9 && n == 5 && a.size() == 2) {  // R, L, T, n, threads; keys, sd
    sized({4u * s[0] * (s[2] - s[1]) * s[3]});
    prng_b94_noise(s[0], a[0].ptr<uint32_t>(), s[1], s[2], s[3], a[1].ptr<float>(), o[0].ptr<float>(), s[4]);
  } else if (entry == 10 && n == 0 && a.size() == 1) {  // ; bits
    int64_t k = a[0].bytes.size() / 4;
    sized({4u * k});
    prng_normal_unfused(k, a[0].ptr<uint32_t>(), o[0].ptr<float>());
  } else if (entry == 11 && n == 3 && a.size() == 2) {  // R, n, lo's bits; keys, hi
    float lo;
    memcpy(&lo, &s[2], 4);
    sized({4u * s[0] * s[1]});
    prng_log_uniform(s[0], a[0].ptr<uint32_t>(), s[1], lo, a[1].ptr<float>(), o[0].ptr<float>());
  } else if (entry == 12 && n == 2 && a.size() == 1) {  // R, n; keys
    sized({8u * s[0] * s[1]});
    prng_children(s[0], a[0].ptr<uint32_t>(), s[1], o[0].ptr<uint32_t>());
  } else if (entry == 13 && n == 2 && a.size() == 1) {  // R, n; keys
    sized({4u * s[0] * s[1]});
    prng_bits(s[0], a[0].ptr<uint32_t>(), s[1], o[0].ptr<uint32_t>());
  } else if (entry == 16 && n == 7 && a.size() == 1) {  // R, first, count, P, lo's and hi's bits, threads; keys
    sized({4u * s[0] * s[2] * s[3]});
    float lo, hi;
    memcpy(&lo, &s[4], 4);
    memcpy(&hi, &s[5], 4);
    prng_guesses(s[0], a[0].ptr<uint32_t>(), s[1], s[2], s[3], lo, hi, o[0].ptr<float>(), s[6]);
  } else {
    return 3;
  }
  fwrite(&rc, 4, 1, out);
  fwrite(&counter, 4, 1, out);
  for (Array &x : o) put(out, x);
#elif defined(REPLAY_GUESSING)
  // net, flags, S, B, P, n, T, then guess_outputs' threads or guess_solved's lo, hi, tol (their
  // bits), sign, threads; theta, run, x, start, y
  if (a.size() != 5) return 3;
  const size_t SB = (size_t)s[2] * s[3];
  Array o;
  auto f = [&](int i) {
    float v;
    memcpy(&v, &s[i], 4);
    return v;
  };
  if (entry == 14 && n == 8) {
    o.bytes.resize(4 * SB * s[5]);
    rc = guess_outputs(s[0], s[1], s[2], s[3], s[4], a[0].ptr<float>(), a[1].ptr<int32_t>(), s[5], s[6],
                       a[2].ptr<float>(), a[3].ptr<int32_t>(), a[4].ptr<int32_t>(), s[7], o.ptr<float>());
  } else if (entry == 15 && n == 12) {
    o.bytes.resize(SB);
    rc = guess_solved(s[0], s[1], s[2], s[3], s[4], a[0].ptr<float>(), a[1].ptr<int32_t>(), s[5], s[6],
                      a[2].ptr<float>(), a[3].ptr<int32_t>(), a[4].ptr<int32_t>(), f(7), f(8), f(9), s[10], s[11],
                      o.ptr<uint8_t>());
  } else {
    return 3;
  }
  fwrite(&rc, 4, 1, out);
  fwrite(&counter, 4, 1, out);
  put(out, o);
#else
  // the rows' pointers: arrays 0 (the rows' floats) and 1 (each row's offset)
  std::vector<const float *> xrow;
  for (size_t i = 0; i < a[1].bytes.size() / 8; i++) xrow.push_back(a[0].ptr<float>() + a[1].ptr<int64_t>()[i]);
  if (entry == 0 && n == 16 && a.size() == 16) {
    // kind, rsig, reset_after, H, F, head, O, opt, R, T, S, B, Ntr, N, per_block, counter;
    // rows, offsets, xstride, t0, pos, train, y, yv, ysteps, weight, params, mu, nu, count, lr,
    // prow
    int R = s[8];
    counter = s[15];
    Array loss, acc;
    loss.bytes.resize(4 * R);
    acc.bytes.resize(4 * R);
    rc = latch_train_epoch(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], R, s[9], xrow.data(), a[2].ptr<int64_t>(),
                           a[3].ptr<int32_t>(), s[10], s[11], a[4].ptr<int32_t>(), s[12], a[5].ptr<int32_t>(),
                           a[6].ptr<int32_t>(), a[7].ptr<float>(), s[13], a[8].ptr<int32_t>(), a[9].ptr<float>(),
                           a[15].ptr<int32_t>(), a[10].ptr<float>(), a[11].ptr<float>(), a[12].ptr<float>(),
                           a[13].ptr<int32_t>(), a[14].ptr<float>(), loss.ptr<float>(), acc.ptr<float>(), s[14],
                           &counter);
    fwrite(&rc, 4, 1, out);
    fwrite(&counter, 4, 1, out);
    for (int k : {10, 11, 12, 13}) put(out, a[k]);
    put(out, loss);
    put(out, acc);
  } else if (entry == 1 && n == 13 && a.size() == 9) {
    // kind, rsig, reset_after, H, F, head, O, R, T, Nv, N, per_block, counter;
    // rows, offsets, xstride, t0, val, yv, yvv, ysteps, params
    int R = s[7];
    counter = s[12];
    Array loss, acc;
    loss.bytes.resize(4 * R);
    acc.bytes.resize(4 * R);
    rc = latch_evaluate(s[0], s[1], s[2], s[3], s[4], s[5], s[6], R, s[8], xrow.data(), a[2].ptr<int64_t>(),
                        a[3].ptr<int32_t>(), s[9], a[4].ptr<int32_t>(), a[5].ptr<int32_t>(), a[6].ptr<float>(), s[10],
                        a[7].ptr<int32_t>(), a[8].ptr<float>(), loss.ptr<float>(), acc.ptr<float>(), s[11], &counter,
                        nullptr, nullptr);
    fwrite(&rc, 4, 1, out);
    fwrite(&counter, 4, 1, out);
    put(out, loss);
    put(out, acc);
  } else {
    return 3;
  }
#endif
  fclose(out);
  return 0;
}
