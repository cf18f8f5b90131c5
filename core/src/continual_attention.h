// The first encoder layer's attention, advanced one token at a time
// (algorithm.md 3.3-3.5): Nyström or softmax, single-output or retroactive.
#pragma once

#include <Eigen/Core>
#include <cstdint>

#include "landmark_kernel.h"
#include "nystream/config.h"
#include "nystream/model.h"
#include "row_cache.h"

namespace nystream {

class ContinualAttention {
 public:
  // Layer `layer` of model (fixed landmarks are read from it, not copied).
  // retroactive: produce the updated attention of every window token each step.
  ContinualAttention(const Model& model, int layer, bool retroactive);
  // query_rows_ and key_rows_ may point into this object.
  ContinualAttention(const ContinualAttention&) = delete;
  ContinualAttention& operator=(const ContinualAttention&) = delete;

  void reset();

  // Ingests token t's scaled q^, k^ and v (zeros for padding). Then writes the
  // attention (heads concatenated, before the output projection) to out:
  // single-output, E x 1 for token t; retroactive, E x n, column t mod n holding
  // window token t (ring order). output = false only updates the state.
  void step(std::int64_t t, const Eigen::VectorXf& q, const Eigen::VectorXf& k,
            const Eigen::VectorXf& v, Eigen::Ref<Eigen::MatrixXf> out, bool output = true);

  const Eigen::MatrixXf& landmark_queries() const { return landmark_queries_; }
  const Eigen::MatrixXf& landmark_keys() const { return landmark_keys_; }
  std::int64_t rows_rebuilt() const { return rows_.rebuilds(); }

 private:
  bool nystrom() const { return config_.attention == AttentionKind::kNystrom; }
  bool continual_landmarks() const {
    return nystrom() && config_.schedule == LandmarkSchedule::kContinual;
  }
  void replace_landmark(int j);
  void nystrom_single(const Eigen::VectorXf& q, Eigen::Ref<Eigen::MatrixXf> out);
  void nystrom_retroactive(Eigen::Ref<Eigen::MatrixXf> out);
  void softmax_single(const Eigen::VectorXf& q, Eigen::Ref<Eigen::MatrixXf> out);
  void softmax_retroactive(Eigen::Ref<Eigen::MatrixXf> out);

  ModelConfig config_;
  bool retroactive_;
  int n_, m_, e_, h_, d_;
  const Eigen::MatrixXf* pinv_;  // the model's fixed pinv or &pinv_state_

  // Window rings, token t in column (keys_, values_) or row (queries_) t mod n.
  Eigen::MatrixXf keys_, values_;
  Eigen::MatrixXf queries_;  // n x E, retroactive only
  Eigen::VectorXf key_left_, value_left_;

  // Nyström.
  Eigen::MatrixXf landmark_queries_, landmark_keys_;  // E x m
  // m x E, the layout the step reads: the model's (fixed) or own_*_rows_.
  const Eigen::MatrixXf* query_rows_ = nullptr;
  const Eigen::MatrixXf* key_rows_ = nullptr;
  Eigen::MatrixXf own_query_rows_, own_key_rows_;  // continual landmarks
  Eigen::VectorXf query_sum_, key_sum_;  // segment in progress (continual landmarks)
  Eigen::MatrixXf pinv_state_;           // m x (m h), continual landmarks
  LandmarkKernel kernel_;
  // Rows: one per landmark (Nyström) or per window query (retroactive softmax).
  RowCache rows_;
  // Retroactive Nyström: q^_t . Kt_j for every window token, (m h) x n; row
  // h m + j = landmark j of head h.
  Eigen::MatrixXf landmark_scores_;

  // Scratch.
  Eigen::MatrixXf landmark_weights_, mixed_;  // m x h
  Eigen::RowVectorXf head_max_, head_sum_;    // h
  Eigen::MatrixXf head_f_, head_g_;          // m x n (retroactive)
  Eigen::MatrixXf head_gv_;                  // d x m
  Eigen::VectorXf window_p_;                 // n
};

}  // namespace nystream
