// Random inputs for the benchmarks: N(0, scale^2) entries, deterministic in engine.
#pragma once

#include <Eigen/Core>
#include <random>

namespace nystream::bench {

inline Eigen::MatrixXf random_matrix(Eigen::Index rows, Eigen::Index cols, float scale,
                                     std::mt19937& engine) {
  std::normal_distribution<float> normal(0.0f, scale);
  Eigen::MatrixXf out(rows, cols);
  for (Eigen::Index i = 0; i < out.size(); ++i) out.data()[i] = normal(engine);
  return out;
}

}  // namespace nystream::bench
