#!/usr/bin/python3
"""Synthetic video-action clips with exact per-frame labels (issue 7, video data).

Sprites (tuxpaint-stamps-default stamps of people and characters) do the actions
over real backgrounds (frames of opencv-doc's vtest.avi and still photos shipped in
opencv-doc), with distractor objects, camera shake and lighting changes. Every clip
gets a video file FFmpeg reads, a labels CSV (one row per frame) and a JSON sidecar;
the output directory gets manifest.json (sources, split, clips).

Classes (multi-hot, in this order): none walk_left walk_right approach recede jump
wave fall. `none` is 1 exactly when no other class is.

Sources are fetched with `apt-get download PKG` + `dpkg-deb -x` into a cache
(default ~/.cache/nystream/debs); nothing third-party is written into the repo.
The train/validation split is by sprite category and by background source, never
by clip. Media reserved for the hidden evaluation are refused (DENY_* below).

Wider clips (issue 18; the defaults give the clips above unchanged): --max-actors N
(1..3 actors, some idle), --random-format (size 160x120..1280x720, 10..60 fps, H.264 /
MJPEG / VP8, actor heights 1/20..1/2+ of the frame), --moving-backgrounds P (played
videos, validation ones held out; panning/zooming stills). Each clip's JSON and
manifest entry carry `conditions` (nystream_ref.score --manifest: mAP per condition).

Requires: /usr/bin/python3 with numpy, ffmpeg (with librsvg for SVG stamps; libvpx
for VP8).

    /usr/bin/python3 models/data/video_actions.py --out /tmp/va --clips 6 --seed 1
"""

import argparse
import ctypes
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

CLASSES = ["none", "walk_left", "walk_right", "approach", "recede", "jump", "wave", "fall"]
CLS = {c: i for i, c in enumerate(CLASSES)}

# ---------------------------------------------------------------------------
# Reserved for the hidden evaluation: never read, whatever the options say.
DENY_PACKAGES = {
    "python-kivy-examples", "pd-extendedview", "fillets-ng-data", "sound-theme-freedesktop",
    "lomiri-sounds", "oxygen-sounds", "kajongg", "qabcs-data", "flite", "fluid-soundfont-gm",
    "hedgewars-data",
}
DENY_PACKAGE_PREFIXES = ("asterisk-core-sounds-en", "asterisk-moh-opsound", "flite")
DENY_BASENAMES = {"tree.avi", "citycc0.mpg", "diver.mov"}
DENY_STAMP_FOLDERS = {"animals", "vehicles"}  # any path component under stamps/


def check_package(pkg):
    if pkg in DENY_PACKAGES or pkg.startswith(DENY_PACKAGE_PREFIXES) or pkg.startswith("cmu-"):
        raise SystemExit("refusing reserved package %s (held out for evaluation)" % pkg)


def check_path(path):
    """Raise if `path` is reserved media. Called on every file that is read."""
    p = os.path.normpath(path)
    parts = p.split(os.sep)
    if os.path.basename(p).lower() in DENY_BASENAMES:
        raise SystemExit("refusing reserved media %s (held out for evaluation)" % path)
    if "stamps" in parts:
        below = parts[parts.index("stamps") + 1:]
        if any(x.lower() in DENY_STAMP_FOLDERS for x in below):
            raise SystemExit("refusing reserved stamp %s (animals/ and vehicles/ are held out)" % path)
    return path


# ---------------------------------------------------------------------------
# Sources. Paths are relative to the package's extracted tree.
STAMPS = "usr/share/tuxpaint/stamps/"
OCV = "usr/share/doc/opencv-doc/examples/data/"
OCV_EX = "usr/share/doc/opencv-doc/examples/"
OCV_TEXT = OCV_EX + "text/"

# Actor sprites, by category. Split is by category.
ACTOR_CATEGORIES = {
    "people_cartoon": ["people/cartoon/woman_doctor.svg", "people/cartoon/man_in_suit.svg",
                       "people/cartoon/woman_dancing.svg", "people/cartoon/woman_police_officer_1.svg",
                       "people/cartoon/woman_police_officer_2.svg", "people/cartoon/woman_nurse.svg",
                       "people/cartoon/woman_chemist.svg", "people/cartoon/scarecrow.svg"],
    "people_photo": ["people/fireman240a.png", "people/fireman200b.png", "military/paratrooper.png",
                     "space/spacewalk.png"],
    "characters_seasonal": ["seasonal/christmas/Santa.png", "seasonal/winter/snowman.svg",
                            "seasonal/winter/snowman2.svg", "seasonal/halloween/ghost.png",
                            "people/cartoon/snowman.png", "people/cartoon/mermaid.png",
                            "people/toys/grannysmith.png", "seasonal/easter/bunny.png"],
    # --more-actors: 19 things that are not people and the one person stamp no other category uses,
    # acting as the people do (training only), so that an action is its motion, not a person's shape.
    "objects_acting": ["clothes/black_dress.svg", "clothes/bluejeans1.svg", "clothes/jacket.svg",
                       "clothes/t_poloshirt.png", "clothes/hikingboot.svg", "household/electronics/laptop.svg",
                       "household/electronics/mobile.svg", "household/electronics/monitor.svg",
                       "household/electronics/inkjet_printer.svg", "medical/stethoscope.png", "medical/tooth.png",
                       "medical/syringe.png", "symbols/faces/happy.png", "symbols/faces/mad.png",
                       "household/dishes/teapot.png", "household/dishes/bottle.svg", "household/dishes/mug.png",
                       "hobbies/kite.svg", "household/arttools/painttube.svg",
                       "people/cartoon/girl_in_wheelchair.svg"],
}
# Distractors (objects that never do a labelled action), by category.
DISTRACTOR_CATEGORIES = {
    "food": ["food/fruit/apple_red.png", "food/fruit/banana.png", "food/fruit/orange.png",
             "food/fruit/pear.png", "food/fruit/strawberry.png", "food/vegetables/carrot.png",
             "food/vegetables/broccoli.png", "food/vegetables/pumpkin_small.png"],
    "sports_household": ["sports/basketball.png", "sports/soccer.png", "sports/trophy_cup.png",
                         "sports/tennis_racket.png", "household/tools/hammer.png",
                         "household/tools/toolbox.png", "household/tools/saw.png",
                         "hobbies/music/string/violin.png", "hobbies/binoculars.png"],
    "plants_town": ["plants/trees/birch.png", "plants/flowers/rose.png", "town/roadsigns/traffic_cone.png",
                    "town/roadsigns/stop.png", "seasonal/christmas/present.svg",
                    "seasonal/balloon.svg", "seasonal/halloween/jackolantern_mean.png",
                    "seasonal/christmas/tree.png", "space/rocket1.svg"],
}
# Backgrounds, by source. ("video", path) = frames of a video; ("still", path) = a photo.
BACKGROUND_SOURCES = {
    "vtest": [("video", OCV + "vtest.avi")],
    "ocv_scenes_a": [("still", OCV + p) for p in ["building.jpg", "home.jpg", "aloeL.jpg", "aloeR.jpg",
                                                 "leuvenA.jpg", "leuvenB.jpg", "fruits.jpg", "stuff.jpg",
                                                 "graf1.png", "graf3.png", "ela_original.jpg"]]
                    + [("still", OCV_TEXT + "scenetext0%d.jpg" % i) for i in (1, 2, 3)],
    "ocv_scenes_b": [("still", OCV + p) for p in ["messi5.jpg", "aero1.jpg", "aero3.jpg", "basketball1.png",
                                                 "basketball2.png", "rubberwhale1.png", "rubberwhale2.png",
                                                 "box_in_scene.png"]]
                    + [("still", OCV_EX + p) for p in ["ximgproc/stanford.png", "alphamat/input_images/plant.jpg"]]
                    + [("still", OCV_TEXT + "scenetext0%d.jpg" % i) for i in (4, 5, 6)],
}
SPLITS = {
    "train": {"actors": ["people_cartoon", "people_photo"], "distractors": ["food", "sports_household"],
              "backgrounds": ["vtest", "ocv_scenes_a"]},
    "validation": {"actors": ["characters_seasonal"], "distractors": ["plants_town"],
                   "backgrounds": ["ocv_scenes_b"]},
}
PACKAGES = {"tuxpaint-stamps-default": "stamps", "opencv-doc": "ocv"}

# Moving backgrounds (--moving-backgrounds): videos played behind the actors, by source,
# as (package, path). Split by source: every validation video is one that no training
# clip uses. Videos with unlabelled people walking (vtest.avi, mecavideo's g1/g2 cyclists)
# are not played; Megamind_bugy.avi (Megamind.avi's content) is not used at all.
MECA = "usr/share/pymecavideo/data/video/"
VIDEO_SOURCES = {
    "mecavideo_lab": [("python3-mecavideo", MECA + f) for f in
                      ["Force_constante.avi", "Principe_inertie.avi", "Effet_force_magnetique.ogv",
                       "balle1-vp9.avi", "retroMars2018.avi"]],
    "ocv_megamind": [("opencv-doc", OCV + "Megamind.avi")],
    "mecavideo_classroom": [("python3-mecavideo", MECA + "balle-jbart.mp4")],
    # --more-videos: training videos from other packages, one source each, so that the lab's five are
    # not all the played motion a model learns to ignore: real footage (a bird at a handheld camera, a
    # 1906 car race, hands on a desk, a rocket launch), motion graphics, a 3-D render, a cartoon.
    "imageio_cockatoo": [("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4")],
    "nbsphinx_film": [("python-nbsphinx-doc", "usr/share/doc/python-nbsphinx/html/www/wikimediacommons/"
                                              "Shepard_Calais_1906_FrenchGP.ogv")],
    "node_opencv_desk": [("node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov")],
    "renpy_launch": [("renpy-demo", "usr/share/games/renpy/demo/game/oa4_launch.webm")],
    "openboard_graphics": [("openboard-common", "usr/share/openboard/library/videos/wannaworktogether.mp4")],
    "gem_render": [("gem-doc", "usr/share/gem/examples/data/anim-1.mov")],
    "tupi_cartoon": [("tupi-data", "usr/share/tupi/data/help/examples/example.avi")],
    # --more-videos 2: five more, from other kinds of motion: music-visualiser renders, a fire
    # loop, drifting dots of a vision-science demo, a phone video of a dog, a webcam talking head.
    "lebiniou_visuals": [("lebiniou-data", "usr/share/lebiniou/vue/media/lebiniou-2021-06-10_%s.mp4" % t)
                         for t in ["12-17-47", "12-19-19", "12-19-53", "12-23-00", "12-23-40", "12-24-29",
                                   "12-27-01", "12-27-41", "12-28-28", "12-32-58", "12-34-46", "12-35-23"]],
    "castle_flame": [("castle-game-engine-doc", "usr/share/doc/castle-game-engine-doc/examples/lazarus/"
                                                "two_controls/data/fireplace/flame/flame_seamless_compressed.avi")],
    "psychtoolbox_discs": [("psychtoolbox-3-common", "usr/share/psychtoolbox-3/PsychDemos/MovieDemos/DualDiscs.mov")],
    "forensics_phone": [("forensics-samples-files", "usr/share/forensics-samples/original-files/" + p)
                        for p in ["movie1/VID_20191220_170832.mp4", "movie2/movie-hello.mp4"]],
    "kphotoalbum_webcam": [("kphotoalbum", "usr/share/kphotoalbum/demo/movie.avi")],
}
SPLIT_VIDEOS = {"train": ["mecavideo_lab"], "validation": ["ocv_megamind", "mecavideo_classroom"]}
MORE_TRAIN_VIDEOS = [["imageio_cockatoo", "nbsphinx_film", "node_opencv_desk", "renpy_launch",
                      "openboard_graphics", "gem_render", "tupi_cartoon"],
                     ["lebiniou_visuals", "castle_flame", "psychtoolbox_discs", "forensics_phone",
                      "kphotoalbum_webcam"]]  # --more-videos N adds the first N lists
# Panning/zooming stills use the split's still sources.
SPLIT_STILLS = {"train": ["ocv_scenes_a"], "validation": ["ocv_scenes_b"]}
EXTRA_PACKAGES = {"python3-mecavideo": "mecavideo"}  # fetched only when videos are played

# --random-format: output sizes (4:3 and 16:9), frame rates and codecs drawn per clip.
FORMAT_SIZES = [(160, 120), (320, 240), (400, 300), (640, 480), (800, 600), (960, 720),
                (256, 144), (426, 240), (640, 360), (854, 480), (1280, 720)]
FORMAT_FPS = [10, 12, 15, 20, 24, 25, 30, 48, 50, 60]
FORMAT_CODECS = ["H.264", "MJPEG", "VP8"]
RENDER_MAX_HEIGHT = 360  # taller outputs are rendered at this height and scaled up by ffmpeg


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def fetch_packages(cache, packages=PACKAGES):
    """apt-get download + dpkg-deb -x each package once; returns {pkg: (root, deb name)}."""
    os.makedirs(os.path.join(cache, "x"), exist_ok=True)
    roots = {}
    for pkg in packages:
        check_package(pkg)
        debs = sorted(f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb"))
        if not debs:
            print("fetching %s into %s" % (pkg, cache), file=sys.stderr)
            run(["apt-get", "download", pkg], cwd=cache)
            debs = sorted(f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb"))
        deb = debs[-1]
        root = os.path.join(cache, "x", deb[:-4])
        if not os.path.isdir(root):
            tmp = root + ".part"
            run(["rm", "-rf", tmp])
            run(["dpkg-deb", "-x", os.path.join(cache, deb), tmp])
            os.rename(tmp, root)
        roots[pkg] = (root, deb)
    return roots


# ---------------------------------------------------------------------------
# Image I/O through ffmpeg (no PIL needed).
def read_pam(data):
    head = {}
    pos = 0
    while True:
        end = data.index(b"\n", pos)
        line = data[pos:end].decode()
        pos = end + 1
        if line == "ENDHDR":
            break
        k, _, v = line.partition(" ")
        head[k] = v
    w, h, d = int(head["WIDTH"]), int(head["HEIGHT"]), int(head["DEPTH"])
    return np.frombuffer(data[pos:pos + w * h * d], np.uint8).reshape(h, w, d)


def decode_rgba(path, pre=()):
    out = run(["ffmpeg", "-v", "error", *pre, "-i", path, "-frames:v", "1",
               "-f", "image2pipe", "-c:v", "pam", "-pix_fmt", "rgba", "-"]).stdout
    return read_pam(out)


_RASTERS = {}  # path -> uint8 RGBA of a raster stamp: it decodes the same for any height


def load_rgba(path, height, max_w=None):
    """Stamp -> float32 RGBA (premultiplied), cropped to its alpha box, about `height` tall."""
    check_path(path)
    if path.endswith(".svg"):  # rendered for the height
        rgba = decode_rgba(path, ["-height", str(height * 2), "-keep_ar", "1"])
    else:
        if path not in _RASTERS:
            _RASTERS[path] = decode_rgba(path)
        rgba = _RASTERS[path]
    img = rgba.astype(np.float32) / 255.0
    a = img[..., 3]
    ys, xs = np.nonzero(a > 0.05)
    if len(ys) == 0:
        raise ValueError("empty sprite " + path)
    img = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    f = height / img.shape[0]
    if f < 1.0:  # area-average down to `height` (box filter by integer-free resample)
        img = resize(img, max(1, int(round(img.shape[1] * f))), height)
    if max_w and img.shape[1] > max_w:
        img = resize(img, max_w, max(1, int(round(img.shape[0] * max_w / img.shape[1]))))
    img[..., :3] *= img[..., 3:4]
    return np.ascontiguousarray(img)


def load_rgb_frame(path, w, h, t=None):
    """A background (still or video frame at time t) scaled to cover w x h, centre-cropped."""
    check_path(path)
    seek = ["-ss", "%.3f" % t] if t is not None else []
    vf = "scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d" % (w, h, w, h)
    out = run(["ffmpeg", "-v", "error"] + seek + ["-i", path, "-frames:v", "1", "-vf", vf,
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    return np.frombuffer(out, np.uint8).reshape(h, w, 3).astype(np.float32) / 255.0


def video_duration(path):
    check_path(path)
    out = run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path]).stdout
    return float(out.decode().strip())


def resize(img, w, h):
    """Bilinear resize (premultiplied or not, any channel count) with a box pre-filter."""
    sh, sw = img.shape[:2]
    while sh >= 2 * h and sw >= 2 * w:  # 2x box halving keeps large shrinks from aliasing
        img = img[:sh // 2 * 2, :sw // 2 * 2]
        img = 0.25 * (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2])
        sh, sw = img.shape[:2]
    ys = (np.arange(h) + 0.5) * sh / h - 0.5
    xs = (np.arange(w) + 0.5) * sw / w - 0.5
    return bilinear(img, ys[:, None] + 0 * xs[None, :], xs[None, :] + 0 * ys[:, None])


def bilinear(img, y, x):
    """Sample img at float coords (y, x); outside -> 0 (transparent)."""
    h, w = img.shape[:2]
    # taps are gathered from a copy with a 2-pixel zero border: clipped into the border,
    # a tap outside img reads 0 without a mask (np.take on flat pixels is the fast gather)
    pw = w + 4
    flat = np.zeros((h + 4, pw) + img.shape[2:], img.dtype)
    flat[2:-2, 2:-2] = img
    flat = flat.reshape((h + 4) * pw, -1)
    y0, x0 = np.floor(y), np.floor(x)
    fy = (y - y0)[..., None].astype(np.float32)
    fx = (x - x0)[..., None].astype(np.float32)
    i = (np.clip(y0, -2, h) + 2).astype(np.intp) * pw + (np.clip(x0, -2, w) + 2).astype(np.intp)
    out = None
    for di, wy in ((0, 1 - fy), (pw, fy)):  # the same sum, term by term, as a 2x2 loop
        for dj, wx in ((0, 1 - fx), (1, fx)):
            v = np.take(flat, i + (di + dj), axis=0)
            v *= wy * wx
            if out is None:
                out = v
            else:
                out += v
    return out


def composite(canvas, sprite, fx, fy, scale, angle, shear=0.0, alpha=1.0, flip=False):
    """Draw premultiplied RGBA `sprite` so its feet (bottom centre) land at canvas (fx, fy),
    scaled by `scale`, rotated by `angle` radians about the feet, top sheared by `shear`
    (fraction of height, x offset of the top relative to the feet)."""
    blend(canvas, sprite_patch(canvas.shape, sprite, fx, fy, scale, angle, shear, alpha, flip))


def sprite_patch(canvas_shape, sprite, fx, fy, scale, angle, shear=0.0, alpha=1.0, flip=False):
    """What composite draws: (y0, x0, premultiplied RGBA box), or None when off the canvas."""
    sh, sw = sprite.shape[:2]
    H, W = canvas_shape[:2]
    c, s = np.cos(angle), np.sin(angle)
    # sprite local coords: u (x from centre), v (up from feet), in sprite pixels
    # forward: local (u, v) -> sheared u' = u + shear * v ; rotate ; scale ; translate
    corners = np.array([[-sw / 2, 0], [sw / 2, 0], [-sw / 2, sh], [sw / 2, sh]], np.float64)
    uu = corners[:, 0] + shear * corners[:, 1]
    vv = corners[:, 1]
    X = fx + scale * (c * uu + s * vv)
    Y = fy - scale * (-s * uu + c * vv)
    x0, x1 = int(max(0, np.floor(X.min()) - 1)), int(min(W, np.ceil(X.max()) + 2))
    y0, y1 = int(max(0, np.floor(Y.min()) - 1)), int(min(H, np.ceil(Y.max()) + 2))
    if x0 >= x1 or y0 >= y1:
        return None
    # per column / per row, broadcast: the same values as on a full grid
    dx = ((np.arange(x0, x1) - fx) / scale)[None, :]
    dy = (-(np.arange(y0, y1) - fy) / scale)[:, None]
    up = c * dx - s * dy  # inverse rotation
    vp = s * dx + c * dy
    u = up - shear * vp
    col = u + sw / 2 - 0.5
    if flip:
        col = sw - 1 - col
    row = sh - vp - 0.5
    # when shrinking, sample a pre-shrunk copy to avoid aliasing
    src = sprite
    if scale < 0.5:
        k = int(np.floor(np.log2(1 / scale)))
        src = sprite_mip(sprite, k)
        f = 2 ** k
        col, row = (col + 0.5) / f - 0.5, (row + 0.5) / f - 0.5
    p = bilinear(src, row, col)
    p *= alpha
    return y0, x0, p


def blend(canvas, patch):
    if patch is None:
        return
    y0, x0, p = patch
    keep = 1 - p[..., 3]
    region = canvas[y0:y0 + p.shape[0], x0:x0 + p.shape[1]]
    for ch in range(3):  # channel by channel: numpy is slow on a trailing axis of 3
        region[..., ch] *= keep
        region[..., ch] += p[..., ch]


_MIPS = {}


def sprite_mip(sprite, k):
    key = (id(sprite), k)
    if key not in _MIPS:
        img = sprite
        for _ in range(k):
            h, w = img.shape[:2]
            img = img[:max(2, h // 2 * 2), :max(2, w // 2 * 2)]
            if img.shape[0] < 2 or img.shape[1] < 2:
                break
            img = 0.25 * (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2])
        _MIPS[key] = img
    return _MIPS[key]


# ---------------------------------------------------------------------------
# Actor timelines: per frame state + labels.
def smooth_noise(rng, n, fps, hz, amp):
    """Band-limited noise (sum of a few random sinusoids below `hz`)."""
    t = np.arange(n) / fps
    out = np.zeros(n)
    for _ in range(4):
        out += np.sin(2 * np.pi * rng.uniform(0.05, hz) * t + rng.uniform(0, 2 * np.pi))
    return amp * out / 2.0


def actor_timeline(rng, n, fps, W, H, base_h, lane, m=0, idle=False):
    """Returns per-frame arrays (x, y, scale, angle, shear, alpha) and a labels matrix
    (n x len(CLASSES)) for one actor, plus the list of events. An idle actor stands
    the whole clip (breathing, a slow slight weight shift): never a labelled action."""
    x = np.zeros(n); y = np.zeros(n); sc = np.zeros(n); ang = np.zeros(n)
    shr = np.zeros(n); alp = np.zeros(n); lab = np.zeros((n, len(CLASSES)), np.uint8)
    events = []
    # W x H is the visible frame, placed at (m, m) in the canvas the actor is drawn on
    ground_lo, ground_hi = m + 0.62 * H, m + 0.97 * H  # feet y range (far .. near)
    xl, xr = m + 0.08 * W, m + 0.92 * W  # where a body centre may go
    horizon = rng.uniform(-0.05, 0.05) * H

    def ground(sc):  # feet y for a scale: nearer (bigger) actors stand lower
        return horizon + ground_lo + np.clip((sc - 0.4) / 1.0, 0, 1) * (ground_hi - ground_lo)

    def spawn():
        s = rng.uniform(0.6, 1.0)
        cx = m + rng.uniform(lane[0], lane[1]) * W
        return cx, float(ground(s)), s

    cx, gy, s = spawn()
    if idle:
        t = np.arange(n) / fps
        x[:] = cx; y[:] = gy; alp[:] = 1.0
        sc[:] = s * (1 + 0.006 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t))
        ang[:] = np.radians(rng.uniform(0.3, 1.5)) * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t
                                                             + rng.uniform(0, 2 * np.pi))
        return (x, y, sc, ang, shr, alp), lab, [{"action": "idle", "start_frame": 0, "end_frame": n,
                                                 "params": {}}]
    f = int(rng.integers(0, int(1.5 * fps)))  # start standing still for a moment
    x[:] = cx; y[:] = gy; sc[:] = s; alp[:] = 1.0
    fade_in = rng.random() < 0.3
    if fade_in:
        k = min(n, int(rng.uniform(0.3, 0.8) * fps))
        alp[:k] = np.linspace(0, 1, k)
    lying = 0.0
    while f < n:
        # hold (none) for a while
        hold = int(rng.uniform(0.4, 2.0) * fps)
        e = min(n, f + hold)
        x[f:e] = cx; y[f:e] = gy; sc[f:e] = s; ang[f:e] = lying
        # idle: tiny breathing, not an action
        sc[f:e] *= 1 + 0.006 * np.sin(np.arange(e - f) / fps * 2 * np.pi * rng.uniform(0.2, 0.5))
        f = e
        if f >= n:
            break
        if lying:  # after a fall: lie, fade out, reappear elsewhere standing
            k = min(n - f, int(rng.uniform(0.4, 0.9) * fps))
            x[f:f + k] = cx; y[f:f + k] = gy; sc[f:f + k] = s; ang[f:f + k] = lying
            alp[f:f + k] = np.linspace(1, 0, k)
            f += k
            gap = min(n - f, int(rng.uniform(0.2, 1.0) * fps))
            x[f:f + gap] = cx; y[f:f + gap] = gy; sc[f:f + gap] = s; alp[f:f + gap] = 0
            f += gap
            cx, gy, s = spawn(); lying = 0.0
            k = min(n - f, int(rng.uniform(0.3, 0.8) * fps))
            x[f:f + k] = cx; y[f:f + k] = gy; sc[f:f + k] = s
            alp[f:f + k] = np.linspace(0, 1, k)
            f += k
            continue
        act = rng.choice(["walk", "approach", "recede", "jump", "wave", "fall"],
                         p=[0.28, 0.14, 0.14, 0.16, 0.16, 0.12])
        labels = []
        h_px = base_h * s
        if act == "walk":
            d = -1 if rng.random() < 0.5 else 1
            if cx < m + 0.25 * W: d = 1
            if cx > m + 0.75 * W: d = -1
            speed = rng.uniform(0.35, 1.2) * base_h * s  # body heights per second
            room = (xr - cx) if d > 0 else (cx - xl)
            dur = min(rng.uniform(1.0, 4.0), room / speed)
            if dur < 0.6:
                continue
            k = min(n - f, int(dur * fps))
            t = np.arange(1, k + 1) / fps
            step_hz = rng.uniform(1.2, 2.2)
            x[f:f + k] = cx + d * speed * t
            y[f:f + k] = gy - np.abs(np.sin(np.pi * step_hz * t)) * 0.04 * h_px
            sc[f:f + k] = s
            ang[f:f + k] = 0.05 * np.sin(np.pi * step_hz * t) * rng.uniform(0, 1)
            combo = None
            if rng.random() < 0.2:  # diagonal walk: also approach or recede
                combo = "approach" if s < 0.8 else "recede"
                r = rng.uniform(1.3, 1.6) if combo == "approach" else 1 / rng.uniform(1.3, 1.6)
                s1 = np.clip(s * r ** (t / t[-1]), 0.35, 1.45)
                sc[f:f + k] = s1
                y[f:f + k] += ground(s1) - ground(s)
                labels.append(combo)
            labels.append("walk_left" if d < 0 else "walk_right")
            cx, s = x[f + k - 1], sc[f + k - 1]
            gy = float(y[f + k - 1] + np.abs(np.sin(np.pi * step_hz * t[-1])) * 0.04 * h_px)
            params = {"dir": int(d), "speed_px_s": float(speed), "step_hz": float(step_hz), "combo": combo}
        elif act in ("approach", "recede"):
            if act == "approach" and s > 1.1: act = "recede"
            elif act == "recede" and s < 0.6: act = "approach"
            r = rng.uniform(1.4, 2.2)
            r = r if act == "approach" else 1 / r
            s1 = float(np.clip(s * r, 0.35, 1.45))
            if abs(np.log(s1 / s)) < 0.25:
                continue
            dur = rng.uniform(1.2, 3.5)
            k = min(n - f, int(dur * fps))
            t = np.arange(1, k + 1) / (dur * fps)
            ss = s * (s1 / s) ** t
            sc[f:f + k] = ss
            y[f:f + k] = gy + ground(ss) - ground(s)
            x[f:f + k] = np.clip(cx + rng.uniform(-0.05, 0.05) * W * t, xl, xr)
            labels.append(act)
            cx, gy, s = x[f + k - 1], y[f + k - 1], sc[f + k - 1]
            params = {"scale_from": float(ss[0]), "scale_to": float(ss[-1]), "dur_s": float(dur)}
        elif act == "jump":
            hgt = rng.uniform(0.25, 0.8) * h_px
            dur = rng.uniform(0.5, 1.0)
            reps = int(rng.integers(1, 4))
            k = min(n - f, int(dur * fps) * reps)
            t = (np.arange(1, k + 1) / (dur * fps)) % 1.0
            x[f:f + k] = cx; sc[f:f + k] = s
            y[f:f + k] = gy - 4 * hgt * t * (1 - t)
            labels.append("jump")
            params = {"height_px": float(hgt), "dur_s": float(dur), "reps": reps}
        elif act == "wave":
            dur = rng.uniform(1.2, 3.5)
            hz = rng.uniform(1.2, 3.0)
            k = min(n - f, int(dur * fps))
            t = np.arange(1, k + 1) / fps
            env = np.minimum(1, np.minimum(t, t[-1] - t + 1 / fps) / 0.15)
            x[f:f + k] = cx; y[f:f + k] = gy; sc[f:f + k] = s
            mode = "rock" if rng.random() < 0.5 else "sway"
            if mode == "rock":
                ang[f:f + k] = np.radians(rng.uniform(8, 20)) * env * np.sin(2 * np.pi * hz * t)
            else:
                shr[f:f + k] = rng.uniform(0.12, 0.3) * env * np.sin(2 * np.pi * hz * t)
            labels.append("wave")
            params = {"mode": mode, "hz": float(hz), "dur_s": float(dur)}
        else:  # fall, towards the side with room for the lying body
            room_r, room_l = xr + 0.06 * W - cx, cx - xl + 0.06 * W
            d = -1 if rng.random() < 0.5 else 1
            if (room_r if d > 0 else room_l) < 0.8 * h_px:
                d = -d
            if (room_r if d > 0 else room_l) < 0.8 * h_px:
                continue
            dur = rng.uniform(0.4, 1.0)
            k = min(n - f, int(dur * fps))
            t = np.arange(1, k + 1) / (dur * fps)
            final = d * np.radians(rng.uniform(80, 95))
            ang[f:f + k] = final * t ** 2
            x[f:f + k] = cx; sc[f:f + k] = s
            y[f:f + k] = gy + t ** 2 * 0.03 * h_px
            gy = float(y[f + k - 1])
            lying = float(final)
            labels.append("fall")
            params = {"dir": int(d), "dur_s": float(dur)}
        for lb in labels:
            lab[f:f + k, CLS[lb]] = 1
        events.append({"action": "+".join(labels), "start_frame": int(f), "end_frame": int(f + k),
                       "params": params})
        f += k
    return (x, y, sc, ang, shr, alp), lab, events


# ---------------------------------------------------------------------------
def resolution_band(h):
    return "<=240p" if h <= 240 else "360p" if h <= 400 else "480p" if h <= 600 else ">=720p"


def fps_band(fps):
    return "<=15 fps" if fps <= 15 else "16-30 fps" if fps <= 30 else ">30 fps"


def load_video_frames(path, w, h, ox, oy, cw, ch, flip, start, seconds, fps=25):
    """Frames of a video from `start` for up to `seconds`, resampled to `fps`, scaled to
    cover w x h and cropped to cw x ch at (ox, oy): uint8 [k, ch, cw, 3]."""
    check_path(path)
    vf = "fps=%d,scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d:%d:%d" % (
        fps, w, h, cw, ch, ox, oy) + (",hflip" if flip else "")
    out = run(["ffmpeg", "-v", "error", "-i", path, "-ss", "%.3f" % start, "-t", "%.3f" % seconds,
               "-vf", vf, "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    k = len(out) // (cw * ch * 3)
    if k == 0:
        raise RuntimeError("no frames from " + path)
    return np.frombuffer(out, np.uint8)[:k * cw * ch * 3].reshape(k, ch, cw, 3)


def resample_box(img, ys, xs):
    """Bilinear samples of img at the grid ys x xs (axis-aligned, separable)."""
    h, w, c = img.shape
    y0 = np.clip(np.floor(ys).astype(np.int64), 0, h - 2)
    fy = np.clip(ys - y0, 0, 1).astype(np.float32)[:, None]
    x0 = np.clip(np.floor(xs).astype(np.int64), 0, w - 2)
    fx = np.repeat(np.clip(xs - x0, 0, 1).astype(np.float32), c)
    # Rows are blended only over the columns the window reads, and handled as rows of
    # values (pixel x channel): numpy is far faster with per-value weight vectors and
    # np.take than with a trailing axis of 3 and fancy indexing.
    left = x0.min()
    cols = img[:, left:x0.max() + 2].reshape(h, -1)
    rows = cols[y0] * (1 - fy)
    rows += cols[y0 + 1] * fy
    i = ((x0 - left)[:, None] * c + np.arange(c)).ravel()
    out = np.take(rows, i, axis=1)
    out *= 1 - fx
    out += np.take(rows, i + c, axis=1) * fx
    return out.reshape(len(ys), len(xs), c)


def make_clip(idx, split, args, roots, sprite_cache, out_dir):
    ss = np.random.SeedSequence([args.seed, idx])
    rng = np.random.default_rng(ss)
    wide = args.max_actors is not None or args.random_format or args.moving_backgrounds > 0
    W, H = args.width, args.height
    fps = int(rng.choice(args.fps))
    codec_name = {"mp4": "H.264", "mkv": "MJPEG"}[args.container]
    quality = None
    if args.random_format:  # its own stream: the scene draws below stay as they are
        frng = np.random.default_rng(np.random.SeedSequence([args.seed, idx, 1]))
        W, H = FORMAT_SIZES[int(frng.integers(len(FORMAT_SIZES)))]
        fps = int(frng.choice(FORMAT_FPS))
        codec_name = str(frng.choice(FORMAT_CODECS))
        quality = float(frng.uniform(0, 1))  # 0 = the codec's best of the range, 1 = its worst
    OW, OH = W, H  # the file's size; the scene is rendered at W x H and scaled to it
    if H > RENDER_MAX_HEIGHT:
        W, H = int(round(W * RENDER_MAX_HEIGHT / H / 2)) * 2, RENDER_MAX_HEIGHT
    n = int(round(rng.uniform(args.min_seconds, args.max_seconds) * fps))
    M = max(8, W // 40)  # canvas margin for camera shake
    CW, CH = W + 2 * M, H + 2 * M
    sp = SPLITS[split]

    def src(pkg, rel):
        return check_path(os.path.join(roots[pkg][0], rel))

    # background
    bg_frame = None  # a moving background: frame index -> float32 canvas
    if args.moving_backgrounds > 0 and rng.random() < args.moving_backgrounds:
        flip = bool(rng.random() < 0.5)
        if rng.random() < args.video_share:  # a packaged video, played (ping-pong looped)
            bgsrc = str(rng.choice(args.split_videos[split]))
            pkg, rel = VIDEO_SOURCES[bgsrc][int(rng.integers(len(VIDEO_SOURCES[bgsrc])))]
            path = src(pkg, rel)
            dur = video_duration(path)
            zoom = rng.uniform(1.0, 1.2)
            bw, bh = int(CW * zoom), int(CH * zoom)
            ox, oy = int(rng.integers(0, bw - CW + 1)), int(rng.integers(0, bh - CH + 1))
            seconds = min(dur, 5.0)
            start = float(rng.uniform(0, max(0.0, dur - seconds)))
            frames = load_video_frames(path, bw, bh, ox, oy, CW, CH, flip, start, seconds)
            rate = float(rng.uniform(0.7, 1.3))
            phase = float(rng.uniform(0, len(frames)))
            period = max(1, 2 * len(frames) - 2)

            def bg_frame(i, frames=frames, rate=rate, phase=phase, period=period):
                j = int(phase + rate * 25.0 * i / fps) % period
                j = j if j < len(frames) else period - j
                out = frames[j].astype(np.float32)
                out *= 1 / 255.0
                return out
            kind = "video"
            background = {"source": bgsrc, "package": pkg, "path": rel, "kind": kind, "time_s": start,
                          "seconds": seconds, "zoom": zoom, "flip": flip, "rate": rate,
                          "held_out": split == "validation"}
        else:  # a still, panned and zoomed
            bgsrc = str(rng.choice(SPLIT_STILLS[split]))
            _, rel = BACKGROUND_SOURCES[bgsrc][int(rng.integers(len(BACKGROUND_SOURCES[bgsrc])))]
            path = src("opencv-doc", rel)
            zoom = rng.uniform(1.3, 1.8)
            bw, bh = int(CW * zoom), int(CH * zoom)
            img = load_rgb_frame(path, bw, bh)
            if flip:
                img = np.ascontiguousarray(img[:, ::-1])
            z0, z1 = 1.0 + rng.uniform(0, 0.3, 2)
            p0, p1 = rng.uniform(0, 1, 2), rng.uniform(0, 1, 2)

            def bg_frame(i, img=img, z0=z0, z1=z1, p0=p0, p1=p1, bw=bw, bh=bh):
                u = i / max(1, n - 1)
                u = u * u * (3 - 2 * u)  # ease in and out
                z = z0 + (z1 - z0) * u
                p = p0 + (p1 - p0) * u
                px, py = (bw - CW / z) * p[0], (bh - CH / z) * p[1]
                return resample_box(img, py + (np.arange(CH) + 0.5) / z - 0.5,
                                    px + (np.arange(CW) + 0.5) / z - 0.5)
            kind = "panning still"
            background = {"source": bgsrc, "package": "opencv-doc", "path": rel, "kind": kind,
                          "zoom": zoom, "flip": flip, "window_zoom": [float(z0), float(z1)],
                          "pan_from": p0.tolist(), "pan_to": p1.tolist()}
    else:
        bgsrc = str(rng.choice(sp["backgrounds"]))
        kind, rel = BACKGROUND_SOURCES[bgsrc][int(rng.integers(len(BACKGROUND_SOURCES[bgsrc])))]
        path = src("opencv-doc", rel)
        t0 = None
        if kind == "video":
            t0 = float(rng.uniform(0, max(0.0, video_duration(path) - 0.5)))
        zoom = rng.uniform(1.0, 1.4)
        bw, bh = int(CW * zoom), int(CH * zoom)
        bg = load_rgb_frame(path, bw, bh, t0)
        ox, oy = int(rng.integers(0, bw - CW + 1)), int(rng.integers(0, bh - CH + 1))
        bg = bg[oy:oy + CH, ox:ox + CW]
        if rng.random() < 0.5:
            bg = bg[:, ::-1]
        bg = np.ascontiguousarray(bg)
        background = {"source": bgsrc, "package": "opencv-doc", "path": rel, "kind": kind,
                      "time_s": t0, "zoom": zoom}

    def sprite(cats, base_h, max_w=None):
        cat = str(rng.choice(cats))
        files = sprite_pool(cat)
        rel = files[int(rng.integers(len(files)))]
        key = (rel, base_h, max_w)
        if key not in sprite_cache:
            sprite_cache[key] = load_rgba(src("tuxpaint-stamps-default", STAMPS + rel), base_h, max_w)
        return cat, rel, sprite_cache[key]

    def sprite_pool(cat):
        d = ACTOR_CATEGORIES if cat in ACTOR_CATEGORIES else DISTRACTOR_CATEGORIES
        return [r for r in d[cat] if os.path.exists(os.path.join(roots["tuxpaint-stamps-default"][0], STAMPS + r))]

    # actors
    if args.max_actors is None:
        n_act = 1 if rng.random() < 0.55 else 2
    else:
        n_act = int(rng.integers(1, args.max_actors + 1))
    if args.random_format:  # heights from about a twentieth to over half the frame
        base_h = max(6, int(round(H * np.exp(rng.uniform(np.log(0.075), np.log(0.6))))))
    else:
        base_h = int(round(H * rng.uniform(0.36, 0.55)))
    lanes = {1: [(0.15, 0.85)], 2: [(0.1, 0.45), (0.55, 0.9)],
             3: [(0.08, 0.34), (0.37, 0.63), (0.66, 0.92)]}[n_act]
    actors = []
    labels = np.zeros((n, len(CLASSES)), np.uint8)
    for a in range(n_act):
        idle, h_a = False, base_h
        if args.max_actors is not None:
            idle = bool(rng.random() < (args.idle_fraction if n_act > 1 else args.idle_fraction / 3))
            if n_act > 1:  # actors of one clip differ in size a little
                h_a = max(6, int(round(base_h * rng.uniform(0.75, 1.3))))
        cat, rel, spr = sprite(args.split_actors[split], h_a)
        st, lab, ev = actor_timeline(rng, n, fps, W, H, h_a, lanes[a], M, idle)
        flip = bool(rng.random() < 0.5)
        meta_a = {"category": cat, "package": "tuxpaint-stamps-default", "path": STAMPS + rel,
                  "flip": flip, "events": ev}
        if args.max_actors is not None:
            meta_a |= {"idle": idle, "height_px": h_a}
        actors.append({"spr": spr, "st": st, "flip": flip, "meta": meta_a})
        labels |= lab
    labels[:, CLS["none"]] = (labels[:, 1:].sum(1) == 0)

    # distractors: static, spinning in place, bobbing a little, or fading in/out
    dists = []
    for _ in range(int(rng.integers(0, 4))):
        dh = int(round(H * rng.uniform(0.08, 0.22)))
        cat, rel, spr = sprite(sp["distractors"], dh, max_w=int(1.3 * dh))
        mode = str(rng.choice(["static", "spin", "bob", "fade"]))
        dists.append({"spr": spr, "x": rng.uniform(0.05, 0.95) * CW, "y": rng.uniform(0.3, 0.98) * CH,
                      "mode": mode, "hz": rng.uniform(0.1, 0.6), "ph": rng.uniform(0, 2 * np.pi),
                      "meta": {"category": cat, "package": "tuxpaint-stamps-default", "path": STAMPS + rel,
                               "mode": mode}})
    # camera shake, lighting
    shake_amp = float(rng.choice([0.0, rng.uniform(0.5, 2.0), rng.uniform(2.0, M - 2)], p=[0.3, 0.45, 0.25]))
    shx = np.clip(smooth_noise(rng, n, fps, 3.0, shake_amp) + rng.normal(0, shake_amp * 0.15, n), -M, M)
    shy = np.clip(smooth_noise(rng, n, fps, 3.0, shake_amp) + rng.normal(0, shake_amp * 0.15, n), -M, M)
    gain = np.exp(smooth_noise(rng, n, fps, 0.3, rng.uniform(0.0, 0.25)))
    if rng.random() < 0.3:  # a light switched on/off: a step in the gain
        k = int(rng.integers(0, n))
        gain[k:] *= rng.uniform(0.55, 1.5)
    gain *= 1 + rng.normal(0, rng.uniform(0, 0.015), n)  # flicker
    tint = np.exp(rng.normal(0, 0.08, 3))
    noise = rng.uniform(0, 0.02)
    light = {"shake_px": shake_amp, "gain_min": float(gain.min()), "gain_max": float(gain.max()),
             "tint": tint.tolist(), "noise_sigma": noise}

    name = "clip_%05d" % idx
    vdir = os.path.join(out_dir, split)
    os.makedirs(vdir, exist_ok=True)
    if codec_name == "H.264":
        ext = "mp4"
        crf = args.crf if quality is None else int(round(18 + 14 * quality))
        codec = ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
                 "-threads", "1", "-movflags", "+faststart"]
        encoding = {"codec": codec_name, "crf": crf}
    elif codec_name == "MJPEG":
        ext = "mkv"
        q = 3 if quality is None else int(round(2 + 10 * quality))
        codec = ["-c:v", "mjpeg", "-q:v", str(q), "-pix_fmt", "yuvj420p"]
        encoding = {"codec": codec_name, "q": q}
    else:  # VP8 in WebM: constrained quality, the fastest realtime settings
        ext = "webm"
        crf = int(round(8 + 32 * quality))
        kbps = max(100, int(OW * OH * fps * 0.08 / 1000))
        codec = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-crf", str(crf),
                 "-b:v", "%dk" % kbps, "-pix_fmt", "yuv420p", "-threads", "1"]
        encoding = {"codec": codec_name, "crf": crf, "kbps": kbps}
    scale = [] if (OW, OH) == (W, H) else ["-vf", "scale=%d:%d:flags=bicubic" % (OW, OH)]
    vpath = os.path.join(vdir, name + "." + ext)
    enc = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-s", "%dx%d" % (W, H), "-r", str(fps), "-i", "-"] + scale + codec + [vpath],
                           stdin=subprocess.PIPE)
    try:  # room for a whole frame: a write does not wait for ffmpeg in 64 KB steps
        fcntl.fcntl(enc.stdin, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass
    nrng = np.random.default_rng(ss.spawn(1)[0])
    if wide and noise > 0:  # sensor noise: windows of one noise field (a fresh field per frame is slow)
        field = (255 * nrng.normal(0, noise, (H + 64, W + 64, 3))).astype(np.float32)
    png_frames = set(args.png_frames)

    def distractor_patch(d, t):
        ang, bob, al = 0.0, 0.0, 1.0
        if d["mode"] == "spin":
            ang = 2 * np.pi * d["hz"] * t + d["ph"]
        elif d["mode"] == "bob":
            bob = 2.0 * np.sin(2 * np.pi * d["hz"] * t + d["ph"])
        elif d["mode"] == "fade":
            al = 0.5 + 0.5 * np.sin(2 * np.pi * d["hz"] * t + d["ph"])
        h = d["spr"].shape[0]
        # spin about the centre: put the feet so the centre stays fixed
        fx = d["x"] - np.sin(ang) * h / 2
        fy = d["y"] + np.cos(ang) * h / 2 + bob
        return sprite_patch((CH, CW), d["spr"], fx, fy, 1.0, ang, alpha=al)

    for d in dists:
        if d["mode"] == "static":  # the same patch in every frame: sampled once
            d["patch"] = distractor_patch(d, 0.0)
    # per-frame buffers, reused; the frame is worked on as H x (W*3) rows, so that the
    # per-channel gain is a row-long vector (a trailing axis of 3 makes numpy crawl)
    canvas = np.empty((CH, CW, 3), np.float32)
    frame = np.empty((H, W * 3), np.float32 if wide else np.float64)
    frame8 = np.empty((H, W, 3), np.uint8)
    for i in range(n):
        if bg_frame is None:
            np.copyto(canvas, bg)
        else:
            canvas = bg_frame(i)
        for d in dists:
            blend(canvas, d["patch"] if d["mode"] == "static" else distractor_patch(d, i / fps))
        for a in sorted(actors, key=lambda a: a["st"][1][i]):  # nearer (lower feet) drawn last
            x, y, sc, ang, shr, alp = (v[i] for v in a["st"])
            if alp > 0.003:
                composite(canvas, a["spr"], x, y, sc, ang, shr, alp, a["flip"])
        ix, iy = int(round(M + shx[i])), int(round(M + shy[i]))
        view = canvas[iy:iy + H, ix:ix + W].reshape(H, W * 3)
        if wide:  # the same in float32 (float64 is slow at 480 lines)
            np.multiply(view, np.tile((gain[i] * tint * 255).astype(np.float32), W), out=frame)
            if noise > 0:
                jy, jx = nrng.integers(0, 65, 2)
                frame += field[jy:jy + H, jx:jx + W].reshape(H, W * 3)
            frame += 0.5
            np.maximum(frame, 0, out=frame)  # np.clip is slower
            np.minimum(frame, 255, out=frame)
        else:
            np.multiply(view, np.tile(gain[i] * tint, W), out=frame)
            if noise > 0:
                frame += nrng.normal(0, noise, frame.shape).astype(np.float32)
            np.clip(frame, 0, 1, out=frame)
            frame *= 255
            frame += 0.5
        frame8.reshape(H, W * 3)[:] = frame
        enc.stdin.write(frame8)
        if i in png_frames and args.png_dir:
            write_png(os.path.join(args.png_dir, "%s_%s_f%04d.png" % (split, name, i)), frame8)
    enc.stdin.close()
    if enc.wait() != 0:
        raise RuntimeError("ffmpeg failed for " + vpath)

    cpath = os.path.join(vdir, name + ".csv")
    with open(cpath, "w") as fh:
        fh.write("frame,pts_ns," + ",".join(CLASSES) + "\n")
        for i in range(n):
            pts = (i * 1000000000) // fps
            fh.write("%d,%d,%s\n" % (i, pts, ",".join(str(int(v)) for v in labels[i])))
    conditions = {
        "actors": n_act, "active_actors": sum(1 for a in actors if not a["meta"].get("idle")),
        "resolution": resolution_band(OH), "fps": fps_band(fps), "codec": codec_name,
        "background": "still" if bg_frame is None else kind,
        "held_out_video": bool(bg_frame is not None and kind == "video" and split == "validation"),
        "held_out_sprites": split == "validation",  # validation actor categories are never trained on
        "camera": "shake" if shake_amp > 0 else "steady"}
    meta = {"clip": name, "split": split, "video": os.path.relpath(vpath, out_dir),
            "labels": os.path.relpath(cpath, out_dir), "seed": [args.seed, idx], "fps": fps, "frames": n,
            "width": OW, "height": OH, "classes": CLASSES, "background": background,
            "actors": [a["meta"] for a in actors], "distractors": [d["meta"] for d in dists],
            "camera_lighting": light,
            "frames_per_class": {c: int(labels[:, j].sum()) for j, c in enumerate(CLASSES)},
            "conditions": conditions}
    if wide:
        meta |= {"encoding": encoding, "render_size": [W, H]}
    with open(os.path.join(vdir, name + ".json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    return meta


def keep_freed_memory():
    """Frames allocate and free megabytes of numpy temporaries (panning stills most). By
    default glibc mmaps each and hands it back when freed, and the next frame faults it
    in again page by page: 0.8 million faults for one 594-frame clip, longer than the
    rendering on a busy VM. Heap allocations up to 32 MB, with 64 MB kept free at the
    top, avoid that. Without glibc nothing changes."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-2, 64 << 20)  # M_TOP_PAD
    except (OSError, AttributeError):
        pass


def write_png(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h, w = rgb.shape[:2]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "%dx%d" % (w, h),
                    "-i", "-", "-frames:v", "1", path], input=rgb.tobytes(), check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/nystream/debs"),
                    help="where .deb packages are downloaded and extracted")
    ap.add_argument("--clips", type=int, default=200, help="number of clips (train + validation)")
    ap.add_argument("--val-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true",
                    help="keep clips already written (their .json exists) instead of remaking them")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, nargs="+", default=[25, 30], help="frame rates drawn per clip")
    ap.add_argument("--min-seconds", type=float, default=10.0)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--container", choices=["mp4", "mkv"], default=None,
                    help="mp4 (libx264) if ffmpeg has libx264, else mkv (mjpeg)")
    ap.add_argument("--png-dir", default=None, help="also write some frames as PNG here (for checking)")
    ap.add_argument("--png-frames", type=int, nargs="*", default=[0, 60, 120, 180])
    ap.add_argument("--max-actors", type=int, choices=[1, 2, 3], default=None,
                    help="1..N actors per clip, some idle (default: today's 1-2 actors, none idle)")
    ap.add_argument("--idle-fraction", type=float, default=0.3,
                    help="with --max-actors: chance that an actor of a 2-3 actor clip stands idle "
                         "(a third of it for a lone actor)")
    ap.add_argument("--random-format", action="store_true",
                    help="per clip a random size (160x120 .. 1280x720, 4:3 and 16:9), frame rate "
                         "(10 .. 60 fps), codec (H.264 .mp4, MJPEG .mkv, VP8 .webm) and quality, and "
                         "actor heights from about 1/20 to over 1/2 of the frame")
    ap.add_argument("--moving-backgrounds", type=float, default=None,
                    help="share of clips with a moving background: a packaged video played (validation: "
                         "videos no training clip uses) or a panning/zooming still (default 0.6 with "
                         "--max-actors or --random-format, else 0)")
    ap.add_argument("--video-share", type=float, default=0.5,
                    help="share of the moving backgrounds that are videos (the rest: panning stills)")
    ap.add_argument("--more-videos", type=int, nargs="?", const=1, default=0, metavar="N",
                    help="training clips also play videos from other packages: 7 (N = 1, the default "
                         "when given) or 12 (N = 2) (MORE_TRAIN_VIDEOS), each source as likely as the "
                         "lab's five videos together")
    ap.add_argument("--more-actors", action="store_true",
                    help="training actors are also drawn from 20 stamps that act as the people do: 19 objects "
                         "(clothes, devices, dishes, faces, ...) and one person (ACTOR_CATEGORIES['objects_acting'])")
    args = ap.parse_args()
    more_videos = [v for videos in MORE_TRAIN_VIDEOS[:args.more_videos] for v in videos]
    args.split_videos = dict(SPLIT_VIDEOS, train=SPLIT_VIDEOS["train"] + more_videos)
    args.split_actors = {s: d["actors"] + (["objects_acting"] if args.more_actors and s == "train" else [])
                         for s, d in SPLITS.items()}
    keep_freed_memory()
    if args.moving_backgrounds is None:
        args.moving_backgrounds = 0.6 if (args.max_actors is not None or args.random_format) else 0.0
    if args.container is None:
        encs = run(["ffmpeg", "-hide_banner", "-encoders"]).stdout.decode()
        args.container = "mp4" if " libx264 " in encs else "mkv"

    t_start = time.time()
    roots = fetch_packages(args.cache)
    if args.moving_backgrounds > 0:
        roots |= fetch_packages(args.cache, EXTRA_PACKAGES)
        if more_videos:
            roots |= fetch_packages(args.cache, sorted({pkg for v in more_videos for pkg, _ in VIDEO_SOURCES[v]}))
    os.makedirs(args.out, exist_ok=True)
    split_rng = np.random.default_rng(np.random.SeedSequence([args.seed, 0xC0FFEE]))
    n_val = int(round(args.clips * args.val_fraction))
    is_val = np.zeros(args.clips, bool)
    is_val[split_rng.permutation(args.clips)[:n_val]] = True
    sprite_cache = {}
    clips = []
    for i in range(args.clips):
        t = time.time()
        split = "validation" if is_val[i] else "train"
        done = os.path.join(args.out, split, "clip_%05d.json" % i)
        if args.resume and os.path.exists(done):  # written last: the clip is complete
            with open(done) as fh:
                meta = json.load(fh)
        else:
            meta = make_clip(i, split, args, roots, sprite_cache, args.out)
        clips.append({k: meta[k] for k in ("clip", "split", "video", "labels", "fps", "frames")}
                     | {"background": meta["background"]["path"],
                        "actors": [a["path"] for a in meta["actors"]],
                        "conditions": meta.get("conditions")})
        print("%s %-10s %3d frames @%d fps  %.1fs" % (meta["clip"], split, meta["frames"], meta["fps"],
                                                        time.time() - t), file=sys.stderr)
    totals = {s: {c: 0 for c in CLASSES} for s in SPLITS}
    for c in clips:
        with open(os.path.join(args.out, c["labels"])) as fh:
            next(fh)
            for line in fh:
                v = line.rstrip().split(",")[2:]
                for j, cname in enumerate(CLASSES):
                    totals[c["split"]][cname] += int(v[j])
    manifest = {
        "generator": "models/data/video_actions.py",
        "generator_sha256": hashlib.sha256(open(__file__, "rb").read()).hexdigest(),
        "args": {k: v for k, v in vars(args).items()
                 if k not in ("out", "cache", "png_dir", "split_videos", "split_actors")},
        "classes": CLASSES,
        "packages": {p: roots[p][1] for p in roots},
        "split_rule": "by sprite category and background source (never by clip)",
        "moving_background_sources": ({s: {"videos": {v: [p for _, p in VIDEO_SOURCES[v]] for v in args.split_videos[s]},
                                           "panning_stills": SPLIT_STILLS[s]} for s in SPLITS}
                                      if args.moving_backgrounds > 0 else None),
        "splits": {s: {"actor_categories": {c: ACTOR_CATEGORIES[c] for c in args.split_actors[s]},
                       "distractor_categories": {c: DISTRACTOR_CATEGORIES[c] for c in d["distractors"]},
                       "background_sources": {b: [p for _, p in BACKGROUND_SOURCES[b]] for b in d["backgrounds"]}}
                   for s, d in SPLITS.items()},
        "denied": {"packages": sorted(DENY_PACKAGES), "package_prefixes": list(DENY_PACKAGE_PREFIXES),
                   "files": sorted(DENY_BASENAMES), "stamp_folders": sorted(DENY_STAMP_FOLDERS)},
        "frames_per_class": totals,
        "conditions_rule": "per clip: actors (count, and how many act), resolution band of the file's "
                           "height, fps band, codec, background (still / panning still / video), "
                           "held_out_video (a video no training clip uses), held_out_sprites (actor "
                           "categories no training clip uses), camera (shake / steady)",
        "clips": clips,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    val = [c for c in clips if c["split"] == "validation"]
    if args.moving_backgrounds > 0 and val and not any((c["conditions"] or {}).get("held_out_video") for c in val):
        print("warning: no validation clip plays a held-out background video (more clips, or a larger "
              "--moving-backgrounds / --video-share)", file=sys.stderr)
    print("%d clips in %.1fs (%.2f s/clip) -> %s" % (len(clips), time.time() - t_start,
                                                     (time.time() - t_start) / max(1, len(clips)), args.out),
          file=sys.stderr)


if __name__ == "__main__":
    main()
