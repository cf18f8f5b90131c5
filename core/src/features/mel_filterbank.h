// Mel filterbank and analysis window exactly as torchaudio builds them
// (torchaudio.functional.melscale_fbanks, torch.hann_window periodic), computed
// in double and stored as each band's non-zero run of FFT bins.
#pragma once

#include <vector>

#include "nystream/features/params.h"

namespace nystream::detail {

struct MelBand {
  int first_bin = 0;           // first FFT bin with a non-zero weight
  std::vector<float> weights;  // weights of bins first_bin, first_bin + 1, ...
};

// n_mels bands over n_fft / 2 + 1 bins.
std::vector<MelBand> mel_filterbank(const LogMelParams& params);

// The win_length-sample window, zero-padded and centred in n_fft samples as
// torch.stft pads it (left pad (n_fft - win_length) / 2).
std::vector<float> analysis_window(const LogMelParams& params);

}  // namespace nystream::detail
