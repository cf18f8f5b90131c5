// The log-mel front end (see log_mel.h for the path and the timing contract).
#include "nystream/features/log_mel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <Eigen/Core>

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/mathematics.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
#include <libavutil/tx.h>
#include <libswresample/swresample.h>
}

#include "mel_filterbank.h"

namespace nystream {
namespace {

// av_malloc'd float array: av_tx wants buffers aligned for the CPU's SIMD.
struct AlignedFloats {
  float* data = nullptr;
  explicit AlignedFloats(std::size_t n = 0) { resize(n); }
  ~AlignedFloats() { av_free(data); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  void resize(std::size_t n) {
    av_free(data);
    data = n ? static_cast<float*>(av_mallocz(n * sizeof(float))) : nullptr;
  }
};

std::int64_t samples_to_ns(std::int64_t samples, int rate) { return av_rescale(samples, 1000000000, rate); }

}  // namespace

std::string AudioFormat::validate() const {
  if (rate < 1000 || rate > 384000) return "audio rate " + std::to_string(rate) + " Hz is outside [1000, 384000]";
  if (channels < 1 || channels > 64) return "audio channel count " + std::to_string(channels) + " is outside [1, 64]";
  return {};
}

struct LogMelExtractor::Impl {
  LogMelParams params;
  AudioFormat format;
  bool configured = false;

  // Fixed per params.
  std::vector<detail::MelBand> bands;
  std::vector<float> window;
  AVTXContext* tx = nullptr;
  av_tx_fn tx_fn = nullptr;
  AlignedFloats fft_in, fft_out;  // n_fft floats; (n_fft / 2 + 1) complex
  std::vector<float> power;       // n_fft / 2 + 1
  Eigen::ArrayXf band_power;      // n_mels; aligned, so every frame's logs take the same path
  std::vector<float> frames;      // n_mels x frames_per_token, frame-major
  std::vector<float> token;       // dim
  int frames_per_token = 0;

  // Per input format.
  SwrContext* swr = nullptr;
  int block_frames = 0;
  std::vector<std::uint8_t> block;  // block_frames interleaved input frames
  int block_fill = 0;               // frames in `block`
  int out_capacity = 0;             // resampler output room per call
  std::vector<float> samples;       // model-rate mono samples not yet fully framed
  int sample_count = 0;

  // Stream position.
  bool started = false;              // a sample has arrived since reset
  std::int64_t origin_ns = 0;        // time of the first sample since reset
  std::int64_t next_origin_ns = 0;   // used when the next first buffer has no timestamp
  std::int64_t input_frames = 0;     // input sample frames since reset
  std::int64_t frames_done = 0;      // mel frames since reset
  std::int64_t tokens_done = 0;

  ~Impl() {
    av_tx_uninit(&tx);
    swr_free(&swr);
  }

  std::string setup_params() {
    bands = detail::mel_filterbank(params);
    window = detail::analysis_window(params);
    const float scale = 1.0f;
    if (av_tx_init(&tx, &tx_fn, AV_TX_FLOAT_RDFT, 0, params.n_fft, &scale, 0) < 0)
      return "log-mel: FFmpeg's av_tx has no real FFT of size " + std::to_string(params.n_fft);
    fft_in.resize(params.n_fft + 16);
    fft_out.resize(params.n_fft + 16 + 2);
    power.assign(params.n_fft / 2 + 1, 0.0f);
    band_power.setZero(params.n_mels);
    frames_per_token = params.frames_per_token();
    frames.assign(static_cast<std::size_t>(params.n_mels) * frames_per_token, 0.0f);
    token.assign(params.dim(), 0.0f);
    return {};
  }

  std::string setup_format(const AudioFormat& f) {
    configured = false;
    swr_free(&swr);
    if (std::string e = f.validate(); !e.empty()) return "log-mel: " + e;
    format = f;
    AVChannelLayout in_layout, out_layout = AV_CHANNEL_LAYOUT_MONO;
    av_channel_layout_default(&in_layout, f.channels);
    const AVSampleFormat in_fmt = f.format == SampleFormat::kS16 ? AV_SAMPLE_FMT_S16 : AV_SAMPLE_FMT_FLT;
    int err = swr_alloc_set_opts2(&swr, &out_layout, AV_SAMPLE_FMT_FLT, params.sample_rate, &in_layout, in_fmt,
                                  f.rate, 0, nullptr);
    // Down-mix = the mean of the channels, so a mono source and the same signal
    // on every channel give the same features (swr's default matrix adds +3 dB).
    std::vector<double> matrix(f.channels, 1.0 / f.channels);
    if (err >= 0) err = swr_set_matrix(swr, matrix.data(), f.channels);
    if (err >= 0) err = swr_init(swr);
    av_channel_layout_uninit(&in_layout);
    if (err < 0) {
      char text[AV_ERROR_MAX_STRING_SIZE] = {0};
      av_strerror(err, text, sizeof text);
      swr_free(&swr);
      return std::string("log-mel: libswresample refused the format: ") + text;
    }
    // 10 ms input blocks: small enough for latency, large enough to amortise a call.
    block_frames = std::max(1, f.rate / 100);
    block.assign(static_cast<std::size_t>(block_frames) * f.bytes_per_frame(), 0);
    // Output per call is at most the block's share plus what the filter holds back.
    out_capacity = static_cast<int>(av_rescale_rnd(block_frames, params.sample_rate, f.rate, AV_ROUND_UP)) +
                   swr_get_out_samples(swr, 0) + 256;
    samples.assign(2 * static_cast<std::size_t>(params.n_fft) + out_capacity, 0.0f);  // + drain padding
    configured = true;
    clear();
    next_origin_ns = 0;
    return {};
  }

  // Forgets samples and partial tokens; keeps format, params and next_origin_ns.
  void clear() noexcept {
    if (swr) {
      // Re-initialising drops the filter history; swr_init allocates nothing new
      // for an unchanged configuration.
      swr_close(swr);
      swr_init(swr);
    }
    block_fill = 0;
    sample_count = 0;
    started = false;
    input_frames = 0;
    frames_done = 0;
    tokens_done = 0;
  }

  void frame_to_mel(const float* x, float* mel) noexcept {
    const int n = params.n_fft;
    for (int i = 0; i < n; ++i) fft_in.data[i] = x[i] * window[i];
    tx_fn(tx, fft_out.data, fft_in.data, sizeof(float));
    const float* c = fft_out.data;
    const int bins = n / 2 + 1;
    if (params.power == 2.0) {
      for (int k = 0; k < bins; ++k) power[k] = c[2 * k] * c[2 * k] + c[2 * k + 1] * c[2 * k + 1];
    } else {
      for (int k = 0; k < bins; ++k) power[k] = std::sqrt(c[2 * k] * c[2 * k] + c[2 * k + 1] * c[2 * k + 1]);
    }
    for (int m = 0; m < params.n_mels; ++m) {
      const detail::MelBand& b = bands[m];
      float sum = 0.0f;
      for (std::size_t i = 0; i < b.weights.size(); ++i) sum += b.weights[i] * power[b.first_bin + i];
      band_power[m] = sum;
    }
    // All bands at once: Eigen's log is vectorised, std::log one value a call.
    band_power = (band_power + static_cast<float>(params.log_offset)).log();
    std::copy(band_power.data(), band_power.data() + params.n_mels, mel);
  }

  void emit_token(TokenSink& sink) noexcept {
    const int M = params.n_mels, F = frames_per_token;
    const std::string& pool = params.pooling;
    if (pool == "flatten") {
      std::copy(frames.begin(), frames.end(), token.begin());
    } else {
      for (int m = 0; m < M; ++m) {
        float sum = 0.0f, mx = -INFINITY;
        for (int f = 0; f < F; ++f) {
          const float v = frames[static_cast<std::size_t>(f) * M + m];
          sum += v;
          mx = std::max(mx, v);
        }
        const float mean = sum / F;
        if (pool == "max") {
          token[m] = mx;
          continue;
        }
        token[m] = mean;
        if (pool == "mean-max") token[M + m] = mx;
        if (pool == "mean-std") {
          float var = 0.0f;  // two-pass: no cancellation for large log values
          for (int f = 0; f < F; ++f) {
            const float d = frames[static_cast<std::size_t>(f) * M + m] - mean;
            var += d * d;
          }
          token[M + m] = std::sqrt(var / F);
        }
      }
    }
    const std::int64_t per_token = static_cast<std::int64_t>(F) * params.hop_length;
    TokenSpan span;
    span.index = tokens_done;
    span.start_ns = origin_ns + samples_to_ns(tokens_done * per_token, params.sample_rate);
    span.end_ns = origin_ns + samples_to_ns((tokens_done + 1) * per_token, params.sample_rate);
    ++tokens_done;
    sink.on_token(token.data(), static_cast<int>(token.size()), span);
  }

  // Frames every complete n_fft window in `samples`, then keeps the remainder.
  void consume_samples(TokenSink& sink) noexcept {
    const int n = params.n_fft, hop = params.hop_length;
    int pos = 0;
    while (sample_count - pos >= n) {
      const int f = static_cast<int>(frames_done % frames_per_token);
      frame_to_mel(samples.data() + pos, frames.data() + static_cast<std::size_t>(f) * params.n_mels);
      ++frames_done;
      pos += hop;
      if (f == frames_per_token - 1) emit_token(sink);
    }
    if (pos > 0) {
      std::memmove(samples.data(), samples.data() + pos, sizeof(float) * (sample_count - pos));
      sample_count -= pos;
    }
  }

  // Resamples `frames_in` interleaved frames (nullptr: flush the filter).
  void resample(const std::uint8_t* in, int frames_in, TokenSink& sink) noexcept {
    for (;;) {
      std::uint8_t* out = reinterpret_cast<std::uint8_t*>(samples.data() + sample_count);
      const std::uint8_t* in_planes[1] = {in};
      const int got = swr_convert(swr, &out, out_capacity, in ? in_planes : nullptr, in ? frames_in : 0);
      if (got <= 0) return;
      sample_count += got;
      consume_samples(sink);
      if (in) return;  // a flush may need several calls; input never does
    }
  }
};

LogMelExtractor::LogMelExtractor() : impl_(std::make_unique<Impl>()) {}
LogMelExtractor::~LogMelExtractor() = default;

std::unique_ptr<LogMelExtractor> LogMelExtractor::create(const LogMelParams& params, const AudioFormat& format,
                                                         std::string* error) {
  if (std::string e = params.validate(); !e.empty()) {
    *error = "log-mel: " + e;
    return nullptr;
  }
  std::unique_ptr<LogMelExtractor> x(new LogMelExtractor());
  x->impl_->params = params;
  std::string e = x->impl_->setup_params();
  if (e.empty()) e = x->impl_->setup_format(format);
  if (!e.empty()) {
    *error = e;
    return nullptr;
  }
  return x;
}

std::string LogMelExtractor::configure(const AudioFormat& format) { return impl_->setup_format(format); }

PushStatus LogMelExtractor::push(const void* data, std::size_t bytes, std::int64_t pts_ns,
                                 TokenSink& sink) noexcept {
  Impl& s = *impl_;
  if (!s.configured) return PushStatus::kNotConfigured;
  if (bytes == 0 || data == nullptr) return PushStatus::kEmpty;
  const std::size_t frame_bytes = s.format.bytes_per_frame();
  if (bytes % frame_bytes != 0) return PushStatus::kBadSize;
  const std::int64_t n_frames = static_cast<std::int64_t>(bytes / frame_bytes);
  const auto* in = static_cast<const std::uint8_t*>(data);

  if (s.format.format == SampleFormat::kF32) {
    const float* x = static_cast<const float*>(data);
    const std::size_t count = bytes / sizeof(float);
    bool finite = true;
    for (std::size_t i = 0; i < count; ++i) finite &= std::isfinite(x[i]);
    if (!finite) {
      // Where this buffer ends is where the next segment starts, unless it says otherwise.
      const std::int64_t begin = pts_ns != kNoTimestamp ? pts_ns
                                 : s.started ? s.origin_ns + samples_to_ns(s.input_frames, s.format.rate)
                                             : s.next_origin_ns;
      s.clear();
      s.next_origin_ns = begin + samples_to_ns(n_frames, s.format.rate);
      return PushStatus::kNonFinite;
    }
  }

  if (!s.started) {
    s.started = true;
    s.origin_ns = pts_ns != kNoTimestamp ? pts_ns : s.next_origin_ns;
  }
  s.input_frames += n_frames;
  std::int64_t left = n_frames;
  while (left > 0) {
    const int take = static_cast<int>(std::min<std::int64_t>(left, s.block_frames - s.block_fill));
    std::memcpy(s.block.data() + static_cast<std::size_t>(s.block_fill) * frame_bytes, in, take * frame_bytes);
    in += take * frame_bytes;
    left -= take;
    s.block_fill += take;
    if (s.block_fill == s.block_frames) {
      s.resample(s.block.data(), s.block_frames, sink);
      s.block_fill = 0;
    }
  }
  return PushStatus::kOk;
}

void LogMelExtractor::drain(TokenSink& sink) noexcept {
  Impl& s = *impl_;
  if (!s.configured || !s.started) return;
  if (s.block_fill > 0) s.resample(s.block.data(), s.block_fill, sink);
  s.resample(nullptr, 0, sink);
  // Zeros after the end give the last hops their frames (the look-ahead a frame
  // needs past its hop), so a stream of L model-rate samples has floor(L / H) frames.
  const int pad = s.params.n_fft - s.params.hop_length;
  std::fill(s.samples.begin() + s.sample_count, s.samples.begin() + s.sample_count + pad, 0.0f);
  s.sample_count += pad;
  s.consume_samples(sink);
  const std::int64_t end = s.origin_ns + samples_to_ns(s.input_frames, s.format.rate);
  s.clear();
  s.next_origin_ns = end;
}

void LogMelExtractor::reset() noexcept {
  impl_->clear();
  impl_->next_origin_ns = 0;
}

int LogMelExtractor::dim() const { return impl_->params.dim(); }
const LogMelParams& LogMelExtractor::params() const { return impl_->params; }
const AudioFormat& LogMelExtractor::format() const { return impl_->format; }
int LogMelExtractor::block_frames() const { return impl_->block_frames; }
std::int64_t LogMelExtractor::tokens() const { return impl_->tokens_done; }

std::int64_t LogMelExtractor::latency_ns() const {
  const Impl& s = *impl_;
  if (!s.configured) return 0;
  const std::int64_t block = samples_to_ns(s.block_frames, s.format.rate);
  const std::int64_t filter = s.swr ? samples_to_ns(swr_get_out_samples(s.swr, 0), s.params.sample_rate) : 0;
  const std::int64_t lookahead = samples_to_ns(s.params.n_fft - s.params.hop_length, s.params.sample_rate);
  const std::int64_t token = samples_to_ns(static_cast<std::int64_t>(s.frames_per_token) * s.params.hop_length,
                                           s.params.sample_rate);
  return block + filter + lookahead + token;
}

}  // namespace nystream
