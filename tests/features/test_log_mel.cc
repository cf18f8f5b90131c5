// log-mel front end: params, streaming == offline, resampling, bad input, timing.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "signals.h"

namespace nystream::testing {
namespace {

std::unique_ptr<LogMelExtractor> make(const AudioFormat& f, const LogMelParams& p = LogMelParams{}) {
  std::string error;
  auto x = LogMelExtractor::create(p, f, &error);
  EXPECT_TRUE(x) << error;
  return x;
}

// Offline: the whole signal in one buffer, then drain.
template <typename T>
TokenCollector offline(LogMelExtractor& x, const std::vector<T>& samples) {
  TokenCollector out;
  x.push(samples.data(), samples.size() * sizeof(T), 0, out);
  x.drain(out);
  return out;
}

// Streaming: random buffer sizes from 1 sample frame up to `max_frames`.
template <typename T>
TokenCollector streamed(LogMelExtractor& x, const std::vector<T>& samples, int channels, int max_frames,
                        std::uint32_t seed) {
  TokenCollector out;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> size(1, max_frames);
  std::size_t pos = 0;
  bool first = true;
  while (pos < samples.size()) {
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(size(rng)) * channels, samples.size() - pos);
    EXPECT_EQ(x.push(samples.data() + pos, n * sizeof(T), first ? 0 : kNoTimestamp, out), PushStatus::kOk);
    first = false;
    pos += n;
  }
  x.drain(out);
  return out;
}

void expect_identical(const TokenCollector& a, const TokenCollector& b, const std::string& what) {
  ASSERT_EQ(a.count(), b.count()) << what;
  ASSERT_GT(a.count(), 0) << what;
  ASSERT_EQ(a.data.size(), b.data.size()) << what;
  EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)), 0) << what << ": values differ";
  for (std::int64_t i = 0; i < a.count(); ++i) {
    EXPECT_EQ(a.spans[i].start_ns, b.spans[i].start_ns) << what;
    EXPECT_EQ(a.spans[i].end_ns, b.spans[i].end_ns) << what;
  }
}

TEST(LogMelParams, DefaultsAndRoundTrip) {
  LogMelParams p;
  EXPECT_EQ(p.validate(), "");
  EXPECT_EQ(p.frames_per_token(), 10);
  EXPECT_EQ(p.dim(), 128);
  LogMelParams q;
  std::string error;
  ASSERT_TRUE(LogMelParams::parse(p.to_json(), &q, &error)) << error;
  EXPECT_EQ(q.to_json(), p.to_json());
  ASSERT_TRUE(LogMelParams::parse("{\"pooling\": \"flatten\", \"n_mels\": 40}", &q, &error)) << error;
  EXPECT_EQ(q.dim(), 400);
  ASSERT_TRUE(LogMelParams::parse("{\"sample_rate\": 8000, \"hop_length\": 80}", &q, &error)) << error;
  EXPECT_EQ(q.f_max, 4000.0);  // follows the rate when not given
}

TEST(LogMelParams, ErrorsNameTheKey) {
  LogMelParams q;
  std::string error;
  EXPECT_FALSE(LogMelParams::parse("{\"n_mel\": 64}", &q, &error));
  EXPECT_NE(error.find("unknown key 'n_mel'"), std::string::npos) << error;
  EXPECT_FALSE(LogMelParams::parse("{\"n_mels\": \"64\"}", &q, &error));
  EXPECT_NE(error.find("'n_mels' must be an integer"), std::string::npos) << error;
  EXPECT_FALSE(LogMelParams::parse("{\"hop_length\": 150}", &q, &error));
  EXPECT_NE(error.find("multiple of hop_length * token_rate"), std::string::npos) << error;
  EXPECT_FALSE(LogMelParams::parse("{\"f_max\": 9000}", &q, &error));
  EXPECT_NE(error.find("'f_max'"), std::string::npos) << error;
  EXPECT_FALSE(LogMelParams::parse("[1]", &q, &error));
  EXPECT_FALSE(LogMelParams::parse("{", &q, &error));
  EXPECT_NE(error.find("not valid JSON"), std::string::npos) << error;
  EXPECT_FALSE(LogMelParams::parse("{\"n_fft\": 511}", &q, &error));
  EXPECT_FALSE(LogMelParams::parse("{\"win_length\": 1024}", &q, &error));
}

TEST(LogMel, StreamingEqualsOfflineForRandomSplits) {
  struct Case { int rate, channels; SampleFormat format; std::string pooling; };
  const std::vector<Case> cases = {{16000, 1, SampleFormat::kF32, "mean-std"}, {44100, 2, SampleFormat::kS16, "flatten"},
                                   {48000, 2, SampleFormat::kF32, "mean-max"}, {22050, 6, SampleFormat::kS16, "mean"},
                                   {8000, 1, SampleFormat::kS16, "max"}};
  for (const Case& c : cases) {
    LogMelParams p;
    p.pooling = c.pooling;
    const AudioFormat f{c.rate, c.channels, c.format};
    const std::string what = std::to_string(c.rate) + " Hz x" + std::to_string(c.channels) + " " + c.pooling;
    const std::vector<float> audio = test_audio(c.rate, c.channels, 3.37);
    auto x = make(f, p);
    if (c.format == SampleFormat::kF32) {
      const TokenCollector whole = offline(*x, audio);
      EXPECT_EQ(whole.count(), 33) << what;
      for (std::uint32_t seed : {1u, 2u, 3u}) {
        for (int max_frames : {1, 7, 500, 40000}) {
          if (max_frames == 1 && seed > 1) continue;  // sample by sample once is enough
          expect_identical(whole, streamed(*x, audio, c.channels, max_frames, seed), what + " split");
        }
      }
    } else {
      const std::vector<std::int16_t> s16 = to_s16(audio);
      const TokenCollector whole = offline(*x, s16);
      EXPECT_EQ(whole.count(), 33) << what;
      for (std::uint32_t seed : {1u, 2u, 3u})
        for (int max_frames : {3, 333, 20000})
          expect_identical(whole, streamed(*x, s16, c.channels, max_frames, seed), what + " split");
    }
  }
}

TEST(LogMel, TokenSpansFollowTheFirstTimestampAndTheSampleCount) {
  auto x = make({48000, 2, SampleFormat::kF32});
  const std::vector<float> audio = test_audio(48000, 2, 1.05);
  TokenCollector out;
  const std::int64_t t0 = 5'000'000'000;
  x->push(audio.data(), audio.size() / 2 * sizeof(float), t0, out);  // half the frames
  x->push(audio.data() + audio.size() / 2, audio.size() / 2 * sizeof(float), 123, out);  // later pts ignored
  x->drain(out);
  ASSERT_EQ(out.count(), 10);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(out.spans[k].index, k);
    EXPECT_EQ(out.spans[k].start_ns, t0 + k * 100'000'000LL);
    EXPECT_EQ(out.spans[k].end_ns, t0 + (k + 1) * 100'000'000LL);
  }
  EXPECT_GT(x->latency_ns(), 100'000'000);  // at least a token
  EXPECT_LT(x->latency_ns(), 200'000'000);
}

// 8, 22.05, 44.1 and 48 kHz stereo become 16 kHz mono: the same tone gives the
// same features as the tone synthesised at 16 kHz mono.
TEST(LogMel, ResamplesAnyRateStereoToTheModelRateMono) {
  LogMelParams p;
  p.pooling = "mean";
  auto ref = make({16000, 1, SampleFormat::kF32}, p);
  const TokenCollector expected = offline(*ref, sine(16000, 1, 2.0, 440.0));
  ASSERT_EQ(expected.count(), 20);
  for (int rate : {8000, 22050, 44100, 48000}) {
    auto x = make({rate, 2, SampleFormat::kS16}, p);
    const TokenCollector got = offline(*x, to_s16(sine(rate, 2, 2.0, 440.0)));
    ASSERT_EQ(got.count(), expected.count()) << rate;  // model-rate sample count
    double max_error = 0;
    int peak_band = 0;
    // Interior tokens (the resampler's start-up transient is in token 0), bands
    // below 3.5 kHz (8 kHz input has nothing above 4 kHz).
    for (int k = 1; k < got.count() - 1; ++k)
      for (int m = 0; m < 64; ++m) {
        const float e = expected.data[k * 64 + m], g = got.data[k * 64 + m];
        if (e > expected.data[k * 64 + peak_band]) peak_band = m;
        if (e > std::log(1e-2)) max_error = std::max(max_error, std::abs(double(e - g)));
      }
    std::printf("%5d Hz stereo -> 16 kHz mono: max |log-mel difference| on bands with mel power > 1e-2 = %.4f\n",
                rate, max_error);
    EXPECT_LT(max_error, 0.05) << rate;
  }
}

TEST(LogMel, BadInputIsReportedNotTokenised) {
  auto x = make({16000, 2, SampleFormat::kS16});
  TokenCollector out;
  const std::vector<std::int16_t> audio = to_s16(test_audio(16000, 2, 1.0));
  EXPECT_EQ(x->push(audio.data(), 0, 0, out), PushStatus::kEmpty);
  EXPECT_EQ(x->push(nullptr, 100, 0, out), PushStatus::kEmpty);
  EXPECT_EQ(x->push(audio.data(), 3, 0, out), PushStatus::kBadSize);  // odd byte count
  EXPECT_EQ(x->push(audio.data(), 6, 0, out), PushStatus::kBadSize);  // 1.5 stereo frames
  EXPECT_EQ(out.count(), 0);
  // Rejected buffers changed nothing: the stream equals a fresh one.
  x->push(audio.data(), audio.size() * 2, 0, out);
  x->drain(out);
  auto fresh = make({16000, 2, SampleFormat::kS16});
  expect_identical(out, offline(*fresh, audio), "after rejected buffers");

  std::string error;
  EXPECT_FALSE(LogMelExtractor::create(LogMelParams{}, {0, 1, SampleFormat::kF32}, &error));
  EXPECT_NE(error.find("rate"), std::string::npos) << error;
  EXPECT_FALSE(LogMelExtractor::create(LogMelParams{}, {16000, 0, SampleFormat::kF32}, &error));
  EXPECT_NE(error.find("channel"), std::string::npos) << error;
  LogMelParams bad;
  bad.n_mels = 0;
  EXPECT_FALSE(LogMelExtractor::create(bad, {16000, 1, SampleFormat::kF32}, &error));
  EXPECT_NE(error.find("n_mels"), std::string::npos) << error;
}

// A buffer with NaN or Inf is dropped and resets the extractor: no token mixes
// it in, and the tokens after it are those of a fresh stream starting where the
// bad buffer ended.
TEST(LogMel, NonFiniteSamplesResetAndKeepTime) {
  auto x = make({16000, 1, SampleFormat::kF32});
  const std::vector<float> a = test_audio(16000, 1, 0.55, 1), b = test_audio(16000, 1, 1.0, 2);
  std::vector<float> bad(1600, 0.1f);
  for (float v : {NAN, INFINITY, -INFINITY}) {
    bad[777] = v;
    TokenCollector out;
    EXPECT_EQ(x->push(a.data(), a.size() * 4, 0, out), PushStatus::kOk);
    EXPECT_EQ(out.count(), 5);
    EXPECT_EQ(x->push(bad.data(), bad.size() * 4, kNoTimestamp, out), PushStatus::kNonFinite);
    EXPECT_EQ(x->push(b.data(), b.size() * 4, kNoTimestamp, out), PushStatus::kOk);
    x->drain(out);
    for (float f : out.data) ASSERT_TRUE(std::isfinite(f));
    auto fresh = make({16000, 1, SampleFormat::kF32});
    TokenCollector expected;
    fresh->push(b.data(), b.size() * 4, 550'000'000 + 100'000'000, expected);
    fresh->drain(expected);
    ASSERT_EQ(out.count(), 5 + expected.count());
    EXPECT_EQ(std::memcmp(out.data.data() + 5 * x->dim(), expected.data.data(), expected.data.size() * 4), 0);
    EXPECT_EQ(out.spans[5].index, 0);  // a new segment
    EXPECT_EQ(out.spans[5].start_ns, 650'000'000);
    x->reset();
  }
}

// A rate or channel change is a configure(): a documented reset.
TEST(LogMel, FormatChangeMidStreamResets) {
  auto x = make({44100, 2, SampleFormat::kS16});
  TokenCollector out;
  const auto a = to_s16(test_audio(44100, 2, 0.75));
  x->push(a.data(), a.size() * 2, 0, out);
  EXPECT_EQ(x->configure({22050, 1, SampleFormat::kF32}), "");
  const auto b = test_audio(22050, 1, 1.0);
  TokenCollector after;
  x->push(b.data(), b.size() * 4, 2'000'000'000, after);
  x->drain(after);
  auto fresh = make({22050, 1, SampleFormat::kF32});
  TokenCollector expected;
  fresh->push(b.data(), b.size() * 4, 2'000'000'000, expected);
  fresh->drain(expected);
  expect_identical(after, expected, "after a format change");
  EXPECT_NE(x->configure({22050, 100, SampleFormat::kF32}), "");
  EXPECT_EQ(x->push(b.data(), b.size() * 4, 0, after), PushStatus::kNotConfigured);
}

TEST(LogMel, ResetIsAFreshStream) {
  auto x = make({44100, 2, SampleFormat::kF32});
  const auto a = test_audio(44100, 2, 0.73, 3), b = test_audio(44100, 2, 1.5, 4);
  TokenCollector ignored;
  x->push(a.data(), a.size() * 4, 0, ignored);
  x->reset();
  auto fresh = make({44100, 2, SampleFormat::kF32});
  expect_identical(offline(*x, b), offline(*fresh, b), "after reset");
}

}  // namespace
}  // namespace nystream::testing
