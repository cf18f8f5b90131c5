/* nyoverlay: draws Nystream detection results on video with cairo and pango.
 *
 *   +--------------+                       +-------------------+
 *   | speech  0.91 |  top labels           | speech   ████▌    |  a score bar
 *   | music   0.40 |  (active ones lit)    | music    ██       |  per class,
 *   +--------------+                       | alarm    ▌        |  threshold tick
 *                                          +-------------------+
 *   +------------------------------------------------------------+
 *   | ~~~~~~~~/\~~~~~ one line per class over the last results ~~~ |  timeline
 *   | - - - - - - - - - - - - - threshold - - - - - - - - - - - - |
 *   +------------------------------------------------------------+
 *
 * Sources of results:
 *  - `detector` empty (default): the GstNystreamMeta found on each video
 *    buffer (nyvideodetect upstream). When buffers carry several detectors'
 *    results, the detector whose meta comes last is drawn; frames without a
 *    result keep showing the latest one until the stream is flushed or
 *    restarted. The timeline is the element's own history of the results it
 *    saw.
 *  - `detector=NAME`: follows the nyaudiodetect/nyvideodetect element of that
 *    name in the same pipeline and shows its latest result whose span starts
 *    at or before each frame's running time, with that detector's history as
 *    the timeline (an audio detector over the soundtrack of the video).
 *
 * Caps: packed 32-bit RGB in cairo's memory layout, BGRx and BGRA (and RGBx,
 * RGBA with red and blue swapped while drawing) on little-endian hosts; put
 * `videoconvert` in front for anything else. BGRA alpha is treated as
 * premultiplied (exact for opaque video).
 *
 * Pipelines:
 *   gst-launch-1.0 v4l2src ! videoconvert ! nyvideodetect model=actions.safetensors !
 *       videoconvert ! nyoverlay ! videoconvert ! autovideosink
 *   gst-launch-1.0 filesrc location=clip.mp4 ! decodebin name=d
 *       d. ! queue ! audioconvert ! nyaudiodetect name=det model=audio.safetensors ! autoaudiosink
 *       d. ! queue ! videoconvert ! nyoverlay detector=det ! videoconvert ! autovideosink
 *
 * Threading: properties may change in any state (each frame reads a copy);
 * everything else belongs to the streaming thread. Per frame it allocates
 * only what cairo and pango need to draw (a surface wrapping the frame, a
 * cairo context, pango's shaping of the label lines); layouts and history are
 * built when the caps, the font or the class set change.
 *
 * Errors: a `detector` that is not in the pipeline, is not a Nystream
 * detector or leaves the pipeline posts one warning and frames pass
 * unchanged (the lookup is retried once a second of running time). */
#pragma once

#include <gst/video/gstvideofilter.h>
#include <gst/video/video.h>

G_BEGIN_DECLS
#define GST_TYPE_NY_OVERLAY (gst_ny_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstNyOverlay, gst_ny_overlay, GST, NY_OVERLAY, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE (nyoverlay);
G_END_DECLS
