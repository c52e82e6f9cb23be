/*
 * What the edge answers a connection it neither tunnels nor terminates, before closing it.
 */

/** TLS alert, fatal, unrecognized_name (RFC 6066 §3): the answer to an unknown SNI. */
export const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);
/** TLS alert, fatal, access_denied (RFC 8446 §6.2): a client not admitted to the route, or one too many. */
export const ALERT_ACCESS_DENIED = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31]);
const PLAIN_HTTP_BODY = 'This port speaks TLS only. Use https:// (or xpra ssl://) to reach HackStream.\n';
export const PLAIN_HTTP_RESPONSE =
  'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n' +
  `Content-Length: ${Buffer.byteLength(PLAIN_HTTP_BODY)}\r\n\r\n${PLAIN_HTTP_BODY}`;
