/**
 * `--quality` → xpra 3.1 client options. The one table; docs/clients.md shows the same.
 * low: a Raspberry Pi Zero on Wi-Fi (cheap to decode JPEG, low quality floor, fast
 * encoding, capped bandwidth); auto: xpra's own defaults; high: a LAN and a real CPU.
 */
export const QUALITY_PRESETS = {
  low: ['--encoding=jpeg', '--quality=35', '--min-quality=20', '--speed=90', '--min-speed=70', '--bandwidth-limit=2000000'],
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
