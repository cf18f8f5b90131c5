#!/usr/bin/python3
"""Turns a generated data set (audio_mixtures.py or video_actions.py output) into
what training and evaluation read, with the C++ front end the plugin runs:

    <split>/clip_NNNNN.npy          features, float32 [tokens, dims] (nystream-features)
    <split>/clip_NNNNN.labels.csv   token,<classes>: the labels on the token grid
    <split>/clip_NNNNN.npz          features + labels + classes (nystream_ref.train)

Token k of the audio front end covers samples [1600 k, 1600 k + 1840) at 16 kHz:
it takes the label row k of the mixture's CSV (its samples [1600 k, 1600 (k+1))).
Token k of the video front end shows the frame at t_k = k / 10 s (the last frame
with pts <= t_k + 1 ms) and the motion since t_k - 100 ms: it takes that frame's
labels. A clip's last partial token is dropped.

    /usr/bin/python3 models/data/prepare.py --data DIR --modality audio|video \\
        --features build/cli/nystream-features [--jobs 2]
"""
import argparse
import concurrent.futures
import csv
import os
import subprocess
import sys

import numpy as np

# The front end and the media suffixes of each modality: the generators' outputs and
# transcode_audio.py's (nystream-features decodes any file FFmpeg reads).
EXTRACTORS = {"audio": ("log-mel", (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a")),
              "video": ("video-motion", (".mp4", ".mkv", ".webm"))}
TOKEN_NS = 100_000_000  # both front ends' default token_rate = 10
TOLERANCE_NS = 1_000_000  # video-motion's timestamp_tolerance_ns


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[int(x) for x in r] for r in rows[1:] if r], dtype=np.int64)


def token_labels(modality, header, table, tokens):
    """Labels [tokens, C] (0/1) and the class names, on the front end's token grid."""
    if modality == "audio":
        classes, labels = header[1:], table[:, 1:]
        return classes, labels[:tokens]
    classes, pts, labels = header[2:], table[:, 1], table[:, 2:]
    token_times = np.arange(tokens, dtype=np.int64) * TOKEN_NS + pts[0]
    frame = np.searchsorted(pts, token_times + TOLERANCE_NS, side="right") - 1
    return classes, labels[frame]


def prepare_clip(media, modality, features_exe, params, model, out_dir):
    base = os.path.join(out_dir, os.path.splitext(os.path.basename(media))[0])
    labels_csv = os.path.splitext(media)[0] + ".csv"
    command = [features_exe, "--quiet", media, "-o", base + ".npy", "--times", base + ".times.csv"]
    if model:
        command += ["--model", model]
    else:
        command += ["--extractor", EXTRACTORS[modality][0]] + (["--params", params] if params else [])
    subprocess.run(command, check=True)
    features = np.load(base + ".npy")
    header, table = read_csv(labels_csv)
    # Audio: the label rows bound the tokens; video labels are looked up by time.
    tokens = min(len(features), len(table)) if modality == "audio" else len(features)
    classes, labels = token_labels(modality, header, table, tokens)
    features = features[:tokens]
    np.save(base + ".npy", features)
    with open(base + ".labels.csv", "w") as f:
        f.write(",".join(["token"] + classes) + "\n")
        for k, row in enumerate(labels):
            f.write(",".join([str(k)] + [str(int(x)) for x in row]) + "\n")
    np.savez(base + ".npz", features=features.astype(np.float32),
             labels=labels.astype(np.float32), classes=np.array(classes))
    return base, tokens


def clips(directory, modality):
    suffixes = EXTRACTORS[modality][1]
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if f.endswith(suffixes) and f.startswith("clip_"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a generator's --out directory")
    p.add_argument("--modality", required=True, choices=sorted(EXTRACTORS))
    p.add_argument("--features", required=True, help="the nystream-features executable")
    p.add_argument("--params", default=None, help="extractor params JSON (default: defaults)")
    p.add_argument("--model", default=None, help="use this model file's extractor and params")
    p.add_argument("--splits", default="train,validation")
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    p.add_argument("--out", default=None, help="write here (OUT/<split>/) instead of beside the media")
    args = p.parse_args(argv)
    for split in args.splits.split(","):
        directory = os.path.join(args.data, split)
        if not os.path.isdir(directory):
            continue
        media = clips(directory, args.modality)
        out_dir = os.path.join(args.out, split) if args.out else directory
        os.makedirs(out_dir, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            done = list(pool.map(lambda m: prepare_clip(m, args.modality, args.features,
                                                        args.params, args.model, out_dir), media))
        print(f"{split}: {len(done)} clips, {sum(t for _, t in done)} tokens", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
