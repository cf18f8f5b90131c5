#!/usr/bin/python3
"""Labelled audio-event mixtures for Nystream's audio model (issue 7).

Builds 10-30 s clips, 16 kHz mono, with exact per-token (100 ms) multi-hot labels
for the classes

    speech, music, alarm, animal, human_sounds, background

(background = a token with none of the other five, over noise or quiet), from
sources that Debian packages ship (fetched with `apt-get download` and unpacked
with `dpkg-deb -x` into a cache, never committed) and from local synthesis
(espeak-ng speech, fluidsynth-rendered MIDI, sox alarms, numpy noise beds).

Train and validation use disjoint SOURCES (package / package language folder /
espeak-ng language and variant / soundfont and MIDI file / synthesis recipe /
animal species / speaker gender), never a random split of clips. The split
depends on --split-seed (default --seed): more validation clips for a model
trained on --seed 1 data are --seed N --split-seed 1.

Output (see models/data/README.md):

    OUT/train/clip_00000.wav        16-bit PCM, 16 kHz, mono
    OUT/train/clip_00000.csv        token,speech,music,alarm,animal,human_sounds,background
    OUT/validation/...
    OUT/manifest.json               arguments, every source with its split, every clip's events

Run with Debian's /usr/bin/python3 (numpy only); needs apt-get, dpkg-deb,
ffmpeg, sox, espeak-ng and fluidsynth on PATH.

    /usr/bin/python3 models/data/audio_mixtures.py --out /tmp/mix --clips 20 --seed 1
"""

import argparse
import csv
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

CLASSES = ["speech", "music", "alarm", "animal", "human_sounds", "background"]
SR = 16000
TOKEN = SR // 10  # samples per 100 ms token
SPLITS = ("train", "validation")

# ---------------------------------------------------------------------------
# Reserved for a hidden evaluation: never fetched, never read.
# ---------------------------------------------------------------------------
DENY_PACKAGES = [
    "asterisk-core-sounds-en*",
    "asterisk-moh-opsound*",
    "fillets-ng-data*",
    "sound-theme-freedesktop*",
    "lomiri-sounds*",
    "oxygen-sounds*",
    "kajongg*",
    "qabcs-data*",
    "flite*",            # flite and its voices
    "libflite*",
    "cmu-*flite*",
    "fluid-soundfont-gm*",
    "hedgewars-data*",
]
# Path patterns refused even if they come from an allowed package.
DENY_PATHS = [
    "*/stamps/animals/*",        # tuxpaint stamps: animals/
    "*/stamps/vehicles/*",       # tuxpaint stamps: vehicles/
    "*/sounds/freedesktop/*",
    "*/sounds/oxygen/*",
    "*/sounds/lomiri/*",
    "*/asterisk/sounds/en*",
    "*/asterisk/moh/*",
    "*fillets*",
    "*kajongg*",
    "*qabcs*",
    "*hedgewars*",
    "*flite*",
    "*FluidR3*",
    "*/tree.avi", "*/cityCC0.mpg", "*/diver.mov",
]


class Denied(Exception):
    pass


def check_package(pkg):
    for pat in DENY_PACKAGES:
        if fnmatch.fnmatch(pkg, pat):
            raise Denied(f"package {pkg!r} is reserved for evaluation ({pat}); refusing")


def _denied(path):
    """The DENY_PATHS pattern path matches, or None."""
    return next((pat for pat in DENY_PATHS if fnmatch.fnmatch(path, pat)), None)


def check_path(path):
    pat = _denied(path)
    if pat:
        raise Denied(f"file {path!r} is reserved for evaluation ({pat}); refusing")


# ---------------------------------------------------------------------------
# Packages: fetch + unpack into the cache
# ---------------------------------------------------------------------------
PACKAGES = [
    "asterisk-core-sounds-es-gsm", "asterisk-core-sounds-fr-gsm",
    "asterisk-core-sounds-it-gsm", "asterisk-core-sounds-ru-gsm",
    "ktuberling-data", "klettres-data",
    "timgm6mb-soundfont", "musescore-general-soundfont",
    "mma", "openttd-openmsx", "sonic-pi-samples", "scratch",
    "gnome-audio", "deepin-sound-theme", "tuxpaint-data",
    # real recordings for the thin classes (alarm, animal, human_sounds) and more voices
    "tuxpaint-stamps-default", "wesnoth-1.16-data", "gcompris-qt-data", "warmux-data",
    "openarena-data", "yaru-theme-sound", "linphone-common", "gajim", "psi-plus-sounds",
    "pidgin-data", "eiskaltdcpp-sounds", "tuxtype-data", "lbreakout2-data", "pingus-data",
    # more real recordings for the thin classes (about 220 MB of .debs): human cries, laughs and
    # screams, animal calls, alarms/ringtones/reminders; their other effects are distractors
    "openclonk-data", "scorched3d-data", "ufoai-sound", "openttd-opensfx", "wordwarvi-sound",
    "teeworlds-data", "workrave-data", "pychess", "pangzero", "korganizer", "micropolis-data",
    "tecnoballz-data", "monsterz-data", "mirrormagic-data", "baresip-core", "sound-icons", "gnubiff",
    # two more telephone-prompt voices and Mandarin syllables (real speech)
    "asterisk-prompt-es-co", "asterisk-prompt-fr-armelle", "gcin-voice",
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fetch_packages(cache, packages):
    """apt-get download + dpkg-deb -x each package into cache/x/PKG. Returns {pkg: root}."""
    os.makedirs(cache, exist_ok=True)
    roots = {}
    for pkg in packages:
        check_package(pkg)
        root = os.path.join(cache, "x", pkg)
        if os.path.exists(os.path.join(root, ".unpacked")):
            roots[pkg] = root
            continue
        debs = [f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb")]
        if not debs:
            pol = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True)
            if "Candidate:" not in pol.stdout or "Candidate: (none)" in pol.stdout:
                log(f"warning: package {pkg} not available; its sources are skipped")
                continue
            r = subprocess.run(["apt-get", "download", pkg], cwd=cache,
                               capture_output=True, text=True)
            debs = [f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb")]
            if r.returncode != 0 or not debs:
                log(f"warning: apt-get download {pkg} failed ({r.stderr.strip()[-200:]}); skipped")
                continue
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        subprocess.run(["dpkg-deb", "-x", os.path.join(cache, sorted(debs)[-1]), root], check=True)
        open(os.path.join(root, ".unpacked"), "w").close()
        roots[pkg] = root
    return roots


def write_once(path, read):
    """An archive member unpacked to path (atomically, once): read() gives its bytes."""
    check_path(path)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(read())
        os.replace(path + ".tmp", path)
    return path


def extract_rcc(rcc, dest, wanted):
    """Qt resource file (gcompris-qt-data's rcc/*.rcc) -> the files whose base name is in
    `wanted`, written once under dest/ (kept in the cache). Returns {base name: path}."""
    import zlib
    out = {}
    if os.path.isdir(dest) and all(os.path.exists(os.path.join(dest, w)) for w in wanted):
        return {w: os.path.join(dest, w) for w in sorted(wanted)}
    if not os.path.exists(rcc):
        return out
    b = open(rcc, "rb").read()
    if b[:4] != b"qres":
        return out
    ver, tree, data, names = (int.from_bytes(b[i:i + 4], "big") for i in (4, 8, 12, 16))
    node = 14 if ver == 1 else 22

    def name(i):
        off = names + int.from_bytes(b[tree + i * node: tree + i * node + 4], "big")
        n = int.from_bytes(b[off: off + 2], "big")
        return b[off + 6: off + 6 + 2 * n].decode("utf-16-be")

    os.makedirs(dest, exist_ok=True)
    stack = [0]
    while stack:
        i = stack.pop()
        o = tree + i * node
        flags = int.from_bytes(b[o + 4: o + 6], "big")
        if flags & 2:  # directory
            cnt, first = int.from_bytes(b[o + 6: o + 10], "big"), int.from_bytes(b[o + 10: o + 14], "big")
            stack.extend(range(first, first + cnt))
            continue
        nm = name(i)
        if nm not in wanted or nm in out:
            continue
        d = data + int.from_bytes(b[o + 10: o + 14], "big")
        size = int.from_bytes(b[d: d + 4], "big")
        blob = b[d + 4: d + 4 + size]
        if flags & 1:
            blob = zlib.decompress(blob[4:])
        elif flags & 4:
            continue  # zstd: not used by these files
        out[nm] = write_once(os.path.join(dest, nm), lambda: blob)
    return dict(sorted(out.items()))


def extract_zip(zpath, dest, keep):
    """Members of a zip (OpenArena .pk3) for which keep(name) is true -> dest/name, once.
    Returns their paths."""
    import zipfile
    out = []
    if not os.path.exists(zpath):
        return out
    with zipfile.ZipFile(zpath) as z:
        for m in sorted(z.namelist()):
            if m.endswith("/") or not keep(m):
                continue
            out.append(write_once(os.path.join(dest, m), lambda: z.read(m)))
    return sorted(out)


def extract_cat(cat, dest, keep):
    """OpenTTD sound catalogue (openttd-opensfx's opensfx.cat: a table of (offset | 1 << 31, size)
    pairs; at each offset a length-prefixed description, '"Title". Original ... License ...',
    then `size` bytes of RIFF WAV) -> the entries whose title is a key of keep, written once as
    dest/keep[title].wav (titles sharing a name get _1, _2, ...). Returns their paths."""
    import struct
    out = []
    if not os.path.exists(cat):
        return out
    b = open(cat, "rb").read()
    seen = {}
    for i in range((struct.unpack_from("<I", b, 0)[0] & 0x7FFFFFFF) // 8):
        off, size = struct.unpack_from("<II", b, 8 * i)
        off &= 0x7FFFFFFF
        n = b[off]
        m = re.match(r'"([^"]+)"', b[off + 1: off + 1 + n].decode("utf-8", "replace"))
        if not m or m.group(1) not in keep:
            continue
        name = keep[m.group(1)]
        seen[name] = seen.get(name, 0) + 1
        out.append(write_once(os.path.join(dest, f"{name}_{seen[name]}.wav"),
                              lambda: b[off + 1 + n: off + 1 + n + size]))
    return sorted(out)


def extract_c4group(group, dest, keep):
    """Members of an OpenClonk packed group (openclonk-data's Sound.ocg) for which keep(name)
    is true -> dest/name, once; name is the path inside the group, e.g.
    Clonk.ocg/Skin.ocg/Adventurer.ocg/Hurt1.wav. Returns their paths.

    Format (OpenClonk src/c4group/C4Group.{h,cpp}): a gzip stream whose magic is 1e 8c instead
    of 1f 8b; inside, a group is a 204-byte header (scrambled: XOR 237 and every 3-byte run
    reversed; "RedWolf Design GrpFolder", entry count at byte 36), then 316-byte entries
    (file name[260], packed, child group, size, unused, offset), then the data; a child group
    is a nested group stored in its parent's data."""
    import gzip
    import struct
    if not os.path.exists(group):
        return []
    raw = open(group, "rb").read()
    data = gzip.decompress(b"\x1f\x8b" + raw[2:])

    def unscramble(h):
        h = bytearray(x ^ 237 for x in h)
        for i in range(0, len(h) - 2, 3):
            h[i], h[i + 2] = h[i + 2], h[i]
        return bytes(h)

    def walk(start, prefix):
        h = unscramble(data[start: start + 204])
        if h[:24] != b"RedWolf Design GrpFolder":
            return
        n = struct.unpack_from("<i", h, 36)[0]
        base = start + 204 + 316 * n
        for k in range(n):
            e = start + 204 + 316 * k
            name = data[e: e + 260].split(b"\0")[0].decode("latin-1")
            _, child, size, _, off = struct.unpack_from("<iiiii", data, e + 260)
            if child:
                yield from walk(base + off, prefix + name + "/")
            else:
                yield prefix + name, base + off, size

    out = []
    for name, off, size in walk(0, ""):
        if not keep(name):
            continue
        out.append(write_once(os.path.join(dest, name), lambda: data[off: off + size]))
    return sorted(out)


# ---------------------------------------------------------------------------
# Audio helpers
# ---------------------------------------------------------------------------
_decoded = {}


def load_audio(path):
    """Any file ffmpeg reads -> float32 mono 16 kHz (memoised)."""
    check_path(path)
    if path in _decoded:
        return _decoded[path]
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if path.endswith(".gsm"):
        cmd += ["-f", "gsm"]
    cmd += ["-i", path, "-ac", "1", "-ar", str(SR), "-f", "f32le", "-"]
    r = subprocess.run(cmd, capture_output=True)
    x = np.frombuffer(r.stdout, dtype=np.float32).copy() if r.returncode == 0 else np.zeros(0, np.float32)
    x[~np.isfinite(x)] = 0
    _decoded[path] = x
    return x


def trim(x, rel_db=-45.0):
    """Drop leading/trailing near-silence (10 ms frames below peak + rel_db)."""
    if len(x) < 160:
        return x
    n = len(x) // 160
    e = np.sqrt(np.mean(x[: n * 160].reshape(n, 160) ** 2, axis=1) + 1e-20)
    thr = e.max() * 10 ** (rel_db / 20)
    idx = np.nonzero(e > thr)[0]
    if len(idx) == 0:
        return x[:0]
    return x[idx[0] * 160: min(len(x), (idx[-1] + 1) * 160)]


def stable_hash(s):
    return int(hashlib.sha1(s.encode()).hexdigest()[:12], 16)


def split_units(units, val_fraction, salt):
    """Deterministic split of source units: the ceil(frac*n) lowest hashes go to
    validation (at least one each side when n >= 2)."""
    units = sorted(set(units))
    if not units:
        return {}
    order = sorted(units, key=lambda u: stable_hash(salt + ":" + u))
    n_val = max(1, int(np.ceil(val_fraction * len(units)))) if len(units) >= 2 else 0
    n_val = min(n_val, len(units) - 1) if len(units) >= 2 else 0
    val = set(order[:n_val])
    return {u: ("validation" if u in val else "train") for u in units}


# ---------------------------------------------------------------------------
# Source catalogue
# ---------------------------------------------------------------------------
class Source:
    """One split unit: a class, an id, how to draw a sound from it, its split."""

    def __init__(self, cls, sid, kind, split, package=None, files=None, params=None, family=None):
        self.cls, self.sid, self.kind, self.split = cls, sid, kind, split
        self.package, self.files, self.params = package, files or [], params or {}
        # clips pick a family (a package, or one synthesiser) uniformly, then a unit in it
        self.family = family or kind if kind in ("espeak", "sox", "midi") else (family or package)

    def to_json(self):
        d = {"class": self.cls, "id": self.sid, "kind": self.kind, "split": self.split,
             "package": self.package, "family": self.family, "n_files": len(self.files)}
        d.update({k: v for k, v in self.params.items() if isinstance(v, (str, int, float, list))})
        return d


def files_under(root, sub, exts, names=None):
    base = os.path.join(root, sub)
    out = []
    for dp, ds, fs in os.walk(base):
        ds[:] = sorted(d for d in ds if not _denied(os.path.join(dp, d, "x")))  # never enter reserved folders
        for f in fs:
            if f.lower().endswith(exts) and (names is None or os.path.splitext(f)[0] in names):
                p = os.path.join(dp, f)
                try:
                    check_path(p)
                except Denied:
                    continue
                out.append(p)
    return sorted(out)


ESPEAK_TEXT = {
    "en": ["The train to the north leaves from platform four in ten minutes.",
           "Could you please call me back when you get this message?",
           "We walked along the river until the sun went down behind the hills.",
           "Turn left at the second light and the shop is on your right."],
    "fr": ["Le train pour Paris part dans dix minutes du quai numéro quatre.",
           "Pouvez-vous me rappeler quand vous aurez ce message, s'il vous plaît?",
           "Nous avons marché le long de la rivière jusqu'au coucher du soleil."],
    "de": ["Der Zug nach Berlin fährt in zehn Minuten von Gleis vier ab.",
           "Könnten Sie mich bitte zurückrufen, wenn Sie diese Nachricht hören?",
           "Wir sind am Fluss entlang gegangen, bis die Sonne unterging."],
    "es": ["El tren a Madrid sale en diez minutos del andén cuatro.",
           "¿Podría llamarme cuando reciba este mensaje, por favor?",
           "Caminamos junto al río hasta que el sol se escondió detrás de las colinas."],
    "it": ["Il treno per Roma parte tra dieci minuti dal binario quattro.",
           "Potresti richiamarmi quando ricevi questo messaggio?",
           "Abbiamo camminato lungo il fiume fino al tramonto."],
    "pt": ["O comboio para Lisboa parte daqui a dez minutos da linha quatro.",
           "Pode ligar-me de volta quando receber esta mensagem?"],
    "nl": ["De trein naar Amsterdam vertrekt over tien minuten van spoor vier.",
           "Kunt u mij terugbellen als u dit bericht ontvangt?"],
    "ru": ["Поезд на Москву отправляется через десять минут с четвёртой платформы.",
           "Пожалуйста, перезвоните мне, когда получите это сообщение."],
    "pl": ["Pociąg do Warszawy odjeżdża za dziesięć minut z peronu czwartego."],
    "sv": ["Tåget till Stockholm avgår om tio minuter från spår fyra."],
    "tr": ["İstanbul treni on dakika sonra dördüncü perondan kalkıyor."],
    "fi": ["Juna Helsinkiin lähtee kymmenen minuutin kuluttua raiteelta neljä."],
    "cs": ["Vlak do Prahy odjíždí za deset minut ze čtvrtého nástupiště."],
    "el": ["Το τρένο για την Αθήνα αναχωρεί σε δέκα λεπτά από την αποβάθρα τέσσερα."],
}
SYLLABLES = ["ka", "to", "mi", "ra", "ne", "lu", "sa", "po", "di", "ven", "tor", "mal",
             "si", "be", "go", "han", "re", "ki", "nu", "fa", "lo", "tem", "ar", "is"]


def espeak_languages():
    r = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True)
    langs = []
    for line in r.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4:
            langs.append(parts[1])
    # keep the languages espeak-ng can actually load (e.g. chr-US-Qaaa-x-west cannot)
    ok = [l for l in sorted(set(langs))
          if subprocess.run(["espeak-ng", "-q", "-v", l, "a"], capture_output=True).returncode == 0]
    return ok


def espeak_variants():
    r = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            out.append(parts[4][3:])
    return sorted(set(out))


# gcompris-qt-data memory-sound recordings used as distractors (machines, vehicles, rain, a door)
GCOMPRIS_NOISES = {"LRDoor_Open_2_LA.ogg", "LRTrain_slowing_down_01_LA_cut.ogg", "LRStartAndStopCarEngine1LACut.ogg",
                   "LRRain_in_garden_01_LA_cut.ogg", "LRObject_falling_01_LA.ogg", "LRObject_falling_02_LA.ogg"} | {
                   f"LRFactory_noise_0{i}_LA.ogg" for i in range(1, 7)}

# openclonk-data Sound.ocg members used: the clonks' cries (human sounds; no Confirm/Decline/Doubt,
# which are word-like), two real animals, and effects (distractors)
OPENCLONK_VOICE = r"Clonk\.ocg/Skin\.ocg/(Adventurer|Alchemist|Steampunk|Farmer)\.ocg/(Die|Hurt|Laughter|Scream|Shock)\d\."
OPENCLONK_EFFECT = (r"(Hits\.ocg/.+|Liquids\.ocg/(Splash\d|Bubble\d|Waterdrop\d|Boiling|StereoRain)"
                    r"|Fire\.ocg/(Blast\d|BlastMetal|Fire|Fuse)|Environment\.ocg/(Lightning\.ocg/Thunder\d|Tree\.ocg/\w+"
                    r"|Waterfall|WindLoop|Disasters\.ocg/Earthquake)|Structures\.ocg/(Door\w+|HingeCreak\d|SawmillRipcut"
                    r"|SteamEngine|Pumpjack|Elevator\.ocg/\w+)|Clonk\.ocg/(Movement\.ocg/Step\w+|Action\.ocg/Dig\.ocg/\w+)"
                    r"|Objects\.ocg/(Weapons\.ocg/.+|Lorry\.ocg/\w+|Pickaxe\.ocg/\w+|Plane\.ocg/\w+))\.")


def keep_openclonk(name):
    return bool(re.match(OPENCLONK_VOICE + "|" + OPENCLONK_EFFECT + r"|Animals\.ocg/MosquitoBuzz\.|Environment\.ocg/BirdsLoop\.",
                         name)) and name.endswith((".wav", ".ogg"))


# sox synthesis recipes for alarms; each recipe is a split unit.
ALARM_RECIPES = ["beep_train", "alarm_clock", "siren_wail", "siren_yelp", "two_tone",
                 "ring_dual", "bell_strike", "buzzer", "chirp_up"]


def build_catalogue(roots, val_fraction, salt):
    srcs = []

    def add_group(cls, kind, package, units, **params):
        """units: {unit_id: [files]}; split by unit."""
        units = {u: f for u, f in units.items() if f}
        sp = split_units(list(units), val_fraction, salt + cls + kind)
        for u, f in units.items():
            srcs.append(Source(cls, u, kind, sp[u], package, f, dict(params)))

    R = roots.get
    # ---- speech: espeak-ng (split by base language, e.g. all en-* together, and by variant)
    codes = espeak_languages()
    langs = sorted({c.split("-")[0] for c in codes})
    variants = espeak_variants()
    lang_split = split_units(langs, val_fraction, salt + "espeak-lang")
    var_split = split_units(variants, val_fraction, salt + "espeak-variant")
    for split in SPLITS:
        ls = [c for c in codes if lang_split[c.split("-")[0]] == split]
        vs = [v for v in variants if var_split[v] == split]
        if ls:
            srcs.append(Source("speech", f"espeak-ng:{split}", "espeak", split, "espeak-ng (installed)",
                               [], {"languages": ls, "variants": vs}))
    # ---- speech: packaged recordings
    units = {}
    for lang in ("es", "fr", "it", "ru"):
        pkg = f"asterisk-core-sounds-{lang}-gsm"
        if R(pkg):
            units[pkg] = files_under(R(pkg), "usr/share/asterisk/sounds", (".gsm",))
    # one package = one speaker: explicit split, it -> validation
    for u, f in units.items():
        if f:
            srcs.append(Source("speech", u, "concat_words", "validation" if u.endswith("-it-gsm") else "train",
                               u, f, {"max_files": 3}, family="asterisk-core-sounds"))
    # two more prompt voices (one speaker each) in the same family: Colombian Spanish (train),
    # Armelle's French (validation); their beep/beeperr tones are not speech
    for pkg, split in (("asterisk-prompt-es-co", "train"), ("asterisk-prompt-fr-armelle", "validation")):
        if R(pkg):
            f = [p for p in files_under(R(pkg), "usr/share/asterisk/sounds", (".gsm",))
                 if "beep" not in os.path.basename(p)]
            if f:
                srcs.append(Source("speech", pkg, "concat_words", split, pkg, f, {"max_files": 3},
                                   family="asterisk-core-sounds"))
    if R("gcin-voice"):
        # Mandarin syllables (SYLLABLE/3.ogg and SYLLABLE/5.ogg, two recordings of each); strung
        # together they are Mandarin-like babble, the only real Chinese voice here; one unit, train
        f = files_under(R("gcin-voice"), "usr/share/gcin-voice/ogg", (".ogg",))
        if f:
            srcs.append(Source("speech", "gcin-voice", "concat_words", "train", "gcin-voice", f, {"max_files": 10}))
    if R("ktuberling-data"):
        base = os.path.join(R("ktuberling-data"), "usr/share/ktuberling/sounds")
        # one unit per language: sr, sr@latin, sr@ijekavian, ... share recordings
        units = {}
        for d in sorted(os.listdir(base)):
            if os.path.isdir(os.path.join(base, d)):
                units.setdefault(f"ktuberling-data/{d.split('@')[0]}", []).extend(
                    files_under(base, d, (".wav", ".ogg", ".opus")))
        add_group("speech", "concat_words", "ktuberling-data", units, max_files=6)
    if R("klettres-data"):
        base = os.path.join(R("klettres-data"), "usr/share/klettres")
        units = {f"klettres-data/{d}": files_under(base, d, (".ogg", ".wav"))
                 for d in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, d))}
        add_group("speech", "concat_words", "klettres-data", units, max_files=8)
    if R("tuxpaint-stamps-default"):
        # spoken stamp descriptions (NAME_desc_LANG.ogg), one unit per language (a few readers
        # each); stamps under animals/ and vehicles/ are reserved and never listed
        units = {}
        for p in files_under(R("tuxpaint-stamps-default"), "usr/share/tuxpaint/stamps", (".ogg", ".wav")):
            m = re.search(r"_desc_([a-z]{2,3}(?:_[A-Z]{2})?)\.(ogg|wav)$", os.path.basename(p))
            if m:
                units.setdefault(f"tuxpaint-stamps-default/{m.group(1)}", []).append(p)
        add_group("speech", "concat_words", "tuxpaint-stamps-default", units, max_files=3)
    # game voice lines: one speaker per package, fixed split; one family
    voice_lines = []
    if R("openarena-data"):
        pk3 = os.path.join(R("openarena-data"), "usr/share/games/openarena/missionpack/mp-pak0.pk3")
        voice_lines.append(("openarena-data", "openarena-data/rott", "train", extract_zip(
            pk3, os.path.join(R("openarena-data"), "pk3"),
            lambda m: re.match(r"sound/voices/rott/\w+\.(ogg|wav)$", m))))
    if R("lbreakout2-data"):
        voice_lines.append(("lbreakout2-data", "lbreakout2-data/voice", "train", files_under(
            R("lbreakout2-data"), "usr/share/games/lbreakout2/sounds", (".wav",),
            names={"dammit", "damn", "excellent", "verygood", "wontgiveup"})))
    if R("tuxtype-data"):
        voice_lines.append(("tuxtype-data", "tuxtype-data/excuseme", "train", [
            p for p in files_under(R("tuxtype-data"), "usr/share/tuxtype", (".wav",), names={"excuseme"})
            if "/lithuanian/" not in p]))  # the Lithuanian one is a 0.1 s placeholder
    if R("pingus-data"):
        voice_lines.append(("pingus-data", "pingus-data/voice", "validation", files_under(
            R("pingus-data"), "usr/share/games/pingus/data/sounds", (".wav",),
            names={"goodidea", "letsgo", "ohno", "yipee"})))
    if R("wordwarvi-sound"):  # shouted lines ("help, down here!")
        voice_lines.append(("wordwarvi-sound", "wordwarvi-sound/voice", "validation", files_under(
            R("wordwarvi-sound"), "usr/share/wordwarvi/sounds", (".ogg",),
            names={"help_down_here", "help_up_here", "nice_bank_shot"})))
    if R("linphone-common"):
        voice_lines.append(("linphone-common", "linphone-common/hello", "validation", files_under(
            R("linphone-common"), "usr/share/sounds/linphone", (".wav",), names={"hello16000"})))
    for pkg, u, split, f in voice_lines:
        if f:
            srcs.append(Source("speech", u, "concat_words", split, pkg, f, {"max_files": 3},
                               family="game-voice-lines"))
    # ---- music: fluidsynth renders, split by soundfont AND by MIDI file
    sfs = []
    if R("timgm6mb-soundfont"):
        sfs += [("train", p) for p in files_under(R("timgm6mb-soundfont"), "usr/share/sounds", (".sf2",))]
    if R("musescore-general-soundfont"):
        sfs += [("validation", p) for p in files_under(R("musescore-general-soundfont"), "usr/share/sounds", (".sf3", ".sf2"))]
    rel = {}  # "package:path" -> file; each MIDI file is a split unit
    for pkg in ("mma", "openttd-openmsx"):
        if R(pkg):
            for m in files_under(R(pkg), "usr/share", (".mid",)):
                rel[f"{pkg}:{os.path.relpath(m, R(pkg))}"] = m
    mid_split = split_units(list(rel), val_fraction, salt + "midi")
    for split, sf in sfs:
        ms = [rel[k] for k, s in mid_split.items() if s == split]
        if ms:
            srcs.append(Source("music", f"fluidsynth:{os.path.basename(sf)}", "midi", split,
                               "timgm6mb-soundfont" if split == "train" else "musescore-general-soundfont",
                               ms, {"soundfont": sf, "midi_packages": "mma, openttd-openmsx"}))
    if R("sonic-pi-samples"):
        loops = files_under(R("sonic-pi-samples"), "usr/share", (".flac",))
        keep = [p for p in loops if re.match(r"(loop_(?!3d_printer)|guit_|ambi_piano|ambi_choir|tabla_)",
                                             os.path.basename(p))]
        units = {}
        for p in keep:  # unit: sample family (loop_amen and loop_amen_full together; tabla one unit)
            b = os.path.basename(p)
            fam = "tabla" if b.startswith("tabla_") else re.sub(r"(_full)?\.flac$", "", b)
            units.setdefault(f"sonic-pi-samples/{fam}", []).append(p)
        add_group("music", "loop", "sonic-pi-samples", units)
    if R("scratch"):
        ins = files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Instruments", (".wav",))
        ins += files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Vocals", (".wav",),
                           names={"BeatBox1", "BeatBox2"})
        add_group("music", "loop", "scratch", {f"scratch/{os.path.basename(p)[:-4]}": [p] for p in ins})
    # ---- alarm: sox synthesis recipes + packaged alert sounds
    rsplit = split_units(ALARM_RECIPES, val_fraction, salt + "alarm-recipes")
    for r_ in ALARM_RECIPES:
        srcs.append(Source("alarm", f"sox:{r_}", "sox", rsplit[r_], "sox (installed)", [], {"recipe": r_}))
    # training only: validation keeps the held-out recipes and recordings
    srcs.append(Source("alarm", "numpy:alarm_synth", "alarm_synth", "train", "numpy (synthetic)", [],
                       family="alarm_synth"))
    if R("gnome-audio"):
        f = files_under(R("gnome-audio"), "usr/share/sounds", (".wav",),
                        names={"phone", "warning", "error", "email", "info", "question", "generic"})
        if f:
            srcs.append(Source("alarm", "gnome-audio", "event", "train", "gnome-audio", f, {"repeat": 3}))
    if R("sonic-pi-samples"):
        f = files_under(R("sonic-pi-samples"), "usr/share", (".flac",),
                        names={"mehackit_phone1", "mehackit_phone2", "mehackit_phone3", "mehackit_phone4",
                               "elec_beep", "perc_bell"})
        if f:
            srcs.append(Source("alarm", "sonic-pi-samples/alerts", "event", "train", "sonic-pi-samples", f,
                               {"repeat": 4}))
    if R("deepin-sound-theme"):
        f = files_under(R("deepin-sound-theme"), "usr/share/sounds", (".wav",),
                        names={"dialog-error", "dialog-error-critical", "dialog-error-serious", "message",
                               "power-unplug-battery-low", "device-added", "device-removed"})
        if f:
            srcs.append(Source("alarm", "deepin-sound-theme", "event", "validation", "deepin-sound-theme", f,
                               {"repeat": 3}))
    opensfx, ufoai_pk3 = [], []
    if R("openttd-opensfx"):  # OpenSFX catalogue entries by title -> file name (no horns, no cash-till
        # bell, no applause, no lion roar: that one is a person's growl)
        opensfx = {"Beep": "beep", "Level crossing": "level_crossing",
                   "Sheep": "sheep", "Cow": "cow", "Horse": "horse", "Tropical: Bird (1)": "bird",
                   "Tropical: Bird (2)": "bird", "Tropical: Monkeys": "monkey"}
        opensfx.update({t: "effect-" + re.sub(r"\W+", "-", t.lower()).strip("-") for t in (
            "Splat (building docks/canals/river)", "Mining machinery", "Electric sparking",
            "Steam (of steam engine)", "Road vehicle breakdown", "Train/ship breakdown", "Crash",
            "Explosion", "Big crash", "Plane wheels touching ground", "Helicopter",
            "Truck/old bus start, pull away", "Modern bus start", "Old bus start", "Splat (rail builds)",
            "Jackhammer", "Building bridge", "Sawmill", "Wind", "Heavy wind", "Lumber mill: Crashing tree",
            "Lumber mill: Falling tree", "Lumber mill: Chainsaw", "Propeller plane start",
            "Early jet take off", "Modern jet take off", "Mach 1+ Jet take off")})
        opensfx = extract_cat(os.path.join(R("openttd-opensfx"), "usr/share/games/openttd/baseset/opensfx/opensfx.cat"),
                              os.path.join(R("openttd-opensfx"), "opensfx-x"), opensfx)
    if R("ufoai-sound"):  # one zip of all the game's sounds; the used ones are unpacked into pk3/
        ufoai_pk3 = extract_zip(
            os.path.join(R("ufoai-sound"), "usr/share/games/ufoai/base/0snd.pk3"), os.path.join(R("ufoai-sound"), "pk3"),
            lambda m: re.match(r"sound/(soldiers/\w+|civilians/\w+|ambience/cricket_loop|geoscape/basealert"
                               r"|ui/beep\d|doors/[\w-]+|footsteps/(carpet|dirt|grass|gravel|sand|snow|stone|tile|wood)\d"
                               r"|misc/break\w+|impact/[\w-]+|ugv/[\w-]+|ambience/(thunder\d|water\d*|arcticwind|fire\d*)"
                               r"|weapons/(bullet|explosion|reload)-?[\w-]*)\.ogg$", m))
    # Alert sounds: each package one unit, fixed split. In the second batch (4 of 13 held out:
    # police/fire-truck sirens, phone ring/busy/call-waiting tones, calendar reminders, a warning
    # beep) the packages with one or two alarm files share one family, so that no single file is
    # drawn as often as a whole sound theme.
    SMALL = "small packages"
    alerts = [  # (package, split, folder, file names, family or None = the package)
        ("yaru-theme-sound", "train", "usr/share/sounds/Yaru",
         {"bell", "battery-low", "dialog-error", "dialog-warning", "dialog-question", "message",
          "message-new-instant", "message-new-email", "complete", "device-added", "device-removed",
          "power-plug", "power-unplug"}, None),
        ("gajim", "train", "usr/lib/python3/dist-packages/gajim/data/sounds",
         {"attention", "call_incoming", "call_outgoing", "message1", "message2"}, None),
        ("psi-plus-sounds", "train", "usr/share/psi-plus/sound",  # chat1/chat2/send = gajim's files
         {"attention", "email", "reminder", "ft_complete", "ft_incoming", "pepnotify", "online", "offline"}, None),
        ("eiskaltdcpp-sounds", "train", "usr/share/eiskaltdcpp/sounds",
         {"PrivateMessage", "MyNickInMainChat", "DownloadFinished", "UploadFinished", "HubConnected",
          "HubDisconnected", "DownloadBegins"}, None),
        ("tuxtype-data", "train", "usr/share/tuxtype/sounds", {"alarm"}, None),
        ("wesnoth-1.16-data", "train", "usr/share/games/wesnoth/1.16/sounds", {"bell"}, None),
        ("warmux-data", "train", "usr/share/games/warmux/sound/default", {"mine_beep"}, None),
        ("linphone-common", "validation", "usr/share/sounds/linphone",
         {"oldphone-mono", "toy-mono", "ringback", "incoming_chat"}, None),
        ("pidgin-data", "validation", "usr/share/sounds/purple", {"alert", "receive", "login", "logout"}, None),
        ("workrave-data", "train", "usr/share/sounds/workrave", None, None),  # break reminders, 3 themes
        ("openttd-opensfx", "train", "opensfx-x", {"beep_1", "level_crossing_1"}, SMALL),
        ("ufoai-sound", "train", "pk3/sound", {"basealert", "beep1", "beep2"}, None),
        ("monsterz-data", "train", "usr/share/games/monsterz/sound", {"warning", "ding"}, SMALL),
        ("wordwarvi-sound", "train", "usr/share/wordwarvi/sounds", {"missile_alarm"}, SMALL),
        ("micropolis-data", "train", "usr/share/games/micropolis/res/sounds", {"siren"}, SMALL),
        ("tecnoballz-data", "train", "usr/share/games/tecnoballz/sounds", {"ralarm"}, SMALL),
        ("pychess", "train", "usr/share/pychess/sounds", {"alarm"}, SMALL),  # flag-fall alarm
        ("gnubiff", "train", "usr/share/gnubiff", {"mail"}, SMALL),
        ("scorched3d-data", "validation", "usr/share/games/scorched3d/data/globalmods/apoc/data/wav/misc",
         {"policecar", "firetruck"}, None),
        ("baresip-core", "validation", "usr/share/baresip",
         {"ring", "ringback", "busy", "callwaiting", "error", "notfound", "message"}, None),
        ("korganizer", "validation", "usr/share/korganizer/sounds", None, None),  # reminder alarms
        ("mirrormagic-data", "validation", "usr/share/games/mirrormagic/sounds/snd_classic", {"warnton"}, None),
    ]
    for pkg, split, sub, names, fam in alerts:
        if R(pkg):
            f = files_under(R(pkg), sub, (".wav", ".ogg", ".oga"), names=names)
            if f:
                srcs.append(Source("alarm", f"{pkg}/alerts", "event", split, pkg, f, {"repeat": 3}, family=fam))
    if R("gcompris-qt-data"):
        rcc = os.path.join(R("gcompris-qt-data"), "usr/share/gcompris-qt/rcc")
        gc_mem = extract_rcc(os.path.join(rcc, "memory-sound.rcc"),
                             os.path.join(R("gcompris-qt-data"), "rcc-x/memory-sound"),
                             {"LRRing_01_LA.ogg", "LRBark_3_LA_cut.ogg", "LRFrogsInPondDuringStormLACut.ogg",
                              "LRBark_1_LA_cut.ogg"} | GCOMPRIS_NOISES)
        gc_farm = extract_rcc(os.path.join(rcc, "explore_farm_animals.rcc"),
                              os.path.join(R("gcompris-qt-data"), "rcc-x/explore_farm_animals"),
                              {f"{a}.ogg" for a in ("cat", "chickens", "cow", "dog", "duck", "horse", "owl",
                                                    "pig", "sheep")})
        if "LRRing_01_LA.ogg" in gc_mem:
            srcs.append(Source("alarm", "gcompris-qt-data/ring", "event", "validation", "gcompris-qt-data",
                               [gc_mem["LRRing_01_LA.ogg"]], {"repeat": 2}))
    else:
        gc_mem, gc_farm = {}, {}
    # ---- animal: split by package and species (unit PACKAGE/SPECIES, hashed)
    animal = {}
    if R("scratch"):
        for p in files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Animal", (".wav",)):
            b = os.path.basename(p)[:-4]
            if b == "HorseGallop":
                continue  # hooves, not a vocalisation
            sp = {"Dog1": "dog", "Dog2": "dog", "Kitten": "cat", "Meow": "cat", "Cricket": "cricket",
                  "Crickets": "cricket", "Horse": "horse"}.get(b, b.lower())
            animal.setdefault(f"scratch/{sp}", []).append(p)
    if R("sonic-pi-samples"):
        animal["sonic-pi-samples/crow"] = files_under(R("sonic-pi-samples"), "usr/share", (".flac",), names={"misc_crow"})
    for name, p in sorted(gc_farm.items()):
        animal.setdefault(f"gcompris-qt-data/{name[:-4].replace('chickens', 'chicken')}", []).append(p)
    for bark in ("LRBark_3_LA_cut.ogg", "LRBark_1_LA_cut.ogg"):
        if bark in gc_mem:
            animal.setdefault("gcompris-qt-data/dog", []).append(gc_mem[bark])
    if "LRFrogsInPondDuringStormLACut.ogg" in gc_mem:
        animal["gcompris-qt-data/frog"] = [gc_mem["LRFrogsInPondDuringStormLACut.ogg"]]
    if R("wesnoth-1.16-data"):
        ws = files_under(R("wesnoth-1.16-data"), "usr/share/games/wesnoth/1.16/data/core/sounds", (".ogg", ".wav"))
        for sp, pat in (("wolf", r"wolf-(die|growl|hit)-\d"), ("horse", r"horse-(die|hit)"), ("bird", r"birds\d")):
            animal[f"wesnoth-1.16-data/{sp}"] = [p for p in ws if re.match(pat, os.path.basename(p))]
    if R("scratch"):
        animal.setdefault("scratch/cat", []).extend(
            files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Animal", (".mp3",), names={"Cat"}))
    animal = {u: sorted(f) for u, f in animal.items() if f}
    asplit = split_units(list(animal), val_fraction, salt + "animal" + "event")
    # newer animal units (package/species), split among themselves with their own salt so that
    # the units above keep their split
    animal_new = {}
    if R("scratch"):
        animal_new["scratch/sealion"] = files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Animal",
                                                    (".mp3",), names={"SeaLion"})
    if R("wesnoth-1.16-data"):  # bat squeaks (not bat-flapping, the wings)
        animal_new["wesnoth-1.16-data/bat"] = [
            p for p in files_under(R("wesnoth-1.16-data"), "usr/share/games/wesnoth/1.16/data/core/sounds", (".ogg",))
            if re.match(r"bat-hit-\d", os.path.basename(p))]
    if R("scorched3d-data"):
        sc = files_under(R("scorched3d-data"), "usr/share/games/scorched3d/data/globalmods", (".wav",))
        for sp, pat in (("cow", r"(cows|moo)"), ("dog", r"dog\d?"), ("rooster", r"rooster"), ("sheep", r"sheep"),
                        ("bat", r"bats\d"), ("bird", r"(birdchirp\d|birds\d)"), ("frog", r"frogs"),
                        ("gull", r"gull\d"), ("wolf", r"wolf")):  # wolf: a howl
            animal_new[f"scorched3d-data/{sp}"] = [p for p in sc if re.fullmatch(pat + r"\.wav", os.path.basename(p))]
    if R("ufoai-sound"):
        animal_new["ufoai-sound/cricket"] = [p for p in ufoai_pk3 if p.endswith("/cricket_loop.ogg")]
    if R("openttd-opensfx"):  # OpenSFX: sheep field, cow moan, horse neigh, tropical birds, monkeys
        for sp in ("sheep", "cow", "horse", "bird", "monkey"):
            animal_new[f"openttd-opensfx/{sp}"] = [p for p in opensfx if re.fullmatch(sp + r"_\d+\.wav", os.path.basename(p))]
    if R("openclonk-data"):  # real recordings only: a mosquito, a birdsong loop (not the fantasy animals)
        oc = extract_c4group(os.path.join(R("openclonk-data"), "usr/share/games/openclonk/Sound.ocg"),
                             os.path.join(R("openclonk-data"), "c4g"), keep_openclonk)
        animal_new["openclonk-data/mosquito"] = [p for p in oc if p.endswith("/MosquitoBuzz.ogg")]
        animal_new["openclonk-data/bird"] = [p for p in oc if p.endswith("/BirdsLoop.ogg")]
    else:
        oc = []
    if R("micropolis-data"):
        animal_new["micropolis-data/duck"] = files_under(R("micropolis-data"), "usr/share/games/micropolis/res/sounds",
                                                         (".wav",), names={"quack", "quackquack"})
    if R("pangzero"):
        animal_new["pangzero/cat"] = files_under(R("pangzero"), "usr/share/perl5/auto/share/dist", (".voc",),
                                                 names={"meow"})
    if R("sound-icons"):
        animal_new["sound-icons/canary"] = files_under(R("sound-icons"), "usr/share/sounds/sound-icons", (".wav",),
                                                       names={"canary-long"})
    animal_new = {u: sorted(f) for u, f in animal_new.items() if f}
    asplit.update(split_units(list(animal_new), val_fraction, salt + "animal-new" + "event"))
    # one-file packages share a family (see the alarms)
    small = {"micropolis-data", "pangzero", "sound-icons"}
    for u, f in {**animal, **animal_new}.items():
        pkg = u.split("/")[0]
        srcs.append(Source("animal", u, "event", asplit[u], pkg, f, {"repeat": 3},
                           family="scratch, sonic-pi-samples" if pkg in ("scratch", "sonic-pi-samples")
                           else SMALL if pkg in small else pkg))
    # ---- human sounds: split by speaker gender (Scratch) + tuxpaint giggle (train)
    if R("scratch"):
        hs = files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Human", (".wav", ".mp3"))
        hs = [p for p in hs if re.match(r"(Laugh|Scream|Cough|Sneeze)", os.path.basename(p))]
        fem = [p for p in hs if "female" in p]
        male = [p for p in hs if "female" not in p]
        if male:
            srcs.append(Source("human_sounds", "scratch/human-male", "event", "train", "scratch", male, {"repeat": 2}))
        if fem:
            srcs.append(Source("human_sounds", "scratch/human-female", "event", "validation", "scratch", fem, {"repeat": 2}))
    if R("tuxpaint-data"):
        f = files_under(R("tuxpaint-data"), "usr/share/tuxpaint/sounds", (".wav",), names={"giggle"})
        if f:
            srcs.append(Source("human_sounds", "tuxpaint-data/giggle", "event", "train", "tuxpaint-data", f, {"repeat": 2}))
    human = []  # (package, unit, split, files): one voice (or voice type) per unit, fixed split
    if R("wesnoth-1.16-data"):
        ws = files_under(R("wesnoth-1.16-data"), "usr/share/games/wesnoth/1.16/data", (".ogg", ".wav"))
        for u, pat, split in (("human-male", r"human-(die|hit)-\d", "train"),
                              ("human-old", r"human-old-(die|hit)", "train"),
                              ("elf", r"elf-hit", "train"),
                              ("merfolk", r"(mermaid|mermen)-(die|hit)", "train"),
                              ("groan-laugh", r"(groan|ugg|witches-laugh)\.", "train"),
                              ("human-female", r"human-female-(die|hit)", "validation"),
                              ("dwarf", r"dwarf-(die|hit|laugh)", "validation")):
            human.append(("wesnoth-1.16-data", f"wesnoth-1.16-data/{u}", split,
                          [p for p in ws if re.match(pat, os.path.basename(p))]))
    if R("warmux-data"):  # pain and death cries of the default team voice
        human.append(("warmux-data", "warmux-data/cries", "train", [
            p for p in files_under(R("warmux-data"), "usr/share/games/warmux/sound/default/voices", (".ogg",))
            if re.match(r"(death|injured_(light|medium|high))\d", os.path.basename(p))]))
    if R("openarena-data"):  # the one player voice of the base game: pain, death, gasp, drown
        pk3 = os.path.join(R("openarena-data"), "usr/share/games/openarena/baseoa/pak0.pk3")
        human.append(("openarena-data", "openarena-data/sarge", "validation", extract_zip(
            pk3, os.path.join(R("openarena-data"), "pk3"),
            lambda m: re.match(r"sound/player/sarge/(death\d|pain\d+_\d|gasp|drown|falling1)\.wav$", m))))
    # newer units, fixed split, 4 of 14 held out (whole packages: scorched3d's screams, wordwarvi's
    # scream/oof/ho-ho-ho, teeworlds' cartoon pain cries, mirrormagic's laugh and "autsch")
    if R("scratch"):
        human.append(("scratch", "scratch/baby-cry", "train", files_under(
            R("scratch"), "usr/share/scratch/Media/Sounds/Human", (".mp3",), names={"BabyCry"})))
    if R("openclonk-data"):  # Adventurer, Alchemist and Steampunk are all voiced by "ala"; Farmer by two others
        human.append(("openclonk-data", "openclonk-data/ala", "train",
                      [p for p in oc if re.search(OPENCLONK_VOICE, p) and "/Farmer.ocg/" not in p]))
        human.append(("openclonk-data", "openclonk-data/farmer", "train",
                      [p for p in oc if re.search(OPENCLONK_VOICE, p) and "/Farmer.ocg/" in p]))
    if R("ufoai-sound"):  # pain and death cries (and civilians' screams), one unit per voice set
        for u, pat in (("soldier-male", r"/soldiers/male"), ("soldier-female", r"/soldiers/female"),
                       ("civilian-female", r"/civilians/civfem"), ("civilian-male", r"/civilians/(civ)?male")):
            human.append(("ufoai-sound", f"ufoai-sound/{u}", "train", [p for p in ufoai_pk3 if re.search(pat, p)]))
    if R("scorched3d-data"):
        human.append(("scorched3d-data", "scorched3d-data/screams", "validation", files_under(
            R("scorched3d-data"), "usr/share/games/scorched3d/data/globalmods/apoc/data/wav/misc", (".wav",),
            names={"scream1", "scream2", "scream3", "scream4", "screaming"})))
    if R("wordwarvi-sound"):  # not aaaah_it_burns / ow_my_spine / hohoho_merry_xmas, which have words in them
        human.append(("wordwarvi-sound", "wordwarvi-sound/cries", "validation", files_under(
            R("wordwarvi-sound"), "usr/share/wordwarvi/sounds", (".ogg",), names={"fallingscreamhi", "ooooof", "hohoho"})))
    if R("teeworlds-data"):  # the cartoon tee voice: short and long pain cries, crying
        human.append(("teeworlds-data", "teeworlds-data/tee", "validation", [
            p for p in files_under(R("teeworlds-data"), "usr/share/games/teeworlds/data/audio", (".wv",))
            if re.match(r"vo_teefault_(pain_short|pain_long|cry)-\d+\.wv$", os.path.basename(p))]))
    # one- and two-file packages share a family (see the alarms)
    if R("sonic-pi-samples"):
        human.append(("sonic-pi-samples", "sonic-pi-samples/burp", "train", files_under(
            R("sonic-pi-samples"), "usr/share", (".flac",), names={"misc_burp"})))
    if R("monsterz-data"):
        human.append(("monsterz-data", "monsterz-data/voice", "train", files_under(
            R("monsterz-data"), "usr/share/games/monsterz/sound", (".wav",), names={"laugh", "grunt"})))
    if R("micropolis-data"):
        human.append(("micropolis-data", "micropolis-data/scream", "train", files_under(
            R("micropolis-data"), "usr/share/games/micropolis/res/sounds", (".wav",), names={"aaah"})))
    if R("mirrormagic-data"):  # "lachen" = a laugh, "autsch" = ouch
        human.append(("mirrormagic-data", "mirrormagic-data/voice", "validation", files_under(
            R("mirrormagic-data"), "usr/share/games/mirrormagic/sounds/snd_classic", (".wav",),
            names={"lachen", "autsch"})))
    small = {"sonic-pi-samples", "monsterz-data", "micropolis-data", "mirrormagic-data"}
    for pkg, u, split, f in human:
        if f:
            srcs.append(Source("human_sounds", u, "event", split, pkg, f, {"repeat": 3},
                               family=SMALL if pkg in small else None))
    # ---- distractors: labelled nothing (their tokens are background)
    if R("scratch"):
        f = files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Effects", (".wav",),
                        names={"CarPassing", "MotorcyclePassing", "DoorCreak", "Bubbles", "Ripples", "Rattle",
                               "Plunge", "Pop"})
        f += files_under(R("scratch"), "usr/share/scratch/Media/Sounds/Human", (".wav",),
                         names={"Footsteps-1", "FingerSnap"})
        f += files_under(R("scratch"), "usr/share/scratch/Media/Sounds", (".mp3",),
                         names={"DoorClose", "Footsteps-2", "WaterRunning", "WaterDrop", "Typing", "SewingMachine"})
        if f:
            srcs.append(Source(None, "scratch/effects", "event", "train", "scratch", f, {"repeat": 2}))
    if R("sonic-pi-samples"):
        f = files_under(R("sonic-pi-samples"), "usr/share", (".flac",),
                        names={"perc_door", "perc_swoosh", "perc_impact1", "perc_impact2", "vinyl_scratch",
                               "loop_3d_printer", "ambi_glass_rub", "misc_cineboom"})
        if f:
            srcs.append(Source(None, "sonic-pi-samples/effects", "event", "train", "sonic-pi-samples", f, {"repeat": 2}))
    if R("tuxpaint-data"):
        f = [p for p in files_under(R("tuxpaint-data"), "usr/share/tuxpaint/sounds", (".wav",))
             if os.path.basename(p)[:-4] not in {"giggle", "areyousure", "youcannot", "tuxok", "prompt",
                                                  "typewriterbell", "harp", "bleep"}]
        if f:
            srcs.append(Source(None, "tuxpaint-data/tools", "event", "validation", "tuxpaint-data", f, {"repeat": 3}))
    # the newer packages' effects (vehicles, machines, weapons, impacts, doors, footsteps, water,
    # thunder, wind); no horns, whistles, crowds or creature noises, which a listener might call an
    # alarm, a human or an animal sound. One unit per package, 3 of 7 held out.
    effects = []
    if R("gcompris-qt-data"):
        effects.append(("gcompris-qt-data", "train", [gc_mem[n] for n in sorted(GCOMPRIS_NOISES) if n in gc_mem]))
    if R("ufoai-sound"):
        effects.append(("ufoai-sound", "train", [p for p in ufoai_pk3 if re.search(
            r"/(doors|footsteps|impact|ugv|weapons)/|/misc/break|/ambience/(thunder|water|arcticwind|fire)", p)]))
    if R("openttd-opensfx"):
        effects.append(("openttd-opensfx", "train", [p for p in opensfx if os.path.basename(p).startswith("effect-")]))
    if R("openclonk-data"):
        effects.append(("openclonk-data", "train", [p for p in oc if re.search(OPENCLONK_EFFECT, p)]))
    if R("scorched3d-data"):
        effects.append(("scorched3d-data", "validation", [
            p for p in files_under(R("scorched3d-data"), "usr/share/games/scorched3d/data/globalmods/none/data/wav",
                                   (".wav",))
            if re.search(r"/(explosions|shoot|movement)/|/(apache_1|f16_\d|f18_\d|jet|rain|oceanwaves|thunder\d?"
                         r"|lava\d|splash|helicopter)\.wav$", p)]))
    if R("wordwarvi-sound"):
        effects.append(("wordwarvi-sound", "validation", files_under(
            R("wordwarvi-sound"), "usr/share/wordwarvi/sounds", (".ogg",),
            names={"big_explosion", "bombexplosion", "jetwash", "rocket_exhaust_1", "volcano_eruption",
                   "toyota_celica_cardoor_sample", "flak_hit", "bodyslam", "new_ground_smack", "clang"}
            | {f"metalbang{i}" for i in range(1, 9)} | {f"stonebang{i}" for i in range(1, 9)})))
    if R("teeworlds-data"):
        effects.append(("teeworlds-data", "validation", [
            p for p in files_under(R("teeworlds-data"), "usr/share/games/teeworlds/data/audio", (".wv",))
            if re.match(r"(foley_(foot_left|foot_right|land|body_impact|body_splat)|wp_(hammer_hit|gun_fire"
                        r"|shotty_fire|flump_explo))-\d+\.wv$", os.path.basename(p))]))
    for pkg, split, f in effects:
        if f:
            srcs.append(Source(None, f"{pkg}/effects", "event", split, pkg, f, {"repeat": 2}))
    # ---- noise beds
    for split in SPLITS:
        srcs.append(Source("bed", f"numpy-noise:{split}", "noise", split, "numpy (synthetic)", [],
                           {"types": ["quiet", "white", "pink", "brown", "hum"]}))
    if R("sonic-pi-samples"):
        f = files_under(R("sonic-pi-samples"), "usr/share", (".flac",), names={"vinyl_hiss"})
        if f:
            srcs.append(Source("bed", "sonic-pi-samples/vinyl_hiss", "bed_file", "train", "sonic-pi-samples", f))
    return srcs


# ---------------------------------------------------------------------------
# --more-sources: more units of the thin classes (human_sounds, alarm, animal)
# ---------------------------------------------------------------------------
# Other Debian packages than PACKAGES (about 1.7 GB of .debs: widelands-data 381 MB, nexuiz-data
# 267, megaglest-data 242, freedroidrpg-data 228, warzone2100-data 143, flare-game 123, the other
# 23 under 75 MB each), fetched only with --more-sources. None repeats a file of an existing unit
# (checked by md5 and by decoded content; a runtime md5 guard drops any that would).
MORE_PACKAGES = [
    "nexuiz-data", "flare-game", "megaglest-data", "btanks-data", "freedink-data", "caveexpress-data",
    "colobot-common-sounds", "freedroidrpg-data", "warzone2100-data",
    "minetest-data", "tkabber", "triplea", "jami-daemon", "xboard", "bzflag-data",
    "alienblaster-data", "ceferino-data", "lugaru-data", "safeeyes", "pokerth-data", "gl-117-data",
    "minetest-mod-homedecor", "torus-trooper-data", "simutrans-pak64", "widelands-data",
    "open-invaders-data", "ardentryst", "boswars-data", "freedoom",
]
MORE_SMALL = "small packages (more)"  # the family of the new one- and two-file units


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def extract_wad_sounds(wad, dest, names):
    """Doom WAD sound lumps (DMX format: u16 3, u16 rate, u32 count, then count unsigned 8-bit
    samples with 16 padding bytes at each end) named in names -> dest/NAME.wav, once."""
    import struct
    out = []
    if not os.path.exists(wad):
        return out
    b = open(wad, "rb").read()
    n, d = struct.unpack_from("<ii", b, 4)
    for i in range(n):
        pos, size, nm = struct.unpack_from("<ii8s", b, d + 16 * i)
        nm = nm.rstrip(b"\0").decode("latin-1")
        if nm not in names:
            continue
        fmt, rate, count = struct.unpack_from("<HHI", b, pos)
        if fmt != 3 or count < 40:
            continue
        pcm = b[pos + 8 + 16: pos + 8 + count - 16]

        def wav(pcm=pcm, rate=rate):
            bio = io.BytesIO()
            with wave.open(bio, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(1)
                w.setframerate(rate)
                w.writeframes(pcm)
            return bio.getvalue()
        out.append(write_once(os.path.join(dest, nm + ".wav"), wav))
    return sorted(out)


def more_units(roots):
    """The --more-sources units: [(class, unit, split group, package, files)], class None for
    distractors. A split group holds the units that must share a split (MegaGlest's factions
    may share voice actors, so its cries are one group); most units are their own group."""
    R = roots.get
    out = []

    def pick(pkg, sub, pattern, exts=(".wav", ".ogg", ".mp3", ".opus")):
        """Files under PKG/sub whose path below sub matches pattern (re.fullmatch, no extension)."""
        if not R(pkg):
            return []
        base = os.path.join(R(pkg), sub)
        return [p for p in files_under(R(pkg), sub, exts)
                if re.fullmatch(pattern, os.path.splitext(os.path.relpath(p, base))[0])]

    def add(cls, unit, files, group=None, pkg=None):
        out.append((cls, unit, group or unit, pkg or unit.split("/")[0], sorted(files)))

    # ---- human sounds: pain, death, drowning cries, screams, laughs (no words)
    if R("nexuiz-data"):  # player voices in data.pk3. Not insurrectionist, marine, pyria-skadi, soldier and
        # specop: ufoai-sound's soldier voices (training units) are their files; not the reptilian (a creature)
        nx = extract_zip(os.path.join(R("nexuiz-data"), "usr/share/games/nexuiz/data/data.pk3"),
                         os.path.join(R("nexuiz-data"), "pk3"),
                         lambda m: re.match(r"sound/player/(carni-lycan|fricka)/player/"
                                            r"(death|pain|drown|gasp|falling)\d*\.(ogg|wav)$", m))
        for v in ("carni-lycan", "fricka"):
            add("human_sounds", f"nexuiz-data/{v}", [p for p in nx if f"/sound/player/{v}/" in p])
    fl = "usr/share/games/flare/mods/fantasycore/soundfx"
    add("human_sounds", "flare-game/male", pick("flare-game", fl, r"male_(die|hit)"))
    add("human_sounds", "flare-game/female", pick("flare-game", fl, r"female_(die|hit)"))
    mg = "usr/share/games/megaglest"
    for u, pat in (("common", r"techs/megapack/commondata/sounds/(archer|axe_thrower|guard|swordman|technician|worker|archmage)_die\d"),
                   ("indian", r"techs/megapack/factions/indian/units/\w+/sounds/(archer|stickfighter|shaman)_die\d"),
                   ("persian", r"techs/megapack/factions/persian/units/(princess|fakir|stickfighter|swordman|magician)/sounds/"
                               r"(princess_die|stickfighter_die|swordman_die|die)\d"),
                   ("norsemen", r"techs/megapack/factions/norsemen/units/\w+/sounds/(swordman_die|technician_die|valkyrie_die)\d"),
                   ("egypt", r"techs/megapack/factions/egypt/units/spearman/sounds/spearman_die\d"),
                   ("magic", r"techs/megapack/factions/magic/units/\w+/sounds/(battlemage|initiate|summoner)_die\d")):
        add("human_sounds", f"megaglest-data/cries-{u}", pick("megaglest-data", mg, pat), group="megaglest-data/cries")
    add("human_sounds", "btanks-data/voice", pick("btanks-data", "usr/share/games/btanks/data/sounds",
                                                  r"deadman\d|kamikaze-scream"))  # (not laugh01/02: unvoiced)
    # (not its grunt1/grunt2: grunt2 is wesnoth-1.16-data's human-hit-5, a training file)
    add("human_sounds", "freedink-data/scream", pick("freedink-data", "usr/share/games/dink/dink/Sound", r"wscream"))
    add("human_sounds", "caveexpress-data/player", pick("caveexpress-data", "usr/share/games/caveexpress/sounds",
                                                        r"player-pain\d"))
    # Colobot's sound%03d.wav follow its SoundType enum: 63 AIE (pain), 69 DEADg (death), 70 DEADw (drowning)
    add("human_sounds", "colobot-common-sounds/astronaut", pick("colobot-common-sounds", "usr/share/games/colobot/sounds",
                                                                r"sound0(63|69|70)"))
    add("human_sounds", "freedroidrpg-data/screams", pick("freedroidrpg-data", "usr/share/freedroidrpg/data/sound/effects",
                                                          r"Influencer_Scream_Sound_\d"))
    wz = []
    if R("warzone2100-data"):
        wz = extract_zip(os.path.join(R("warzone2100-data"), "usr/share/games/warzone2100/base.wz"),
                         os.path.join(R("warzone2100-data"), "wz"),
                         lambda m: re.match(r"audio/sfx/(misc/scream\d?|interfce/beep\d)\.ogg$", m))
    add("human_sounds", "warzone2100-data/screams", [p for p in wz if "/scream" in p])
    add("human_sounds", "ardentryst/nyx", pick("ardentryst", "usr/share/games/ardentryst/Sounds/NYX", r"NYX_PAIN\d+"))
    add("human_sounds", "ardentryst/pyralis", pick("ardentryst", "usr/share/games/ardentryst/Sounds/PYR", r"PYR_PAIN\d+"))
    add("human_sounds", "boswars-data/cries", pick("boswars-data", "usr/share/games/boswars/units",
                                                   r"(engineer|grenadier|medic|assault|bazoo)/\w+_die"))
    if R("freedoom"):  # the player's pain, death and "oof" sounds (DMX lumps of freedoom2.wad)
        add("human_sounds", "freedoom/player", extract_wad_sounds(
            os.path.join(R("freedoom"), "usr/share/games/doom/freedoom2.wad"), os.path.join(R("freedoom"), "wad"),
            {"DSPLPAIN", "DSPLDETH", "DSPDIEHI", "DSOOF"}))
    # ---- alarms: sirens, alarm bells and buzzers, ringtones, doorbells, warning and reminder beeps
    add("alarm", "triplea/alerts", pick("triplea", "usr/share/games/triplea/assets/sounds",
                                        r".*/(\w+_air_raid_alarm|\w+_radiation_alert|\w+_sub_diving_alarm|alien_siren"
                                        r"|chat_join_game_01_door_bell|required_action_02_bell)"))
    add("alarm", "jami-daemon/ringtones", pick("jami-daemon", "usr/share/jami/ringtones",
                                               r"default|06_RingSoft|08_RingFirefly"))
    add("alarm", "xboard/phone", pick("xboard", "usr/share/games/xboard/sounds", r"phone|ding1"))
    add("alarm", "bzflag-data/alerts", pick("bzflag-data", "usr/share/games/bzflag",
                                            r"flag_alert|lock"))
    add("alarm", "alienblaster-data/alarm", pick("alienblaster-data", "usr/share/games/alienblaster/sound", r"alarm"))
    add("alarm", "ceferino-data/alarm", pick("ceferino-data", "usr/share/games/ceferino/sounds", r"alarma"))
    add("alarm", "lugaru-data/alarm", pick("lugaru-data", "usr/share/games/lugaru/Sounds", r"Alarm"))
    add("alarm", "safeeyes/reminders", pick("safeeyes", "usr/lib/python3/dist-packages/safeeyes/resource",
                                            r"on_pre_break|on_stop_break"))
    add("alarm", "pokerth-data/alerts", pick("pokerth-data", "usr/share/games/pokerth/sounds/default",
                                             r"yourturn|lobbychatnotify"))
    add("alarm", "gl-117-data/beeps", pick("gl-117-data", "usr/share/games/gl-117/sounds", r"beep\d"))
    add("alarm", "minetest-mod-homedecor/doorbell", pick("minetest-mod-homedecor", "usr/share/games/minetest/mods/homedecor",
                                                         r".*/homedecor_doorbell"))
    add("alarm", "torus-trooper-data/timeup", pick("torus-trooper-data", "usr/share/games/torus-trooper/sounds/chunks",
                                                   r"timeup_beep"))
    # 31 ALARM (energy alarm), 72 ALARMt (temperature alarm), 14 WARNING
    add("alarm", "colobot-common-sounds/alarms", pick("colobot-common-sounds", "usr/share/games/colobot/sounds",
                                                      r"sound0(31|72|14)"))
    add("alarm", "simutrans-pak64/crossing", pick("simutrans-pak64", "usr/share/games/simutrans/pak/sound", r"crossing"))
    add("alarm", "warzone2100-data/beeps", [p for p in wz if re.search(r"/beep[1246-9]\.ogg$", p)])  # 3, 5: 40 ms clicks
    add("alarm", "tkabber/alerts", pick("tkabber", "usr/share/tkabber/sounds/default",
                                        r"chat_their_message|groupchat_their_message_to_me|connected|disconnected"))
    # ---- animals: unit = package/species
    wl = "usr/share/games/widelands/data"
    for sp, pat in (("birds", r"sound/animals/bird\d_\d\d"), ("boar", r"sound/animals/boar"),
                    ("coyote", r"sound/animals/coyote_\d\d"), ("crickets", r"sound/animals/crickets\d_\d\d"),
                    ("frog", r"sound/animals/frog"), ("moose", r"sound/animals/moose_\d\d"),
                    ("stag", r"sound/animals/stag_\d\d"), ("wolf", r"sound/animals/wolf_\d\d"),
                    ("donkey", r"sound/farm/donkey"), ("ox", r"sound/farm/ox_\d\d"),  # (not horse_*: horse_00 may
                    # share a recording with scratch's Horse.wav)
                    ("sheep", r"sound/farm/sheep_\d\d"), ("duck", r"world/critters/duck/duck_\d\d")):
        add("animal", f"widelands-data/{sp}", pick("widelands-data", wl, pat))
    for sp, pat in (("cow", r"techs/megapack/commondata/sounds/cow_(ack|die|select)\d|tilesets/\w+/sounds/mudchute_cow_"),
                    ("pig", r"techs/megapack/commondata/sounds/pig_(ack|die|select)\d|techs/megapack/factions/norsemen/units/wild_sow/sounds/pig_\w+\d"),
                    ("chicken", r"techs/megapack/factions/egypt/units/chicken/sounds/chicken_\w+\d|tilesets/\w+/sounds/chicken"),
                    ("bull", r"techs/megapack/factions/indian/units/bull/sounds/bull_(ack|attack|die|select)\d"),
                    ("sheep", r"techs/megapack/factions/persian/units/sheep/sounds/sheep\w*\d"),
                    ("elephant", r"techs/megapack/factions/persian/units/elephant/sounds/ele(attack)?\d"),
                    ("owl", r"tilesets/\w+/sounds/owl"), ("rooster", r"tilesets/\w+/sounds/rooster"),  # (its wolf.wav
                    # is widelands-data's wolf_01)
                    ("raptor", r"tilesets/\w+/sounds/hawk|techs/megapack/factions/indian/units/thunderbird/sounds/eagle_(ack|die|select)\d")):
        add("animal", f"megaglest-data/{sp}", pick("megaglest-data", mg, pat))
    add("animal", "triplea/hawk", pick("triplea", "usr/share/games/triplea/assets/sounds", r".*/battle_air_0\d_hawk_\w+"))
    add("animal", "btanks-data/cow", pick("btanks-data", "usr/share/games/btanks/data/sounds", r"cow"))
    add("animal", "lugaru-data/dog", pick("lugaru-data", "usr/share/games/lugaru/Sounds", r"Bark\d?|BarkGrowl|Growl\d?|Snarl\d?"))
    add("animal", "lugaru-data/hawk", pick("lugaru-data", "usr/share/games/lugaru/Sounds", r"Hawk"))
    add("animal", "freedink-data/bird", pick("freedink-data", "usr/share/games/dink/dink/Sound", r"bird1"))
    fe = "usr/share/games/flare/mods/fantasycore/soundfx/environment"
    add("animal", "flare-game/birds", pick("flare-game", fe, r"bird_twitter_loop"))
    add("animal", "flare-game/owl", pick("flare-game", fe, r"forest_owl_loop"))
    add("animal", "flare-game/raven", pick("flare-game", fe, r"raven_loop"))
    add("animal", "open-invaders-data/chicken", pick("open-invaders-data", "usr/share/open-invaders", r".*chicken"))
    add("animal", "simutrans-pak64/horse", pick("simutrans-pak64", "usr/share/games/simutrans/pak/sound", r"horse"))
    add("animal", "simutrans-pak64/seagulls", pick("simutrans-pak64", "usr/share/games/simutrans/pak/sound", r"seagulls"))
    # ---- distractors (labelled nothing): machines, tools, footsteps, impacts, weather, vehicles
    add(None, "widelands-data/effects", pick("widelands-data", wl + "/sound",
                                             r"(woodcutting|sawmill|smiths|hammering|stonecutting|mill|metal|fisher"
                                             r"|atlanteans/(saw|cutting)|other)/\w+"))
    add(None, "minetest-data/effects", pick("minetest-data", "usr/share/games/minetest/games/minetest_game/mods",
                                            r"\w+/sounds/(default_(dig_(choppy|crumbly|metal|snappy)|dug|place_node(_metal)?|break_glass|chest|cool_lava|tool_breaks|gravel|"
                                            r"\w+_footstep)[\w.]*|doors_\w+|tnt_\w+|fire_\w+|env_sounds_water[.\d]*|carts_\w+[.\d]*"
                                            r"|xpanes_\w+)"))
    add(None, "btanks-data/effects", pick("btanks-data", "usr/share/games/btanks/data/sounds",
                                          r"(building-explosion\d|cannon\d|explosion|vehicle-explosion\d?|engine-\w+|helicopter"
                                          r"|train|fire|tank-move|man-steps|submarine|nuke-explosion|shot)"))
    add(None, "lugaru-data/effects", pick("lugaru-data", "usr/share/games/lugaru/Sounds",
                                          r"(FootStep\w+|Clank\d|\w*Whoosh\w*|Land\d?|Fire(End|Start)?|Break|Broken|BushRustle"
                                          r"|Skid|SnowSkid|Thud|HeavyImpact|MetalHit|Knife\w+|SwordSlice|SwordStaff|Staff\w+|Wind)"))
    add(None, "flare-game/effects", pick("flare-game", "usr/share/games/flare/mods/fantasycore/soundfx",
                                         r"(steps/step_\w+|inventory/inventory_\w+|environment/(falling_rocks|minecart|rain"
                                         r"|anvil_loop|cave_droplets_loop|cave_wind_loop|open_fire\w*|river_loop|wind_loop|stairs"
                                         r"|stone_open)|wood_open|door_open)"))
    return [u for u in out if u[4]]


def build_more_sources(roots, val_fraction, salt, existing):
    """Sources of the --more-sources units. Split by group, hashed within each class with its
    own salt (the existing units keep theirs). Files whose bytes repeat a file of an existing
    source (existing: those Sources) or of an earlier new unit are dropped."""
    seen = set()
    for s in existing:
        if s.kind in ("event", "concat_words", "loop", "bed_file"):
            seen.update(_md5(f) for f in s.files)
    units, dropped = [], 0
    for cls, unit, group, pkg, files in more_units(roots):
        keep = []
        for f in files:
            h = _md5(f)
            if h in seen:
                dropped += 1
                continue
            seen.add(h)
            keep.append(f)
        if keep:
            units.append((cls, unit, group, pkg, keep))
    if dropped:
        log(f"--more-sources: {dropped} files repeat another unit's file and are left out")
    srcs = []
    for cls in ("human_sounds", "alarm", "animal", None):
        mine = [u for u in units if u[0] == cls]
        sp = split_units([u[2] for u in mine], val_fraction, salt + "more-sources:" + str(cls))
        for c, unit, group, pkg, files in mine:
            small = c is not None and len(files) <= 2
            srcs.append(Source(c, unit, "event", sp[group], pkg, files, {"repeat": 2 if c is None else 3},
                               family=MORE_SMALL if small else pkg))
    return srcs


# ---------------------------------------------------------------------------
# Drawing one sound from a source
# ---------------------------------------------------------------------------
def run_tmp_wav(cmd_fn):
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "o.wav")
        r = subprocess.run(cmd_fn(p), capture_output=True)
        if r.returncode != 0 or not os.path.exists(p):
            return np.zeros(0, np.float32)
        _decoded.pop(p, None)
        x = load_audio(p)
        _decoded.pop(p, None)
        return x


def draw_espeak(src, rng):
    lang = str(rng.choice(src.params["languages"]))
    variant = str(rng.choice(src.params["variants"])) if src.params["variants"] and rng.random() < 0.8 else None
    key = lang.split("-")[0]
    if key in ESPEAK_TEXT and rng.random() < 0.8:
        sents = ESPEAK_TEXT[key]
        text = " ".join(rng.choice(sents, size=int(rng.integers(1, 3))))
    else:
        words = [''.join(rng.choice(SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(4, 14)))]
        text = " ".join(words).capitalize() + "."
    rate = int(rng.integers(110, 260))
    pitch = int(rng.integers(10, 90))
    voice = lang + (f"+{variant}" if variant else "")
    x = run_tmp_wav(lambda p: ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch),
                               "-g", str(int(rng.integers(0, 8))), "-w", p, text])
    return trim(x), {"voice": voice, "rate": rate, "pitch": pitch, "text": text}


def draw_concat(src, rng, max_n):
    n = int(rng.integers(1, max_n + 1))
    files = [str(f) for f in rng.choice(src.files, size=n)]
    parts = []
    for i, f in enumerate(files):
        x = trim(load_audio(f))
        if len(x):
            if parts:
                parts.append(np.zeros(int(rng.uniform(0.05, 0.35) * SR), np.float32))
            parts.append(x / (np.abs(x).max() + 1e-9))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), {"files": files}


def render_midi(sf, mid, cache):
    d = os.path.join(cache, "renders")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, f"{os.path.basename(sf)}_{hashlib.sha1(mid.encode()).hexdigest()[:12]}.f32")
    if not os.path.exists(out):
        x = run_tmp_wav(lambda p: ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SR), "-F", p, sf, mid])
        x.astype(np.float32).tofile(out + ".tmp")
        os.replace(out + ".tmp", out)
    return np.fromfile(out, dtype=np.float32)


def draw_midi(src, rng, cache, max_len):
    for _ in range(6):
        mid = str(rng.choice(src.files))
        x = trim(render_midi(src.params["soundfont"], mid, cache), -50)
        if len(x) > SR:
            break
    L = int(min(len(x), rng.uniform(3, max(3.5, min(15, max_len))) * SR))
    s = int(rng.integers(0, max(1, len(x) - L)))
    return trim(x[s: s + L], -50), {"midi": mid, "soundfont": os.path.basename(src.params["soundfont"]),
                                    "offset_s": round(s / SR, 2)}


def draw_loop(src, rng, max_len):
    f = str(rng.choice(src.files))
    x = trim(load_audio(f))
    target = rng.uniform(2, max(2.5, min(12, max_len))) * SR
    reps = max(1, int(np.ceil(target / max(len(x), 1))))
    reps = min(reps, 8)
    y = np.tile(x, reps)[: int(max(target, len(x)))] if len(x) else x
    return y, {"file": f, "repeats": reps}


def draw_event(src, rng, repeat):
    f = str(rng.choice(src.files))
    x = trim(load_audio(f))
    n = int(rng.integers(1, repeat + 1))
    parts = []
    for i in range(n):
        if i:
            parts.append(np.zeros(int(rng.uniform(0.15, 1.0) * SR), np.float32))
        parts.append(x)
    return (np.concatenate(parts) if parts else x), {"file": f, "repeats": n}


def draw_sox(recipe, rng):
    f = lambda a, b: f"{rng.uniform(a, b):.0f}"
    n = str(int(rng.integers(2, 8)))
    R = {
        "beep_train": ["synth", f"{rng.uniform(0.08, 0.4):.2f}", "sine", f(600, 3200),
                       "pad", "0", f"{rng.uniform(0.08, 0.6):.2f}", "repeat", n],
        "alarm_clock": ["synth", "0.06", "square", f(1500, 4000), "pad", "0", "0.06", "repeat", "3",
                        "pad", "0", f"{rng.uniform(0.3, 0.7):.2f}", "repeat", n],
        "siren_wail": ["synth", f"{rng.uniform(1.5, 4):.2f}", "sine", f"{f(500, 800)}-{f(1100, 1700)}",
                       "repeat", str(int(rng.integers(1, 4)))],
        "siren_yelp": ["synth", f"{rng.uniform(0.15, 0.35):.2f}", "sine", f"{f(600, 900)}-{f(1300, 1900)}",
                       "repeat", str(int(rng.integers(8, 25)))],
        "two_tone": None,  # two alternating tones, built below
        "ring_dual": ["synth", f"{rng.uniform(0.8, 2.0):.2f}", "sine", f(400, 460), "sine", f(470, 520),
                      "remix", "1,2", "tremolo", f(15, 25), "80", "pad", "0", f"{rng.uniform(1, 3):.1f}",
                      "repeat", str(int(rng.integers(1, 4)))],
        "bell_strike": ["synth", f"{rng.uniform(1, 2.5):.2f}", "pluck", f(300, 1500), "repeat",
                        str(int(rng.integers(1, 6)))],
        "buzzer": ["synth", f"{rng.uniform(0.4, 1.5):.2f}", "sawtooth", f(150, 450), "pad", "0",
                   f"{rng.uniform(0.2, 0.8):.2f}", "repeat", n],
        "chirp_up": ["synth", f"{rng.uniform(0.1, 0.3):.2f}", "sine", f"{f(800, 1200)}:{f(2000, 4000)}",
                     "pad", "0", f"{rng.uniform(0.05, 0.3):.2f}", "repeat", n],
    }[recipe]
    if recipe == "two_tone":  # hi-lo: two alternating tones
        a, b = f(400, 600), f(650, 950)
        d = f"{rng.uniform(0.3, 0.7):.2f}"
        x1 = run_tmp_wav(lambda p: ["sox", "-n", "-r", str(SR), "-c", "1", p, "synth", d, "square", a])
        x2 = run_tmp_wav(lambda p: ["sox", "-n", "-r", str(SR), "-c", "1", p, "synth", d, "square", b])
        x = np.tile(np.concatenate([x1, x2]), int(rng.integers(2, 6)))
        return x, {"recipe": recipe, "args": f"square {a}/{b} {d}s"}
    ch = "2" if recipe == "ring_dual" else "1"
    x = run_tmp_wav(lambda p: ["sox", "-n", "-r", str(SR), "-c", ch, p] + R)
    return trim(x, -50), {"recipe": recipe, "args": " ".join(R)}


def draw_alarm_synth(rng):
    """A procedural alarm, 1-6 s: a harmonic tone (sine, square-, saw- or
    triangle-like partials below 7.6 kHz) whose pitch is steady, alternates
    between 2-3 tones, sweeps or warbles, switched on and off as a continuous
    tone, a beep train or groups of beeps, with flat or struck (decaying) beeps.
    The few packaged alarms teach their own sounds; this family spans what alarms
    have in common (tonal, loud, repetitive), so the class generalises."""
    n = int(rng.uniform(1.0, 6.0) * SR)
    t = np.arange(n) / SR
    f0 = float(np.exp(rng.uniform(np.log(350), np.log(3500))))
    pitch = str(rng.choice(["steady", "alternate", "sweep", "warble"], p=[0.3, 0.25, 0.25, 0.2]))
    if pitch == "steady":
        f = np.full(n, f0)
    elif pitch == "alternate":
        ratios = np.concatenate([[1.0], rng.uniform(1.1, 1.6, int(rng.integers(1, 3)))])
        f = f0 * ratios[(t // rng.uniform(0.1, 0.8)).astype(int) % len(ratios)]
    elif pitch == "sweep":
        ph = (t * rng.uniform(0.2, 3.0)) % 1.0
        shape = rng.choice(["up", "down", "updown"])
        ph = {"up": ph, "down": 1 - ph, "updown": 1 - np.abs(2 * ph - 1)}[shape]
        f = f0 * rng.uniform(1.3, 2.5) ** ph
    else:
        f = f0 * (1 + rng.uniform(0.03, 0.15) * np.sin(2 * np.pi * rng.uniform(4, 20) * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    wave = str(rng.choice(["sine", "square", "saw", "triangle"]))
    x = np.zeros(n)
    for k in range(1, 16):
        if k * f.max() > 7600:
            break
        amp = {"sine": float(k == 1), "square": (k % 2) / k, "saw": 1 / k,
               "triangle": (k % 2) / k ** 2}[wave]
        x += amp * np.sin(k * phase)
    gate = str(rng.choice(["continuous", "beeps", "groups"], p=[0.2, 0.5, 0.3]))
    if gate != "continuous":
        on, off = rng.uniform(0.05, 0.5), rng.uniform(0.03, 0.6)
        period = on + off
        pos = t % period
        if gate == "groups":
            g = int(rng.integers(2, 5))
            group = g * period + rng.uniform(0.3, 1.0)
            pos = np.where(t % group < g * period, (t % group) % period, on + 1)
        struck = rng.random() < 0.25
        env = np.where(pos < on, np.exp(-pos / rng.uniform(0.05, 0.4)) if struck else 1.0, 0.0)
        ramp = np.clip(np.minimum(pos, on - pos) / 0.005, 0, 1)  # 5 ms edges, no clicks
        x *= env * ramp
    if rng.random() < 0.2:
        x *= 1 - 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(10, 30) * t)) / 2
    x = (x / (np.abs(x).max() + 1e-12)).astype(np.float32)
    return x, {"pitch": pitch, "wave": wave, "gate": gate, "f0_hz": round(f0)}


def draw(src, rng, cache, max_len):
    k = src.kind
    if k == "espeak":
        return draw_espeak(src, rng)
    if k == "concat_words":
        return draw_concat(src, rng, src.params.get("max_files", 4))
    if k == "midi":
        return draw_midi(src, rng, cache, max_len)
    if k == "loop":
        return draw_loop(src, rng, max_len)
    if k == "sox":
        return draw_sox(src.params["recipe"], rng)
    if k == "alarm_synth":
        return draw_alarm_synth(rng)
    if k == "event":
        return draw_event(src, rng, src.params.get("repeat", 1))
    raise ValueError(k)


# ---------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------
def rms(x):
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def random_eq(x, rng):
    kind = str(rng.choice(["none", "lowpass", "highpass", "peak", "tilt", "telephone"],
                          p=[0.3, 0.15, 0.15, 0.2, 0.1, 0.1]))
    if kind == "none" or len(x) < 64:
        return x, {"eq": "none"}
    n = 1 << int(np.ceil(np.log2(len(x) + 1)))
    X = np.fft.rfft(x, n)
    f = np.fft.rfftfreq(n, 1 / SR)
    info = {"eq": kind}
    if kind == "lowpass":
        fc = rng.uniform(1500, 7000)
        g = 1 / np.sqrt(1 + (f / fc) ** 8)
        info["fc"] = round(fc)
    elif kind == "highpass":
        fc = rng.uniform(80, 700)
        g = 1 / np.sqrt(1 + (fc / np.maximum(f, 1)) ** 8)
        info["fc"] = round(fc)
    elif kind == "peak":
        fc, gdb, q = rng.uniform(200, 5000), rng.uniform(-12, 12), rng.uniform(0.5, 3)
        g = 10 ** (gdb / 20 * np.exp(-0.5 * (np.log2(np.maximum(f, 1) / fc) * q * 2) ** 2))
        info.update(fc=round(fc), gain_db=round(gdb, 1))
    elif kind == "tilt":
        s = rng.uniform(-4, 4)  # dB per octave around 1 kHz
        g = 10 ** (s * np.log2(np.maximum(f, 20) / 1000) / 20)
        info["db_per_octave"] = round(s, 2)
    else:  # telephone band
        g = 1 / np.sqrt(1 + (300 / np.maximum(f, 1)) ** 8) / np.sqrt(1 + (f / 3400) ** 8)
    y = np.fft.irfft(X * g, n)[: len(x)].astype(np.float32)
    return y, info


def random_reverb(x, rng):
    rt60 = rng.uniform(0.15, 1.2)
    L = int(min(rt60 * 1.2, 1.5) * SR)
    t = np.arange(L) / SR
    ir = rng.standard_normal(L) * np.exp(-6.91 * t / rt60)
    ir[: int(0.002 * SR)] = 0
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    n = 1 << int(np.ceil(np.log2(len(x) + L)))
    wet = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(ir, n), n)[: len(x) + L]
    mix = rng.uniform(0.15, 0.6)
    y = np.zeros(len(x) + L, np.float64)
    y[: len(x)] += x * (1 - mix)
    y += wet * mix * rms(x) / (rms(wet) + 1e-12)
    return y.astype(np.float32), {"rt60": round(rt60, 2), "wet": round(mix, 2)}


def noise_bed(kind, n, rng):
    if kind == "quiet":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "hum":
        t = np.arange(n) / SR
        f0 = float(rng.choice([50.0, 60.0]))
        y = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 8))
        return (y + 0.3 * rng.standard_normal(n)).astype(np.float32)
    w = rng.standard_normal(n)
    if kind == "white":
        return w.astype(np.float32)
    m = 1 << int(np.ceil(np.log2(n)))
    X = np.fft.rfft(w, m)
    f = np.maximum(np.fft.rfftfreq(m, 1 / SR), 20)
    X /= np.sqrt(f) if kind == "pink" else f
    return np.fft.irfft(X, m)[:n].astype(np.float32)


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------
def token_activity(dry, start, n_tok, rel_db=-25.0, fill=2):
    """Per-token activity of one placed (dry, post-EQ, pre-reverb) event.

    A token is active if the event's RMS inside the token is within rel_db of its
    loud level (95th percentile of its 10 ms frame RMS); gaps of <= fill tokens
    inside the event are closed (pauses between words)."""
    full = np.zeros(n_tok * TOKEN, np.float32)
    end = min(len(full), start + len(dry))
    full[start:end] = dry[: end - start]
    fr = np.sqrt(np.mean(full.reshape(-1, 160) ** 2, axis=1))
    nz = fr[fr > 0]
    if len(nz) == 0:
        return np.zeros(n_tok, bool)
    ref = np.percentile(nz, 95)
    tok = np.sqrt(np.mean(full.reshape(n_tok, TOKEN) ** 2, axis=1))
    act = tok >= ref * 10 ** (rel_db / 20)
    idx = np.nonzero(act)[0]
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= fill + 1:
            act[a:b] = True
    return act


# ---------------------------------------------------------------------------
# One clip
# ---------------------------------------------------------------------------
def audible(event_energy, rest_energy, margin_db):
    """Tokens where an event is not masked: its energy in the token is at most
    margin_db below everything else there (bed and the other events)."""
    return event_energy >= rest_energy * 10 ** (-margin_db / 10)


FAMILY_WEIGHTS = {"espeak": 2.0, "midi": 2.0, "sox": 2.0, "alarm_synth": 10.0}  # alarm_synth: ~30 % of training alarms
CLASS_WEIGHTS = {"speech": 0.27, "music": 0.2, "alarm": 0.17, "animal": 0.14, "human_sounds": 0.12, None: 0.10}


def make_clip(index, split, by_class, beds, args, rng):
    dur_tok = int(rng.integers(args.min_seconds * 10, args.max_seconds * 10 + 1))
    N = dur_tok * TOKEN
    # bed
    bed_src = beds[int(rng.integers(len(beds)))]
    if bed_src.kind == "bed_file":
        f = str(rng.choice(bed_src.files))
        b = load_audio(f)
        bed = np.tile(b, int(np.ceil(N / max(len(b), 1))))[:N] if len(b) else np.zeros(N, np.float32)
        bed_kind = os.path.basename(f)
    else:
        bed_kind = str(rng.choice(bed_src.params["types"], p=[0.25, 0.2, 0.25, 0.2, 0.1]))
        bed = noise_bed(bed_kind, N, rng)
    bed_db = rng.uniform(-85, -70) if bed_kind == "quiet" else rng.uniform(-60, -28)
    bed = (bed / (rms(bed) + 1e-12) * 10 ** (bed_db / 20)).astype(np.float32)
    bed, bed_eq = random_eq(bed, rng)
    mix = bed.astype(np.float64).copy()
    labels = np.zeros((dur_tok, len(CLASSES)), np.int8)
    events = []
    avail = [c for c in CLASS_WEIGHTS if by_class.get(c)]
    w = np.array([CLASS_WEIGHTS[c] for c in avail])
    w /= w.sum()
    n_events = int(rng.integers(1, 2 + dur_tok // 30))
    placed = []  # (class, start, wet signal in the mix, active tokens), as events
    for _ in range(n_events):
        cls = avail[int(rng.choice(len(avail), p=w))]
        fams = sorted({s.family for s in by_class[cls]})
        fw = np.array([FAMILY_WEIGHTS.get(f_, 1.0) for f_ in fams])
        fam = fams[int(rng.choice(len(fams), p=fw / fw.sum()))]
        pool = [s for s in by_class[cls] if s.family == fam]
        src = pool[int(rng.integers(len(pool)))]
        x, info = draw(src, rng, args.cache, dur_tok / 10)
        if len(x) < TOKEN // 2 or not np.isfinite(x).all() or rms(x) < 1e-6:
            continue
        x = x[: N]
        start = int(rng.integers(0, max(1, N - len(x) // 2)))  # may run off the end
        x, eq = random_eq(x, rng)
        # level: SNR against the bed (or absolute level over quiet)
        act_rms = rms(trim(x, -30))
        if bed_kind == "quiet":
            lvl_db = rng.uniform(-40, -12)
            snr = None
        else:
            snr = rng.uniform(-3, 25)
            lvl_db = bed_db + snr
        g = 10 ** (lvl_db / 20) / (act_rms + 1e-12)
        dry = (x * g).astype(np.float32)
        act = token_activity(dry, start, dur_tok)
        if not act.any():
            continue
        wet, rv = (random_reverb(dry, rng) if rng.random() < args.reverb_prob else (dry, None))
        end = min(N, start + len(wet))
        mix[start:end] += wet[: end - start]
        placed.append((cls, start, wet[: end - start], act))
        events.append({"class": cls or "distractor", "source": src.sid, "package": src.package,
                       "start_s": round(start / SR, 3), "end_s": round(min(N, start + len(dry)) / SR, 3),
                       "active_tokens": int(act.sum()), "first_token": int(np.argmax(act)),
                       "last_token": int(len(act) - 1 - np.argmax(act[::-1])),
                       "level_dbfs": round(float(lvl_db), 1), "snr_db": None if snr is None else round(float(snr), 1),
                       "eq": eq, "reverb": rv, **{k: v for k, v in info.items()}})
    # An event is labelled where it is active and audible: an alarm 30 dB under
    # music is in the signal but no listener (and no model) can tell it is there.
    def token_energy(x):
        return np.sum(x.astype(np.float64).reshape(dur_tok, TOKEN) ** 2, axis=1)
    for (cls, start, wet, act), ev in zip(placed, events):
        alone = np.zeros(N)
        alone[start:start + len(wet)] = wet
        heard = act & audible(token_energy(alone), token_energy(mix - alone), args.audible_margin_db)
        ev["audible_tokens"] = int(heard.sum())
        if cls is not None:
            labels[heard, CLASSES.index(cls)] = 1
    labels[:, CLASSES.index("background")] = (labels[:, :5].sum(axis=1) == 0)
    # overall level augmentation: peak to a random level, never clipping
    peak = float(np.abs(mix).max()) + 1e-12
    target = 10 ** (rng.uniform(-24, -1) / 20)
    gain = min(target / peak, 0.99 / peak) if peak > 0.99 or rng.random() < 0.7 else 1.0
    mix *= gain
    return mix.astype(np.float32), labels, {"bed": {"source": bed_src.sid, "kind": bed_kind,
                                                    "level_dbfs": round(float(bed_db), 1), "eq": bed_eq},
                                            "gain_db": round(float(20 * np.log10(gain)), 2),
                                            "seconds": dur_tok / 10, "tokens": dur_tok, "events": events}


def write_wav(path, x):
    y = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(y.tobytes())


def write_labels(path, labels):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["token"] + CLASSES)
        for t, row in enumerate(labels):
            wr.writerow([t] + [int(v) for v in row])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--clips", type=int, default=200, help="total clips (both splits)")
    ap.add_argument("--val-clip-fraction", type=float, default=0.2, help="share of clips drawn from validation sources")
    ap.add_argument("--val-source-fraction", type=float, default=0.25, help="share of source units held out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--split-seed", type=int, default=None,
                    help="the train/validation split of the sources (default: --seed). Another "
                         "draw of a model's validation clips must use the seed its training "
                         "data was made with, else its validation sources overlap the training ones")
    ap.add_argument("--min-seconds", type=int, default=10)
    ap.add_argument("--max-seconds", type=int, default=30)
    ap.add_argument("--reverb-prob", type=float, default=0.35)
    ap.add_argument("--audible-margin-db", type=float, default=10.0,
                    help="label an active event token only if the event is at most this far below the rest there")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/nystream/debs"),
                    help="where .deb files, unpacked trees (x/PKG) and MIDI renders (renders/) are kept")
    ap.add_argument("--packages", default=",".join(PACKAGES),
                    help="comma-separated packages to fetch (deny list enforced)")
    ap.add_argument("--more-sources", action="store_true",
                    help="also fetch MORE_PACKAGES (29 packages, about 1.7 GB of .debs) for more source units of "
                         "human_sounds, alarm and animal (and a few distractors), split among themselves; "
                         "without it the output is the same as before the option existed")
    args = ap.parse_args(argv)
    if not 1 <= args.min_seconds <= args.max_seconds:
        ap.error("need 1 <= --min-seconds <= --max-seconds")
    if args.split_seed is None:  # resolved here so the manifest records the split used
        args.split_seed = args.seed
    t0 = time.time()
    pkgs = [p for p in args.packages.split(",") if p]
    if args.more_sources:
        pkgs += [p for p in MORE_PACKAGES if p not in pkgs]
    for p in pkgs:
        try:
            check_package(p)
        except Denied as e:
            ap.error(str(e))
    roots = fetch_packages(args.cache, pkgs)
    t_fetch = time.time() - t0
    salt = f"nystream-audio-v1-seed{args.split_seed}"
    srcs = build_catalogue(roots, args.val_source_fraction, salt)
    if args.more_sources:
        srcs += build_more_sources(roots, args.val_source_fraction, salt, srcs)
    by = {s: {} for s in SPLITS}
    beds = {s: [] for s in SPLITS}
    for s in srcs:
        if s.cls == "bed":
            beds[s.split].append(s)
        else:
            by[s.split].setdefault(s.cls, []).append(s)
    for split in SPLITS:
        missing = [c for c in CLASSES[:5] if not by[split].get(c)]
        if missing:
            log(f"warning: {split} has no sources for {missing}")
    n_val = int(round(args.clips * args.val_clip_fraction))
    os.makedirs(args.out, exist_ok=True)
    clips = []
    totals = {s: np.zeros(len(CLASSES), np.int64) for s in SPLITS}
    for i in range(args.clips):
        split = "validation" if i >= args.clips - n_val else "train"
        rng = np.random.default_rng([args.seed, i])
        x, labels, meta = make_clip(i, split, by[split], beds[split], args, rng)
        d = os.path.join(args.out, split)
        os.makedirs(d, exist_ok=True)
        name = f"clip_{i:05d}"
        write_wav(os.path.join(d, name + ".wav"), x)
        write_labels(os.path.join(d, name + ".csv"), labels)
        totals[split] += labels.sum(axis=0)
        clips.append({"name": name, "split": split, "wav": f"{split}/{name}.wav", "labels": f"{split}/{name}.csv",
                      "label_tokens": dict(zip(CLASSES, map(int, labels.sum(axis=0)))), **meta})
        log(f"[{i + 1}/{args.clips}] {split}/{name} {meta['seconds']:.1f}s "
            f"{len(meta['events'])} events {time.time() - t0:.0f}s")
    manifest = {
        "generator": "models/data/audio_mixtures.py", "version": 1,
        # (more_sources is recorded only when set: without it the manifest is as before the option)
        "args": {k: v for k, v in vars(args).items() if k != "more_sources" or v},
        "classes": CLASSES, "sample_rate": SR, "token_seconds": 0.1,
        "labels": "token t covers [0.1 t, 0.1 (t+1)) s; a class is 1 where one of its events (dry, after EQ, "
                  "before reverb) has token RMS within 25 dB of its loud level, gaps <= 2 tokens closed, "
                  "and its energy in the mix (after reverb) is at most --audible-margin-db below everything "
                  "else in the token; background = none of the other five",
        "deny_packages": DENY_PACKAGES, "deny_paths": DENY_PATHS,
        "packages": {p: sorted(f for f in os.listdir(args.cache) if f.startswith(p + "_") and f.endswith(".deb"))
                     for p in roots},
        "sources": [s.to_json() for s in srcs],
        "label_token_totals": {s: dict(zip(CLASSES, map(int, totals[s]))) for s in SPLITS},
        "clips": clips,
        "seconds": {"fetch": round(t_fetch, 1), "total": round(time.time() - t0, 1)},
    }
    text = json.dumps(manifest, indent=1, ensure_ascii=False)
    text = text.replace(os.path.abspath(args.cache) + "/", "$CACHE/")  # files relative to --cache
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        f.write(text + "\n")
    log(f"wrote {args.clips} clips to {args.out} in {time.time() - t0:.0f}s; label tokens: "
        + json.dumps(manifest["label_token_totals"]))


if __name__ == "__main__":
    main()
