/* The nystream plugin: continual Nyström transformer detectors for live media. */
#include <gst/gst.h>

#include "gstnyaudiodetect.h"
#include "gstnymetaconvert.h"
#ifdef NYSTREAM_HAVE_MQTT
#include "gstnymetapublish.h"
#endif
#include "gstnyoverlay.h"
#include "gstnyvideodetect.h"
#include "meta/gstnystreammeta.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ok = FALSE;
  gst_nystream_custom_meta_register ();
  ok |= GST_ELEMENT_REGISTER (nyaudiodetect, plugin);
  ok |= GST_ELEMENT_REGISTER (nyvideodetect, plugin);
  ok |= GST_ELEMENT_REGISTER (nymetaconvert, plugin);
  ok |= GST_ELEMENT_REGISTER (nyoverlay, plugin);
#ifdef NYSTREAM_HAVE_MQTT
  ok |= GST_ELEMENT_REGISTER (nymetapublish, plugin);
#endif
  return ok;
}

#define PACKAGE "nystream"
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, nystream,
    "Continual Nystrom transformer detectors: audio events and video actions, frame by frame",
    plugin_init, NYSTREAM_VERSION, "LGPL", "Nystream", "https://nystream.invalid")
