/*
 * The two HTML documents the portal serves and their Content-Security-Policy. Neither holds an
 * inline script or style: everything runs from files of this origin.
 */

const COMMON = ["default-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"];

/** The portal's policy: its bundle, its stylesheet, its API. */
export const PORTAL_CSP = [...COMMON, "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'"].join('; ');

/**
 * The HTML5 client's policy. xpra paints JPEG/PNG frames through data: images and runs its
 * protocol in a worker; the WebSocket is this host's (named in full: `'self'` covers wss only
 * in newer browsers).
 */
export function xpraCsp(host: string): string {
  return [
    ...COMMON,
    "script-src 'self'",
    "worker-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self'",
    `connect-src 'self' wss://${host}`,
  ].join('; ');
}

export const PORTAL_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>HackStream</title>
<link rel="stylesheet" href="/assets/portal.css">
</head>
<body>
<div id="app"><main><p>Loading…</p></main></div>
<script type="module" src="/assets/portal.js"></script>
</body>
</html>
`;

/** xpra 3.1's scripts, in the order its own index.html loads them (its inline script excepted). */
const XPRA_SCRIPTS = [
  'js/lib/es6-shim.js',
  'js/lib/AudioContextMonkeyPatch.js',
  'js/lib/jquery.js',
  'js/lib/jquery-ui.js',
  'js/lib/jquery.ba-throttle-debounce.js',
  'js/lib/bencode.js',
  'js/lib/zlib.js',
  'js/lib/lz4.js',
  'js/lib/brotli_decode.js',
  'js/lib/forge.js',
  'js/lib/jsmpeg.js',
  'js/lib/broadway/Decoder.js',
  'js/lib/aurora/aurora.js',
  'js/lib/aurora/mp3.js',
  'js/lib/aurora/flac.js',
  'js/lib/aurora/aac.js',
  'js/lib/aurora/aurora-xpra.js',
  'js/lib/FileSaver.js',
  'js/lib/jszip.js',
  'js/Keycodes.js',
  'js/Protocol.js',
  'js/Window.js',
  'js/Notifications.js',
  'js/Utilities.js',
  'js/MediaSourceUtil.js',
  'js/Client.js',
  // The window list (addWindowListItem): Client.js calls it for every new window.
  'js/Menu.js',
  'js/Menu-custom.js',
];

/**
 * The page that shows one session with xpra's HTML5 client. It lives under /xpra/ because the
 * client starts its workers by relative URLs (js/Protocol.js). The session id is in the
 * fragment; the connect token is fetched by /assets/xpra-open.js and never enters a URL.
 * Every script is `defer` (run in order once the document is parsed): the status line paints
 * without waiting for xpra's megabyte of scripts.
 */
export const XPRA_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>HackStream session</title>
<link rel="stylesheet" href="css/client.css">
<link rel="stylesheet" href="css/spinner.css">
<link rel="stylesheet" href="/assets/xpra-page.css">
${XPRA_SCRIPTS.map((s) => `<script defer src="${s}"></script>`).join('\n')}
</head>
<body>
<div id="dpi"></div>
<div id="hs-status" role="status">Connecting…</div>
<div id="screen">
<div id="float_menu"><ul id="menu_list"><li><ul id="startmenu"></ul></li></ul><ul id="open_windows_list"></ul><div id="float_tray"></div></div>
</div>
<script defer src="/assets/xpra-open.js"></script>
</body>
</html>
`;
