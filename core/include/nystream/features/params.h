// Parameters of the feature extractors, as a model file's `features` object
// {extractor, version, params} records them (docs/features.md). Each params
// struct has documented defaults, parses from the JSON text of `params`
// (missing keys keep their defaults, unknown keys are refused so a typo cannot
// silently fall back to a default) and writes itself back with every key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nystream {

// Timestamps are nanoseconds, like GstClockTime; this value means "none".
constexpr std::int64_t kNoTimestamp = INT64_MIN;

// `log-mel` version 1: the audio front end (docs/features.md).
struct LogMelParams {
  int sample_rate = 16000;       // Hz: input is down-mixed and resampled to this
  std::string window = "hann";   // "hann" (periodic) or "hamming" (periodic)
  int win_length = 400;          // samples (25 ms)
  int hop_length = 160;          // samples (10 ms): one mel frame per hop
  int n_fft = 512;               // FFT size, >= win_length, even; window centred in it
  int n_mels = 64;               // mel bands
  double f_min = 0.0;            // Hz
  double f_max = 8000.0;         // Hz, <= sample_rate / 2
  std::string mel_scale = "htk"; // "htk" or "slaney" (torchaudio's names)
  std::string mel_norm = "none"; // "none" or "slaney" (area normalisation)
  double power = 2.0;            // 1: magnitude, 2: power spectrum
  double log_offset = 1e-6;      // feature = ln(mel + log_offset)
  int token_rate = 10;           // tokens/s; sample_rate must be a multiple of hop_length * token_rate
  std::string pooling = "mean-std";  // mel frames of a token -> vector: "flatten",
                                     // "mean", "max", "mean-max", "mean-std"

  // Mel frames per token: sample_rate / (hop_length * token_rate).
  int frames_per_token() const;
  // Length of one token's feature vector.
  int dim() const;
  // Empty when usable; otherwise what is wrong, naming the key.
  std::string validate() const;
  // Parses `params` JSON object text onto the defaults and validates.
  static bool parse(const std::string& json, LogMelParams* out, std::string* error);
  // Every key, as a JSON object text.
  std::string to_json() const;
};

// `video-motion` version 1: the video front end (docs/features.md).
struct VideoMotionParams {
  int token_rate = 10;           // tokens/s, sampled by timestamp
  int analysis_width = 64;       // every frame is scaled (libswscale) to this gray image
  int analysis_height = 48;
  int thumb_width = 16;          // appearance thumbnail: block means of the analysis image
  int thumb_height = 12;
  int grid_cols = 8;             // block-motion grid; the analysis size must divide into it
  int grid_rows = 6;
  int search_range = 4;          // block matching: +-pixels (analysis image) per token interval
  double motion_threshold = 2.0; // mean |difference| (0..255 scale) below which a block's
                                 // vector is reported as zero (no texture to match)
  std::int64_t timestamp_tolerance_ns = 1000000;  // a frame up to this much after a token's
                                                  // time still counts as at that time
  // Optional parts (docs/features.md); both off keeps the version-1 descriptor bit for bit.
  bool compensate_camera = false;  // estimate the global shift + gain between the two frames,
                                   // measure all motion relative to it; appends kCameraFeatures
  bool camera_zoom = false;        // (with compensate_camera) the camera may also zoom: fit a shift
                                   // and a scale about the centre; appends ln of the magnification
  bool motion_histograms = false;  // appends kHistogramFeatures translation-invariant values:
                                   // direction x speed histograms of the moving region's upper
                                   // and lower part, its spread, scale change, rotation, ...
  int long_baseline = 0;           // tokens, 0..50; > 0 (with motion_histograms) appends the camera
                                   // and histogram parts again, measured against the frame this
                                   // many tokens earlier at +-2 search_range: an actor's size
                                   // changes by a fraction of a pixel per token, several over it
  int motion_blobs = 0;            // 0..8 (with motion_histograms): appends kBlobFeatures for each
                                   // of this many heaviest blobs of coherent motion (connected
                                   // moving blocks with similar vectors), heaviest first: an actor
                                   // measured apart from a moving background and from other actors
  int stem_width = 0;              // > 0 (with stem_height; each divides the analysis size):
  int stem_height = 0;             // appends the token's gray frame, block means of the analysis
                                   // image (0..1), then its difference to the previous token's
                                   // (zero on the first): a model's stem input [2, stem_height, stem_width]

  int block_width() const { return analysis_width / grid_cols; }
  int block_height() const { return analysis_height / grid_rows; }
  // thumbnail + 3 per grid cell (dx, dy, difference energy) + kGlobalFeatures
  // [+ camera_dim()] [+ kHistogramFeatures] [+ blob_dim()] [+ long_dim()] [+ stem_dim()].
  int dim() const;
  // The camera part: kCameraFeatures, + 1 with camera_zoom, or 0.
  int camera_dim() const { return compensate_camera ? kCameraFeatures + (camera_zoom ? 1 : 0) : 0; }
  // The blob part: kBlobFeatures motion_blobs.
  int blob_dim() const { return kBlobFeatures * motion_blobs; }
  // The long-baseline part: camera_dim() + kHistogramFeatures + blob_dim(), or 0.
  int long_dim() const;
  // The stem part, last in the token: 2 stem_height stem_width, or 0.
  int stem_dim() const { return 2 * stem_width * stem_height; }
  // The parameters of the long-baseline measurement (search_range doubled).
  VideoMotionParams long_baseline_params() const;
  static constexpr int kGlobalFeatures = 16;
  static constexpr int kCameraFeatures = 3;     // shift x, y (/ search_range), ln gain
  static constexpr int kHistogramBins = 17;     // per half: still + 8 directions x 2 speeds
  static constexpr int kHistogramScalars = 13;
  static constexpr int kHistogramFeatures = 2 * kHistogramBins + kHistogramScalars;
  static constexpr int kBlobFeatures = 17;
  std::string validate() const;
  static bool parse(const std::string& json, VideoMotionParams* out, std::string* error);
  std::string to_json() const;
};

// The time a token describes. Half-open [start_ns, end_ns) in the timeline of
// the pushed timestamps; index counts tokens since creation or reset().
struct TokenSpan {
  std::int64_t index = 0;
  std::int64_t start_ns = 0;
  std::int64_t end_ns = 0;
};

// Receives tokens, in order, synchronously from push() and drain(). `features`
// is valid only during the call. Implementations should not throw: the
// extractors call it from noexcept paths.
class TokenSink {
 public:
  virtual ~TokenSink() = default;
  virtual void on_token(const float* features, int dim, const TokenSpan& span) = 0;
};

// What push() did with a buffer.
enum class PushStatus {
  kOk,           // consumed; zero or more tokens delivered
  kEmpty,        // no samples or no frame: ignored, nothing changed
  kBadSize,      // byte count not a whole number of sample frames, or a frame
                 // smaller than its format needs: rejected, nothing changed
  kNonFinite,    // NaN or Inf in float samples: the buffer is dropped and the
                 // extractor reset (tokens in progress discarded); the clock
                 // advances by the buffer's length, so later tokens keep their times
  kOutOfOrder,   // video: timestamp not after the previous frame's: frame dropped
  kNotConfigured // no usable input format (configure() failed)
};

const char* to_string(PushStatus status);

// A TokenSink that keeps every token (row-major, `dim` floats each) and its span.
// It allocates as it grows: for offline use, tests and tools, not a streaming thread.
class TokenCollector : public TokenSink {
 public:
  void on_token(const float* features, int dim, const TokenSpan& span) override;
  void clear();
  int dim = 0;
  std::vector<float> data;
  std::vector<TokenSpan> spans;
  std::int64_t count() const { return static_cast<std::int64_t>(spans.size()); }
};

}  // namespace nystream
