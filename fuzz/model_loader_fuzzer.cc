// libFuzzer target: parse_model on arbitrary bytes. It must return a model or
// an error that names its source, never crash, leak, hang or read out of
// bounds (built with AddressSanitizer and UBSan). A model that loads is also
// streamed for a few tokens, so anything the loader accepts runs safely. Its
// scores are not checked: finite weights of magnitude ~1e30 legitimately
// overflow to NaN inside a step (the engine reports only non-finite input).
#include <nystream/model_file.h>
#include <nystream/stream_state.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string error;
  const auto model = nystream::parse_model(data, size, "fuzz", &error);
  if (!model) {
    if (error.rfind("fuzz: ", 0) != 0) std::abort();  // every error starts with the source
    return 0;
  }
  const nystream::ModelConfig& c = model->config();
  // Valid architectures can be large (ConfigLimits); a stream's caches grow with
  // window x (embed + ff), so only small ones are streamed here.
  if (static_cast<std::int64_t>(c.window) * (c.embed_dim + c.ff_dim) > (1 << 20)) return 0;
  nystream::StreamState stream(model);
  std::vector<float> features(c.input_dim), scores(c.classes);
  for (int t = 0; t < 2 * c.window + 1 && t < 64; ++t) {
    for (int i = 0; i < c.input_dim; ++i) features[i] = std::sin(0.7f * t + i);
    stream.step(features.data(), scores.data());
  }
  return 0;
}
