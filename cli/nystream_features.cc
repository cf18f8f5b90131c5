// nystream-features: decodes any file FFmpeg reads and writes the feature tokens
// a model's front end would see, as a tokens x dims float32 .npy, plus the time
// span of every token as CSV (docs/features.md).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

#include <algorithm>
#include <cmath>

#include "npy.h"
#include "nystream/features/log_mel.h"
#include "nystream/features/video_motion.h"

namespace {

const char kUsage[] =
    "Usage: nystream-features [options] INPUT -o OUTPUT.npy\n"
    "\n"
    "Decodes INPUT (any file FFmpeg reads), runs a feature extractor over its audio\n"
    "or video stream as the streaming path does, and writes the tokens as a\n"
    "float32 .npy of shape (tokens, dims) and their time spans as CSV.\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE      use the extractor and params of a model file's `features`\n"
    "  -e, --extractor NAME  log-mel (audio) or video-motion (video), without --model\n"
    "  -p, --params JSON     params object for --extractor, e.g. '{\"pooling\": \"flatten\"}'\n"
    "                        (missing keys take the defaults of docs/features.md)\n"
    "  -o, --output FILE     the .npy to write (required)\n"
    "  -t, --times FILE      token spans CSV: index,start_ns,end_ns (default: OUTPUT with\n"
    "                        .npy replaced by .times.csv)\n"
    "  -s, --stream N        stream index (default: the best audio or video stream)\n"
    "  -q, --quiet           no summary on stderr\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit status: 0 on success, 1 on any error (the message says which file and why).\n";

struct Options {
  std::string input, output, times, model, extractor, params;
  int stream = -1;
  bool quiet = false;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "nystream-features: %s\n", message.c_str());
  std::exit(1);
}

std::string av_error(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, text, sizeof text);
  return text;
}

// Reads {extractor, version, params} from a model file's `nystream` metadata
// without loading the weights: the safetensors header is all that is needed.
void read_model_features(const std::string& path, Options* o) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open model file '" + path + "'");
  unsigned char size_bytes[8];
  if (!in.read(reinterpret_cast<char*>(size_bytes), 8)) fail(path + ": too short for a safetensors header");
  std::uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | size_bytes[i];
  if (size == 0 || size > (64u << 20)) fail(path + ": header length " + std::to_string(size) + " is not in 1..64 MiB");
  std::string header(size, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(size))) fail(path + ": header runs past the end of the file");
  try {
    const auto top = nlohmann::json::parse(header);
    const auto doc = nlohmann::json::parse(top.at("__metadata__").at("nystream").get<std::string>());
    const auto& features = doc.at("features");
    o->extractor = features.at("extractor").get<std::string>();
    const int version = features.at("version").get<int>();
    if (version != 1) fail(path + ": feature extractor '" + o->extractor + "' version " + std::to_string(version) +
                           " is not known (this tool knows version 1)");
    o->params = features.contains("params") ? features.at("params").dump() : "{}";
  } catch (const nlohmann::json::exception& e) {
    fail(path + ": no usable __metadata__.nystream.features object (" + e.what() + ")");
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("option " + a + " needs a value (see --help)");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "-m" || a == "--model") {
      o.model = value();
    } else if (a == "-e" || a == "--extractor") {
      o.extractor = value();
    } else if (a == "-p" || a == "--params") {
      o.params = value();
    } else if (a == "-o" || a == "--output") {
      o.output = value();
    } else if (a == "-t" || a == "--times") {
      o.times = value();
    } else if (a == "-s" || a == "--stream") {
      o.stream = std::atoi(value().c_str());
    } else if (a == "-q" || a == "--quiet") {
      o.quiet = true;
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      fail("unknown option " + a + " (see --help)");
    } else if (o.input.empty()) {
      o.input = a;
    } else {
      fail("more than one input given ('" + o.input + "', '" + a + "')");
    }
  }
  if (o.input.empty()) fail("no input file (see --help)");
  if (o.output.empty()) fail("no output file: give -o OUTPUT.npy");
  if (!o.model.empty() && (!o.extractor.empty() || !o.params.empty()))
    fail("--model already names the extractor and its params; drop --extractor/--params");
  if (!o.model.empty()) read_model_features(o.model, &o);
  if (o.extractor.empty()) fail("no extractor: give --model FILE or --extractor log-mel|video-motion");
  if (o.extractor != "log-mel" && o.extractor != "video-motion")
    fail("unknown extractor '" + o.extractor + "' (known: log-mel, video-motion)");
  if (o.times.empty()) {
    const std::string& out = o.output;
    o.times = (out.size() > 4 && out.compare(out.size() - 4, 4, ".npy") == 0 ? out.substr(0, out.size() - 4) : out) +
              ".times.csv";
  }
  return o;
}

struct Decoder {
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  int stream = -1;
  ~Decoder() {
    avcodec_free_context(&codec);
    avformat_close_input(&format);
  }
};

void open_input(const Options& o, AVMediaType type, Decoder* d) {
  int err = avformat_open_input(&d->format, o.input.c_str(), nullptr, nullptr);
  if (err < 0) fail("cannot open '" + o.input + "': " + av_error(err));
  if ((err = avformat_find_stream_info(d->format, nullptr)) < 0)
    fail("'" + o.input + "': cannot read stream information: " + av_error(err));
  const char* kind = type == AVMEDIA_TYPE_AUDIO ? "audio" : "video";
  const AVCodec* decoder = nullptr;
  if (o.stream >= 0) {
    if (o.stream >= static_cast<int>(d->format->nb_streams))
      fail("'" + o.input + "' has no stream " + std::to_string(o.stream));
    if (d->format->streams[o.stream]->codecpar->codec_type != type)
      fail("'" + o.input + "': stream " + std::to_string(o.stream) + " is not " + kind + " (the extractor needs " + kind + ")");
    d->stream = o.stream;
    decoder = avcodec_find_decoder(d->format->streams[o.stream]->codecpar->codec_id);
  } else {
    d->stream = av_find_best_stream(d->format, type, -1, -1, &decoder, 0);
    if (d->stream < 0) fail("'" + o.input + "' has no " + kind + " stream (extractor " + o.extractor + " needs one)");
  }
  if (!decoder) fail("'" + o.input + "': no decoder for the " + kind + " stream");
  d->codec = avcodec_alloc_context3(decoder);
  avcodec_parameters_to_context(d->codec, d->format->streams[d->stream]->codecpar);
  if ((err = avcodec_open2(d->codec, decoder, nullptr)) < 0)
    fail("'" + o.input + "': cannot open the " + std::string(decoder->name) + " decoder: " + av_error(err));
}

// Runs every decoded frame of the stream through `on_frame`; counts decoding errors.
template <typename OnFrame>
long decode_all(Decoder& d, OnFrame on_frame) {
  AVPacket* packet = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  long errors = 0;
  auto receive = [&] {
    for (;;) {
      const int r = avcodec_receive_frame(d.codec, frame);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) { ++errors; return; }
      on_frame(frame);
      av_frame_unref(frame);
    }
  };
  int r;
  while ((r = av_read_frame(d.format, packet)) >= 0) {
    if (packet->stream_index == d.stream) {
      if (avcodec_send_packet(d.codec, packet) < 0) ++errors;
      receive();
    }
    av_packet_unref(packet);
  }
  if (r != AVERROR_EOF) ++errors;  // a read error, e.g. a truncated file
  avcodec_send_packet(d.codec, nullptr);
  receive();
  av_frame_free(&frame);
  av_packet_free(&packet);
  return errors;
}

std::int64_t pts_ns(const AVFrame* f, AVRational time_base) {
  return f->best_effort_timestamp == AV_NOPTS_VALUE ? nystream::kNoTimestamp
                                                    : av_rescale_q(f->best_effort_timestamp, time_base, {1, 1000000000});
}

long run_audio(const Options& o, nystream::TokenCollector* tokens) {
  nystream::LogMelParams params;
  std::string error;
  if (!nystream::LogMelParams::parse(o.params, &params, &error)) fail(error);
  Decoder d;
  open_input(o, AVMEDIA_TYPE_AUDIO, &d);
  const AVRational tb = d.format->streams[d.stream]->time_base;
  std::unique_ptr<nystream::LogMelExtractor> mel;
  SwrContext* to_float = nullptr;  // the decoder's sample format -> interleaved float, same rate
  std::vector<float> interleaved;
  int rate = 0, channels = 0, sample_format = -1;
  long resets = 0, rejected = 0;
  const long errors = decode_all(d, [&](AVFrame* f) {
    const int ch = f->ch_layout.nb_channels;
    if (f->sample_rate != rate || ch != channels || f->format != sample_format) {
      // A format change mid-stream: the extractor's documented reset.
      if (mel) ++resets;
      rate = f->sample_rate, channels = ch, sample_format = f->format;
      swr_free(&to_float);
      if (swr_alloc_set_opts2(&to_float, &f->ch_layout, AV_SAMPLE_FMT_FLT, rate, &f->ch_layout,
                              static_cast<AVSampleFormat>(f->format), rate, 0, nullptr) < 0 ||
          swr_init(to_float) < 0)
        fail("'" + o.input + "': cannot convert the decoder's sample format");
      const nystream::AudioFormat format{rate, ch, nystream::SampleFormat::kF32};
      if (!mel) mel = nystream::LogMelExtractor::create(params, format, &error);
      else error = mel->configure(format);
      if (!mel || !error.empty()) fail("'" + o.input + "': " + error);
    }
    interleaved.resize(static_cast<std::size_t>(f->nb_samples) * ch);
    std::uint8_t* out = reinterpret_cast<std::uint8_t*>(interleaved.data());
    const int got = swr_convert(to_float, &out, f->nb_samples, const_cast<const std::uint8_t**>(f->extended_data),
                                f->nb_samples);
    if (got < 0) return;
    const auto status = mel->push(interleaved.data(), static_cast<std::size_t>(got) * ch * sizeof(float),
                                  pts_ns(f, tb), *tokens);
    if (status != nystream::PushStatus::kOk && status != nystream::PushStatus::kEmpty) {
      ++rejected;
      std::fprintf(stderr, "nystream-features: warning: '%s': audio at %.3f s: %s\n", o.input.c_str(),
                   f->best_effort_timestamp == AV_NOPTS_VALUE ? 0.0 : f->best_effort_timestamp * av_q2d(tb),
                   nystream::to_string(status));
    }
  });
  swr_free(&to_float);
  if (mel) mel->drain(*tokens);
  if (resets) std::fprintf(stderr, "nystream-features: warning: '%s': the audio format changed %ld time(s); the extractor was reset each time\n", o.input.c_str(), resets);
  (void)rejected;
  return errors;
}

long run_video(const Options& o, nystream::TokenCollector* tokens) {
  nystream::VideoMotionParams params;
  std::string error;
  if (!nystream::VideoMotionParams::parse(o.params, &params, &error)) fail(error);
  Decoder d;
  open_input(o, AVMEDIA_TYPE_VIDEO, &d);
  const AVStream* st = d.format->streams[d.stream];
  AVRational fps = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  if (fps.num <= 0 || fps.den <= 0) fps = {30, 1};
  std::unique_ptr<nystream::VideoMotionExtractor> video;
  nystream::VideoFormat format;
  long resets = 0, dropped = 0;
  std::int64_t last_end = nystream::kNoTimestamp;
  const long errors = decode_all(d, [&](AVFrame* f) {
    if (!video || f->width != format.width || f->height != format.height || f->format != format.ffmpeg_pixel_format) {
      if (video) ++resets;
      format.width = f->width;
      format.height = f->height;
      format.ffmpeg_pixel_format = f->format;
      format.fps_n = fps.num;
      format.fps_d = fps.den;
      if (!video) video = nystream::VideoMotionExtractor::create(params, format, &error);
      else error = video->configure(format);
      if (!video || !error.empty()) fail("'" + o.input + "': " + error);
    }
    const std::int64_t pts = pts_ns(f, st->time_base);
    const auto status = video->push(f->data, f->linesize, pts, *tokens);
    if (status == nystream::PushStatus::kOutOfOrder) ++dropped;
    if (pts != nystream::kNoTimestamp && f->pkt_duration > 0)
      last_end = pts + av_rescale_q(f->pkt_duration, st->time_base, {1, 1000000000});
  });
  if (video) video->drain(last_end, *tokens);
  if (resets) std::fprintf(stderr, "nystream-features: warning: '%s': the video size or format changed %ld time(s); the extractor was reset each time\n", o.input.c_str(), resets);
  if (dropped) std::fprintf(stderr, "nystream-features: warning: '%s': %ld frame(s) with a timestamp not after the previous one were dropped\n", o.input.c_str(), dropped);
  return errors;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  av_log_set_level(AV_LOG_ERROR);
  nystream::TokenCollector tokens;
  const bool audio = o.extractor == "log-mel";
  const long errors = audio ? run_audio(o, &tokens) : run_video(o, &tokens);
  if (errors)
    std::fprintf(stderr, "nystream-features: warning: '%s': %ld decoding error(s) (damaged or truncated file); tokens cover what decoded\n",
                 o.input.c_str(), errors);
  if (tokens.count() == 0)
    fail("'" + o.input + "': no complete token (the " + (audio ? std::string("audio") : std::string("video")) +
         " decoded is shorter than one token, or nothing decoded)");
  // Written as they are (nystream-infer and the elements treat such tokens as
  // padding, so the files still reproduce the element), but never silently.
  std::int64_t non_finite = 0, first_non_finite = -1;
  for (std::int64_t t = 0; t < tokens.count(); ++t) {
    const float* row = tokens.data.data() + t * tokens.dim;
    if (std::all_of(row, row + tokens.dim, [](float v) { return std::isfinite(v); })) continue;
    if (non_finite++ == 0) first_non_finite = t;
  }
  if (non_finite)
    std::fprintf(stderr, "nystream-features: warning: '%s': %lld of %lld token(s) hold NaN or Inf features "
                 "(first: token %lld, from %.3f s; input samples out of range?); they are written as they are, "
                 "and nystream-infer and the elements skip them as padding\n", o.input.c_str(),
                 static_cast<long long>(non_finite), static_cast<long long>(tokens.count()),
                 static_cast<long long>(first_non_finite), tokens.spans[first_non_finite].start_ns / 1e9);
  std::string error;
  if (!nystream::cli::write_npy(o.output, tokens.data.data(), tokens.count(), tokens.dim, &error)) fail(error);
  FILE* csv = std::fopen(o.times.c_str(), "w");
  if (!csv) fail("cannot write '" + o.times + "': " + std::strerror(errno));
  std::fprintf(csv, "index,start_ns,end_ns\n");
  for (const auto& s : tokens.spans)
    std::fprintf(csv, "%lld,%lld,%lld\n", static_cast<long long>(s.index), static_cast<long long>(s.start_ns),
                 static_cast<long long>(s.end_ns));
  if (std::fclose(csv) != 0) fail("cannot write '" + o.times + "'");
  if (!o.quiet)
    std::fprintf(stderr, "%s: %lld tokens x %d dims (%s) -> %s, spans -> %s\n", o.input.c_str(),
                 static_cast<long long>(tokens.count()), tokens.dim, o.extractor.c_str(), o.output.c_str(),
                 o.times.c_str());
  return 0;
}
