// nystream-infer, run as a process: its CSV and JSONL equal a StreamState on the
// same model and features, bit for bit; bad arguments exit 2, bad files exit 1
// with a message naming the file.
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "helpers.h"
#include "npy.h"

namespace nystream::testing {
namespace {

struct Outcome {
  int status;
  std::string out, err;
};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.push_back("");
  return parts;
}

class Infer : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* exe = std::getenv("NYSTREAM_INFER");
    ASSERT_NE(exe, nullptr) << "NYSTREAM_INFER not set (run through meson test)";
    exe_ = exe;
    model_ = small_model(small_config(LandmarkSchedule::kContinual, 2));
    std::string error;
    ASSERT_TRUE(save_model(*model_, model_path_, &error)) << error;
    // Row-major tokens x dims; token 20 is NaN (a non-finite row).
    const int dims = model_->config().input_dim;
    tokens_ = random_tokens(dims, 50, 5);  // dims x tokens column-major = tokens x dims row-major
    tokens_(3, 20) = std::nanf("");
    ASSERT_TRUE(cli::write_npy(features_path_, tokens_.data(), tokens_.cols(), dims, &error)) << error;
  }

  Outcome run(const std::string& arguments) {
    const std::string command = exe_ + " " + arguments + " >" + (dir_ / "out").string() + " 2>" +
                                (dir_ / "err").string();
    const int raw = std::system(command.c_str());
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_text(dir_ / "out"), read_text(dir_ / "err")};
  }

  // What the CLI should print: per token, the scores (or logits), or none.
  std::vector<std::vector<float>> expected(bool logits) {
    StreamState stream(model_);
    std::vector<std::vector<float>> out;
    std::vector<float> scores(model_->config().classes);
    for (Eigen::Index t = 0; t < tokens_.cols(); ++t) {
      if (stream.step(tokens_.col(t).data(), scores.data()) != StepStatus::kOk) {
        out.emplace_back();
        continue;
      }
      const auto l = stream.logits();
      out.push_back(logits ? std::vector<float>(l.data(), l.data() + l.size()) : scores);
    }
    return out;
  }

  void expect_csv(const std::string& csv, bool logits) {
    const auto lines = split(csv, '\n');
    ASSERT_EQ(lines.size(), tokens_.cols() + 2u);  // header, rows, "" after the last newline
    EXPECT_EQ(lines[0], "token,status,event 0,event 1,event 2,event 3");
    const auto want = expected(logits);
    for (std::size_t t = 0; t < want.size(); ++t) {
      const auto cells = split(lines[t + 1], ',');
      ASSERT_EQ(cells.size(), 6u) << lines[t + 1];
      EXPECT_EQ(cells[0], std::to_string(t));
      if (want[t].empty()) {
        EXPECT_EQ(lines[t + 1], std::to_string(t) + ",non-finite,,,,");
        continue;
      }
      EXPECT_EQ(cells[1], "ok");
      for (std::size_t c = 0; c < 4; ++c)
        EXPECT_EQ(std::strtof(cells[c + 2].c_str(), nullptr), want[t][c]) << "token " << t;
    }
  }

  std::string exe_;
  std::filesystem::path dir_ = temp_dir("infer");
  std::string model_path_ = (dir_ / "model.safetensors").string();
  std::string features_path_ = (dir_ / "features.npy").string();
  std::shared_ptr<const Model> model_;
  Eigen::MatrixXf tokens_;
};

TEST_F(Infer, CsvEqualsStreamState) {
  const Outcome r = run("--model " + model_path_ + " --input " + features_path_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  expect_csv(r.out, false);
}

TEST_F(Infer, LogitsToAFile) {
  const std::string out = (dir_ / "logits.csv").string();
  const Outcome r = run("--model=" + model_path_ + " --input=" + features_path_ + " --logits --output " +
                    out + " --format csv");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  expect_csv(read_text(out), true);
}

TEST_F(Infer, JsonLines) {
  const Outcome r = run("--format jsonl --model " + model_path_ + " --input " + features_path_ +
                    " --output -");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = split(r.out, '\n');
  const auto want = expected(false);
  ASSERT_EQ(lines.size(), want.size() + 1);
  for (std::size_t t = 0; t < want.size(); ++t) {
    const json row = json::parse(lines[t]);
    EXPECT_EQ(row["token"], t);
    if (want[t].empty()) {
      EXPECT_EQ(row["status"], "non-finite");
      EXPECT_TRUE(row["scores"].is_null());
      continue;
    }
    EXPECT_EQ(row["status"], "ok");
    ASSERT_EQ(row["scores"].size(), 4u);
    for (int c = 0; c < 4; ++c)
      EXPECT_EQ(static_cast<float>(row["scores"]["event " + std::to_string(c)].get<double>()),
                want[t][c]);
  }
  EXPECT_EQ(lines[0].rfind("{\"token\": 0, \"status\": \"ok\", \"scores\": {\"event 0\": ", 0), 0u)
      << lines[0];
}

// --recompute re-encodes each window with the batch model: equal to the stream
// (to float rounding) right after each continual landmark update, when the
// stream's landmarks are that window's segment means, and different between
// updates, when the stream's are stale.
TEST_F(Infer, RecomputeIsTheBatchModelOverEachWindow) {
  const Outcome r = run("--recompute --logits --model " + model_path_ + " --input " + features_path_);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = split(r.out, '\n');
  const auto want = expected(true);
  ASSERT_EQ(lines.size(), want.size() + 2);
  const int segment = model_->config().window / model_->config().landmarks;
  int fresh = 0;
  double stale_difference = 0;
  for (std::size_t t = 0; t < want.size(); ++t) {
    const auto cells = split(lines[t + 1], ',');
    if (want[t].empty()) {
      EXPECT_EQ(cells[1], "non-finite") << "token " << t;
      continue;
    }
    ASSERT_EQ(cells[1], "ok") << "token " << t;
    double difference = 0;
    for (std::size_t c = 0; c < 4; ++c)
      difference = std::max<double>(difference,
                                    std::abs(std::strtof(cells[c + 2].c_str(), nullptr) - want[t][c]));
    if ((t + 1) % segment == 0) {
      EXPECT_LT(difference, 2e-4) << "token " << t;
      ++fresh;
    } else {
      stale_difference = std::max(stale_difference, difference);
    }
  }
  EXPECT_GT(fresh, 10);
  EXPECT_GT(stale_difference, 1e-3);
}

TEST_F(Infer, Help) {
  const Outcome r = run("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("Usage: nystream-infer --model FILE.safetensors --input FEATURES.npy"),
            std::string::npos);
  for (const char* documented : {"--output", "--format", "--logits", "non-finite", "Exit status"})
    EXPECT_NE(r.out.find(documented), std::string::npos) << documented;
}

TEST_F(Infer, UsageErrorsExit2) {
  const std::string hint = "\nTry 'nystream-infer --help'.\n";
  struct Case {
    std::string arguments, message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "--model is required"},
           {"--model " + model_path_, "--input is required"},
           {"--model " + model_path_ + " --input " + features_path_ + " --format xml",
            "--format is 'xml', expected csv or jsonl"},
           {"--model " + model_path_ + " --input " + features_path_ + " --verbose",
            "unknown argument '--verbose'"},
           {"--model", "--model needs a value"},
           {"--model= --input x", "--model needs a non-empty value"},
       }) {
    const Outcome r = run(c.arguments);
    EXPECT_EQ(r.status, 2) << c.arguments;
    EXPECT_EQ(r.err, "nystream-infer: " + c.message + hint);
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(Infer, FileErrorsExit1) {
  const std::string absent = (dir_ / "absent.safetensors").string();
  Outcome r = run("--model " + absent + " --input " + features_path_);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "nystream-infer: " + absent + ": no such file\n");

  // A model file whose classifier lost its bias.
  FileParts parts = FileParts::split(read_bytes(model_path_));
  parts.header.erase("classifier.bias");
  const std::string broken = (dir_ / "broken.safetensors").string();
  write_bytes(broken, parts.join());
  r = run("--model " + broken + " --input " + features_path_);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "nystream-infer: " + broken + ": missing tensor classifier.bias [4]\n");

  // Features of the wrong width.
  const std::string narrow = (dir_ / "narrow.npy").string();
  std::string error;
  ASSERT_TRUE(cli::write_npy(narrow, tokens_.data(), 10, 5, &error)) << error;
  r = run("--model " + model_path_ + " --input " + narrow);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "nystream-infer: " + narrow + ": tokens have 5 features, the model " +
                       model_path_ + " expects input_dim = 8\n");

  // Not a .npy file; an output that cannot be created.
  r = run("--model " + model_path_ + " --input " + model_path_);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "nystream-infer: " + model_path_ + ": not a .npy file (no \\x93NUMPY magic)\n");
  r = run("--model " + model_path_ + " --input " + features_path_ + " --output /nonexistent/x.csv");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "nystream-infer: /nonexistent/x.csv: cannot create (No such file or directory)\n");
}

}  // namespace
}  // namespace nystream::testing
