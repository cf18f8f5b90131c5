#include "gstnyoverlay.h"

#include <cairo.h>
#include <pango/pangocairo.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gstnydetect.h"
#include "meta/gstnystreammeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_ny_overlay_debug);
#define GST_CAT_DEFAULT gst_ny_overlay_debug

#define DEFAULT_DETECTOR nullptr
#define DEFAULT_SHOW_LABELS TRUE
#define DEFAULT_SHOW_BARS TRUE
#define DEFAULT_SHOW_TIMELINE TRUE
#define DEFAULT_TIMELINE_LENGTH 100
#define MAX_TIMELINE_LENGTH 10000
#define DEFAULT_FONT_DESC "Sans 12"
#define DEFAULT_MAX_LABELS 3
#define MAX_MAX_LABELS 64
/* How often a missing detector is looked for again, in running time. */
#define LOOKUP_RETRY_INTERVAL GST_SECOND

/* cairo's RGB24 / ARGB32 are native-endian 32-bit words: BGRx / BGRA in memory
 * on little-endian hosts. The other byte order of red and blue is drawn with
 * the two swapped. */
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
#define OVERLAY_FORMATS "{ BGRx, BGRA, RGBx, RGBA }"
#define OVERLAY_FORMATS_TEXT "BGRx, BGRA, RGBx or RGBA"
#else
#define OVERLAY_FORMATS "{ xRGB, ARGB, xBGR, ABGR }"
#define OVERLAY_FORMATS_TEXT "xRGB, ARGB, xBGR or ABGR"
#endif

enum {
  PROP_0,
  PROP_DETECTOR,
  PROP_SHOW_LABELS,
  PROP_SHOW_BARS,
  PROP_SHOW_TIMELINE,
  PROP_TIMELINE_LENGTH,
  PROP_FONT_DESC,
  PROP_MAX_LABELS,
};

namespace nystream::plugin {
namespace {

/* What a frame reads, copied once per frame (no strings: the detector name
 * and font are read only when their generation changes). */
struct Settings {
  bool show_labels = DEFAULT_SHOW_LABELS;
  bool show_bars = DEFAULT_SHOW_BARS;
  bool show_timeline = DEFAULT_SHOW_TIMELINE;
  guint timeline_length = DEFAULT_TIMELINE_LENGTH;
  guint max_labels = DEFAULT_MAX_LABELS;
  guint detector_generation = 0;
  guint font_generation = 0;
};

struct Rgb {
  double r, g, b;
};

/* Tableau 10: distinct on video, class i gets kPalette[i % 10]. */
constexpr Rgb kPalette[] = {
  {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
  {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
  {0.74, 0.74, 0.13}, {0.09, 0.75, 0.81},
};

constexpr Rgb kWhite = {1.0, 1.0, 1.0};
constexpr Rgb kBlack = {0.0, 0.0, 0.0};
constexpr Rgb kPanel = {0.08, 0.08, 0.08};
constexpr Rgb kTrack = {0.30, 0.30, 0.30};
constexpr Rgb kDim = {0.72, 0.72, 0.72};

inline const Rgb &
class_colour (guint i)
{
  return kPalette[i % G_N_ELEMENTS (kPalette)];
}

/* Scores are activations in [0, 1]; anything else (NaN included) is clamped. */
inline double
clamp_score (float s)
{
  return s >= 0.0f ? (s <= 1.0f ? s : 1.0) : 0.0;
}

}  // namespace

/* Everything nyoverlay owns besides its GObject. Settings, detector_name and
 * font_desc are under the object lock; the rest belongs to the streaming
 * thread (configure() from set_info, prepare()/draw() per frame). */
class Overlay {
 public:
  explicit Overlay (GstNyOverlay * element) : element_ (element) {}
  ~Overlay ();

  Settings settings;          /* GST_OBJECT_LOCK */
  std::string detector_name;  /* GST_OBJECT_LOCK */
  std::string font_desc = DEFAULT_FONT_DESC;  /* GST_OBJECT_LOCK */

  void configure (const GstVideoInfo * info);
  /* Forgets every result (flush, new stream, new caps, stop). */
  void reset_results ();
  /* Drops the followed detector and the results (stop). */
  void release ();
  /* Gathers this frame's results; true when there is something to draw. */
  bool prepare (GstBuffer * buffer, GstClockTime running_time);
  void draw (GstVideoFrame * frame);

 private:
  bool gather_meta (GstBuffer * buffer);
  bool gather_followed (GstClockTime running_time);
  bool update_followed (GstClockTime running_time);
  void release_followed ();
  template <typename NameAt> void ensure_classes (guint n, NameAt name_at);
  void rebuild_name_layouts ();
  void ensure_capacity (guint capacity);
  void push (const float *scores, float threshold);
  const float *scores_at (guint i) const {  /* i = 0: oldest */
    return &ring_[((ring_head_ + i) % capacity_) * names_.size ()];
  }
  void update_fonts ();
  void free_layouts ();
  void set_colour (cairo_t * cr, const Rgb & c, double alpha) const;
  void show_text (cairo_t * cr, PangoLayout * layout, double x, double y, const Rgb & c) const;
  void draw_labels (cairo_t * cr, double right);
  void draw_bars (cairo_t * cr, double x, double bottom);
  void draw_timeline (cairo_t * cr, double top);

  GstNyOverlay *element_;
  Settings current_;

  /* Frame geometry and format (configure). */
  int width_ = 0, height_ = 0;
  cairo_format_t format_ = CAIRO_FORMAT_RGB24;
  bool swap_red_blue_ = false;
  bool configured_ = false;
  bool warned_surface_ = false;

  /* Text: a private font map (pango's default one is per thread), layouts
   * rebuilt when the font, the caps or the class set change. */
  PangoFontMap *font_map_ = nullptr;
  PangoContext *context_ = nullptr;
  guint applied_font_generation_ = G_MAXUINT;
  PangoFontDescription *font_ = nullptr, *bold_font_ = nullptr;
  std::vector<PangoLayout *> name_layouts_;   /* one per class, for the bars */
  std::vector<PangoLayout *> label_layouts_;  /* one per listed top label */
  int line_height_ = 0;

  /* Results: the class set and a ring of the last capacity_ score vectors,
   * scores_at(i) for i < ring_count_, the newest drawn as the current one. */
  std::vector<std::string> names_;
  std::vector<float> ring_;
  guint capacity_ = 0, ring_head_ = 0, ring_count_ = 0;
  float latest_threshold_ = 0.5f;
  std::vector<guint> order_;  /* classes by score, for the top labels */

  /* Following another element's results. */
  guint applied_detector_generation_ = G_MAXUINT;
  std::string follow_name_;
  GstNyDetect *followed_ = nullptr;  /* a ref */
  GstClockTime last_lookup_ = GST_CLOCK_TIME_NONE;
  bool warned_follow_ = false;
  std::vector<DetectResult> follow_results_;
};

Overlay::~Overlay ()
{
  release_followed ();
  free_layouts ();
  g_clear_object (&context_);
  g_clear_object (&font_map_);
}

void
Overlay::configure (const GstVideoInfo * info)
{
  width_ = GST_VIDEO_INFO_WIDTH (info);
  height_ = GST_VIDEO_INFO_HEIGHT (info);
  switch (GST_VIDEO_INFO_FORMAT (info)) {
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
    case GST_VIDEO_FORMAT_BGRx: format_ = CAIRO_FORMAT_RGB24; swap_red_blue_ = false; break;
    case GST_VIDEO_FORMAT_BGRA: format_ = CAIRO_FORMAT_ARGB32; swap_red_blue_ = false; break;
    case GST_VIDEO_FORMAT_RGBx: format_ = CAIRO_FORMAT_RGB24; swap_red_blue_ = true; break;
    case GST_VIDEO_FORMAT_RGBA: format_ = CAIRO_FORMAT_ARGB32; swap_red_blue_ = true; break;
#else
    case GST_VIDEO_FORMAT_xRGB: format_ = CAIRO_FORMAT_RGB24; swap_red_blue_ = false; break;
    case GST_VIDEO_FORMAT_ARGB: format_ = CAIRO_FORMAT_ARGB32; swap_red_blue_ = false; break;
    case GST_VIDEO_FORMAT_xBGR: format_ = CAIRO_FORMAT_RGB24; swap_red_blue_ = true; break;
    case GST_VIDEO_FORMAT_ABGR: format_ = CAIRO_FORMAT_ARGB32; swap_red_blue_ = true; break;
#endif
    default: format_ = CAIRO_FORMAT_INVALID; break;
  }
  configured_ = format_ != CAIRO_FORMAT_INVALID;
  warned_surface_ = false;
  applied_font_generation_ = G_MAXUINT;  /* layouts once per caps */
  reset_results ();
}

void
Overlay::reset_results ()
{
  ring_head_ = ring_count_ = 0;
}

void
Overlay::release ()
{
  release_followed ();
  applied_detector_generation_ = G_MAXUINT;
  reset_results ();
}

void
Overlay::release_followed ()
{
  if (followed_)
    gst_object_unref (followed_);
  followed_ = nullptr;
}

template <typename NameAt> void
Overlay::ensure_classes (guint n, NameAt name_at)
{
  bool same = names_.size () == n;
  for (guint i = 0; same && i < n; i++)
    same = names_[i] == name_at (i);
  if (same)
    return;
  GST_DEBUG_OBJECT (element_, "new class set of %u classes", n);
  names_.resize (n);
  for (guint i = 0; i < n; i++)
    names_[i] = name_at (i);
  order_.resize (n);
  rebuild_name_layouts ();
  capacity_ = 0;  /* the ring's rows change size */
  ensure_capacity (current_.timeline_length);
}

void
Overlay::rebuild_name_layouts ()
{
  for (PangoLayout * layout : name_layouts_)
    g_object_unref (layout);
  name_layouts_.clear ();
  if (!context_)
    return;
  for (const std::string & name : names_) {
    PangoLayout *layout = pango_layout_new (context_);
    pango_layout_set_font_description (layout, font_);
    pango_layout_set_ellipsize (layout, PANGO_ELLIPSIZE_END);
    pango_layout_set_text (layout, name.c_str (), -1);
    name_layouts_.push_back (layout);
  }
}

void
Overlay::ensure_capacity (guint capacity)
{
  if (capacity == capacity_)
    return;
  capacity_ = capacity;
  ring_.assign (static_cast<std::size_t> (capacity) * names_.size (), 0.0f);
  reset_results ();
}

void
Overlay::push (const float *scores, float threshold)
{
  const std::size_t n = names_.size ();
  if (ring_count_ == capacity_)
    ring_head_ = (ring_head_ + 1) % capacity_;
  else
    ring_count_++;
  std::copy (scores, scores + n, &ring_[((ring_head_ + ring_count_ - 1) % capacity_) * n]);
  latest_threshold_ = threshold;
}

bool
Overlay::prepare (GstBuffer * buffer, GstClockTime running_time)
{
  GST_OBJECT_LOCK (element_);
  current_ = settings;
  GST_OBJECT_UNLOCK (element_);
  if (!configured_)
    return false;
  if (current_.font_generation != applied_font_generation_)
    update_fonts ();
  if (current_.detector_generation != applied_detector_generation_) {
    GST_OBJECT_LOCK (element_);
    follow_name_ = detector_name;
    GST_OBJECT_UNLOCK (element_);
    applied_detector_generation_ = current_.detector_generation;
    release_followed ();
    last_lookup_ = GST_CLOCK_TIME_NONE;
    warned_follow_ = false;
    reset_results ();
  }
  ensure_capacity (current_.timeline_length);

  const bool have = follow_name_.empty ()? gather_meta (buffer) : gather_followed (running_time);
  return have && (current_.show_labels || current_.show_bars || current_.show_timeline);
}

/* One detector's results: a buffer may carry several detectors' metas (each
 * with its own classes); the one whose meta comes last is drawn. */
bool
Overlay::gather_meta (GstBuffer * buffer)
{
  auto usable = [] (const GstNystreamMeta * r) {
    return r->n_classes > 0 && r->class_names && r->scores;
  };
  gpointer state = nullptr;
  GstMeta *meta;
  const gchar *source = nullptr;
  bool found = false;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state, GST_NYSTREAM_META_API_TYPE))) {
    const GstNystreamMeta *r = reinterpret_cast<const GstNystreamMeta *> (meta);
    if (usable (r)) {
      source = r->source;
      found = true;
    }
  }
  state = nullptr;
  while (found &&
      (meta = gst_buffer_iterate_meta_filtered (buffer, &state, GST_NYSTREAM_META_API_TYPE))) {
    const GstNystreamMeta *r = reinterpret_cast<const GstNystreamMeta *> (meta);
    if (!usable (r) || g_strcmp0 (r->source, source) != 0)
      continue;
    ensure_classes (r->n_classes, [r] (guint i) {
          return r->class_names[i] ? r->class_names[i] : "";
        });
    push (r->scores, r->threshold);
  }
  return ring_count_ > 0;
}

bool
Overlay::gather_followed (GstClockTime running_time)
{
  if (!GST_CLOCK_TIME_IS_VALID (running_time) || !update_followed (running_time))
    return false;
  /* The detector keeps its own history: draw its last timeline_length results. */
  if (!gst_ny_detect_results_at (followed_, running_time, current_.timeline_length - 1,
          &follow_results_))
    return false;
  const DetectResult & last = follow_results_.back ();
  if (last.classes.empty () || last.scores.size () != last.classes.size ())
    return false;
  ensure_classes (last.classes.size (), [&last] (guint i) {
        return last.classes[i].c_str ();
      });
  reset_results ();
  for (const DetectResult & r : follow_results_)
    if (r.scores.size () == names_.size ())
      push (r.scores.data (), r.threshold);
  return ring_count_ > 0;
}

/* The followed detector, looked up by name from our bin upwards; false (and
 * one warning) when there is none usable now. */
bool
Overlay::update_followed (GstClockTime running_time)
{
  const gchar *name = follow_name_.c_str ();
  if (followed_) {
    GST_OBJECT_LOCK (followed_);
    const bool attached = GST_OBJECT_PARENT (followed_) != nullptr;
    GST_OBJECT_UNLOCK (followed_);
    if (attached)
      return true;
    release_followed ();
    last_lookup_ = running_time;
    reset_results ();
    GST_ELEMENT_WARNING (element_, RESOURCE, NOT_FOUND,
        ("The followed detector \"%s\" left the pipeline.", name),
        ("Nothing is drawn until an element of that name is back; set 'detector' to "
            "another detector or to empty to draw the results on the video buffers."));
    warned_follow_ = true;
    return false;
  }
  const bool due = !GST_CLOCK_TIME_IS_VALID (last_lookup_) || running_time < last_lookup_ ||
      running_time >= last_lookup_ + LOOKUP_RETRY_INTERVAL;
  if (!due)
    return false;
  last_lookup_ = running_time;

  GstObject *parent = gst_object_get_parent (GST_OBJECT (element_));
  GstElement *found = nullptr;
  if (parent && GST_IS_BIN (parent))
    found = gst_bin_get_by_name_recurse_up (GST_BIN (parent), name);
  if (parent)
    gst_object_unref (parent);
  if (!found) {
    if (!warned_follow_)
      GST_ELEMENT_WARNING (element_, RESOURCE, NOT_FOUND,
          ("No element named \"%s\" to follow.", name),
          ("Set 'detector' to the name of a nyaudiodetect or nyvideodetect element in the "
              "same pipeline (its name=...), or leave it empty to draw the results found on "
              "the video buffers. Frames pass unchanged meanwhile."));
    warned_follow_ = true;
    return false;
  }
  if (!GST_IS_NY_DETECT (found)) {
    if (!warned_follow_)
      GST_ELEMENT_WARNING (element_, RESOURCE, SETTINGS,
          ("\"%s\" is not a Nystream detector.", name),
          ("It is a %s; 'detector' must name a nyaudiodetect or nyvideodetect element. "
              "Frames pass unchanged meanwhile.", G_OBJECT_TYPE_NAME (found)));
    warned_follow_ = true;
    gst_object_unref (found);
    return false;
  }
  GST_INFO_OBJECT (element_, "following %s", name);
  followed_ = GST_NY_DETECT (found);
  warned_follow_ = false;
  return true;
}

void
Overlay::free_layouts ()
{
  for (PangoLayout * layout : name_layouts_)
    g_object_unref (layout);
  name_layouts_.clear ();
  for (PangoLayout * layout : label_layouts_)
    g_object_unref (layout);
  label_layouts_.clear ();
  if (font_)
    pango_font_description_free (font_);
  if (bold_font_)
    pango_font_description_free (bold_font_);
  font_ = bold_font_ = nullptr;
}

void
Overlay::update_fonts ()
{
  GST_OBJECT_LOCK (element_);
  const std::string desc = font_desc;
  GST_OBJECT_UNLOCK (element_);
  applied_font_generation_ = current_.font_generation;

  if (!context_) {
    font_map_ = pango_cairo_font_map_new ();
    context_ = pango_font_map_create_context (font_map_);
    /* Grey antialiasing: subpixel colour fringes look wrong on video. */
    cairo_font_options_t *options = cairo_font_options_create ();
    cairo_font_options_set_antialias (options, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_metrics (options, CAIRO_HINT_METRICS_OFF);
    pango_cairo_context_set_font_options (context_, options);
    cairo_font_options_destroy (options);
  }
  free_layouts ();
  font_ = pango_font_description_from_string (desc.c_str ());
  if (pango_font_description_get_size (font_) <= 0)
    pango_font_description_set_size (font_, 12 * PANGO_SCALE);
  bold_font_ = pango_font_description_copy (font_);
  pango_font_description_set_weight (bold_font_, PANGO_WEIGHT_BOLD);

  PangoLayout *probe = pango_layout_new (context_);
  pango_layout_set_font_description (probe, font_);
  pango_layout_set_text (probe, "Ag", -1);
  pango_layout_get_pixel_size (probe, nullptr, &line_height_);
  g_object_unref (probe);
  GST_DEBUG_OBJECT (element_, "font \"%s\": lines of %d px", desc.c_str (), line_height_);

  rebuild_name_layouts ();
}

void
Overlay::set_colour (cairo_t * cr, const Rgb & c, double alpha) const
{
  if (swap_red_blue_)
    cairo_set_source_rgba (cr, c.b, c.g, c.r, alpha);
  else
    cairo_set_source_rgba (cr, c.r, c.g, c.b, alpha);
}

/* Text with a one-pixel dark shadow, readable on any picture. */
void
Overlay::show_text (cairo_t * cr, PangoLayout * layout, double x, double y, const Rgb & c) const
{
  set_colour (cr, kBlack, 0.8);
  cairo_move_to (cr, x + 1, y + 1);
  pango_cairo_show_layout (cr, layout);
  set_colour (cr, c, 1.0);
  cairo_move_to (cr, x, y);
  pango_cairo_show_layout (cr, layout);
}

void
Overlay::draw (GstVideoFrame * frame)
{
  cairo_surface_t *surface = cairo_image_surface_create_for_data (
      static_cast<unsigned char *> (GST_VIDEO_FRAME_PLANE_DATA (frame, 0)), format_,
      width_, height_, GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0));
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS) {
    if (!warned_surface_)
      GST_ELEMENT_WARNING (element_, STREAM, FORMAT, ("Cannot draw on these frames."),
          ("cairo refused a %dx%d surface with stride %d: %s. Put videoconvert in front.",
              width_, height_, GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0),
              cairo_status_to_string (cairo_surface_status (surface))));
    warned_surface_ = true;
    cairo_surface_destroy (surface);
    return;
  }
  cairo_t *cr = cairo_create (surface);
  pango_cairo_update_context (cr, context_);

  const double margin = std::max (4, std::min (width_, height_) / 50);
  const double timeline_height = std::max (24, height_ / 4);
  const double timeline_top = height_ - margin - timeline_height;
  const double upper_bottom = current_.show_timeline ? timeline_top - margin : height_ - margin;
  const double bars_width = std::min (width_ * 0.5, std::max (80.0, width_ * 0.3));
  const double bars_x = width_ - margin - bars_width;

  if (current_.show_timeline)
    draw_timeline (cr, timeline_top);
  if (current_.show_bars)
    draw_bars (cr, bars_x, upper_bottom);
  if (current_.show_labels)
    draw_labels (cr, current_.show_bars ? bars_x - margin : width_ - margin);

  cairo_destroy (cr);
  cairo_surface_flush (surface);
  cairo_surface_destroy (surface);
}

/* Top-left box: the max-labels best classes, best first, as "0.91  speech";
 * active ones (score >= threshold) bold on a stripe of their colour. */
void
Overlay::draw_labels (cairo_t * cr, double right)
{
  const guint n = names_.size ();
  const guint k = std::min (n, current_.max_labels);
  const float *scores = scores_at (ring_count_ - 1);
  for (guint i = 0; i < n; i++)
    order_[i] = i;
  std::partial_sort (order_.begin (), order_.begin () + k, order_.end (),
      [scores] (guint a, guint b) {
        return clamp_score (scores[a]) > clamp_score (scores[b]) ||
            (clamp_score (scores[a]) == clamp_score (scores[b]) && a < b);
      });
  while (label_layouts_.size () < k) {
    PangoLayout *layout = pango_layout_new (context_);
    pango_layout_set_ellipsize (layout, PANGO_ELLIPSIZE_END);
    label_layouts_.push_back (layout);
  }

  const double margin = std::max (4, std::min (width_, height_) / 50);
  const double pad = std::max (3, line_height_ / 4);
  const double row = line_height_ + pad;
  const double swatch = line_height_ * 0.6;
  const double max_text = std::max (20.0, right - 2 * margin - 4 * pad - swatch);
  int text_width = 0;
  char text[64];
  for (guint j = 0; j < k; j++) {
    const guint c = order_[j];
    PangoLayout *layout = label_layouts_[j];
    pango_layout_set_font_description (layout,
        scores[c] >= latest_threshold_ ? bold_font_ : font_);
    pango_layout_set_width (layout, static_cast<int> (max_text) * PANGO_SCALE);
    /* The score first so that ellipsizing a long name never hides it. */
    g_snprintf (text, sizeof text, "%.2f  ", clamp_score (scores[c]));
    const std::size_t used = std::strlen (text);
    const std::size_t name_len = std::min (names_[c].size (), sizeof text - used - 1);
    std::memcpy (text + used, names_[c].data (), name_len);
    text[used + name_len] = '\0';
    pango_layout_set_text (layout, text, -1);
    int w;
    pango_layout_get_pixel_size (layout, &w, nullptr);
    text_width = std::max (text_width, w);
  }
  const double x = margin, y = margin;
  const double box_w = 3 * pad + swatch + text_width + pad, box_h = k * row + 2 * pad;
  set_colour (cr, kPanel, 0.6);
  cairo_rectangle (cr, x, y, box_w, box_h);
  cairo_fill (cr);
  for (guint j = 0; j < k; j++) {
    const guint c = order_[j];
    const bool active = scores[c] >= latest_threshold_;
    const double line_y = y + pad + j * row;
    if (active) {
      set_colour (cr, class_colour (c), 0.45);
      cairo_rectangle (cr, x + pad / 2, line_y, box_w - pad, row);
      cairo_fill (cr);
    }
    set_colour (cr, class_colour (c), 1.0);
    cairo_rectangle (cr, x + pad, line_y + (row - swatch) / 2, swatch, swatch);
    cairo_fill (cr);
    show_text (cr, label_layouts_[j], x + 2 * pad + swatch, line_y + (row - line_height_) / 2,
        active ? kWhite : kDim);
  }
}

/* Right column: one bar per class in class order, its name on it, a tick at
 * the threshold; active bars full colour with a white outline. Classes that
 * do not fit the column's height are left out. */
void
Overlay::draw_bars (cairo_t * cr, double x, double bottom)
{
  const float *scores = scores_at (ring_count_ - 1);
  const double margin = std::max (4, std::min (width_, height_) / 50);
  const double pad = std::max (3, line_height_ / 4);
  const double row = line_height_ + pad;
  const double width = width_ - margin - x;
  const double top = margin;
  const guint fit = static_cast<guint> (std::max (0.0, (bottom - top - 2 * pad) / row));
  const guint rows = std::min<guint> (names_.size (), fit);
  if (rows == 0 || name_layouts_.size () < rows)
    return;
  set_colour (cr, kPanel, 0.6);
  cairo_rectangle (cr, x, top, width, rows * row + 2 * pad);
  cairo_fill (cr);
  const double track_x = x + pad, track_w = width - 2 * pad;
  for (guint c = 0; c < rows; c++) {
    const double y = top + pad + c * row;
    const bool active = scores[c] >= latest_threshold_;
    set_colour (cr, kTrack, 0.6);
    cairo_rectangle (cr, track_x, y + 1, track_w, row - 2);
    cairo_fill (cr);
    set_colour (cr, class_colour (c), active ? 1.0 : 0.6);
    cairo_rectangle (cr, track_x, y + 1, track_w * clamp_score (scores[c]), row - 2);
    cairo_fill (cr);
    if (active) {
      set_colour (cr, kWhite, 0.9);
      cairo_set_line_width (cr, 1.5);
      cairo_rectangle (cr, track_x + 0.75, y + 1.75, track_w - 1.5, row - 3.5);
      cairo_stroke (cr);
    }
    const double tick = track_x + track_w * clamp_score (latest_threshold_);
    set_colour (cr, kWhite, 0.8);
    cairo_set_line_width (cr, 2.0);
    cairo_move_to (cr, tick, y + 1);
    cairo_line_to (cr, tick, y + row - 1);
    cairo_stroke (cr);
    PangoLayout *layout = name_layouts_[c];
    pango_layout_set_width (layout, static_cast<int> (std::max (1.0, track_w - 2 * pad)) *
        PANGO_SCALE);
    show_text (cr, layout, track_x + pad, y + (row - line_height_) / 2, kWhite);
  }
}

/* Bottom strip: each class's score over the last results (newest at the
 * right, scrolling left), 0 at the bottom and 1 at the top, the threshold
 * dashed. */
void
Overlay::draw_timeline (cairo_t * cr, double top)
{
  const double margin = std::max (4, std::min (width_, height_) / 50);
  const double x = margin, width = width_ - 2 * margin, height = height_ - margin - top;
  const double pad = std::max (3.0, height / 12);
  set_colour (cr, kPanel, 0.6);
  cairo_rectangle (cr, x, top, width, height);
  cairo_fill (cr);

  const double left = x + pad, right = x + width - pad;
  const double low = top + height - pad, span = height - 2 * pad;
  auto y_of = [low, span] (double s) { return low - s * span; };
  cairo_set_line_width (cr, 1.0);
  set_colour (cr, kWhite, 0.25);
  for (double s : {0.0, 1.0}) {
    cairo_move_to (cr, left, std::round (y_of (s)) + 0.5);
    cairo_line_to (cr, right, std::round (y_of (s)) + 0.5);
  }
  cairo_stroke (cr);
  const double dashes[] = {6.0, 4.0};
  cairo_set_dash (cr, dashes, 2, 0.0);
  set_colour (cr, kWhite, 0.7);
  cairo_move_to (cr, left, y_of (clamp_score (latest_threshold_)));
  cairo_line_to (cr, right, y_of (clamp_score (latest_threshold_)));
  cairo_stroke (cr);
  cairo_set_dash (cr, nullptr, 0, 0.0);

  const double dx = (right - left) / std::max (1u, capacity_ - 1);
  cairo_set_line_width (cr, std::max (1.5, height_ / 240.0));
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
  for (guint c = 0; c < names_.size (); c++) {
    for (guint i = 0; i < ring_count_; i++) {
      const double px = right - (ring_count_ - 1 - i) * dx;
      const double py = y_of (clamp_score (scores_at (i)[c]));
      if (i == 0)
        cairo_move_to (cr, px, py);
      else
        cairo_line_to (cr, px, py);
    }
    if (ring_count_ == 1)
      cairo_rel_line_to (cr, 0, 0);  /* a round dot */
    set_colour (cr, class_colour (c), 1.0);
    cairo_stroke (cr);
  }
}

}  // namespace nystream::plugin

using nystream::plugin::Overlay;

struct _GstNyOverlay {
  GstVideoFilter parent;
  Overlay *overlay;
};

G_DEFINE_TYPE (GstNyOverlay, gst_ny_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (nyoverlay, "nyoverlay", GST_RANK_NONE, GST_TYPE_NY_OVERLAY);

static void
gst_ny_overlay_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstNyOverlay *self = GST_NY_OVERLAY (object);
  Overlay *o = self->overlay;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DETECTOR:
      o->detector_name = g_value_get_string (value) ? g_value_get_string (value) : "";
      o->settings.detector_generation++;
      break;
    case PROP_SHOW_LABELS:
      o->settings.show_labels = g_value_get_boolean (value);
      break;
    case PROP_SHOW_BARS:
      o->settings.show_bars = g_value_get_boolean (value);
      break;
    case PROP_SHOW_TIMELINE:
      o->settings.show_timeline = g_value_get_boolean (value);
      break;
    case PROP_TIMELINE_LENGTH:
      o->settings.timeline_length = g_value_get_uint (value);
      break;
    case PROP_FONT_DESC:
      o->font_desc = g_value_get_string (value) ? g_value_get_string (value) : DEFAULT_FONT_DESC;
      o->settings.font_generation++;
      break;
    case PROP_MAX_LABELS:
      o->settings.max_labels = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ny_overlay_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstNyOverlay *self = GST_NY_OVERLAY (object);
  Overlay *o = self->overlay;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DETECTOR:
      g_value_set_string (value, o->detector_name.empty ()? nullptr : o->detector_name.c_str ());
      break;
    case PROP_SHOW_LABELS:
      g_value_set_boolean (value, o->settings.show_labels);
      break;
    case PROP_SHOW_BARS:
      g_value_set_boolean (value, o->settings.show_bars);
      break;
    case PROP_SHOW_TIMELINE:
      g_value_set_boolean (value, o->settings.show_timeline);
      break;
    case PROP_TIMELINE_LENGTH:
      g_value_set_uint (value, o->settings.timeline_length);
      break;
    case PROP_FONT_DESC:
      g_value_set_string (value, o->font_desc.c_str ());
      break;
    case PROP_MAX_LABELS:
      g_value_set_uint (value, o->settings.max_labels);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_ny_overlay_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  (void) incaps;
  (void) outcaps;
  (void) out_info;
  GstNyOverlay *self = GST_NY_OVERLAY (filter);
  self->overlay->configure (in_info);
  return TRUE;
}

static gboolean
gst_ny_overlay_stop (GstBaseTransform * trans)
{
  GST_NY_OVERLAY (trans)->overlay->release ();
  return TRUE;
}

static gboolean
gst_ny_overlay_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
    case GST_EVENT_STREAM_START:
      GST_NY_OVERLAY (trans)->overlay->reset_results ();
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (gst_ny_overlay_parent_class)->sink_event (trans, event);
}

/* Maps and draws only when there is something to draw; otherwise the buffer
 * passes as it came. */
static GstFlowReturn
gst_ny_overlay_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstNyOverlay *self = GST_NY_OVERLAY (trans);
  const GstClockTime running = gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME,
      GST_BUFFER_PTS (buf));
  try {
    if (!self->overlay->prepare (buf, running))
      return GST_FLOW_OK;
    GstVideoFrame frame;
    if (!gst_video_frame_map (&frame, &GST_VIDEO_FILTER (self)->in_info, buf, GST_MAP_READWRITE)) {
      GST_WARNING_OBJECT (self, "could not map buffer %" GST_PTR_FORMAT " for writing", buf);
      return GST_FLOW_OK;
    }
    self->overlay->draw (&frame);
    gst_video_frame_unmap (&frame);
  } catch (const std::exception & e) {
    GST_WARNING_OBJECT (self, "frame not drawn: %s", e.what ());
  }
  return GST_FLOW_OK;
}

static void
gst_ny_overlay_finalize (GObject * object)
{
  delete GST_NY_OVERLAY (object)->overlay;
  G_OBJECT_CLASS (gst_ny_overlay_parent_class)->finalize (object);
}

static void
gst_ny_overlay_class_init (GstNyOverlayClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_ny_overlay_debug, "nyoverlay", 0,
      "Nystream results drawn on video");
  gobject_class->set_property = gst_ny_overlay_set_property;
  gobject_class->get_property = gst_ny_overlay_get_property;
  gobject_class->finalize = gst_ny_overlay_finalize;

  const GParamFlags flags = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property (gobject_class, PROP_DETECTOR,
      g_param_spec_string ("detector", "Detector",
          "Name of a nyaudiodetect or nyvideodetect element in the same pipeline whose "
          "latest results at each frame's running time are drawn (e.g. an audio detector "
          "over the soundtrack). Empty: draw the GstNystreamMeta found on the video buffers",
          DEFAULT_DETECTOR, flags));
  g_object_class_install_property (gobject_class, PROP_SHOW_LABELS,
      g_param_spec_boolean ("show-labels", "Show labels",
          "Draw a top-left box listing the best classes with their scores (active ones "
          "highlighted)", DEFAULT_SHOW_LABELS, flags));
  g_object_class_install_property (gobject_class, PROP_SHOW_BARS,
      g_param_spec_boolean ("show-bars", "Show bars",
          "Draw a score bar per class with its name on the right, with a threshold tick",
          DEFAULT_SHOW_BARS, flags));
  g_object_class_install_property (gobject_class, PROP_SHOW_TIMELINE,
      g_param_spec_boolean ("show-timeline", "Show timeline",
          "Draw a strip at the bottom with each class's score over the last results and "
          "the threshold", DEFAULT_SHOW_TIMELINE, flags));
  g_object_class_install_property (gobject_class, PROP_TIMELINE_LENGTH,
      g_param_spec_uint ("timeline-length", "Timeline length",
          "Results shown on the timeline (a followed detector keeps its last 256)", 2,
          MAX_TIMELINE_LENGTH, DEFAULT_TIMELINE_LENGTH, flags));
  g_object_class_install_property (gobject_class, PROP_FONT_DESC,
      g_param_spec_string ("font-desc", "Font description",
          "Pango font description of the text, e.g. \"Sans Bold 16\"", DEFAULT_FONT_DESC,
          flags));
  g_object_class_install_property (gobject_class, PROP_MAX_LABELS,
      g_param_spec_uint ("max-labels", "Max labels",
          "Classes listed in the top-left box, best first", 1, MAX_MAX_LABELS,
          DEFAULT_MAX_LABELS, flags));

  GstCaps *caps = gst_caps_from_string (GST_VIDEO_CAPS_MAKE (OVERLAY_FORMATS));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);
  gst_element_class_set_static_metadata (element_class, "Nystream overlay",
      "Filter/Effect/Video/Overlay",
      "Draws Nystream detection results on video: top labels with scores, a score bar per "
      "class and a scrolling timeline of recent scores. Draws the results on the video "
      "buffers, or follows a detector by name (detector=...). Takes " OVERLAY_FORMATS_TEXT
      " video: put videoconvert in front for other formats",
      "Nystream developers");

  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ny_overlay_stop);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_ny_overlay_sink_event);
  /* Our own transform_ip (not transform_frame_ip): frames with nothing to
   * draw are not even mapped. */
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ny_overlay_transform_ip);
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_ny_overlay_set_info);
}

static void
gst_ny_overlay_init (GstNyOverlay * self)
{
  self->overlay = new Overlay (self);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
  /* Drawing is cheap: late frames are the sink's to drop, not ours. */
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), FALSE);
}
