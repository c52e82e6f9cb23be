/**
 * `--quality` → xpra 3.1 client options. The one table; docs/clients.md shows the same.
 * low: a Raspberry Pi Zero on Wi-Fi: only JPEG and (lz4-compressed) RGB, the two cheapest to
 * decode on one ARMv6 core, at a low quality; a middling speed, since speed 90 made xpra send
 * over 10x the bytes while scrolling (bench/client); a bandwidth cap; no OpenGL (none usable there).
 * auto: xpra's own defaults; high: a LAN and a real CPU.
 */
export const QUALITY_PRESETS = {
  low: ['--encoding=jpeg', '--encodings=jpeg,rgb', '--quality=35', '--min-quality=20', '--speed=50', '--min-speed=20', '--bandwidth-limit=2000000', '--opengl=no'],
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
