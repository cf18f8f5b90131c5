// What a detector element needs from a media front end: buffers in, feature
// tokens out through a TokenSink, plus reset, drain and latency. Each detector
// subclass adapts one core extractor (log-mel, video-motion) to it.
#pragma once

#include <gst/gst.h>

#include <cstdint>

#include "nystream/features/params.h"

namespace nystream::plugin {

class Frontend {
 public:
  virtual ~Frontend() = default;
  // Maps the buffer and feeds it; tokens it completes go to sink synchronously.
  virtual PushStatus push(GstBuffer* buffer, TokenSink& sink) = 0;
  // End of stream: delivers what is pending, then resets.
  virtual void drain(TokenSink& sink) = 0;
  virtual void reset() = 0;
  // Media time from a sample arriving to the token that holds it being complete.
  virtual std::int64_t latency_ns() const = 0;
  virtual int dim() const = 0;
};

}  // namespace nystream::plugin
