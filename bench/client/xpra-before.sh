#!/bin/sh
# The xpra client as hackstream started it before the warm start (bench/client's "before" launches):
# HACKSTREAM_XPRA pointing here turns bin/hackstream's warm start off, and this puts back the
# sound options and environment of then (--speaker/--microphone=disabled, which still loaded
# xpra's sound subsystem; setuptools' distutils shim on).
for a in "$@"; do
  shift
  case "$a" in
  --speaker=no) a=--speaker=disabled ;;
  --microphone=no) a=--microphone=disabled ;;
  esac
  set -- "$@" "$a"
done
unset SETUPTOOLS_USE_DISTUTILS
exec /usr/bin/xpra "$@"
