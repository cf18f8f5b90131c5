// What model_bench.cc registers and main.cc's summary reads back.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nystream/nystream.h"

// The window-flatness sweep's assemblies, in the summary's order.
struct FlatAssembly {
  const char* name;  // benchmark name part: model/flat_n<N>/<name>/step
  const char* label;  // summary line: "flatness <label>: step n=1024 / n=32"
  int blocks;
  nystream::Assembly assembly;
  nystream::LandmarkSchedule schedule;
  double target;  // growth at most this; 0: none (a retroactive step grows with n)
};

inline std::vector<FlatAssembly> flat_assemblies() {
  using nystream::Assembly;
  using nystream::LandmarkSchedule;
  return {
      {"b1/nystrom_fixed_m16", "1 block fixed", 1, Assembly::kRetroactive, LandmarkSchedule::kFixed, 1.3},
      {"b2/nystrom_fixed_m16", "retroactive 2 blocks fixed", 2, Assembly::kRetroactive,
       LandmarkSchedule::kFixed, 0},
      {"stacked_b3/nystrom_fixed_m16", "stacked 3 fixed", 3, Assembly::kStacked,
       LandmarkSchedule::kFixed, 1.3},
      {"stacked_b3/nystrom_continual_m16", "stacked 3 continual", 3, Assembly::kStacked,
       LandmarkSchedule::kContinual, 1.3},
  };
}

// A model file benchmarked as it is: its step and its fair re-encode.
struct FileRuns {
  struct Source {
    std::string path;
    bool shipped = false;  // baked in at build time, else from --model
    double target = 0;     // step vs re-encode time ratio at least this; 0: none
  };
  Source source;
  std::string label;  // "shipped audio-events"
  std::string key;    // benchmark names: <key>/step, <key>/reencode
  std::shared_ptr<const nystream::Model> model;  // nullptr: error says why
  std::string error;
};

void register_model_benchmarks();
std::vector<FileRuns> register_file_benchmarks(const std::vector<FileRuns::Source>& files);
