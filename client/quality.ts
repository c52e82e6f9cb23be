/**
 * `--quality` → xpra 3.1 client options. The one table; docs/clients.md shows the same.
 * low: a Raspberry Pi Zero (one ARMv6 core, 512 MB) on Wi-Fi, as bench/pi-zero simulates it
 * (docs/pi-zero.md): lz4-compressed RGB first — a decompression and a copy, cheaper for that core
 * than decoding JPEG — and JPEG only as the server's fallback; no auto-refresh (it re-sent every
 * changed area a second time, and kept an idle client busy); no bandwidth cap (with RGB it starved
 * the first frame for minutes); a middling speed, since speed 90 made xpra send over 10x the bytes
 * while scrolling (bench/client); and none of the subsystems a Pi kiosk does not use (tray,
 * notifications, audio, webcam, printing, XSETTINGS, bell), which cost it start-up time and memory;
 * no OpenGL (none usable there).
 * auto: xpra's own defaults; high: a LAN and a real CPU.
 */
export const QUALITY_PRESETS = {
  low: [
    '--encoding=rgb', '--encodings=rgb,jpeg', '--quality=35', '--min-quality=20', '--speed=50', '--min-speed=20', '--auto-refresh-delay=0', '--opengl=no',
    '--tray=no', '--system-tray=no', '--notifications=no', '--webcam=no', '--printing=no', '--xsettings=no', '--bell=no', '--av-sync=no',
  ],
  auto: [],
  high: ['--quality=90', '--min-quality=70', '--speed=30'],
} as const satisfies Record<string, readonly string[]>;

export type Quality = keyof typeof QUALITY_PRESETS;

export const QUALITIES = Object.keys(QUALITY_PRESETS) as Quality[];

export function isQuality(v: string): v is Quality {
  return Object.hasOwn(QUALITY_PRESETS, v);
}

export function qualityOptions(q: Quality): string[] {
  return [...QUALITY_PRESETS[q]];
}
