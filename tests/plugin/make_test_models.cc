// Writes random-weight models of each modality, with the default front-end
// parameters, for the plugin tests: make-test-models OUT_DIR.
#include <nystream/features/params.h>
#include <nystream/model_file.h>
#include <nystream/nystream.h>

#include <cstdio>
#include <string>

namespace {

bool write(const std::string& path, const std::string& modality, const std::string& extractor,
           const std::string& params, int input_dim, std::vector<std::string> classes,
           std::uint64_t seed) {
  nystream::ModelConfig c;
  c.window = 20;
  c.landmarks = 4;
  c.input_dim = input_dim;
  c.embed_dim = 32;
  c.heads = 4;
  c.ff_dim = 64;
  c.classes = static_cast<int>(classes.size());
  c.positional_period = 20;
  nystream::ModelInfo info;
  info.name = modality + "-random";
  info.modality = modality;
  info.classes = std::move(classes);
  info.feature_extractor = extractor;
  info.feature_params = params;
  info.provenance = R"({"data": "none: random weights for tests", "tool": "make-test-models"})";
  std::string error;
  auto model = nystream::Model::create(c, nystream::random_weights(c, seed), info, &error);
  if (!model || !nystream::save_model(*model, path, &error)) {
    std::fprintf(stderr, "make-test-models: %s: %s\n", path.c_str(), error.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make-test-models OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  const nystream::LogMelParams mel;
  const nystream::VideoMotionParams video;
  const bool ok =
      write(dir + "/audio-random.safetensors", "audio", "log-mel", mel.to_json(), mel.dim(),
            {"speech", "music", "alarm", "animal", "human_sounds", "background"}, 1) &&
      write(dir + "/video-random.safetensors", "video", "video-motion", video.to_json(), video.dim(),
            {"none", "walk_left", "walk_right", "approach", "recede", "jump", "wave", "fall"}, 2) &&
      write(dir + "/features-random.safetensors", "features", "identity", "{}", 8, {"a", "b", "c"}, 3) &&
      // An audio model whose input does not fit its own front end's tokens.
      write(dir + "/audio-mismatch.safetensors", "audio", "log-mel", mel.to_json(), 8, {"a", "b"}, 4);
  return ok ? 0 : 1;
}
