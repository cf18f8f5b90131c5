// nystream-bench: runs every registered benchmark (Google Benchmark flags such as
// --benchmark_filter apply), then prints ratios computed from that one run: the
// model files' continual step against the fair re-encode of the same model,
// continual step against batch re-encoding, window-length flatness of every
// assembly, and attention-only time ratios against FLOP ratios. Targets are
// informational; the exit status does not depend on them.
//
//   nystream-bench [--model FILE.safetensors]... [--benchmark_* flags]
//
// The shipped models (paths baked in at build time) are always benchmarked;
// --model adds more files.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "model_runs.h"
#include "recording_reporter.h"

void register_attention_benchmarks();  // attention_bench.cc

namespace {

using nystream::bench::RecordingReporter;
using nystream::bench::Result;

std::vector<std::string> split(const std::string& name) {
  std::vector<std::string> parts(1);
  for (char ch : name) {
    if (ch == '/')
      parts.emplace_back();
    else
      parts.back() += ch;
  }
  return parts;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string format_time(const Result* r) {
  if (!r) return "n/a";
  char buf[32];
  const double s = r->seconds;
  if (s >= 1e-3)
    std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  else if (s >= 1e-6)
    std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.0f ns", s * 1e9);
  return buf;
}

std::string format_ratio(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, r >= 100 ? "%.0fx" : r >= 10 ? "%.1fx" : "%.2fx", r);
  return buf;
}

// "time x (FLOP x)" of slow over fast, or n/a.
std::string ratios(const Result* slow, const Result* fast) {
  if (!slow || !fast) return "n/a";
  std::string out = format_ratio(slow->seconds / fast->seconds);
  if (slow->flops > 0 && fast->flops > 0) out += " (" + format_ratio(slow->flops / fast->flops) + ")";
  return out;
}

// Counts the verdicts it hands out; "n/a" when a run the ratio needs is absent.
struct Tally {
  int pass = 0, miss = 0, missing = 0;
  const char* judge(bool available, bool met) {
    if (!available) {
      ++missing;
      return "n/a";
    }
    ++(met ? pass : miss);
    return met ? "PASS" : "MISS";
  }
};

// One named target: slow / fast time ratio at least `at_least`.
void speedup_target(Tally& tally, const char* label, const Result* slow, const Result* fast,
                    double at_least) {
  const bool known = slow && fast;
  const double ratio = known ? slow->seconds / fast->seconds : 0;
  char target[32];
  std::snprintf(target, sizeof target, ">= %gx", at_least);
  std::printf("%-48s %-8s target %-10s %s\n", (std::string(label) + ":").c_str(),
              known ? format_ratio(ratio).c_str() : "n/a", target, tally.judge(known, ratio >= at_least));
}

// Continual step against batch re-encoding, for the published configs.
void whole_model(const RecordingReporter& rep, Tally& tally) {
  std::printf("\nWhole model, per token: continual step vs batch re-encoding of the window\n"
              "time ratio (FLOP ratio from flops.h). batch: the receptive field, last layer for the\n"
              "newest token only; plain encoder: batch softmax with every layer over all n tokens;\n"
              "batch Nystrom uses the step's landmark schedule (fixed: the model's pinv)\n");
  std::printf("%-44s %10s %20s %20s %20s\n", "config/assembly/variant", "step", "vs batch softmax",
              "vs plain encoder", "vs batch Nystrom");
  std::vector<std::string> skipped;
  for (const std::string& name : rep.order()) {
    const std::vector<std::string> p = split(name);
    if (p.size() != 5 || p[0] != "model" || p[4] != "step" || starts_with(p[1], "sweep_") ||
        starts_with(p[1], "flat_"))
      continue;
    const std::string label = p[1] + "/" + p[2] + "/" + p[3];
    const Result* step = rep.find(name);
    if (!step) {
      skipped.push_back(label + ": " + rep.find_any(name)->error);
      continue;
    }
    const std::string prefix = "model/" + p[1] + "/" + p[2] + "/";
    const bool softmax_step = p[3] == "softmax";
    std::printf("%-44s %10s %20s %20s %20s\n", label.c_str(), format_time(step).c_str(),
                ratios(rep.find(prefix + "softmax/batch"), step).c_str(),
                ratios(rep.find(prefix + "softmax/batch_all_rows"), step).c_str(),
                softmax_step ? "-" : ratios(rep.find(prefix + p[3] + "/batch"), step).c_str());
  }
  for (const std::string& s : skipped) std::printf("not run: %s\n", s.c_str());
  const std::string audio = "model/audio_n120/b1/";
  const Result* step = rep.find(audio + "nystrom_fixed_m8/step");
  speedup_target(tally, "audio 1 block fixed m=8 vs batch softmax", rep.find(audio + "softmax/batch"),
                 step, 30);
  speedup_target(tally, "audio 1 block fixed m=8 vs plain encoder",
                 rep.find(audio + "softmax/batch_all_rows"), step, 30);
}

// Window sweep: the fixed-landmark step should not grow with n.
void sweep(const RecordingReporter& rep, Tally& tally) {
  std::printf("\nWindow sweep (E=192, h=16, F=1024, m=8, 1 block), whole model per token\n");
  std::printf("%6s %12s %12s %12s %14s %16s %16s %16s\n", "n", "fixed step", "softmax step",
              "batch", "plain encoder", "fixed vs batch", "fixed vs plain", "softmax vs batch");
  auto get = [&rep](int n, const char* variant, const char* mode) {
    return rep.find("model/sweep_n" + std::to_string(n) + "/b1/" + variant + "/" + mode);
  };
  for (int n : {64, 128, 256, 512, 1024, 2048, 4096}) {
    const Result* fixed = get(n, "nystrom_fixed_m8", "step");
    const Result* softmax = get(n, "softmax", "step");
    const Result* batch = get(n, "softmax", "batch");
    const Result* plain = get(n, "softmax", "batch_all_rows");
    std::printf("%6d %12s %12s %12s %14s %16s %16s %16s\n", n, format_time(fixed).c_str(),
                format_time(softmax).c_str(), format_time(batch).c_str(), format_time(plain).c_str(),
                ratios(batch, fixed).c_str(), ratios(plain, fixed).c_str(),
                ratios(batch, softmax).c_str());
  }
  const Result* fixed_64 = get(64, "nystrom_fixed_m8", "step");
  const Result* fixed_4096 = get(4096, "nystrom_fixed_m8", "step");
  const bool known = fixed_64 && fixed_4096;
  const double growth = known ? fixed_4096->seconds / fixed_64->seconds : 0;
  std::printf("%-48s %-8s target %-10s %s\n", "fixed step n=4096 / n=64:",
              known ? format_ratio(growth).c_str() : "n/a", "<= 1.2x", tally.judge(known, growth <= 1.2));
  speedup_target(tally, "n=4096 fixed step vs batch softmax", get(4096, "softmax", "batch"),
                 fixed_4096, 1000);
  speedup_target(tally, "n=4096 fixed step vs plain encoder", get(4096, "softmax", "batch_all_rows"),
                 fixed_4096, 1000);
}

std::string format_flops(double flops) {
  char buf[32];
  std::snprintf(buf, sizeof buf, flops >= 1e9 ? "%.3g G" : flops >= 1e6 ? "%.3g M" : "%.3g k",
                flops >= 1e9 ? flops * 1e-9 : flops >= 1e6 ? flops * 1e-6 : flops * 1e-3);
  return buf;
}

// The model files as they are: continual step against the fair re-encode.
void model_files(const RecordingReporter& rep, Tally& tally, const std::vector<FileRuns>& files) {
  std::printf("\nModel files, per token: continual step vs the fair re-encode of the same model\n"
              "(same weights; the receptive field's tokens; last layer for the newest token only;\n"
              "fixed landmarks' pinv from the model, as the step's). FLOP/token from flops.h\n");
  for (const FileRuns& f : files) {
    const std::string name = f.label + ": step vs re-encode:";
    if (!f.model) {
      std::printf("%-44s not loaded: %s\n", name.c_str(), f.error.c_str());
      if (f.source.target > 0) tally.judge(false, false);
      continue;
    }
    const nystream::ModelConfig& c = f.model->config();
    const Result* step = rep.find(f.key + "/step");
    const Result* reencode = rep.find(f.key + "/reencode");
    const bool known = step && reencode;
    const double ratio = known ? reencode->seconds / step->seconds : 0;
    char flops[64] = "n/a";
    if (known)
      std::snprintf(flops, sizeof flops, "%sFLOP vs %sFLOP: %s", format_flops(step->flops).c_str(),
                    format_flops(reencode->flops).c_str(),
                    format_ratio(reencode->flops / step->flops).c_str());
    char target[48] = "";
    if (f.source.target > 0)
      std::snprintf(target, sizeof target, "  target >= %gx %s", f.source.target,
                    tally.judge(known, ratio >= f.source.target));
    const std::string assembly =
        c.blocks == 1 ? "1 block" : std::string(nystream::to_string(c.assembly)) + " " +
                                        std::to_string(c.blocks) + " blocks";
    const std::string attention =
        c.attention == nystream::AttentionKind::kSoftmax
            ? "softmax"
            : "m=" + std::to_string(c.landmarks) + " " + nystream::to_string(c.schedule);
    std::printf("%-44s %-8s (step %s, re-encode %s; FLOP/token %s)  %s, n=%d %s, "
                "re-encode window %d%s\n",
                name.c_str(), known ? format_ratio(ratio).c_str() : "n/a", format_time(step).c_str(),
                format_time(reencode).c_str(), flops, assembly.c_str(), c.window, attention.c_str(),
                c.receptive_field(), target);
  }
}

// The same step with the linear weights kept 16-bit: F32 time / F16 (BF16) time.
void weight_types(const RecordingReporter& rep, const std::vector<FileRuns>& files) {
  std::printf("\n16-bit weights, step per token: float32 vs the same weights kept F16 and BF16\n"
              "(widened as loaded, float32 accumulation; kernel: %s)\n", nystream::active_kernel());
  std::vector<std::pair<std::string, std::string>> keys = {
      {"published audio (n=120 E=192 F=1024 m=8 fixed, 1 block)",
       "model/audio_n120/b1/nystrom_fixed_m8"}};
  for (const FileRuns& f : files)
    if (f.model) keys.push_back({f.label, f.key});
  for (const auto& [label, key] : keys) {
    const Result* f32 = rep.find(key + "/step");
    const Result* f16 = rep.find(key + "/step_f16");
    const Result* bf16 = rep.find(key + "/step_bf16");
    std::printf("%-58s f32 %s, f16 %s (%s), bf16 %s (%s)\n", (label + ":").c_str(),
                format_time(f32).c_str(), format_time(f16).c_str(),
                f32 && f16 ? format_ratio(f32->seconds / f16->seconds).c_str() : "n/a",
                format_time(bf16).c_str(),
                f32 && bf16 ? format_ratio(f32->seconds / bf16->seconds).c_str() : "n/a");
  }
}

// Step time against n for every assembly: stacked and 1-block steps should stay
// flat, the retroactive 2-block step is O(n (E^2 + E F)) and should not.
void flatness(const RecordingReporter& rep, Tally& tally) {
  const std::vector<FlatAssembly> assemblies = flat_assemblies();
  std::printf("\nWindow flatness (E=128, h=4, F=256, m=16: the shipped audio shape), step per token;\n"
              "growth: time x (FLOP x). Continual landmarks refresh every n/m steps: dearest at small n\n"
              "%6s", "n");
  for (const FlatAssembly& a : assemblies) std::printf(" %28s", a.label);
  std::printf("\n");
  auto get = [&rep](int n, const FlatAssembly& a) {
    return rep.find("model/flat_n" + std::to_string(n) + "/" + a.name + "/step");
  };
  for (int n : {32, 64, 128, 256, 512, 1024}) {
    std::printf("%6d", n);
    for (const FlatAssembly& a : assemblies) std::printf(" %28s", format_time(get(n, a)).c_str());
    std::printf("\n");
  }
  for (const FlatAssembly& a : assemblies) {
    const Result* small = get(32, a);
    const Result* large = get(1024, a);
    const bool known = small && large;
    const double growth = known ? large->seconds / small->seconds : 0;
    const std::string name = std::string("flatness ") + a.label + ": step n=1024 / n=32:";
    char target[48] = "(grows with n: no target)";
    if (a.target > 0)
      std::snprintf(target, sizeof target, "target < %gx %s", a.target,
                    tally.judge(known, growth < a.target));
    std::printf("%-58s %-16s %s\n", name.c_str(), ratios(large, small).c_str(), target);
  }
}

// Attention only: does the measured speed-up track the FLOP count?
void attention(const RecordingReporter& rep, Tally& tally) {
  std::printf("\nAttention only (one layer, all heads, no projections): batch over the window,\n"
              "all n outputs, vs one continual step. target: time ratio within 2x of FLOP ratio\n");
  std::printf("%-32s %10s %10s %10s %10s %10s %6s\n", "config/variant", "step", "batch", "time x",
              "FLOP x", "time/FLOP", "result");
  for (const std::string& name : rep.order()) {
    const std::vector<std::string> p = split(name);
    if (p.size() != 4 || p[0] != "attention" || p[3] != "step") continue;
    // nystrom_<schedule>_m<M> steps compare with the nystrom_m<M> batch.
    std::string batch_variant = p[2];
    if (starts_with(batch_variant, "nystrom_"))
      batch_variant = "nystrom" + batch_variant.substr(batch_variant.rfind('_'));
    const Result* step = rep.find(name);
    const Result* batch = rep.find("attention/" + p[1] + "/" + batch_variant + "/batch");
    const bool known = step && batch && step->flops > 0 && batch->flops > 0;
    const double time_ratio = known ? batch->seconds / step->seconds : 0;
    const double flop_ratio = known ? batch->flops / step->flops : 0;
    const double quotient = known ? time_ratio / flop_ratio : 0;
    char q[32] = "n/a";
    if (known) std::snprintf(q, sizeof q, "%.2f", quotient);
    std::printf("%-32s %10s %10s %10s %10s %10s %6s\n", (p[1] + "/" + p[2]).c_str(),
                format_time(step).c_str(), format_time(batch).c_str(),
                known ? format_ratio(time_ratio).c_str() : "n/a",
                known ? format_ratio(flop_ratio).c_str() : "n/a", q,
                tally.judge(known, quotient >= 0.5 && quotient <= 2.0));
  }
}

// Removes --model FILE and --model=FILE from args, returning the files.
std::vector<std::string> take_model_args(std::vector<char*>& args) {
  std::vector<std::string> files;
  std::vector<char*> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (std::strcmp(args[i], "--model") == 0 && i + 1 < args.size())
      files.push_back(args[++i]);
    else if (std::strncmp(args[i], "--model=", 8) == 0)
      files.push_back(args[i] + 8);
    else
      rest.push_back(args[i]);
  }
  args = rest;
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  // The target applies to the shipped audio model (#19).
  std::vector<FileRuns::Source> sources = {{NYSTREAM_SHIPPED_AUDIO_MODEL, true, 10},
                                           {NYSTREAM_SHIPPED_VIDEO_MODEL, true, 0}};
  for (const std::string& file : take_model_args(args)) sources.push_back({file, false, 0});
  const std::vector<FileRuns> files = register_file_benchmarks(sources);
  register_model_benchmarks();
  register_attention_benchmarks();
  // A short default minimum time keeps the full suite to a few minutes; a
  // --benchmark_min_time given on the command line comes later and wins.
  static char default_min_time[] = "--benchmark_min_time=0.1";
  args.insert(args.begin() + 1, default_min_time);
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;

  RecordingReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                   : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::fflush(stdout);
  std::printf("\n==== Ratio summary (CPU time per iteration, this run) ====\n");
  Tally tally;
  model_files(reporter, tally, files);
  weight_types(reporter, files);
  whole_model(reporter, tally);
  sweep(reporter, tally);
  flatness(reporter, tally);
  attention(reporter, tally);
  std::printf("\ntargets: %d PASS, %d MISS, %d n/a (informational; exit status 0)\n", tally.pass,
              tally.miss, tally.missing);
  return 0;
}
