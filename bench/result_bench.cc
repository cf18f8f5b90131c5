// nystream-result-bench: the detector's cost per result through a GstHarness,
// one result per buffer (100 ms of 16 kHz audio per buffer, the shipped audio
// model), with the defaults and with each opt-in extra that allocates: bus
// messages (post-messages=true message-interval=0) and the NystreamResult custom
// meta. The time includes the model step and the front end, so the differences
// are what the extras cost per result. CPU time: single-threaded runs.
//
//   GST_PLUGIN_PATH=build/plugin build/bench/nystream-result-bench
#include <benchmark/benchmark.h>
#include <gst/check/gstharness.h>
#include <gst/gst.h>

#include <random>
#include <string>
#include <vector>

#include "gstnystreammeta.h"

namespace {

gboolean remove_meta(GstBuffer*, GstMeta** meta, gpointer) {
  *meta = nullptr;  // the foreach callback's way to remove it
  return TRUE;
}

void BM_DetectorResult(benchmark::State& state, const std::string& properties) {
  GstHarness* h = gst_harness_new_parse(
      ("nyaudiodetect model=" NYSTREAM_SHIPPED_AUDIO_MODEL " " + properties).c_str());
  gst_harness_set_src_caps_str(h, "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved");
  // Bus messages are drained each iteration so the bus does not grow.
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  std::mt19937 engine(1);
  std::uniform_int_distribution<int> sample(-6000, 6000);
  std::vector<gint16> data(1600);
  for (auto& s : data) s = static_cast<gint16>(sample(engine));
  // One buffer, pushed and pulled back each iteration: it comes back with one
  // reference, so it stays writable and nothing is copied.
  GstBuffer* buffer = gst_buffer_new_memdup(data.data(), data.size() * sizeof(gint16));
  GST_BUFFER_DURATION(buffer) = 100 * GST_MSECOND;
  GstClockTime pts = 0;
  long results = 0;
  for (auto _ : state) {
    GST_BUFFER_PTS(buffer) = pts;
    pts += 100 * GST_MSECOND;
    gst_harness_push(h, buffer);
    buffer = gst_harness_pull(h);
    results += gst_buffer_get_n_meta(buffer, GST_NYSTREAM_META_API_TYPE);
    gst_buffer_foreach_meta(buffer, remove_meta, nullptr);
    while (GstMessage* m = gst_bus_pop(bus)) gst_message_unref(m);
  }
  state.counters["results/buffer"] = static_cast<double>(results) / state.iterations();
  gst_buffer_unref(buffer);
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

BENCHMARK_CAPTURE(BM_DetectorResult, defaults, std::string(""))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_DetectorResult, messages, std::string("post-messages=true message-interval=0"))
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_DetectorResult, custom_meta, std::string("custom-meta=true"))
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
