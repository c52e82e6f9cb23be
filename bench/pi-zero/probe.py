#!/usr/bin/python3
"""
Pixel probe for bench/pi-zero, on the host's X display (the Xvfb the simulated Pi's xpra
client paints into). Grabs one rectangle of the root window with GDK (a few ms, far cheaper
than a full screenshot), so frame changes and keystroke echoes are timed at that resolution.

  probe.py fps  X Y W H SECONDS [SCROLL_NOTCHES_PER_S]
      counts distinct consecutive grabs of the box over SECONDS while xdotool turns the
      mouse wheel (button 5) at the given rate over the box's centre (0: no scrolling).
  probe.py keys X Y W H N
      N times: waits until the box is still, types one character with xdotool, and times
      until the box's pixels change (xdotool's own start-up is inside the time).
Prints one JSON object. Runs with Debian's python3 (python3-gi, GDK 3), which xpra pulls in.
"""
import json
import statistics
import subprocess
import sys
import time
import zlib

import gi

gi.require_version('Gdk', '3.0')
from gi.repository import Gdk  # noqa: E402

Gdk.init([])
ROOT = Gdk.get_default_root_window()


def grab(box):
    pb = Gdk.pixbuf_get_from_window(ROOT, *box)
    return zlib.crc32(pb.get_pixels())


def timed_grab(box, costs):
    t = time.perf_counter()
    h = grab(box)
    costs.append((time.perf_counter() - t) * 1000)
    return h


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))] if s else None


def fps(box, seconds, rate):
    x, y, w, h = box
    scroller = None
    if rate > 0:
        subprocess.run(['xdotool', 'mousemove', str(x + w // 2), str(y + h // 2)], check=True)
        scroller = subprocess.Popen(['xdotool', 'click', '--repeat', str(int(seconds * rate) + rate), '--delay', str(1000 // rate), '5'])
    costs, changes, grabs = [], 0, 0
    last = timed_grab(box, costs)
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        cur = timed_grab(box, costs)
        grabs += 1
        if cur != last:
            changes += 1
            last = cur
    elapsed = time.perf_counter() - t0
    if scroller:
        scroller.kill()
        scroller.wait()
    return {'seconds': round(elapsed, 2), 'changes': changes, 'grabs': grabs, 'fps': round(changes / elapsed, 2),
            'grabsPerS': round(grabs / elapsed, 1), 'grabMsP50': round(statistics.median(costs), 2)}


def settle(box, quiet_s=0.5, cap_s=6.0):
    """Waits until the box has not changed for quiet_s (xpra's refreshes after a lossy frame)."""
    last, since, end = grab(box), time.perf_counter(), time.perf_counter() + cap_s
    while time.perf_counter() < end:
        time.sleep(0.01)
        cur = grab(box)
        if cur != last:
            last, since = cur, time.perf_counter()
        elif time.perf_counter() - since >= quiet_s:
            return last
    return last


def keys(box, n):
    chars = 'abcdefghijklmnopqrstuvwxyz0123456789'
    lat, missed, costs = [], 0, []
    for i in range(n):
        before = settle(box)
        t0 = time.perf_counter()
        subprocess.run(['xdotool', 'key', chars[i % len(chars)]], check=True)
        end = t0 + 5.0
        while True:
            if timed_grab(box, costs) != before:
                lat.append((time.perf_counter() - t0) * 1000)
                break
            if time.perf_counter() > end:
                missed += 1
                break
    return {'n': n, 'missed': missed, 'ms': [round(v, 1) for v in lat], 'p50': pct([round(v, 1) for v in lat], 50),
            'p95': pct([round(v, 1) for v in lat], 95), 'grabMsP50': round(statistics.median(costs), 2) if costs else None}


def main(argv):
    mode, box = argv[1], tuple(int(v) for v in argv[2:6])
    if mode == 'fps':
        out = fps(box, float(argv[6]), int(argv[7]) if len(argv) > 7 else 10)
    elif mode == 'keys':
        out = keys(box, int(argv[6]))
    else:
        raise SystemExit(f'unknown mode {mode}')
    print(json.dumps(out))


if __name__ == '__main__':
    main(sys.argv)
