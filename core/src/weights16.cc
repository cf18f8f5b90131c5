#include "nystream/weights16.h"

#include <immintrin.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <cmath>
#include <cstring>

namespace nystream {

namespace {

std::uint32_t bits_of(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float float_of(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Every kernel computes Y = W X over a batch of columns (tokens): X column c
// at x + c * x_stride (cols() floats), Y column c at y + c * y_stride. Tiles of
// kRows rows x kColumns columns share each widened weight load across columns
// and each load of x across rows; every output is one row's dot product
// accumulated in the same order whatever the tile, so a token's result does not
// depend on how many others are in the batch.

// --- portable: one row at a time, widening each value ---------------------

template <float (*Widen)(std::uint16_t)>
void multiply_portable(const Matrix16& w, const float* x, std::ptrdiff_t x_stride, int columns,
                       float* y, std::ptrdiff_t y_stride) {
  const int cols = w.cols();
  for (int c = 0; c < columns; ++c) {
    const float* xc = x + c * x_stride;
    for (int r = 0; r < w.rows(); ++r) {
      const std::uint16_t* row = w.data() + static_cast<std::size_t>(r) * cols;
      float sum = 0.0f;
      for (int j = 0; j < cols; ++j) sum += Widen(row[j]) * xc[j];
      y[c * y_stride + r] = sum;
    }
  }
}

// --- x86-64 -----------------------------------------------------------------
// Compiled for their instruction sets whatever the build's -march; called only
// when the CPU reports them.

#if defined(__x86_64__)

// clang's __builtin_cpu_supports does not know "f16c": CPUID leaf 1, ECX bit 29.
bool has_f16c() {
  unsigned eax, ebx, ecx, edx;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
}

#define NYSTREAM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// GCC 12 reports the deliberately undefined registers inside its own AVX-512
// intrinsics (_mm512_reduce_add_ps, ...) as uninitialised once they are inlined
// into the tiles below: a false positive in its headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define NYSTREAM_AVX2 __attribute__((target("avx2,f16c,fma")))

// (Helpers, not lambdas: clang does not give a lambda its function's target.)
template <WeightType kType>
NYSTREAM_AVX512 inline __m512 widen16(__m256i halves) {
  if (kType == WeightType::kF16) return _mm512_cvtph_ps(halves);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}

template <WeightType kType>
NYSTREAM_AVX512 inline __m512 load16(const std::uint16_t* p) {
  return widen16<kType>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <WeightType kType>
NYSTREAM_AVX512 inline __m512 load16_masked(const std::uint16_t* p, __mmask16 mask) {
  return widen16<kType>(_mm256_maskz_loadu_epi16(mask, p));
}

// Rows [r, r + kRows) x columns [c, c + kColumns): 16 weights a load, masked tail.
template <WeightType kType, int kRows, int kColumns>
NYSTREAM_AVX512 inline void tile_avx512(const Matrix16& w, int r, const float* x,
                                        std::ptrdiff_t x_stride, float* y, std::ptrdiff_t y_stride) {
  const int cols = w.cols(), body = cols & ~15;
  const __mmask16 tail = static_cast<__mmask16>((1u << (cols - body)) - 1);
  const std::uint16_t* p[kRows];
  for (int i = 0; i < kRows; ++i) p[i] = w.data() + static_cast<std::size_t>(r + i) * cols;
  __m512 a[kRows][kColumns];
  for (int i = 0; i < kRows; ++i)
    for (int c = 0; c < kColumns; ++c) a[i][c] = _mm512_setzero_ps();
  for (int j = 0; j < body; j += 16) {
    __m512 xv[kColumns];
    for (int c = 0; c < kColumns; ++c) xv[c] = _mm512_loadu_ps(x + c * x_stride + j);
    for (int i = 0; i < kRows; ++i) {
      const __m512 wv = load16<kType>(p[i] + j);
      for (int c = 0; c < kColumns; ++c) a[i][c] = _mm512_fmadd_ps(wv, xv[c], a[i][c]);
    }
  }
  if (tail) {
    __m512 xv[kColumns];
    for (int c = 0; c < kColumns; ++c) xv[c] = _mm512_maskz_loadu_ps(tail, x + c * x_stride + body);
    for (int i = 0; i < kRows; ++i) {
      const __m512 wv = load16_masked<kType>(p[i] + body, tail);
      for (int c = 0; c < kColumns; ++c) a[i][c] = _mm512_fmadd_ps(wv, xv[c], a[i][c]);
    }
  }
  for (int c = 0; c < kColumns; ++c)
    for (int i = 0; i < kRows; ++i) y[c * y_stride + r + i] = _mm512_reduce_add_ps(a[i][c]);
}

// Four rows x four columns (16 accumulators of the 32 registers), or eight rows
// of one column.
template <WeightType kType>
NYSTREAM_AVX512 void multiply_avx512(const Matrix16& w, const float* x, std::ptrdiff_t x_stride,
                                     int columns, float* y, std::ptrdiff_t y_stride) {
  const int rows = w.rows();
  int c = 0;
  for (; c + 4 <= columns; c += 4) {
    const float* xc = x + c * x_stride;
    float* yc = y + c * y_stride;
    int r = 0;
    for (; r + 4 <= rows; r += 4) tile_avx512<kType, 4, 4>(w, r, xc, x_stride, yc, y_stride);
    for (; r < rows; ++r) tile_avx512<kType, 1, 4>(w, r, xc, x_stride, yc, y_stride);
  }
  for (; c < columns; ++c) {
    const float* xc = x + c * x_stride;
    float* yc = y + c * y_stride;
    int r = 0;
    // One column: eight rows keep eight independent FMA chains in flight (four
    // leave the FMA units waiting on latency, 30 % slower on weights in cache).
    for (; r + 8 <= rows; r += 8) tile_avx512<kType, 8, 1>(w, r, xc, x_stride, yc, y_stride);
    for (; r + 4 <= rows; r += 4) tile_avx512<kType, 4, 1>(w, r, xc, x_stride, yc, y_stride);
    for (; r < rows; ++r) tile_avx512<kType, 1, 1>(w, r, xc, x_stride, yc, y_stride);
  }
}

template <WeightType kType>
NYSTREAM_AVX2 inline __m256 load8(const std::uint16_t* p) {
  const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (kType == WeightType::kF16) return _mm256_cvtph_ps(halves);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}

NYSTREAM_AVX2 inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Rows [r, r + kRows) x columns [c, c + kColumns): 8 weights a load, scalar tail.
template <WeightType kType, int kRows, int kColumns>
NYSTREAM_AVX2 inline void tile_avx2(const Matrix16& w, int r, const float* x, std::ptrdiff_t x_stride,
                                    float* y, std::ptrdiff_t y_stride) {
  const int cols = w.cols(), body = cols & ~7;
  const std::uint16_t* p[kRows];
  for (int i = 0; i < kRows; ++i) p[i] = w.data() + static_cast<std::size_t>(r + i) * cols;
  __m256 a[kRows][kColumns];
  for (int i = 0; i < kRows; ++i)
    for (int c = 0; c < kColumns; ++c) a[i][c] = _mm256_setzero_ps();
  for (int j = 0; j < body; j += 8) {
    __m256 xv[kColumns];
    for (int c = 0; c < kColumns; ++c) xv[c] = _mm256_loadu_ps(x + c * x_stride + j);
    for (int i = 0; i < kRows; ++i) {
      const __m256 wv = load8<kType>(p[i] + j);
      for (int c = 0; c < kColumns; ++c) a[i][c] = _mm256_fmadd_ps(wv, xv[c], a[i][c]);
    }
  }
  for (int c = 0; c < kColumns; ++c)
    for (int i = 0; i < kRows; ++i) {
      float s = sum8(a[i][c]);
      for (int j = body; j < cols; ++j)
        s += (kType == WeightType::kF16 ? from_half(p[i][j]) : from_bfloat16(p[i][j])) *
             x[c * x_stride + j];
      y[c * y_stride + r + i] = s;
    }
}

// Four rows x two columns: 8 accumulators, 4 weights and 2 inputs of 16 registers.
template <WeightType kType>
NYSTREAM_AVX2 void multiply_avx2(const Matrix16& w, const float* x, std::ptrdiff_t x_stride,
                                 int columns, float* y, std::ptrdiff_t y_stride) {
  const int rows = w.rows();
  int c = 0;
  for (; c + 2 <= columns; c += 2) {
    const float* xc = x + c * x_stride;
    float* yc = y + c * y_stride;
    int r = 0;
    for (; r + 4 <= rows; r += 4) tile_avx2<kType, 4, 2>(w, r, xc, x_stride, yc, y_stride);
    for (; r < rows; ++r) tile_avx2<kType, 1, 2>(w, r, xc, x_stride, yc, y_stride);
  }
  for (; c < columns; ++c) {
    const float* xc = x + c * x_stride;
    float* yc = y + c * y_stride;
    int r = 0;
    for (; r + 4 <= rows; r += 4) tile_avx2<kType, 4, 1>(w, r, xc, x_stride, yc, y_stride);
    for (; r < rows; ++r) tile_avx2<kType, 1, 1>(w, r, xc, x_stride, yc, y_stride);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // __x86_64__

using Kernel = void (*)(const Matrix16&, const float*, std::ptrdiff_t, int, float*, std::ptrdiff_t);

struct KernelEntry {
  const char* name;
  Kernel f16, bf16;
  bool (*supported)();
};

const KernelEntry kKernels[] = {
#if defined(__x86_64__)
    {"avx512", multiply_avx512<WeightType::kF16>, multiply_avx512<WeightType::kBF16>,
     [] { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl"); }},
    {"avx2-f16c", multiply_avx2<WeightType::kF16>, multiply_avx2<WeightType::kBF16>,
     [] {
       return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
     }},
#endif
    {"portable", multiply_portable<from_half>, multiply_portable<from_bfloat16>, [] { return true; }},
};

const KernelEntry& best_kernel() {
  static const KernelEntry& best = [] () -> const KernelEntry& {
    for (const KernelEntry& k : kKernels)
      if (k.supported()) return k;
    return kKernels[sizeof kKernels / sizeof kKernels[0] - 1];
  }();
  return best;
}

void run(const KernelEntry& k, const Matrix16& w, const float* x, std::ptrdiff_t x_stride,
         int columns, float* y, std::ptrdiff_t y_stride) {
  (w.type() == WeightType::kF16 ? k.f16 : k.bf16)(w, x, x_stride, columns, y, y_stride);
}

}  // namespace

const char* to_string(WeightType type) {
  switch (type) {
    case WeightType::kF32: return "f32";
    case WeightType::kF16: return "f16";
    case WeightType::kBF16: return "bf16";
  }
  return "?";
}

std::uint16_t to_half(float value) {
  const std::uint32_t bits = bits_of(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u)  // Inf, NaN (kept quiet)
    return static_cast<std::uint16_t>(sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0));
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (magnitude < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24
    const float scaled = float_of(magnitude) * 16777216.0f;  // exact
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(scaled)));
  }
  // Normal: drop 13 significand bits, rounding to nearest even.
  const std::uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

std::uint16_t to_bfloat16(float value) {
  const std::uint32_t bits = bits_of(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);  // NaN
  return static_cast<std::uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

float from_half(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return float_of(exponent == 0x1f ? sign | 0x7f800000u | mantissa << 13
                                   : sign | (exponent + 112) << 23 | mantissa << 13);
}

float from_bfloat16(std::uint16_t bits) { return float_of(static_cast<std::uint32_t>(bits) << 16); }

float round_to(WeightType type, float value) {
  switch (type) {
    case WeightType::kF16: return from_half(to_half(value));
    case WeightType::kBF16: return from_bfloat16(to_bfloat16(value));
    case WeightType::kF32: break;
  }
  return value;
}

Matrix16::Matrix16(const Eigen::MatrixXf& matrix, WeightType type)
    : rows_(static_cast<int>(matrix.rows())),
      cols_(static_cast<int>(matrix.cols())),
      type_(type),
      data_(static_cast<std::size_t>(matrix.size())) {
  for (int r = 0; r < rows_; ++r)
    for (int c = 0; c < cols_; ++c)
      data_[static_cast<std::size_t>(r) * cols_ + c] =
          type == WeightType::kF16 ? to_half(matrix(r, c)) : to_bfloat16(matrix(r, c));
}

void multiply(const Matrix16& w, const float* x, float* y) {
  run(best_kernel(), w, x, w.cols(), 1, y, w.rows());
}

void multiply(const Matrix16& w, const float* x, std::ptrdiff_t x_stride, int columns, float* y,
              std::ptrdiff_t y_stride) {
  run(best_kernel(), w, x, x_stride, columns, y, y_stride);
}

std::vector<const char*> available_kernels() {
  std::vector<const char*> names;
  for (const KernelEntry& k : kKernels)
    if (k.supported()) names.push_back(k.name);
  return names;
}

const char* active_kernel() { return best_kernel().name; }

bool multiply_with(const char* kernel, const Matrix16& w, const float* x, float* y) {
  return multiply_with(kernel, w, x, w.cols(), 1, y, w.rows());
}

bool multiply_with(const char* kernel, const Matrix16& w, const float* x, std::ptrdiff_t x_stride,
                   int columns, float* y, std::ptrdiff_t y_stride) {
  for (const KernelEntry& k : kKernels)
    if (std::strcmp(k.name, kernel) == 0 && k.supported()) {
      run(k, w, x, x_stride, columns, y, y_stride);
      return true;
    }
  return false;
}

}  // namespace nystream
