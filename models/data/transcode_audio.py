#!/usr/bin/python3
"""Passes every clip of an audio_mixtures.py set through a random sample rate, channel
count and codec with ffmpeg, the formats users feed the element (issue 18):

    OUT/<split>/clip_NNNNN.{ogg,mp3,m4a,opus,flac,wav}   the transcoded clip
    OUT/<split>/clip_NNNNN.csv                           its labels, copied (labels are by time)
    OUT/manifest.json                                    the input manifest; each clip gains
        `conditions` (rate, channels, codec, bitrate) and `transcode` (the encoder, its
        settings, the file's size, rate and bit rate, and the check below)

Per clip (numpy.random.default_rng([seed, clip number]), so a clip's format does not
depend on the other clips): a rate of 8, 11.025, 16, 22.05, 32, 44.1 or 48 kHz, mono or
stereo (the mono mix on both channels), then with probability --lossless-fraction FLAC
or 16-bit WAV, else Vorbis .ogg (quality -1..6), MP3 (16-192 kb/s), AAC .m4a (16-160
kb/s) or Opus .opus (8-96 kb/s), each equally likely. The encoders clamp the bit rate to
what the rate allows (MP3 at 8-12 kHz: at most 64 kb/s). Opus codes at 8, 12, 16, 24 or
48 kHz only: the clip is resampled to the chosen rate first (band-limited to it), then
ffmpeg picks the encoder's rate; Opus always decodes at 48 kHz.

Check of every clip: the file is decoded back (ffmpeg, 16 kHz mono, as nystream-features
does) and compared with the input: `length_diff_ms` (decoded - input) and `offset_ms`,
the lag (within +-200 ms) that maximises the cross-correlation with the input (> 0: the
decoded audio comes late). A clip whose offset is over 20 ms, that decodes a token (100
ms) or more shorter, or longer by more than a token plus one AAC frame (1024 samples:
FFmpeg 5.1 decodes an .m4a's end padding, up to 128 ms at 8 kHz, after the labelled
tokens, where prepare.py drops it) is reported (and fails with --strict). The codecs'
start delays (encoder priming, decoder delay) are undone by FFmpeg's decoders (offset 0);
GStreamer's decodebin (mpg123audiodec) plays MP3 1105 samples late (23 ms at 48 kHz,
50 ms at 22.05 kHz, 138 ms at 8 kHz): it ignores the LAME header's encoder delay.

    /usr/bin/python3 models/data/transcode_audio.py --data MIX --out MIX-tc --seed 1
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
import wave

import numpy as np

RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000]
LOSSY = {  # codec: (suffix, ffmpeg encoder, option, values)
    "Vorbis": (".ogg", "libvorbis", "-q:a", [-1, 0, 1, 2, 3, 4, 5, 6]),
    "MP3": (".mp3", "libmp3lame", "-b:a", [16, 24, 32, 48, 64, 96, 128, 160, 192]),
    "AAC": (".m4a", "aac", "-b:a", [16, 24, 32, 48, 64, 96, 128, 160]),
    "Opus": (".opus", "libopus", "-b:a", [8, 12, 16, 24, 32, 48, 64, 96]),
}
LOSSLESS = {"FLAC": (".flac", "flac", None, [None]), "WAV": (".wav", "pcm_s16le", None, [None])}
CHECK_RATE = 16000
MAX_LAG = CHECK_RATE // 5  # 200 ms


def choose(rng, lossless_fraction):
    """(rate, channels, codec, setting) of one clip."""
    rate = int(rng.choice(RATES))
    channels = int(rng.choice([1, 2]))
    table = LOSSLESS if rng.random() < lossless_fraction else LOSSY
    codec = str(rng.choice(sorted(table)))
    values = table[codec][3]
    setting = values[int(rng.integers(len(values)))]
    return rate, channels, codec, setting


def encode_command(src, dst, rate, channels, codec, setting):
    suffix, encoder, option, _ = {**LOSSY, **LOSSLESS}[codec]
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", src,
               "-map_metadata", "-1", "-af", f"aresample={rate}", "-ac", str(channels),
               "-c:a", encoder]
    if codec != "Opus":
        command += ["-ar", str(rate)]
    if option == "-b:a":
        command += [option, f"{setting}k"]
    elif option:
        command += [option, str(setting)]
    return command + ["-fflags", "+bitexact", "-flags:a", "+bitexact", dst]


def decode(path, rate=CHECK_RATE):
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-ac", "1", "-ar", str(rate),
                        "-f", "f32le", "-"], capture_output=True, check=True)
    return np.frombuffer(r.stdout, dtype=np.float32)


def probe(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                        "stream=sample_rate,channels:format=duration", "-of", "json", path],
                       capture_output=True, text=True, check=True)
    info = json.loads(r.stdout)
    stream = info["streams"][0]
    return int(stream["sample_rate"]), int(stream["channels"]), float(info["format"]["duration"])


def offset_samples(reference, decoded, max_lag=MAX_LAG):
    """The lag of decoded against reference (> 0: decoded is late), by cross-correlation."""
    n = min(len(reference), len(decoded))
    if n <= 2 * max_lag:
        return 0
    a, b = reference[:n].astype(np.float64), decoded[:n].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([xc[:max_lag + 1], xc[size - max_lag:]])
    return int(lags[np.argmax(values)])


def transcode_clip(data, out, clip, seed, lossless_fraction):
    """Writes one clip's transcoded file and labels; returns its manifest additions."""
    split, name = clip["split"], clip["name"]
    src = os.path.join(data, clip.get("wav", f"{split}/{name}.wav"))
    rng = np.random.default_rng([seed, int(name.split("_")[-1])])
    rate, channels, codec, setting = choose(rng, lossless_fraction)
    suffix = {**LOSSY, **LOSSLESS}[codec][0]
    os.makedirs(os.path.join(out, split), exist_ok=True)
    dst = os.path.join(out, split, name + suffix)
    t0 = time.time()
    subprocess.run(encode_command(src, dst, rate, channels, codec, setting), check=True)
    seconds = time.time() - t0
    shutil.copyfile(os.path.join(data, clip["labels"]), os.path.join(out, split, name + ".csv"))
    file_rate, file_channels, duration = probe(dst)
    with wave.open(src) as w:
        reference = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        assert w.getframerate() == CHECK_RATE and w.getnchannels() == 1, src
    decoded = decode(dst)
    length_diff = len(decoded) - len(reference)
    offset = offset_samples(reference, decoded)
    size = os.path.getsize(dst)
    kbps = size * 8 / 1000 / (len(reference) / CHECK_RATE)
    if codec in LOSSLESS:
        bitrate = "lossless"
    else:
        bitrate = "< 32 kb/s" if kbps < 32 else "32-64 kb/s" if kbps <= 64 else "> 64 kb/s"
    return {
        "media": f"{split}/{name}{suffix}",
        "conditions": {"rate": f"{rate / 1000:g} kHz", "channels": "mono" if channels == 1 else "stereo",
                       "codec": codec, "bitrate": bitrate},
        "transcode": {"source": clip.get("wav"), "rate": rate, "channels": channels, "codec": codec,
                      "encoder": {**LOSSY, **LOSSLESS}[codec][1],
                      "setting": None if setting is None else {"-q:a": "quality", "-b:a": "kb/s"}[
                          {**LOSSY, **LOSSLESS}[codec][2]] + f" {setting}",
                      "file_rate": file_rate, "file_channels": file_channels,
                      "file_duration_s": round(duration, 4), "bytes": size, "kbps": round(kbps, 1),
                      "length_diff_ms": round(length_diff / CHECK_RATE * 1000, 2),
                      "offset_ms": round(offset / CHECK_RATE * 1000, 3),
                      "encode_s": round(seconds, 3)},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="an audio_mixtures.py --out directory")
    p.add_argument("--out", required=True, help="write the transcoded set here")
    p.add_argument("--seed", type=int, default=1, help="clip N uses default_rng([seed, N])")
    p.add_argument("--lossless-fraction", type=float, default=0.2,
                   help="share of clips kept lossless (FLAC or WAV, at the chosen rate and channels)")
    p.add_argument("--splits", default="train,validation")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--strict", action="store_true",
                   help="fail when a clip's length moves by a token or more or its offset exceeds 20 ms")
    args = p.parse_args(argv)
    if os.path.abspath(args.data) == os.path.abspath(args.out):
        p.error("--out must differ from --data")
    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    splits = args.splits.split(",")
    clips = [c for c in manifest["clips"] if c["split"] in splits]
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        added = list(pool.map(lambda c: transcode_clip(args.data, args.out, c, args.seed,
                                                       args.lossless_fraction), clips))
    bad = []
    for clip, extra in zip(clips, added):
        clip.update(extra)
        check = extra["transcode"]
        longest = 100 + (1024 / check["rate"] * 1000 if check["codec"] == "AAC" else 0)
        if not -100 < check["length_diff_ms"] < longest or abs(check["offset_ms"]) > 20:
            bad.append(f"{clip['name']} {check['codec']}: length {check['length_diff_ms']:+} ms, "
                       f"offset {check['offset_ms']:+} ms")
    manifest["clips"] = clips
    manifest["transcode"] = {"tool": "models/data/transcode_audio.py", "data": os.path.abspath(args.data),
                             "args": vars(args), "ffmpeg": subprocess.run(
                                 ["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0],
                             "seconds": round(time.time() - t0, 1)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        f.write(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    by_codec = {}
    for extra in added:
        by_codec.setdefault(extra["transcode"]["codec"], []).append(extra["transcode"])
    for codec, group in sorted(by_codec.items()):
        offsets = [g["offset_ms"] for g in group]
        lengths = [g["length_diff_ms"] for g in group]
        print(f"{codec}: {len(group)} clips, offset ms min {min(offsets):+.3f} max {max(offsets):+.3f}, "
              f"length diff ms min {min(lengths):+.2f} max {max(lengths):+.2f}", file=sys.stderr)
    print(f"wrote {len(clips)} clips to {args.out} in {time.time() - t0:.0f}s", file=sys.stderr)
    for line in bad:
        print("check: " + line, file=sys.stderr)
    return 1 if bad and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
