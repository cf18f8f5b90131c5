// Nystream core: a continual Nyström transformer that turns a stream of feature
// vectors into class scores, one token at a time, with O(1) work per token in the
// window length for fixed landmarks.
//
//   #include <nystream/nystream.h>
//
//   nystream::ModelConfig config;            // documented defaults: audio config
//   config.input_dim = 64;
//   std::string error;
//   auto model = nystream::Model::create(config, nystream::random_weights(config, 1), &error);
//   if (!model) fail(error);
//   nystream::StreamState stream(model);     // one per stream; shares the model
//   std::vector<float> scores(config.classes);
//   for (const std::vector<float>& features : tokens)
//     if (stream.step(features.data(), scores.data()) == nystream::StepStatus::kOk)
//       report(scores);
//
// Model is immutable and thread-safe to share; a StreamState belongs to one thread
// at a time and allocates nothing after construction. BatchModel (batch.h) runs
// the same weights over a whole window: the reference the stream equals.
#pragma once

#include "nystream/batch.h"
#include "nystream/config.h"
#include "nystream/conv_stem.h"
#include "nystream/flops.h"
#include "nystream/model.h"
#include "nystream/model_file.h"
#include "nystream/stream_batch.h"
#include "nystream/stream_state.h"
