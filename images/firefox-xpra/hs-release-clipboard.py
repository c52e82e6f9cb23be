#!/usr/bin/python3
"""Leaves the X11 CLIPBOARD and PRIMARY selections without an owner.

xpra 3.1 claims them when it starts, before any client is attached; Firefox reads the
clipboard while starting and would then wait for xpra's remote timeouts (about 2 s in all).
With no owner its reads fail at once. xpra claims the selection again as soon as a client
sends clipboard contents, so copy and paste work as usual afterwards.
"""
import ctypes
import ctypes.util
import sys

x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
x11.XOpenDisplay.restype = ctypes.c_void_p
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
x11.XInternAtom.restype = ctypes.c_ulong
x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x11.XSetSelectionOwner.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

display = x11.XOpenDisplay(None)
if not display:
    sys.exit("hs-release-clipboard: cannot open the display")
for name in (b"CLIPBOARD", b"PRIMARY"):
    # owner None (0) at CurrentTime (0): the selection has no owner afterwards.
    x11.XSetSelectionOwner(display, x11.XInternAtom(display, name, 0), 0, 0)
x11.XSync(display, 0)
x11.XCloseDisplay(display)
