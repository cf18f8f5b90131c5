#!/usr/bin/python3
"""The demo clip of tools/demo.sh (issue 7): sound and picture with known events.

Picture: opencv-doc's vtest.avi (768x576 pedestrians, playing, looped or trimmed to
the clip's length, resampled to --fps) with one tuxpaint stamp actor (a person,
default people/cartoon/man_in_suit.svg) composited in, who stands, walks right,
waves, jumps, walks left and falls, a few seconds each with pauses between.

Sound, 16 kHz mono over light pink noise: speech (espeak-ng), music (a MIDI file of
openttd-openmsx rendered by fluidsynth with the TimGM6mb soundfont), an alarm (sox:
beeps, then a siren) and, near the end, speech over music.

Writes
    OUT/demo.mkv          H.264 (libx264) + AAC, --seconds long
    OUT/demo-truth.json   every segment's class, start and end (s), per modality,
                          and where each source came from

The schedule is fixed (a 24 s script, scaled to --seconds) and every random choice
(gait, wave, noise) comes from --seed: the same seed, cache and tool versions give
the same file. Sources are fetched with `apt-get download` + `dpkg-deb -x` into
--cache (shared with models/data/, never committed) by models/data's own fetchers,
and every package and file read goes through the deny lists of both
models/data/video_actions.py and models/data/audio_mixtures.py (media reserved for
the hidden evaluation are refused).

Requires /usr/bin/python3 with numpy (no PIL), ffmpeg with libx264 and librsvg,
espeak-ng, sox, fluidsynth and /usr/share/sounds/sf2/TimGM6mb.sf2
(timgm6mb-soundfont): tools/install-deps.sh installs them.

    /usr/bin/python3 tools/demo_media.py --out demo-out [--seconds 24] [--seed 7]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "data"))
import audio_mixtures as am  # noqa: E402  (fetch, render, trim, noise; deny list)
import video_actions as va  # noqa: E402  (fetch, sprites, compositing; deny list)

SR = am.SR  # 16 kHz, the audio model's own rate
SCRIPT_SECONDS = 24.0
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
MIDI_PACKAGE = "openttd-openmsx"
MIDI_DIR = "usr/share/games/openttd/baseset/openmsx/"

# The actor's script for a 24 s clip: (class, seconds); "none" = standing (or lying).
VIDEO_SCRIPT = [
    ("none", 2.0), ("walk_right", 3.5), ("none", 1.5), ("wave", 3.0), ("none", 1.5),
    ("jump", 2.0), ("none", 1.5), ("walk_left", 3.0), ("none", 1.5), ("fall", 0.8),
    ("none", None),  # lying until the end
]
# The soundtrack's script for a 24 s clip: (class, start s, end s, what).
AUDIO_SCRIPT = [
    ("speech", 1.5, 5.8, "Welcome to the Nystream demo. A man walks across the square."),
    ("music", 7.0, 12.5, "flying_scotsman.mid"),
    ("alarm", 13.5, 16.5, "beeps then siren"),
    ("music", 17.5, 22.5, "flying_scotsman.mid"),
    ("speech", 18.5, 21.5, "He waved, jumped, and fell over."),
]


def check_package(pkg):
    va.check_package(pkg)
    am.check_package(pkg)


def check_path(path):
    va.check_path(path)
    am.check_path(path)
    return path


def log(*a):
    print("demo_media:", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Sources
def fetch(cache):
    """{name: path} of every source file, fetched into the cache when missing."""
    for pkg in list(va.PACKAGES) + [MIDI_PACKAGE]:
        check_package(pkg)
    # video_actions.fetch_packages unpacks into CACHE/x/NAME with a plain `dpkg-deb -x`,
    # which does not create CACHE/x itself (a fresh cache would fail)
    os.makedirs(os.path.join(cache, "x"), exist_ok=True)
    roots = va.fetch_packages(cache)  # opencv-doc, tuxpaint-stamps-default
    midi_roots = am.fetch_packages(cache, [MIDI_PACKAGE])
    if MIDI_PACKAGE not in midi_roots:
        raise SystemExit(f"demo_media: could not fetch {MIDI_PACKAGE} (network, apt sources?)")
    return roots, midi_roots[MIDI_PACKAGE]


def deb_name(cache, pkg):
    debs = sorted(f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb"))
    return debs[-1] if debs else None


# ---------------------------------------------------------------------------
# Picture
def actor_track(n, fps, W, H, base_h, script, rng):
    """Per-frame (x, y, scale, angle, shear) of the actor's feet and pose, and the
    per-frame class, following `script` ([(class, frames)]). The motions are those
    of video_actions.actor_timeline (walk: steady speed with a step bob; wave: the
    body rocking; jump: parabolic hops; fall: rotation about the feet)."""
    x = np.zeros(n); y = np.zeros(n); sc = np.ones(n); ang = np.zeros(n); shr = np.zeros(n)
    cls = ["none"] * n
    s = 1.0
    h_px = base_h * s
    cx, gy = 0.18 * W, 0.95 * H
    lying = 0.0
    f = 0
    for act, k in script:
        k = min(k, n - f)
        if k <= 0:
            break
        t = np.arange(1, k + 1) / fps
        sl = slice(f, f + k)
        x[sl] = cx; y[sl] = gy; ang[sl] = lying
        if act == "none":
            sc[sl] = s * (1 + 0.006 * np.sin(2 * np.pi * 0.3 * t))  # breathing, not an action
        elif act in ("walk_right", "walk_left"):
            d = 1 if act == "walk_right" else -1
            target = 0.72 * W if d > 0 else 0.3 * W
            speed = abs(target - cx) / (k / fps)
            step_hz = rng.uniform(1.4, 2.0)
            x[sl] = cx + d * speed * t
            y[sl] = gy - np.abs(np.sin(np.pi * step_hz * t)) * 0.04 * h_px
            ang[sl] = 0.05 * np.sin(np.pi * step_hz * t) * rng.uniform(0.3, 1.0)
            cx = float(x[f + k - 1])
        elif act == "wave":
            hz = rng.uniform(1.6, 2.4)
            env = np.minimum(1, np.minimum(t, t[-1] - t + 1 / fps) / 0.15)
            ang[sl] = np.radians(rng.uniform(12, 18)) * env * np.sin(2 * np.pi * hz * t)
        elif act == "jump":
            hop = 0.6  # s per hop, a whole number of hops
            reps = max(1, int(round(k / fps / hop)))
            tt = (t / (k / fps) * reps) % 1.0
            hgt = rng.uniform(0.35, 0.5) * h_px
            y[sl] = gy - 4 * hgt * tt * (1 - tt)
        elif act == "fall":
            d = 1 if cx < 0.5 * W else -1  # towards the side with room
            final = d * np.radians(rng.uniform(82, 92))
            u = t / t[-1]
            ang[sl] = final * u ** 2
            y[sl] = gy + u ** 2 * 0.03 * h_px
            lying = float(final)
            gy = float(y[f + k - 1])
        else:
            raise ValueError(act)
        cls[f:f + k] = [act] * k
        f += k
    x[f:] = cx; y[f:] = gy; ang[f:] = lying
    return (x, y, sc, ang, shr), cls


def segments(labels, fps, classes):
    """[{class, start, end}] of the runs of each class (not `none`) in per-frame labels."""
    out = []
    i = 0
    while i < len(labels):
        j = i
        while j < len(labels) and labels[j] == labels[i]:
            j += 1
        if labels[i] in classes and labels[i] != "none":
            out.append({"class": labels[i], "start": round(i / fps, 3), "end": round(j / fps, 3)})
        i = j
    return out


def picture_frames(vtest, start, seconds, fps, W, H):
    """Frames of vtest.avi from `start` s, looped, at fps, as uint8 (H, W, 3)."""
    check_path(vtest)
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-threads", "1", "-stream_loop", "-1", "-ss", "%.3f" % start,
           "-i", vtest, "-t", "%.3f" % seconds,
           "-vf", "fps=%d,scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d"
           % (fps, W, H, W, H), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    size = W * H * 3
    try:
        while True:
            buf = p.stdout.read(size)
            if len(buf) < size:
                break
            yield np.frombuffer(buf, np.uint8).reshape(H, W, 3)
    finally:
        p.stdout.close()
        p.wait()


# ---------------------------------------------------------------------------
# Sound
def tmp_wav(cmd_fn):
    """Runs a command writing a WAV (cmd_fn(path)), returns it as float32 16 kHz mono."""
    x = am.run_tmp_wav(cmd_fn)
    if len(x) == 0:
        raise SystemExit("demo_media: could not synthesise with %s" % cmd_fn("OUT.wav")[0])
    return x


def speech(text):
    return am.trim(tmp_wav(lambda p: ["espeak-ng", "-v", "en-us", "-s", "150", "-w", p, text]))


def alarm(seconds):
    """Four 1 kHz beeps, then a wailing siren for the rest."""
    beeps = tmp_wav(lambda p: ["sox", "-n", "-r", str(SR), "-c", "1", p,
                               "synth", "0.2", "sine", "1000", "pad", "0", "0.15", "repeat", "3"])
    rest = max(0.5, seconds - len(beeps) / SR)
    siren = tmp_wav(lambda p: ["sox", "-n", "-r", str(SR), "-c", "1", p,
                               "synth", "%.2f" % (rest / 2), "sine", "650-1400", "repeat", "1"])
    return np.concatenate([beeps, siren])


def place(track, x, start, end, level_db, fade=0.05):
    """Adds x at `start` s scaled to an RMS of level_db dBFS, cut at `end` with a fade;
    returns the (start, end) s it really occupies."""
    a = int(round(start * SR))
    x = x[: max(0, min(len(x), int(round(end * SR)) - a, len(track) - a))].astype(np.float64)
    if len(x) == 0:
        return None
    x = x * (10 ** (level_db / 20) / am.rms(x))
    nf = min(len(x) // 2, int(fade * SR))
    if nf:
        ramp = np.linspace(0, 1, nf)
        x[:nf] *= ramp
        x[-nf:] *= ramp[::-1]
    track[a:a + len(x)] += x
    return a / SR, (a + len(x)) / SR


def soundtrack(seconds, rng, midi, cache, script):
    n = int(round(seconds * SR))
    track = np.zeros(n)
    bed = am.noise_bed("pink", n, rng).astype(np.float64)
    track += bed * (10 ** (-50 / 20) / am.rms(bed))
    check_path(SOUNDFONT)
    check_path(midi)
    song = am.trim(am.render_midi(SOUNDFONT, midi, cache), -50)
    song_at = 2.0  # the song's first bars
    out = []
    for cls, start, end, what in script:
        if cls == "speech":
            x, level, source = speech(what), -20.0, {"tool": "espeak-ng", "voice": "en-us", "text": what}
        elif cls == "music":
            a = int(song_at * SR)
            x = song[a: a + int((end - start + 0.5) * SR)]
            song_at += (end - start) + 1.0
            level = -26.0 if any(c == "speech" and s < end and e > start
                                 for c, s, e, _ in script) else -21.0
            source = {"tool": "fluidsynth", "soundfont": os.path.basename(SOUNDFONT),
                      "package": "timgm6mb-soundfont", "midi": os.path.basename(midi),
                      "midi_package": MIDI_PACKAGE, "offset_s": round(a / SR, 2)}
        elif cls == "alarm":
            x, level, source = alarm(end - start), -21.0, {"tool": "sox", "recipe": what}
        else:
            raise ValueError(cls)
        span = place(track, x, start, end, level)
        if span:
            out.append({"class": cls, "start": round(span[0], 3), "end": round(span[1], 3),
                        "level_dbfs": level, "source": source})
    peak = np.abs(track).max()
    if peak > 0.89:
        track *= 0.89 / peak
    return track.astype(np.float32), out


def write_wav(path, x):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(x, -1, 1) * 32767).round().astype("<i2").tobytes())


# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (demo.mkv, demo-truth.json)")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/nystream/debs"),
                    help="where .deb packages are downloaded and extracted (shared with models/data)")
    ap.add_argument("--seconds", type=float, default=SCRIPT_SECONDS,
                    help="clip length; the 24 s script is scaled to it")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--start", type=float, default=0.0, help="where in vtest.avi the picture starts (s)")
    ap.add_argument("--actor", default="people/cartoon/man_in_suit.svg",
                    help="tuxpaint stamp under stamps/ (a person; animals/ and vehicles/ are refused)")
    ap.add_argument("--midi", default="flying_scotsman.mid", help=f"a MIDI file of {MIDI_PACKAGE}")
    ap.add_argument("--crf", type=int, default=20)
    args = ap.parse_args()
    if args.seconds < 2:
        ap.error("--seconds must be at least 2")

    t0 = time.time()
    roots, midi_root = fetch(args.cache)
    stamps_root = roots["tuxpaint-stamps-default"][0]
    vtest = check_path(os.path.join(roots["opencv-doc"][0], va.OCV, "vtest.avi"))
    actor = check_path(os.path.join(stamps_root, va.STAMPS, args.actor))
    midi = check_path(os.path.join(midi_root, MIDI_DIR, args.midi))
    for p in (vtest, actor, midi, SOUNDFONT):
        if not os.path.exists(p):
            raise SystemExit(f"demo_media: missing source {p}")

    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 0xDE70]))
    k = args.seconds / SCRIPT_SECONDS
    fps = args.fps
    n = int(round(args.seconds * fps))
    W, H = 768, 576  # vtest.avi's own size

    # the soundtrack
    ascript = [(c, s * k, e * k, w) for c, s, e, w in AUDIO_SCRIPT]
    track, audio_segments = soundtrack(args.seconds, rng, midi, args.cache, ascript)

    # the actor
    vscript, used = [], 0
    for cls, sec in VIDEO_SCRIPT:
        frames = n - used if sec is None else int(round(sec * k * fps))
        vscript.append((cls, frames))
        used += frames
    base_h = int(round(0.45 * H))
    sprite = va.load_rgba(actor, base_h)
    state, labels = actor_track(n, fps, W, H, base_h, vscript, rng)

    os.makedirs(args.out, exist_ok=True)
    video_path = os.path.join(args.out, "demo.mkv")
    with tempfile.TemporaryDirectory(prefix="nystream-demo-") as tmp:
        wav = os.path.join(tmp, "sound.wav")
        write_wav(wav, track)
        enc = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-nostdin", "-y",
             "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "%dx%d" % (W, H), "-r", str(fps), "-i", "-",
             "-i", wav, "-map", "0:v", "-map", "1:a",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", str(args.crf), "-pix_fmt", "yuv420p",
             "-threads", "1", "-c:a", "aac", "-b:a", "64k",
             "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
             video_path], stdin=subprocess.PIPE)
        written = 0
        for i, bg in enumerate(picture_frames(vtest, args.start, args.seconds, fps, W, H)):
            if i >= n:
                break
            canvas = bg.astype(np.float32) * (1 / 255)
            xi, yi, si, ai, shi = (v[i] for v in state)
            va.composite(canvas, sprite, xi, yi, si, ai, shi)
            enc.stdin.write((np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8).tobytes())
            written += 1
        enc.stdin.close()
        if enc.wait() != 0 or written != n:
            raise SystemExit(f"demo_media: encoding failed ({written} of {n} frames)")

    truth = {
        "clip": os.path.basename(video_path),
        "generator": "tools/demo_media.py",
        "seconds": args.seconds, "seed": args.seed,
        "video": {"fps": fps, "width": W, "height": H, "classes": va.CLASSES,
                  "segments": segments(labels, fps, va.CLASSES),
                  "actor": {"package": "tuxpaint-stamps-default", "path": va.STAMPS + args.actor,
                            "height_px": base_h},
                  "background": {"package": "opencv-doc", "path": va.OCV + "vtest.avi",
                                 "start_s": args.start}},
        "audio": {"rate": SR, "classes": am.CLASSES, "segments": audio_segments,
                  "bed": {"kind": "pink noise", "level_dbfs": -50}},
        "packages": {p: r[1] for p, r in roots.items()} | {MIDI_PACKAGE: deb_name(args.cache, MIDI_PACKAGE),
                                                           "timgm6mb-soundfont": "installed: " + SOUNDFONT},
        "note": "vtest.avi, the actor's stamp category and the MIDI file are sources the "
                "training data also draws on: this clip shows the pipeline, it is no held-out test",
    }
    with open(os.path.join(args.out, "demo-truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)
    log("%s: %.1f s, %d frames at %d fps, %d audio and %d video segments (%.1f s)"
        % (video_path, args.seconds, n, fps, len(audio_segments), len(truth["video"]["segments"]),
           time.time() - t0))


if __name__ == "__main__":
    main()
