#include "mel_filterbank.h"

#include <algorithm>
#include <cmath>

namespace nystream::detail {
namespace {

// torchaudio.functional._hz_to_mel / _mel_to_hz.
double hz_to_mel(double f, bool htk) {
  if (htk) return 2595.0 * std::log10(1.0 + f / 700.0);
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return f >= min_log_hz ? min_log_mel + std::log(f / min_log_hz) / logstep : f / f_sp;
}

double mel_to_hz(double m, bool htk) {
  if (htk) return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return m >= min_log_mel ? min_log_hz * std::exp(logstep * (m - min_log_mel)) : f_sp * m;
}

}  // namespace

std::vector<MelBand> mel_filterbank(const LogMelParams& p) {
  const bool htk = p.mel_scale == "htk";
  const int n_freqs = p.n_fft / 2 + 1;
  // torchaudio: linspace(0, sample_rate // 2, n_freqs), integer Nyquist.
  const double nyquist = static_cast<double>(p.sample_rate / 2);
  std::vector<double> freqs(n_freqs);
  for (int i = 0; i < n_freqs; ++i) freqs[i] = n_freqs > 1 ? nyquist * i / (n_freqs - 1) : 0.0;
  const double m_min = hz_to_mel(p.f_min, htk), m_max = hz_to_mel(p.f_max, htk);
  std::vector<double> f_pts(p.n_mels + 2);
  for (int i = 0; i < p.n_mels + 2; ++i) f_pts[i] = mel_to_hz(m_min + (m_max - m_min) * i / (p.n_mels + 1), htk);

  std::vector<MelBand> bands(p.n_mels);
  for (int m = 0; m < p.n_mels; ++m) {
    const double lo = f_pts[m], mid = f_pts[m + 1], hi = f_pts[m + 2];
    const double enorm = p.mel_norm == "slaney" ? 2.0 / (hi - lo) : 1.0;
    std::vector<double> w(n_freqs);
    int first = -1, last = -1;
    for (int i = 0; i < n_freqs; ++i) {
      // Triangle: min(rising edge, falling edge), clipped at 0.
      const double down = (freqs[i] - lo) / (mid - lo), up = (hi - freqs[i]) / (hi - mid);
      w[i] = std::max(0.0, std::min(down, up)) * enorm;
      if (w[i] > 0) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0) continue;  // a band narrower than a bin: all zero, as torchaudio
    bands[m].first_bin = first;
    for (int i = first; i <= last; ++i) bands[m].weights.push_back(static_cast<float>(w[i]));
  }
  return bands;
}

std::vector<float> analysis_window(const LogMelParams& p) {
  std::vector<float> window(p.n_fft, 0.0f);
  const int left = (p.n_fft - p.win_length) / 2;
  const double a = p.window == "hann" ? 0.5 : 0.54, b = 1.0 - a;
  // Periodic window: the period is win_length, as torch.*_window(periodic=True).
  for (int n = 0; n < p.win_length; ++n)
    window[left + n] = static_cast<float>(a - b * std::cos(2.0 * M_PI * n / p.win_length));
  return window;
}

}  // namespace nystream::detail
