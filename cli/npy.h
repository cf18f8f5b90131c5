// Minimal NumPy .npy files: float32 (or float64, converted) arrays of one or two
// dimensions, the form `numpy.save` writes. Errors are sentences naming the file.
//
//   nystream::cli::NpyArray features;
//   if (!nystream::cli::read_npy("features.npy", &features, &error)) fail(error);
//   // features.rows() x features.cols(), row-major in features.data
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nystream::cli {

struct NpyArray {
  std::vector<std::int64_t> shape;  // one or two dimensions
  std::vector<float> data;          // row-major (C order), product(shape) values

  std::int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  // A 1-D array is one column.
  std::int64_t cols() const { return shape.size() == 2 ? shape[1] : 1; }
};

// Reads a 1-D or 2-D array of dtype '<f4' or '<f8' (converted to float32), in C or
// Fortran order (returned in C order). False and *error on anything else.
bool read_npy(const std::string& path, NpyArray* out, std::string* error);

// Writes `rows` x `cols` row-major float32 values as a 2-D '<f4' array.
bool write_npy(const std::string& path, const float* data, std::int64_t rows, std::int64_t cols,
               std::string* error);
// Same with an explicit shape of one or two dimensions.
bool write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape,
               std::string* error);

}  // namespace nystream::cli
