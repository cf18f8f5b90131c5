#include "model_registry.h"

#include <map>
#include <mutex>

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

}  // namespace nystream::plugin
