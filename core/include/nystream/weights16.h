// 16-bit weight storage for the step's matrix-vector products. A step is bound
// by the bytes of weights it streams from cache or memory, not by FLOPs: F16 or
// BF16 halves them. Values are widened to float32 as they are loaded and every
// product accumulates in float32. The kernel is chosen at run time from what the
// CPU has (AVX-512, AVX2 + F16C + FMA, or portable C++).
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nystream/config.h"

namespace nystream {

// Rounds to the nearest 16-bit value (ties to even); F32 returns its input.
std::uint16_t to_half(float value);
std::uint16_t to_bfloat16(float value);
float from_half(std::uint16_t bits);
float from_bfloat16(std::uint16_t bits);
// The float32 value the 16-bit type stores for value (value itself for F32).
float round_to(WeightType type, float value);

// A rows x cols matrix stored row by row as 16-bit values.
class Matrix16 {
 public:
  Matrix16() = default;
  Matrix16(const Eigen::MatrixXf& matrix, WeightType type);  // type: F16 or BF16
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  WeightType type() const { return type_; }
  const std::uint16_t* data() const { return data_.data(); }
  std::size_t bytes() const { return data_.size() * sizeof(std::uint16_t); }

 private:
  int rows_ = 0, cols_ = 0;
  WeightType type_ = WeightType::kF16;
  std::vector<std::uint16_t> data_;
};

// y = W x: x has cols() floats, y rows() floats (not aliasing x). Allocates nothing.
void multiply(const Matrix16& w, const float* x, float* y);
// Y = W X for `columns` tokens at once (StreamBatch): column c of X starts at
// x + c * x_stride (cols() floats), column c of Y at y + c * y_stride (rows()
// floats), not aliasing X. Each weight is widened once per tile of columns; a
// column's result is bit for bit multiply() on that column alone (every kernel
// accumulates each output in the same order whatever the tile).
void multiply(const Matrix16& w, const float* x, std::ptrdiff_t x_stride, int columns, float* y,
              std::ptrdiff_t y_stride);

// The kernels this CPU can run, best first, and the one multiply() uses; for
// tests and benchmarks, multiply_with() runs a named one.
std::vector<const char*> available_kernels();
const char* active_kernel();
bool multiply_with(const char* kernel, const Matrix16& w, const float* x, float* y);
bool multiply_with(const char* kernel, const Matrix16& w, const float* x, std::ptrdiff_t x_stride,
                   int columns, float* y, std::ptrdiff_t y_stride);

}  // namespace nystream
