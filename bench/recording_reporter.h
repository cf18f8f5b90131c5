// A console reporter that also keeps each run's CPU time per iteration, for the
// ratio summaries the benchmark mains print after the table.
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

namespace nystream::bench {

struct Result {
  double seconds = 0;  // CPU time per iteration
  double flops = 0;    // the FLOPs/step counter
  std::string error;   // non-empty: the run was skipped, this says why
};

// The console table, plus each run's CPU time per iteration for the summary
// (the fastest repetition when --benchmark_repetitions is given). CPU time, not
// real time: every run is single-threaded, and on a shared machine real time
// adds whatever the scheduler gave other processes (2x swings on a loaded
// 2-core machine); on an idle machine the two agree.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      const std::string& name = run.run_name.function_name;
      if (!results_.count(name)) order_.push_back(name);
      Result& r = results_[name];
      if (run.error_occurred) {
        r.error = run.error_message;
        continue;
      }
      const double seconds = run.cpu_accumulated_time / static_cast<double>(run.iterations);
      if (r.seconds == 0 || seconds < r.seconds) r.seconds = seconds;
      const auto flops = run.counters.find("FLOPs/step");
      if (flops != run.counters.end()) r.flops = flops->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  const std::vector<std::string>& order() const { return order_; }
  // nullptr when the run is absent (filtered out) or skipped.
  const Result* find(const std::string& name) const {
    const auto it = results_.find(name);
    return it == results_.end() || !it->second.error.empty() ? nullptr : &it->second;
  }
  const Result* find_any(const std::string& name) const {
    const auto it = results_.find(name);
    return it == results_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, Result> results_;
  std::vector<std::string> order_;
};

}  // namespace nystream::bench
