/*
 * A session's quality preset (the API's `low`/`auto`/`high`, the CLI's --quality) as xpra 3.1's
 * HTML5 client can ask for it: the encodings it offers, and the hello capabilities the server
 * reads for quality and speed (`encoding.quality`, `encoding.min-quality`, `encoding.speed`,
 * `encoding.min-speed`, as xpra's own clients send them). The same numbers as client/quality.ts.
 */

export type Preset = 'low' | 'auto' | 'high';

export interface XpraSettings {
  /** Encodings offered (empty: all the client supports). */
  encodings: string[];
  /** Merged into the client's hello. */
  caps: Record<string, string | number>;
}

export const XPRA_PRESETS: Record<Preset, XpraSettings> = {
  // Lz4-compressed RGB first (cheap for a weak CPU), JPEG as the fallback; no auto-refresh.
  low: { encodings: ['rgb', 'jpeg'], caps: { encoding: 'rgb', 'encoding.quality': 35, 'encoding.min-quality': 20, 'encoding.speed': 50, 'encoding.min-speed': 20, auto_refresh_delay: 0 } },
  auto: { encodings: [], caps: {} },
  high: { encodings: [], caps: { 'encoding.quality': 90, 'encoding.min-quality': 70, 'encoding.speed': 30 } },
};

export function presetOf(v: unknown): Preset {
  return v === 'low' || v === 'high' ? v : 'auto';
}
