// Parsing and validation of the extractor params (docs/features.md).
#include "nystream/features/params.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

namespace nystream {
namespace {

using Json = nlohmann::json;

// Reads `key` into *value when present, with a type check that names the key.
// Integers must be integral JSON numbers; floats accept any number.
template <typename T>
bool read_key(const Json& object, const char* key, T* value, std::string* error) {
  const auto it = object.find(key);
  if (it == object.end()) return true;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) { *error = std::string("'") + key + "' must be true or false"; return false; }
    *value = it->template get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) { *error = std::string("'") + key + "' must be a string"; return false; }
    *value = it->template get<std::string>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) { *error = std::string("'") + key + "' must be a number"; return false; }
    *value = it->template get<double>();
  } else {
    if (!it->is_number_integer()) { *error = std::string("'") + key + "' must be an integer"; return false; }
    const auto v = it->template get<std::int64_t>();
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      *error = std::string("'") + key + "' is out of range";
      return false;
    }
    *value = static_cast<T>(v);
  }
  return true;
}

// Parses text into an object and refuses keys not in `known`.
bool parse_object(const std::string& text, const std::set<std::string>& known, Json* out,
                  std::string* error) {
  try {
    *out = text.empty() ? Json::object() : Json::parse(text);
  } catch (const std::exception& e) {
    *error = std::string("params are not valid JSON: ") + e.what();
    return false;
  }
  if (!out->is_object()) { *error = "params must be a JSON object"; return false; }
  for (const auto& item : out->items())
    if (!known.count(item.key())) { *error = "unknown key '" + item.key() + "'"; return false; }
  return true;
}

std::string range(const char* key, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi))
    return std::string("'") + key + "' = " + std::to_string(value) + " is outside [" + std::to_string(lo) +
           ", " + std::to_string(hi) + "]";
  return {};
}

}  // namespace

int LogMelParams::frames_per_token() const {
  const long per_token = static_cast<long>(hop_length) * token_rate;
  return per_token > 0 ? static_cast<int>(sample_rate / per_token) : 0;
}

int LogMelParams::dim() const {
  if (pooling == "flatten") return n_mels * frames_per_token();
  if (pooling == "mean-max" || pooling == "mean-std") return 2 * n_mels;
  return n_mels;
}

std::string LogMelParams::validate() const {
  std::string e;
  if (!(e = range("sample_rate", sample_rate, 1000, 384000)).empty()) return e;
  if (window != "hann" && window != "hamming") return "'window' must be \"hann\" or \"hamming\"";
  if (!(e = range("n_fft", n_fft, 16, 65536)).empty()) return e;
  if (n_fft % 2) return "'n_fft' must be even";
  if (!(e = range("win_length", win_length, 2, n_fft)).empty()) return e + " (at most n_fft)";
  if (!(e = range("hop_length", hop_length, 1, win_length)).empty()) return e + " (at most win_length)";
  if (!(e = range("n_mels", n_mels, 1, 1024)).empty()) return e;
  if (!(e = range("f_min", f_min, 0, sample_rate / 2.0)).empty()) return e;
  if (!(e = range("f_max", f_max, 0, sample_rate / 2.0)).empty()) return e + " (at most sample_rate / 2)";
  if (!(f_min < f_max)) return "'f_min' must be below 'f_max'";
  if (mel_scale != "htk" && mel_scale != "slaney") return "'mel_scale' must be \"htk\" or \"slaney\"";
  if (mel_norm != "none" && mel_norm != "slaney") return "'mel_norm' must be \"none\" or \"slaney\"";
  if (power != 1.0 && power != 2.0) return "'power' must be 1 or 2";
  if (!(e = range("log_offset", log_offset, 1e-30, 1e3)).empty()) return e;
  if (!(e = range("token_rate", token_rate, 1, 1000)).empty()) return e;
  if (sample_rate % (static_cast<long>(hop_length) * token_rate) != 0)
    return "'sample_rate' (" + std::to_string(sample_rate) + ") must be a multiple of hop_length * token_rate (" +
           std::to_string(static_cast<long>(hop_length) * token_rate) + ") so a token is a whole number of mel frames";
  if (pooling != "flatten" && pooling != "mean" && pooling != "max" && pooling != "mean-max" && pooling != "mean-std")
    return "'pooling' must be one of \"flatten\", \"mean\", \"max\", \"mean-max\", \"mean-std\"";
  if (static_cast<long>(dim()) > 65536) return "token dimension above 65536 (n_mels x frames per token)";
  return {};
}

bool LogMelParams::parse(const std::string& json, LogMelParams* out, std::string* error) {
  static const std::set<std::string> known = {"sample_rate", "window", "win_length", "hop_length", "n_fft",
                                              "n_mels", "f_min", "f_max", "mel_scale", "mel_norm", "power",
                                              "log_offset", "token_rate", "pooling"};
  Json j;
  LogMelParams p;
  std::string e;
  if (!parse_object(json, known, &j, &e)) { *error = "log-mel: " + e; return false; }
  // f_max defaults to the model rate's Nyquist frequency when only sample_rate is given.
  const bool has_f_max = j.contains("f_max");
  const bool ok = read_key(j, "sample_rate", &p.sample_rate, &e) && read_key(j, "window", &p.window, &e) &&
                  read_key(j, "win_length", &p.win_length, &e) && read_key(j, "hop_length", &p.hop_length, &e) &&
                  read_key(j, "n_fft", &p.n_fft, &e) && read_key(j, "n_mels", &p.n_mels, &e) &&
                  read_key(j, "f_min", &p.f_min, &e) && read_key(j, "f_max", &p.f_max, &e) &&
                  read_key(j, "mel_scale", &p.mel_scale, &e) && read_key(j, "mel_norm", &p.mel_norm, &e) &&
                  read_key(j, "power", &p.power, &e) && read_key(j, "log_offset", &p.log_offset, &e) &&
                  read_key(j, "token_rate", &p.token_rate, &e) && read_key(j, "pooling", &p.pooling, &e);
  if (!ok) { *error = "log-mel: " + e; return false; }
  if (!has_f_max) p.f_max = p.sample_rate / 2.0;
  if (!(e = p.validate()).empty()) { *error = "log-mel: " + e; return false; }
  *out = p;
  return true;
}

std::string LogMelParams::to_json() const {
  Json j = {{"sample_rate", sample_rate}, {"window", window},       {"win_length", win_length},
            {"hop_length", hop_length},   {"n_fft", n_fft},         {"n_mels", n_mels},
            {"f_min", f_min},             {"f_max", f_max},         {"mel_scale", mel_scale},
            {"mel_norm", mel_norm},       {"power", power},         {"log_offset", log_offset},
            {"token_rate", token_rate},   {"pooling", pooling}};
  return j.dump();
}

int VideoMotionParams::dim() const {
  return thumb_width * thumb_height + 3 * grid_cols * grid_rows + kGlobalFeatures +
         camera_dim() + (motion_histograms ? kHistogramFeatures : 0) + blob_dim() + long_dim() + stem_dim();
}

int VideoMotionParams::long_dim() const {
  return long_baseline > 0 ? camera_dim() + kHistogramFeatures + blob_dim() : 0;
}

VideoMotionParams VideoMotionParams::long_baseline_params() const {
  VideoMotionParams p = *this;
  p.search_range = 2 * search_range;
  p.long_baseline = 0;
  p.stem_width = p.stem_height = 0;
  return p;
}

std::string VideoMotionParams::validate() const {
  std::string e;
  if (!(e = range("token_rate", token_rate, 1, 1000)).empty()) return e;
  if (!(e = range("analysis_width", analysis_width, 8, 1024)).empty()) return e;
  if (!(e = range("analysis_height", analysis_height, 8, 1024)).empty()) return e;
  if (!(e = range("thumb_width", thumb_width, 1, analysis_width)).empty()) return e + " (at most analysis_width)";
  if (!(e = range("thumb_height", thumb_height, 1, analysis_height)).empty()) return e + " (at most analysis_height)";
  if (analysis_width % thumb_width || analysis_height % thumb_height)
    return "the analysis size must be a multiple of the thumbnail size";
  if (!(e = range("grid_cols", grid_cols, 1, analysis_width / 4)).empty()) return e + " (blocks of 4+ pixels)";
  if (!(e = range("grid_rows", grid_rows, 1, analysis_height / 4)).empty()) return e + " (blocks of 4+ pixels)";
  if (analysis_width % grid_cols || analysis_height % grid_rows)
    return "the analysis size must be a multiple of the grid size";
  if (!(e = range("search_range", search_range, 1, 32)).empty()) return e;
  if (!(e = range("motion_threshold", motion_threshold, 0, 255)).empty()) return e;
  if (!(e = range("timestamp_tolerance_ns", static_cast<double>(timestamp_tolerance_ns), 0,
                  1e9 / token_rate / 2)).empty())
    return e + " (at most half a token)";
  if (!(e = range("long_baseline", long_baseline, 0, 50)).empty()) return e;
  if (long_baseline > 0 && !motion_histograms) return "long_baseline needs motion_histograms";
  if (long_baseline > 0 && 2 * search_range > 32) return "long_baseline needs search_range <= 16 (it searches twice as far)";
  if (camera_zoom && !compensate_camera) return "camera_zoom needs compensate_camera";
  if (!(e = range("motion_blobs", motion_blobs, 0, 8)).empty()) return e;
  if (motion_blobs > 0 && !motion_histograms) return "motion_blobs needs motion_histograms";
  if (!(e = range("stem_width", stem_width, 0, analysis_width)).empty()) return e + " (at most analysis_width)";
  if (!(e = range("stem_height", stem_height, 0, analysis_height)).empty()) return e + " (at most analysis_height)";
  if ((stem_width == 0) != (stem_height == 0)) return "stem_width and stem_height are both 0 (no stem part) or both set";
  if (stem_width > 0 && (analysis_width % stem_width || analysis_height % stem_height))
    return "the analysis size must be a multiple of the stem size";
  return {};
}

bool VideoMotionParams::parse(const std::string& json, VideoMotionParams* out, std::string* error) {
  static const std::set<std::string> known = {"token_rate",  "analysis_width", "analysis_height",
                                              "thumb_width", "thumb_height",   "grid_cols",
                                              "grid_rows",   "search_range",   "motion_threshold",
                                              "timestamp_tolerance_ns", "compensate_camera", "camera_zoom",
                                              "motion_histograms", "long_baseline", "motion_blobs", "stem_width",
                                              "stem_height"};
  Json j;
  VideoMotionParams p;
  std::string e;
  if (!parse_object(json, known, &j, &e)) { *error = "video-motion: " + e; return false; }
  const bool ok = read_key(j, "token_rate", &p.token_rate, &e) &&
                  read_key(j, "analysis_width", &p.analysis_width, &e) &&
                  read_key(j, "analysis_height", &p.analysis_height, &e) &&
                  read_key(j, "thumb_width", &p.thumb_width, &e) && read_key(j, "thumb_height", &p.thumb_height, &e) &&
                  read_key(j, "grid_cols", &p.grid_cols, &e) && read_key(j, "grid_rows", &p.grid_rows, &e) &&
                  read_key(j, "search_range", &p.search_range, &e) &&
                  read_key(j, "motion_threshold", &p.motion_threshold, &e) &&
                  read_key(j, "timestamp_tolerance_ns", &p.timestamp_tolerance_ns, &e) &&
                  read_key(j, "compensate_camera", &p.compensate_camera, &e) &&
                  read_key(j, "camera_zoom", &p.camera_zoom, &e) &&
                  read_key(j, "motion_histograms", &p.motion_histograms, &e) &&
                  read_key(j, "long_baseline", &p.long_baseline, &e) &&
                  read_key(j, "motion_blobs", &p.motion_blobs, &e) &&
                  read_key(j, "stem_width", &p.stem_width, &e) && read_key(j, "stem_height", &p.stem_height, &e);
  if (!ok) { *error = "video-motion: " + e; return false; }
  if (!(e = p.validate()).empty()) { *error = "video-motion: " + e; return false; }
  *out = p;
  return true;
}

std::string VideoMotionParams::to_json() const {
  Json j = {{"token_rate", token_rate},
            {"analysis_width", analysis_width},
            {"analysis_height", analysis_height},
            {"thumb_width", thumb_width},
            {"thumb_height", thumb_height},
            {"grid_cols", grid_cols},
            {"grid_rows", grid_rows},
            {"search_range", search_range},
            {"motion_threshold", motion_threshold},
            {"timestamp_tolerance_ns", timestamp_tolerance_ns},
            {"compensate_camera", compensate_camera},
            {"camera_zoom", camera_zoom},
            {"motion_histograms", motion_histograms},
            {"long_baseline", long_baseline},
            {"motion_blobs", motion_blobs},
            {"stem_width", stem_width},
            {"stem_height", stem_height}};
  return j.dump();
}

const char* to_string(PushStatus status) {
  switch (status) {
    case PushStatus::kOk: return "ok";
    case PushStatus::kEmpty: return "empty buffer";
    case PushStatus::kBadSize: return "buffer size is not a whole number of samples or frames";
    case PushStatus::kNonFinite: return "non-finite samples (buffer dropped, extractor reset)";
    case PushStatus::kOutOfOrder: return "timestamp not after the previous frame's (frame dropped)";
    case PushStatus::kNotConfigured: return "extractor has no usable input format";
  }
  return "unknown";
}

void TokenCollector::on_token(const float* features, int d, const TokenSpan& span) {
  dim = d;
  data.insert(data.end(), features, features + d);
  spans.push_back(span);
}

void TokenCollector::clear() {
  data.clear();
  spans.clear();
}

}  // namespace nystream
