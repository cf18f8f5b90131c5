// Deterministic test media for the feature tests: audio and moving-pattern video.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "nystream/features/log_mel.h"
#include "nystream/features/video_motion.h"

namespace nystream::testing {

// `seconds` of interleaved audio at `rate`: a chirp, a chord and noise bursts,
// the same on every channel scaled by 1 / (c + 1) (so the down-mix matters).
inline std::vector<float> test_audio(int rate, int channels, double seconds, std::uint32_t seed = 1) {
  const std::int64_t n = static_cast<std::int64_t>(seconds * rate);
  std::vector<float> out(static_cast<std::size_t>(n) * channels);
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / rate;
    double x = 0.3 * std::sin(2 * M_PI * (200 * t + 300 * t * t));         // chirp up
    x += 0.1 * (std::sin(2 * M_PI * 440 * t) + std::sin(2 * M_PI * 660 * t));
    if (std::fmod(t, 0.5) < 0.1) x += 0.05 * noise(rng);                   // bursts
    for (int c = 0; c < channels; ++c) out[i * channels + c] = static_cast<float>(x / (c + 1));
  }
  return out;
}

inline std::vector<std::int16_t> to_s16(const std::vector<float>& x) {
  std::vector<std::int16_t> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    out[i] = static_cast<std::int16_t>(std::lround(std::clamp(x[i], -1.0f, 1.0f) * 32767.0f));
  return out;
}

inline std::vector<float> sine(int rate, int channels, double seconds, double freq, double amplitude = 0.5) {
  const std::int64_t n = static_cast<std::int64_t>(seconds * rate);
  std::vector<float> out(static_cast<std::size_t>(n) * channels);
  for (std::int64_t i = 0; i < n; ++i)
    for (int c = 0; c < channels; ++c)
      out[i * channels + c] = static_cast<float>(amplitude * std::sin(2 * M_PI * freq * i / rate));
  return out;
}

// A gray frame (width x height, stride = width) with a textured object
// ("person") of size (ow, oh) whose top-left is at (x, y), on a faint background.
inline void draw_scene(std::vector<std::uint8_t>& frame, int width, int height, double x, double y, double ow,
                       double oh) {
  frame.assign(static_cast<std::size_t>(width) * height, 0);
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      int v = 40 + ((r / 16 + c / 16) % 2) * 10;  // faint static checkerboard
      const double u = (c - x) / ow, w = (r - y) / oh;
      if (u >= 0 && u < 1 && w >= 0 && w < 1) {
        // texture that moves with the object so block matching can follow it
        v = 120 + static_cast<int>(100 * (0.5 + 0.5 * std::sin(u * 19.0) * std::cos(w * 13.0)));
      }
      frame[static_cast<std::size_t>(r) * width + c] = static_cast<std::uint8_t>(v);
    }
}

}  // namespace nystream::testing
