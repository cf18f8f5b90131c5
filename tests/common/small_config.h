// The small model configuration the test suites share: big enough for every
// code path (2 heads, landmarks, a feed-forward), small enough to check each step
// against a from-scratch reference.
#pragma once

#include <nystream/config.h>

namespace nystream::testing {

// Small configuration for exhaustive per-step checks.
inline ModelConfig small_config(int window, int landmarks, int blocks, LandmarkSchedule schedule,
                                PinvMode pinv = PinvMode::kIterative,
                                Assembly assembly = Assembly::kRetroactive) {
  ModelConfig c;
  c.window = window;
  c.landmarks = landmarks;
  c.input_dim = 8;
  c.embed_dim = 16;
  c.heads = 2;
  c.ff_dim = 32;
  c.blocks = blocks;
  c.assembly = assembly;
  c.classes = 4;
  c.positional_period = 2 * window + 3;  // not a multiple of n: positions drift against the ring
  c.schedule = schedule;
  c.pinv = pinv;
  return c;
}

}  // namespace nystream::testing
