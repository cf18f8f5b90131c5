#!/usr/bin/python3
"""Log-mel against torchaudio and a float64 NumPy reference, on real speech and music.

Media (made at test time from Debian packages, nothing committed): espeak-ng
speech and the first 20 s of asc-music's frontiers.mp3, converted by the ffmpeg
CLI to 16 kHz mono int16 WAV so both sides read the same samples. The tool under
test, nystream-features, decodes the WAV itself (params {"pooling": "flatten"},
so every mel frame is visible) and is compared frame by frame with
torchaudio.transforms.MelSpectrogram(center=False) + ln(x + 1e-6).

Usage: reference_log_mel.py NYSTREAM_FEATURES WORK_DIR
"""
import json
import os
import subprocess
import sys
import wave

import numpy as np

try:
    import torch
    import torchaudio
except ImportError as e:  # meson counts 77 as skipped; tools/install-deps.sh installs both
    print(f"SKIP: {e} (apt-get install python3-torchaudio)")
    sys.exit(77)

TOLERANCE = 1e-3  # max |difference| of ln(mel + 1e-6), see docs/features.md
MUSIC = "/usr/share/games/asc/music/frontiers.mp3"  # Debian package asc-music


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{result.stderr}")
    return result


def read_wav(path):
    with wave.open(path) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def numpy_log_mel(x, p):
    """From the definition, float64: Hann (periodic) window centred in n_fft,
    |rfft|^2, HTK triangular filters on torchaudio's bin grid, ln(. + offset)."""
    n_fft, win, hop = p["n_fft"], p["win_length"], p["hop_length"]
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left:left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(x.astype(np.float64)[idx] * window, axis=1)) ** 2
    freqs = np.linspace(0, p["sample_rate"] // 2, n_fft // 2 + 1)
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    f_pts = 700.0 * (10 ** (np.linspace(mel(p["f_min"]), mel(p["f_max"]), p["n_mels"] + 2) / 2595.0) - 1)
    lo, mid, hi = f_pts[:-2, None], f_pts[1:-1, None], f_pts[2:, None]
    fb = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return np.log(spec @ fb.T + p["log_offset"])


def main():
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    p = {"sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 64,
         "f_min": 0.0, "f_max": 8000.0, "log_offset": 1e-6, "pooling": "flatten"}
    speech_raw = os.path.join(work, "speech_raw.wav")
    run(["espeak-ng", "-w", speech_raw,
         "Continual transformers listen to every frame once. The quick brown fox jumps over the lazy dog, "
         "while seven silver trumpets announce the evening news."])
    if not os.path.exists(MUSIC):
        sys.exit(f"FAILED: {MUSIC} is missing: install the Debian package asc-music (tools/install-deps.sh)")
    media = {"speech (espeak-ng)": (speech_raw, []), "music (asc-music frontiers.mp3, 20 s)": (MUSIC, ["-t", "20"])}
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, f_min=0.0, f_max=8000.0, n_mels=64,
        power=2.0, center=False, norm=None, mel_scale="htk")
    failed = 0
    for name, (source, extra) in media.items():
        wav = os.path.join(work, name.split()[0] + ".wav")
        run(["ffmpeg", "-v", "error", "-y", "-i", source] + extra + ["-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", wav])
        out = os.path.join(work, name.split()[0] + ".npy")
        run([tool, "-q", "-e", "log-mel", "-p", json.dumps(p), "-o", out, wav])
        ours = np.load(out).reshape(-1, 64)  # tokens x (10 frames x 64) -> frames x 64
        x = read_wav(wav)
        torch_ref = torch.log(mel(torch.from_numpy(x)) + 1e-6).numpy().T  # frames x 64
        numpy_ref = numpy_log_mel(x, p)
        n = min(len(ours), len(torch_ref))
        assert n > 100, (len(ours), len(torch_ref))
        err_torch = np.abs(ours[:n] - torch_ref[:n])
        err_numpy = np.abs(ours[:n] - numpy_ref[:n])
        err_torch_numpy = np.abs(torch_ref[:n] - numpy_ref[:n])
        print(f"{name}: {n} frames x 64 bands, log-mel range [{ours[:n].min():.2f}, {ours[:n].max():.2f}]")
        print(f"  max |ours - torchaudio| = {err_torch.max():.2e} (mean {err_torch.mean():.1e}), "
              f"max |ours - numpy f64| = {err_numpy.max():.2e}, max |torchaudio - numpy f64| = "
              f"{err_torch_numpy.max():.2e}; tolerance {TOLERANCE:.0e}")
        if err_torch.max() > TOLERANCE or err_numpy.max() > TOLERANCE:
            failed += 1
            print("  FAILED")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
