#!/usr/bin/python3
"""Soak test (issue 22): an hour of live sources through both detectors with the
shipped models, in this process, watching its resident memory.

    soak_live.py [--seconds S] [--warmup W] [--interval I] [--output FILE]

One pipeline, built with Gst.parse_launch:

    audiotestsrc is-live=true ! 44.1 kHz stereo ! leaky queue (500 ms)
        ! audioconvert ! audioresample ! nyaudiodetect ! nymetaconvert (append) ! fakesink
    videotestsrc is-live=true ! 320x240 30 fps ! leaky queue (2 frames)
        ! videoconvert ! nyvideodetect ! nymetaconvert (append) ! fakesink

(the README's live line, with test sources), both converters appending to one
temporary file. Every 8 s the sources switch to the next of 6 waveforms /
patterns, so the models see changing input and the sources have drawn each of
them (and paged in its code) within the warm-up. Every `interval` seconds (10) the test reads VmRSS from /proc/self/status, each
detector's `stats` (results, steps) and the lines the file has gained.

Fails when
  - RSS after the warm-up (the first `warmup` seconds, 60) rises 1 MB or more
    above its value at the end of the warm-up (any sample, not only the last);
  - a detector posts no new result, or the file gains no line, between two
    samples (a stall), or the pipeline posts an error or ends;
  - a detector's results fall below half the 10 tokens/s its model makes (a
    live source that cannot keep up drops buffers in the leaky queue: a stall
    in slow motion).
Prints the RSS curve (min / max per 5 minutes, or per twelfth of a shorter run)
and the result counts.

Duration: --seconds, else $NYSTREAM_SOAK_LIVE_SECONDS, else 3600. Models:
$NYSTREAM_SHIPPED_MODELS/{audio-events,video-actions}.safetensors; the plugin on
GST_PLUGIN_PATH (tests/soak/meson.build sets both).
"""
import argparse
import os
import sys
import tempfile
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

GROWTH_LIMIT_KB = 1024
SWITCH_SECONDS = 8  # 6 inputs in 48 s: all met within a 60 s warm-up
TOKEN_RATE = 10  # results per second per detector (both shipped models)
AUDIO_WAVES = ["pink-noise", "sine", "ticks", "white-noise", "saw", "red-noise"]
VIDEO_PATTERNS = ["ball", "smpte", "snow", "pinwheel", "spokes", "gradient"]


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class LineCounter:
    """Counts the newlines appended to a file since the last call, reading only
    the new bytes (a fixed-size buffer: the count costs no memory)."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0

    def update(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                self.offset += len(chunk)
                self.lines += chunk.count(b"\n")
        return self.lines


def stats(element):
    s = element.get_property("stats")
    return s.get_value("results"), s.get_value("steps"), s.get_value("skipped-qos")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("NYSTREAM_SOAK_LIVE_SECONDS", "3600")))
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--output", help="results file (default: a temporary file, removed)")
    args = parser.parse_args()
    if args.seconds < args.warmup + 2 * args.interval:
        sys.exit(f"--seconds {args.seconds} must exceed the warm-up {args.warmup} by two intervals")

    models = os.environ.get("NYSTREAM_SHIPPED_MODELS", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
    audio_model = os.path.join(models, "audio-events.safetensors")
    video_model = os.path.join(models, "video-actions.safetensors")

    Gst.init(None)
    tmp = None
    if args.output:
        out = args.output
        open(out, "w").close()
    else:
        tmp = tempfile.NamedTemporaryFile(prefix="nystream-soak-", suffix=".jsonl", delete=False)
        tmp.close()
        out = tmp.name
    # The README's live queues: at most 500 ms of audio, 2 video frames; a machine
    # that cannot keep up drops the oldest buffers (bounded memory, fewer results).
    audio_queue = "queue leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=500000000"
    video_queue = "queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0"
    description = (
        f"audiotestsrc name=asrc is-live=true wave=pink-noise samplesperbuffer=441 "
        f"! audio/x-raw,rate=44100,channels=2,format=S16LE ! {audio_queue} "
        f"! audioconvert ! audioresample ! nyaudiodetect name=audio model=\"{audio_model}\" "
        f"! nymetaconvert location=\"{out}\" append=true source=audiotestsrc ! fakesink "
        f"videotestsrc name=vsrc is-live=true pattern=ball "
        f"! video/x-raw,width=320,height=240,framerate=30/1,format=I420 ! {video_queue} "
        f"! videoconvert ! nyvideodetect name=video model=\"{video_model}\" "
        f"! nymetaconvert location=\"{out}\" append=true source=videotestsrc ! fakesink")
    print("pipeline: " + description, flush=True)
    pipeline = Gst.parse_launch(description)
    detectors = {name: pipeline.get_by_name(name) for name in ("audio", "video")}
    asrc, vsrc = pipeline.get_by_name("asrc"), pipeline.get_by_name("vsrc")
    counter = LineCounter(out)
    loop = GLib.MainLoop()
    failures = []
    samples = []  # (seconds since start, rss kB, results audio, results video, lines)
    start = time.monotonic()
    state = {"switch": 0, "last": None}

    def fail(what):
        print("FAIL " + what, flush=True)
        failures.append(what)

    def on_message(_bus, message):
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            fail(f"pipeline error from {message.src.get_name()}: {error.message} ({debug})")
            loop.quit()
        elif message.type == Gst.MessageType.EOS:
            fail("pipeline ended (EOS) before the soak did")
            loop.quit()
        return True

    def sample():
        now = time.monotonic() - start
        results = {name: stats(d) for name, d in detectors.items()}
        row = (now, rss_kb(), results["audio"][0], results["video"][0], counter.update())
        samples.append(row)
        last = state["last"]
        if last is not None:
            for i, what in ((2, "audio results"), (3, "video results"), (4, "result file lines")):
                if row[i] <= last[i]:
                    fail(f"stall at {now:.0f} s: no new {what} since {last[0]:.0f} s ({row[i]})")
        state["last"] = row
        jump = last is not None and abs(row[1] - last[1]) >= 256
        if len(samples) % 6 == 0 or now >= args.seconds or jump:
            print(f"  {now:6.0f} s  RSS {row[1]} kB  results audio {row[2]} video {row[3]}  "
                  f"lines {row[4]}", flush=True)
        if failures or now >= args.seconds:
            loop.quit()
            return False
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        message = bus.timed_pop_filtered(0, Gst.MessageType.ERROR)
        why = message.parse_error()[0].message if message else "no error message"
        pipeline.set_state(Gst.State.NULL)
        if tmp is not None:
            os.unlink(out)
        print(f"FAIL the pipeline does not start: {why}")
        return 1
    def switch():  # the next waveform and pattern (same caps)
        state["switch"] += 1
        asrc.set_property("wave", AUDIO_WAVES[state["switch"] % len(AUDIO_WAVES)])
        vsrc.set_property("pattern", VIDEO_PATTERNS[state["switch"] % len(VIDEO_PATTERNS)])
        return True

    GLib.timeout_add(int(args.interval * 1000), sample)
    GLib.timeout_add(SWITCH_SECONDS * 1000, switch)
    loop.run()
    final = {name: stats(d) for name, d in detectors.items()}
    pipeline.set_state(Gst.State.NULL)
    bus.remove_signal_watch()
    elapsed = time.monotonic() - start

    # The RSS curve and the growth after the warm-up.
    after = [s for s in samples if s[0] >= args.warmup]
    if not after:
        fail("no sample after the warm-up")
    else:
        base = after[0][1]
        block = 300 if args.seconds >= 3600 else args.seconds / 12
        print(f"RSS (kB) per {block:.0f} s, min / max, relative to {base} kB at "
              f"{after[0][0]:.0f} s (end of the warm-up):")
        b = 0
        while b * block < elapsed:
            rows = [s[1] for s in samples if b * block <= s[0] < (b + 1) * block]
            if rows:
                print(f"  {b * block:6.0f} .. {(b + 1) * block:6.0f} s  {min(rows)} / {max(rows)}"
                      f"  ({min(rows) - base:+d} / {max(rows) - base:+d})")
            b += 1
        growth = max(s[1] for s in after) - base
        print(f"RSS growth after the warm-up: max {growth:+d} kB, last {after[-1][1] - base:+d} kB "
              f"(limit < {GROWTH_LIMIT_KB} kB)")
        if growth >= GROWTH_LIMIT_KB:
            fail(f"RSS grew {growth} kB after the warm-up (limit < {GROWTH_LIMIT_KB} kB)")
    lines = counter.update()
    for name, (results, steps, skipped) in final.items():
        rate = results / elapsed
        print(f"{name}: {results} results ({rate:.2f}/s), {steps} steps, {skipped} skipped by QoS")
        if rate < TOKEN_RATE / 2:
            fail(f"{name}: {rate:.2f} results/s, below half the model's {TOKEN_RATE}/s")
    print(f"{lines} JSON lines in {out}; {len(samples)} samples over {elapsed:.0f} s")
    if lines < sum(f[0] for f in final.values()) * 0.99:
        fail(f"the file holds {lines} lines for {sum(f[0] for f in final.values())} results")
    if tmp is not None:
        os.unlink(out)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
