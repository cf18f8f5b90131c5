// The audio front end: any rate and channel count in, log-mel tokens out.
//
//   nystream::LogMelParams params;                       // or LogMelParams::parse(model params)
//   nystream::AudioFormat format{44100, 2, nystream::SampleFormat::kS16};
//   std::string error;
//   auto mel = nystream::LogMelExtractor::create(params, format, &error);   // nullptr + error
//   for (each buffer)  mel->push(data, bytes, pts_ns, sink);   // sink.on_token(...) per token
//   mel->drain(sink);                                           // at EOS
//
// Path: interleaved samples -> fixed input blocks -> libswresample (down-mix to
// mono, float, resample to params.sample_rate) -> frames of n_fft samples every
// hop_length (window of win_length centred in the frame, no padding at the
// start: torch.stft(center=False)) -> av_tx real FFT -> |X|^power -> mel
// filterbank -> ln(mel + log_offset) -> frames_per_token frames pooled into one token.
//
// Streaming equals offline: input is cut into fixed blocks of `block_frames()`
// before the resampler whatever the buffer sizes, so the same samples go through
// the same calls and every token is bit-identical however the input is split.
//
// Time: token k covers model-rate samples [k F H, (k+1) F H) (F frames per token,
// H hop) counted from the first sample after creation or reset(), whose time is
// that buffer's timestamp (or, without one, where the previous segment's clock
// ended). Later timestamps are not used: time follows the sample count, as in
// audioresample; an element resets on DISCONT.
//
// Threading: one thread at a time. push(), drain() and reset() allocate nothing
// and throw nothing; create() and configure() allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "nystream/features/params.h"

namespace nystream {

enum class SampleFormat {
  kS16,  // signed 16-bit native-endian, scaled by 1/32768
  kF32,  // float32 native-endian, nominal range [-1, 1]
};

// Interleaved input audio.
struct AudioFormat {
  int rate = 16000;  // Hz, 1000 .. 384000
  int channels = 1;  // 1 .. 64 (down-mixed by libswresample's default matrix)
  SampleFormat format = SampleFormat::kF32;

  int bytes_per_frame() const { return channels * (format == SampleFormat::kS16 ? 2 : 4); }
  std::string validate() const;
};

class LogMelExtractor {
 public:
  // Validates both and allocates every buffer; nullptr and *error if unusable.
  static std::unique_ptr<LogMelExtractor> create(const LogMelParams& params, const AudioFormat& format,
                                                 std::string* error);
  ~LogMelExtractor();
  LogMelExtractor(const LogMelExtractor&) = delete;
  LogMelExtractor& operator=(const LogMelExtractor&) = delete;

  // New input format (a caps change): a documented reset, then reallocation.
  // Empty on success; otherwise why, and push() returns kNotConfigured until a
  // later configure() succeeds.
  std::string configure(const AudioFormat& format);

  // `bytes` of interleaved samples in the configured format; any length.
  // Delivers every token completed by this buffer to `sink`.
  PushStatus push(const void* data, std::size_t bytes, std::int64_t pts_ns, TokenSink& sink) noexcept;
  // End of stream: pushes the partial input block, flushes the resampler, appends
  // n_fft - hop_length zeros (so L model-rate samples give floor(L / hop) frames),
  // delivers the remaining complete tokens (a partial last token is dropped), then
  // resets with the clock at the end of the stream.
  void drain(TokenSink& sink) noexcept;
  // Forgets every sample and partial token; token indices restart at 0 and the
  // next buffer's timestamp becomes the origin.
  void reset() noexcept;

  int dim() const;
  const LogMelParams& params() const;
  const AudioFormat& format() const;
  // Input sample frames gathered before each resampler call.
  int block_frames() const;
  // Worst-case time between a sample arriving and the token containing it being
  // delivered: one input block, the resampler's filter delay and a frame's
  // look-ahead (n_fft - hop) plus a token's length.
  std::int64_t latency_ns() const;
  // Tokens delivered since creation or reset().
  std::int64_t tokens() const;

 private:
  LogMelExtractor();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nystream
