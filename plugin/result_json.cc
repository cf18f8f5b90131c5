#include "result_json.h"

#include <gst/video/video.h>

#include <nlohmann/json.hpp>

void
ny_result_json_append (std::string & out, const GstNystreamMeta & r, const NyResultContext & where)
{
  const guint64 start = r.start, end = r.start + r.duration;
  nlohmann::json line;
  line["schema"] = NYSTREAM_RESULTS_SCHEMA;
  line["timestamp"] = GST_CLOCK_TIME_IS_VALID (where.timestamp) ?
      nlohmann::json (where.timestamp) : nlohmann::json (nullptr);
  line["source"] = where.source ? where.source : "";
  line["detector"] = r.source ? r.source : "";
  line["model"] = r.model_name ? r.model_name : "";
  line["token"] = r.token_index;
  line["start_timestamp"] = start;
  line["end_timestamp"] = end;
  if (where.width > 0)
    line["resolution"] = { {"width", where.width}, {"height", where.height} };
  nlohmann::json scores = nlohmann::json::object ();
  for (guint i = 0; i < r.n_classes; i++)
    scores[r.class_names[i]] = r.scores[i];
  line["scores"] = scores;
  line["label"] = r.n_classes ? r.class_names[r.label_id] : "";
  line["label_id"] = r.label_id;
  line["confidence"] = r.confidence;
  nlohmann::json events = nlohmann::json::array ();
  for (guint i = 0; i < r.n_active; i++) {
    const guint id = r.active[i];
    events.push_back ({ {"event_type", r.class_names[id]},
          {"detection", { {"label", r.class_names[id]}, {"label_id", id},
                  {"confidence", r.scores[id]},
                  {"segment", { {"start_timestamp", start}, {"end_timestamp", end} } } } },
          {"start_timestamp", start}, {"end_timestamp", end} });
  }
  line["events"] = events;
  out += line.dump (-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void
ny_result_frame_size (GstCaps * caps, int *width, int *height)
{
  GstVideoInfo info;
  if (gst_structure_has_name (gst_caps_get_structure (caps, 0), "video/x-raw") &&
      gst_video_info_from_caps (&info, caps)) {
    *width = GST_VIDEO_INFO_WIDTH (&info);
    *height = GST_VIDEO_INFO_HEIGHT (&info);
  } else {
    *width = *height = 0;
  }
}

GstBuffer *
ny_result_final_carrier (GstEvent * event)
{
  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_DOWNSTREAM ||
      !gst_event_has_name (event, GST_NYSTREAM_FINAL_RESULTS_EVENT))
    return nullptr;
  const GValue *carrier = gst_structure_get_value (gst_event_get_structure (event),
      GST_NYSTREAM_FINAL_RESULTS_FIELD);
  return carrier && GST_VALUE_HOLDS_BUFFER (carrier) ? gst_value_get_buffer (carrier) : nullptr;
}
