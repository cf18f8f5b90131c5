// nystream-infer: runs a model file over a feature file, one token per row, and
// writes each token's scores as CSV or JSON lines. The numbers are what a
// StreamState gives, printed with %.9g so every float32 reads back exactly.
#include <nystream/batch.h>
#include <nystream/model_file.h>
#include <nystream/ops.h>
#include <nystream/stream_state.h>

#include <algorithm>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "npy.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // unreadable or invalid model / features, write error
constexpr int kExitUsage = 2;

constexpr char kHelp[] = R"(Usage: nystream-infer --model FILE.safetensors --input FEATURES.npy
                      [--output PATH|-] [--format csv|jsonl] [--logits] [--recompute]

Runs a Nystream model over a feature file as one stream, token by token, and
writes the scores of every token.

  --model FILE     model file (safetensors, docs/model-format.md)
  --input FILE     features: .npy array of float32 (or float64), tokens x dims,
                   dims = the model's input_dim (a 1-D array is one dim per token);
                   the rows are what the model's feature extractor produces
  --output PATH    where to write; '-' (the default) is standard output
  --format FMT     csv (default) or jsonl
  --logits         write pre-activation logits instead of sigmoid/softmax scores
  --recompute      re-encode the whole window (stacked: the receptive field,
                   blocks x (n - 1) + 1 tokens) with the batch model at every token
                   instead of stepping the continual state: the batch Nystromformer
                   (landmarks = the window's segment means, fresh at every token) or,
                   for a softmax model, the full transformer. A baseline: O(n^2) per token
  -h, --help       this text

CSV: a header 'token,status,<class names>', then one row per token. status is
'ok', or 'non-finite' when the token's features (or their projection) hold NaN or
Inf: the token enters the window as padding and its score cells are empty.
JSONL: one object per token,
  {"token": 0, "status": "ok", "scores": {"<class>": 0.25, ...}}
with "scores": null for a non-finite token. Numbers are printed with %.9g, so
float32 values round-trip exactly.

Exit status: 0 success, 1 unreadable or invalid model, features or output
(the message on stderr names the file and the problem), 2 usage error.
)";

enum class Format { kCsv, kJsonl };

struct Options {
  std::string model, input, output = "-";
  Format format = Format::kCsv;
  bool logits = false;
  bool recompute = false;
};

int usage_error(const std::string& what) {
  std::fprintf(stderr, "nystream-infer: %s\nTry 'nystream-infer --help'.\n", what.c_str());
  return kExitUsage;
}

// Parses argv into *options; returns -1 to go on, else the exit status.
int parse_arguments(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const bool takes_value = arg == "--model" || arg == "--input" || arg == "--output" ||
                             arg == "--format" || arg.rfind("--model=", 0) == 0 ||
                             arg.rfind("--input=", 0) == 0 || arg.rfind("--output=", 0) == 0 ||
                             arg.rfind("--format=", 0) == 0;
    if (takes_value) {
      const std::size_t equals = arg.find('=');
      if (equals != std::string::npos) {
        value = arg.substr(equals + 1);
        arg.resize(equals);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return usage_error(arg + " needs a value");
      }
      if (value.empty()) return usage_error(arg + " needs a non-empty value");
    }
    if (arg == "-h" || arg == "--help") {
      std::fputs(kHelp, stdout);
      return kExitOk;
    } else if (arg == "--model") {
      options->model = value;
    } else if (arg == "--input") {
      options->input = value;
    } else if (arg == "--output") {
      options->output = value;
    } else if (arg == "--format") {
      if (value == "csv")
        options->format = Format::kCsv;
      else if (value == "jsonl")
        options->format = Format::kJsonl;
      else
        return usage_error("--format is '" + value + "', expected csv or jsonl");
    } else if (arg == "--logits") {
      options->logits = true;
    } else if (arg == "--recompute") {
      options->recompute = true;
    } else {
      return usage_error("unknown argument '" + arg + "'");
    }
  }
  if (options->model.empty()) return usage_error("--model is required");
  if (options->input.empty()) return usage_error("--input is required");
  return -1;
}

// RFC 4180: quote a field holding a comma, quote or line break.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// %.9g, the shortest fixed precision that round-trips every float32.
std::string number(float value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", static_cast<double>(value));
  return text;
}

class Writer {
 public:
  Writer(Format format, std::vector<std::string> classes) : format_(format), classes_(std::move(classes)) {
    for (const std::string& name : classes_) json_keys_.push_back(nlohmann::json(name).dump());
  }

  std::string header() const {
    if (format_ == Format::kJsonl) return {};
    std::string line = "token,status";
    for (const std::string& name : classes_) line += "," + csv_field(name);
    return line + "\n";
  }

  // values: the token's scores, or nullptr for a non-finite token.
  std::string row(long long token, const float* values) const {
    std::string line;
    if (format_ == Format::kCsv) {
      line = std::to_string(token) + (values ? ",ok" : ",non-finite");
      for (std::size_t c = 0; c < classes_.size(); ++c) line += "," + (values ? number(values[c]) : "");
      return line + "\n";
    }
    line = "{\"token\": " + std::to_string(token) + ", \"status\": \"" +
           (values ? "ok" : "non-finite") + "\", \"scores\": ";
    if (!values) return line + "null}\n";
    line += "{";
    for (std::size_t c = 0; c < classes_.size(); ++c)
      // JSON has no NaN/Inf; an overflowing logit is written as null.
      line += (c ? ", " : "") + json_keys_[c] + ": " +
              (std::isfinite(values[c]) ? number(values[c]) : "null");
    return line + "}}\n";
  }

 private:
  Format format_;
  std::vector<std::string> classes_;
  std::vector<std::string> json_keys_;  // quoted, escaped class names
};

// The batch model over the receptive_field() tokens ending at each step (n unless
// stacked): what the continual state equals for continual-landmark models only
// right after a landmark update, and at every step for softmax and fixed-landmark
// models.
class WindowRecompute {
 public:
  explicit WindowRecompute(const nystream::Model& model)
      : batch_(model, /*model_pinv=*/true),
        n_(model.config().receptive_field()),
        dims_(model.config().input_dim) {
    window_.tokens.setZero(dims_, n_);
    window_.times.assign(n_, 0);
    window_.valid.assign(n_, 0);
  }

  // Token t of the stream (rows of `all`); false for a non-finite token, which
  // enters the window as padding, as StreamState::step does.
  bool step(const float* all, std::int64_t t, float* logits) {
    auto finite_row = [&](std::int64_t i) {
      return Eigen::Map<const Eigen::VectorXf>(all + i * dims_, dims_).allFinite();
    };
    for (int j = 0; j < n_; ++j) {
      const std::int64_t i = t - n_ + 1 + j;
      const bool valid = i >= 0 && finite_row(i);
      window_.times[j] = std::max<std::int64_t>(i, 0);
      window_.valid[j] = valid;
      if (valid)
        window_.tokens.col(j) = Eigen::Map<const Eigen::VectorXf>(all + i * dims_, dims_);
      else
        window_.tokens.col(j).setZero();
    }
    if (!window_.valid[n_ - 1]) return false;
    const Eigen::VectorXf out = batch_.forward(window_, nullptr);
    std::copy(out.data(), out.data() + out.size(), logits);
    return out.allFinite();
  }

 private:
  nystream::BatchModel<float> batch_;
  nystream::BatchModel<float>::Window window_;
  int n_, dims_;
};

int run(const Options& options) {
  std::string error;
  const auto model = nystream::load_model(options.model, &error);
  if (!model) {
    std::fprintf(stderr, "nystream-infer: %s\n", error.c_str());
    return kExitFailure;
  }
  nystream::cli::NpyArray features;
  if (!nystream::cli::read_npy(options.input, &features, &error)) {
    std::fprintf(stderr, "nystream-infer: %s\n", error.c_str());
    return kExitFailure;
  }
  const int dims = model->config().input_dim;
  if (features.cols() != dims) {
    std::fprintf(stderr,
                 "nystream-infer: %s: tokens have %lld features, the model %s expects input_dim = "
                 "%d\n",
                 options.input.c_str(), static_cast<long long>(features.cols()),
                 options.model.c_str(), dims);
    return kExitFailure;
  }

  const bool to_stdout = options.output == "-";
  std::FILE* out = to_stdout ? stdout : std::fopen(options.output.c_str(), "w");
  if (!out) {
    std::fprintf(stderr, "nystream-infer: %s: cannot create (%s)\n", options.output.c_str(),
                 std::strerror(errno));
    return kExitFailure;
  }
  const Writer writer(options.format, model->info().classes);
  nystream::StreamState stream(model);
  WindowRecompute recompute(*model);
  const int classes = model->config().classes;
  std::vector<float> scores(classes), logits(classes);
  std::string text = writer.header();
  bool ok = std::fputs(text.c_str(), out) >= 0;
  for (std::int64_t t = 0; t < features.rows() && ok; ++t) {
    const float* token = features.data.data() + t * dims;
    bool finite;
    if (options.recompute) {
      finite = recompute.step(features.data.data(), t, logits.data());
      nystream::activate(model->config().activation,
                         Eigen::Map<const Eigen::VectorXf>(logits.data(), classes), scores.data());
    } else {
      finite = stream.step(token, scores.data()) == nystream::StepStatus::kOk;
      std::copy(stream.logits().data(), stream.logits().data() + classes, logits.data());
    }
    const float* values = !finite ? nullptr : options.logits ? logits.data() : scores.data();
    text = writer.row(t, values);
    ok = std::fputs(text.c_str(), out) >= 0;
  }
  ok = (to_stdout ? std::fflush(out) : std::fclose(out)) == 0 && ok;
  if (!ok) {
    std::fprintf(stderr, "nystream-infer: %s: write error (%s)\n",
                 to_stdout ? "standard output" : options.output.c_str(), std::strerror(errno));
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  const int status = parse_arguments(argc, argv, &options);
  if (status >= 0) return status;
  try {
    return run(options);
  } catch (const std::exception& e) {  // bad_alloc on a huge feature file
    std::fprintf(stderr, "nystream-infer: %s\n", e.what());
    return kExitFailure;
  }
}
