// Models shared between elements: elements with the same model-instance-id use
// one loaded Model (weights are immutable); each keeps its own StreamState.
#pragma once

#include <memory>
#include <string>

#include "nystream/model.h"

namespace nystream::plugin {

// Loads `path`, or returns the model already loaded under `instance_id` (empty:
// never shared). An id already bound to another path is an error, so two
// elements cannot silently run different models under one id. The registry
// holds models weakly: the last element to let go frees it.
std::shared_ptr<const Model> acquire_model(const std::string& path, const std::string& instance_id,
                                           std::string* error);

// The path of a shipped model file `name`: the first directory holding it among
// $NYSTREAM_MODEL_PATH (colon-separated), the installed models directory and the
// source tree's models/ (an uninstalled build). Empty when none has it; *searched
// then lists the directories tried.
std::string find_default_model(const std::string& name, std::string* searched);

}  // namespace nystream::plugin
