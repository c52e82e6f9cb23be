#!/usr/bin/python3
"""Sends each download Firefox completes to the attached xpra client (xpra's file transfer).

Started by the entrypoint when the session's policy allows downloads and file transfer.
Firefox saves into DOWNLOADS (hs-policies.py), writing <name>.part beside an empty <name>
and renaming at the end: a file counts as complete when no <name>.part is beside it and its
size held over two scans. Each complete file is sent once with `xpra control send-file`
(never opened on the client); while no client is attached it waits and goes with the next
attach. Files over HS_DOWNLOAD_MAX_MB are not sent: the refusal is logged here, written in
<name>.not-sent.txt beside the file, and shown to the user in a notice tab. The client saves
into its XPRA_DOWNLOAD_DIR.

With --refuse (the policy forbids downloads) it watches REFUSED instead, where Firefox saves
then: every entry is removed at once, so nothing is kept, and the user gets a notice tab
(download-refused.html) saying that downloads are off, once per file name.
"""
import os
import subprocess
import sys
import time
import urllib.parse

DOWNLOADS = os.environ.get("HS_WEB_DOWNLOADS", "/tmp/hs/home/Web-Downloads")
REFUSED = "/tmp/hs/home/Refused-Downloads"
NOTICE = "file:///usr/share/hackstream/download-refused.html"
SOCKET_DIR = "/tmp/hs/xpra"
DISPLAY = ":100"
SCAN_S = 0.5
NOT_SENT_NOTE = ".not-sent.txt"


def max_bytes():
    raw = os.environ.get("HS_DOWNLOAD_MAX_MB", "100")
    mb = int(raw) if raw.isdigit() else 100
    return max(1, mb) * 1024 * 1024


def log(msg, **fields):
    detail = " ".join("%s=%r" % kv for kv in sorted(fields.items()))
    sys.stdout.write("hs-downloads: %s %s\n" % (msg, detail))
    sys.stdout.flush()


def complete_files(names):
    """Regular files Firefox has finished (no .part beside them), as (name, size, mtime)."""
    out = []
    present = set(names)
    for name in names:
        if name.endswith(".part") or name.endswith(NOT_SENT_NOTE) or name + ".part" in present:
            continue
        try:
            st = os.lstat(os.path.join(DOWNLOADS, name))
        except OSError:
            continue
        if not os.path.isfile(os.path.join(DOWNLOADS, name)) or os.path.islink(os.path.join(DOWNLOADS, name)):
            continue
        out.append((name, st.st_size, st.st_mtime_ns))
    return out


def send(path):
    env = dict(os.environ, PATH="/usr/bin:/bin")
    r = subprocess.run(
        ["/usr/bin/xpra", "control", DISPLAY, "--socket-dirs=" + SOCKET_DIR, "send-file", path, "noopen", "*"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False,
    )
    return r.returncode == 0


def notify(reason, name, **extra):
    """Opens HackStream's notice in a new tab of the session's Firefox (what the user sees)."""
    fragment = urllib.parse.urlencode(dict(reason=reason, file=name, **extra), quote_via=urllib.parse.quote)
    try:
        r = subprocess.run(
            ["/usr/local/bin/hs-open", "--notice", NOTICE + "#" + fragment],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False,
        )
        ok = r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    log("notice shown" if ok else "notice not shown", reason=reason, file=name)


def refuse():
    os.makedirs(REFUSED, mode=0o700, exist_ok=True)
    told = set()
    while True:
        try:
            names = os.listdir(REFUSED)
        except OSError:
            names = []
        for name in names:
            try:
                os.unlink(os.path.join(REFUSED, name))
            except OSError:
                pass
            base = name[: -len(".part")] if name.endswith(".part") else name
            if base not in told:
                told.add(base)
                log("refused: downloads are off", file=base)
                notify("off", base)
        time.sleep(SCAN_S)


def main():
    os.makedirs(DOWNLOADS, exist_ok=True)
    limit = max_bytes()
    seen = {}  # name -> (size, mtime) of the previous scan
    done = set()  # (name, size, mtime) sent or refused
    while True:
        try:
            names = os.listdir(DOWNLOADS)
        except OSError:
            names = []
        current = {}
        for name, size, mtime in complete_files(names):
            current[name] = (size, mtime)
            key = (name, size, mtime)
            if key in done or seen.get(name) != (size, mtime) or size == 0:
                continue
            path = os.path.join(DOWNLOADS, name)
            if size > limit:
                done.add(key)
                why = "%s is %d bytes, over the %d MB download limit: not sent to the client" % (name, size, limit // 1048576)
                log("refused", file=name, size=size, limitMb=limit // 1048576)
                with open(path + NOT_SENT_NOTE, "w") as f:
                    f.write(why + "\n")
                notify("too-large", name, limit=limit // 1048576)
                continue
            try:
                ok = send(path)
            except (OSError, subprocess.SubprocessError):
                ok = False
            if ok:
                done.add(key)
                log("sent", file=name, size=size)
            # Not sent (no client attached yet): tried again at the next scan.
        seen = current
        time.sleep(SCAN_S)


if __name__ == "__main__":
    refuse() if sys.argv[1:] == ["--refuse"] else main()
