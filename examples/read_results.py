#!/usr/bin/python3
"""Read Nystream results from Python (PyGObject), without any Nystream bindings.

    read_results.py MODEL FILE              audio file -> nyaudiodetect
    read_results.py --video MODEL FILE      video file -> nyvideodetect
    read_results.py --pipeline 'DESCRIPTION'
                                            any gst-launch description holding
                                            an nyaudiodetect or nyvideodetect

Two ways, both shown, both off by default and turned on here (the detector's
post-messages and custom-meta properties):
  1. Bus element messages, one per result, named after the element
     ("nyaudiodetect" / "nyvideodetect") like level's: timestamp, stream-time,
     running-time, duration, token, model, label, label-id, confidence,
     classes, scores, active. Read in the application's thread.
  2. The "NystreamResult" GstCustomMeta on the buffers, read in a pad probe on
     the detector's src pad: the same result as a GstStructure (model, source,
     label, label-id, confidence, threshold, token, start, duration, classes,
     scores, active). The results completed at EOS come on the carrier buffer
     of the "nystream-final-results" event, which the same probe reads.

Needs python3-gi (Debian's /usr/bin/python3) and the plugin on GST_PLUGIN_PATH.
Array fields (classes, scores, active) are GstValueArrays, which plain
PyGObject cannot convert with get_value(); read them with get_array() as below
(python3-gst-1.0's overrides also make get_value() work).
"""
import argparse
import sys
import threading
import warnings

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GObject, Gst  # noqa: E402

CUSTOM_META = "NystreamResult"
FINAL_RESULTS_EVENT = "nystream-final-results"  # GST_NYSTREAM_FINAL_RESULTS_EVENT
# The probe prints from the streaming thread, the bus loop from the main one.
print_lock = threading.Lock()


def say(line):
    with print_lock:
        print(line, flush=True)


def array(structure, field):
    """A GstValueArray field as a Python list."""
    ok, values = structure.get_array(field)
    if not ok or values is None:
        return []
    # gst_structure_get_array hands back a GValueArray, deprecated in GLib but
    # the one introspectable way to these fields.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [values.get_nth(i) for i in range(values.n_values)]


def span(start, duration):
    return f"{start / Gst.SECOND:.3f}-{(start + duration) / Gst.SECOND:.3f} s"


def on_data(pad, info, counts):
    """Pad probe: the custom meta of each buffer that carries a result, and of
    the carrier buffer in the event holding the results completed at EOS."""
    try:
        if info.type & Gst.PadProbeType.BUFFER:
            buffer = info.get_buffer()
        else:
            event = info.get_event()
            if event.type != Gst.EventType.CUSTOM_DOWNSTREAM or not event.has_name(FINAL_RESULTS_EVENT):
                return Gst.PadProbeReturn.OK
            buffer = event.get_structure().get_value("buffer")
        # get_custom_meta returns the first; a buffer carries one per result it
        # completed, usually one (the bus messages have every result).
        meta = buffer.get_custom_meta(CUSTOM_META)
        if meta is not None:
            s = meta.get_structure()
            say(f"meta    {s.get_string('source')} token {s.get_value('token')} "
                f"label {s.get_string('label')} (id {s.get_value('label-id')}) "
                f"confidence {s.get_value('confidence'):.3f} "
                f"span {span(s.get_value('start'), s.get_value('duration'))} "
                f"active {array(s, 'active')} top score {max(array(s, 'scores')):.3f}")
            counts["meta"] += 1
    except Exception as e:  # noqa: BLE001 - never let an exception drop the buffer
        print(f"probe: {e!r}", file=sys.stderr)
    # Returning anything else (None is DROP) would take the buffer away.
    return Gst.PadProbeReturn.OK


def find_detector(pipeline):
    detect_type = GObject.type_from_name("GstNyDetect")
    it = pipeline.iterate_recurse()
    while True:
        result, element = it.next()
        if result != Gst.IteratorResult.OK:
            return None
        if GObject.type_is_a(element.__gtype__, detect_type):
            return element


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", action="store_true", help="FILE is a video file")
    parser.add_argument("--pipeline", help="a gst-launch description with a detector")
    parser.add_argument("model", nargs="?")
    parser.add_argument("file", nargs="?")
    args = parser.parse_args()
    if args.pipeline:
        description = args.pipeline
    elif args.model and args.file:
        kind = ("videoconvert ! nyvideodetect" if args.video
                else "audioconvert ! nyaudiodetect")
        description = (f'filesrc location="{args.file}" ! decodebin ! {kind} '
                       f'model="{args.model}" ! fakesink sync=false')
    else:
        parser.error("give MODEL FILE or --pipeline")

    Gst.init(None)
    pipeline = Gst.parse_launch(description)
    detector = find_detector(pipeline)
    if detector is None:
        sys.exit("the pipeline holds no nyaudiodetect or nyvideodetect element")
    # Both are off by default (each allocates per result): ask for them.
    detector.set_property("post-messages", True)
    detector.set_property("custom-meta", True)
    counts = {"meta": 0, "message": 0}
    detector.get_static_pad("src").add_probe(
        Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM, on_data, counts)

    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    status = 0
    while True:
        msg = bus.timed_pop_filtered(
            Gst.CLOCK_TIME_NONE,
            Gst.MessageType.ELEMENT | Gst.MessageType.EOS | Gst.MessageType.ERROR)
        if msg.type == Gst.MessageType.EOS:
            break
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error from {msg.src.get_name()}: {err.message}\n{debug}", file=sys.stderr)
            status = 1
            break
        s = msg.get_structure()
        if s is None or s.get_name() not in ("nyaudiodetect", "nyvideodetect"):
            continue  # other elements' messages (level, spectrum, ...)
        say(f"message {msg.src.get_name()} token {s.get_value('token')} "
              f"label {s.get_string('label')} (id {s.get_value('label-id')}) "
              f"confidence {s.get_value('confidence'):.3f} "
              f"span {span(s.get_value('timestamp'), s.get_value('duration'))} "
              f"running-time {s.get_value('running-time') / Gst.SECOND:.3f} s "
              f"active {array(s, 'active')} classes {len(array(s, 'classes'))}")
        counts["message"] += 1
    pipeline.set_state(Gst.State.NULL)
    print(f"{detector.get_name()}: {counts['message']} messages, "
          f"{counts['meta']} buffers with a {CUSTOM_META} meta", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
