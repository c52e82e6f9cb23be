#!/usr/bin/python3
"""The xpra client, started before its command line is known (bin/hackstream's warm start).

Debian's xpra 3.1 client spends most of its start-up importing Python modules (GTK through
PyGObject, its codecs, Pillow) and opening the display: about a second on a PC, many on a Pi
Zero. bin/hackstream starts this script at the same time as the CLI, so that this work overlaps
the CLI's own start and its calls to the server (the session's start, seconds when no pool
container is ready). When the CLI has written xpra's command line, the shell creates
`<hand-off dir>/go` and sends SIGUSR1; this process then runs xpra's own `main` with that
command line, as /usr/bin/xpra would.

Right before xpra's `main` runs, this creates `<hand-off dir>/started`. Without it xpra never ran
here (a module missing, the display not there, no go within the wait, the shell gone, a kill):
the shell then runs xpra the usual way, which reports any real problem itself. The exit status
is then NOT_STARTED (86, no xpra exit code) unless a signal ended this process. Until the go,
nothing is written to the terminal: it may be showing the CLI's prompts.
"""

import os
import signal
import sys

NOT_STARTED = 86
# The longest a CLI may take to hand over: a cold start, a password prompt, an SSO sign-in.
MAX_WAIT_S = 15 * 60
# What `xpra attach` imports before its first window (python3 -X importtime): the bulk of its
# start-up. Optional ones (a codec not installed) are skipped; xpra decides about them later.
# Never xpra.client.ui_client_base or what imports it (gtk3.client, gtk_client_base): that module
# composes the client class from xpra's mixin switches when it is first imported, which must
# happen after xpra has read the options (no sound mixin with --speaker=no, no tray with
# --tray=no, ...), not with the defaults. Nor the sound mixin: it loads only when sound is on.
PRELOAD = (
    "xpra.net.packet_encoding",
    "xpra.net.compression",
    "xpra.net.protocol",
    "xpra.codecs.video_helper",
    "xpra.gtk_common.gobject_compat",
    "xpra.gtk_common.gtk_util",
    "xpra.client.client_base",
    "xpra.client.gobject_client_base",
    "xpra.client.gtk_base.gtk_keyboard_helper",
    "xpra.platform.gui",
    "xpra.platform.paths",
    "xpra.platform.keyboard",
    "xpra.client.gtk3.client_window",
    "xpra.client.mixins.window_manager",
    "xpra.client.mixins.display",
    "xpra.client.mixins.clipboard",
    "PIL.Image",
    "PIL.JpegImagePlugin",
    "PIL.ImageCms",
    "xpra.codecs.pillow.decoder",
    "xpra.codecs.jpeg.decoder",
    "xpra.codecs.csc_swscale.colorspace_converter",
    "xpra.codecs.dec_avcodec2.decoder",
    "dbus.mainloop.glib",
    "xpra.dbus.helper",
    "xpra.x11.xsettings_prop",
    "xpra.x11.gtk_x11.clipboard",
    "xpra.platform.ui_thread_watcher",
)
# Imported only after the options are known (see PRELOAD).
COMPOSES = "xpra.client.ui_client_base"


def preload():
    """xpra's platform set-up, its main and the PRELOAD modules; returns xpra's main."""
    from xpra.platform import init, set_default_name

    set_default_name("Xpra")
    init()
    from xpra.scripts.main import main as xpra_main

    for module in PRELOAD:
        try:
            __import__(module)
        except ImportError:
            pass
    if COMPOSES in sys.modules:
        raise RuntimeError("%s was imported before the options were read" % COMPOSES)
    return xpra_main


def name_process(name):
    """`ps -o comm` shows this process as xpra, the program it becomes."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


def wait_for_go(go):
    """True once the shell said go; False when it is gone or took too long."""
    parent = os.getppid()
    waited = 0
    while not os.path.exists(go):
        if waited >= MAX_WAIT_S or os.getppid() != parent:
            return False
        # The signal wakes us at once; the poll covers a go sent before SIGUSR1 was blocked.
        if signal.sigtimedwait({signal.SIGUSR1}, 1) is None:
            waited += 1
    return True


def command_line(path):
    """The CLI's lines: `/usr/bin/env`, NAME=value settings, then /usr/bin/xpra and its arguments."""
    with open(path, encoding="utf-8") as f:
        args = f.read().split("\n")[:-1]
    if args[:1] == ["/usr/bin/env"]:
        args = args[1:]
    while args and "=" in args[0] and not args[0].startswith("/"):
        name, value = args.pop(0).split("=", 1)
        os.environ[name] = value
    if not args or os.path.realpath(args[0]) != "/usr/bin/xpra":
        raise ValueError("not Debian's xpra")
    return args


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: xpra-warm.py <hand-off folder> (run by hackstream)\n")
        return NOT_STARTED
    handoff = sys.argv[1]
    # The shell starts us with SIGUSR1 ignored (so an early go cannot kill us): block it first,
    # so that from now on it waits for sigtimedwait, then give it back its default.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    terminal = os.dup(2)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    os.close(quiet)
    try:
        xpra_main = preload()
    except (Exception, SystemExit):
        # GTK exits the process when it cannot open the display: xpra itself will say why.
        return NOT_STARTED
    if not wait_for_go(os.path.join(handoff, "go")):
        return NOT_STARTED
    try:
        args = command_line(os.path.join(handoff, "xpra.args"))
    except (OSError, ValueError):
        return NOT_STARTED
    with open(os.path.join(handoff, "started"), "w", encoding="utf-8"):
        pass
    os.dup2(terminal, 2)
    os.close(terminal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    name_process("xpra")
    sys.argv = args
    return xpra_main(args[0], args)


if __name__ == "__main__":
    sys.exit(main())
