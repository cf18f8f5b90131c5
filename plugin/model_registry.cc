#include "model_registry.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "nystream/model_file.h"

namespace nystream::plugin {

namespace {

struct Entry {
  std::string path;
  std::weak_ptr<const Model> model;
};

std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> entries;
  return entries;
}

}  // namespace

std::shared_ptr<const Model> acquire_model(const std::string& path, const std::string& instance_id,
                                           std::string* error) {
  if (instance_id.empty()) return load_model(path, error);
  // Held across the load so two elements starting together load once.
  std::lock_guard<std::mutex> lock(registry_mutex());
  Entry& entry = registry()[instance_id];
  if (auto shared = entry.model.lock()) {
    if (entry.path == path) return shared;
    *error = "model-instance-id \"" + instance_id + "\" is already used for " + entry.path +
             ", not " + path;
    return nullptr;
  }
  auto model = load_model(path, error);
  if (model) entry = {path, model};
  return model;
}

std::string find_default_model(const std::string& name, std::string* searched) {
  std::vector<std::string> dirs;
  auto add_list = [&dirs](const std::string& list) {
    std::size_t start = 0;
    while (start <= list.size()) {
      const std::size_t end = std::min(list.find(':', start), list.size());
      if (end > start) dirs.push_back(list.substr(start, end - start));
      start = end + 1;
    }
  };
  if (const char* env = std::getenv("NYSTREAM_MODEL_PATH")) add_list(env);
  add_list(NYSTREAM_MODEL_DIRS);
  searched->clear();
  for (const std::string& dir : dirs) {
    const std::filesystem::path path = std::filesystem::path(dir) / name;
    std::error_code error;
    if (std::filesystem::is_regular_file(path, error)) return path.string();
    *searched += (searched->empty() ? "" : ", ") + dir;
  }
  return {};
}

}  // namespace nystream::plugin
