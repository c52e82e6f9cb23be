#!/usr/bin/python3
"""RandR modes for common client screen sizes, added to the session's Xvfb before anyone attaches.

xpra 3.1 resizes the session's screen to the size of the client that attaches; when that size is
not a RandR mode yet, it adds one and then sleeps half a second (x11_server_core.py,
do_get_best_screen_size: "we have to wait a little bit"), in the path of every attach. With the
common sizes added here first, while Firefox starts, an attach at one of them does not wait.

Usage: hs-screen-sizes.py WxH (the session's screen: no mode larger than it is added). Fails,
naming them, when sizes could not be added.
"""

import sys

# Desktop and laptop screens people have (the most common first), and small ones a Raspberry Pi
# drives (the 7" touchscreen 800x480, HD 1280x720).
SIZES = (
    (1920, 1080), (1366, 768), (1536, 864), (1280, 720), (1440, 900), (1600, 900), (1280, 800),
    (1280, 1024), (1680, 1050), (1360, 768), (1024, 768), (1920, 1200), (1600, 1200), (1280, 960),
    (1024, 600), (800, 600), (800, 480),
)


def main():
    try:
        max_w, max_h = (int(v) for v in sys.argv[1].split("x"))
    except (IndexError, ValueError):
        sys.stderr.write("usage: hs-screen-sizes.py WxH\n")
        return 2
    from xpra.x11.bindings.posix_display_source import init_posix_display_source

    init_posix_display_source()
    from xpra.x11.bindings.randr_bindings import RandRBindings

    randr = RandRBindings()
    # The sizes xpra looks in (XRRSizes does not list added modes: xpra's #2910).
    have = set(randr.get_xrr_screen_sizes())
    failed = []
    for w, h in SIZES:
        if w <= max_w and h <= max_h and (w, h) not in have and not randr.add_screen_size(w, h):
            failed.append("%dx%d" % (w, h))
    # A round trip: adding the last mode to the output is a request still in Xlib's buffer until
    # one (seen here: without it, the last size was missing). get_xrr_screen_sizes() is not one.
    randr.get_screen_size()
    if failed:
        sys.stderr.write("hs-screen-sizes: not added: %s\n" % " ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
