import type { ParameterizedContext } from 'koa';

type Context = ParameterizedContext;

/** A refusal an HTTP route answers with `{error: {code, message}}`. */
export class RouteError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RouteError';
  }
}

/** Bodies of these routes are a few bytes of JSON. */
const LIMIT = 4096;

/**
 * The request body as JSON (`undefined` when there is none). Plugin routes get the raw
 * request, so this reads it itself: bounded, JSON media type only, valid UTF-8 and JSON.
 */
export async function readJsonBody(ctx: Context): Promise<unknown> {
  const parsed = (ctx.request as { body?: unknown }).body;
  if (parsed !== undefined) return parsed;
  const req = ctx.req;
  if (req.readableEnded || ctx.get('content-length') === '0' || (ctx.get('content-length') === '' && ctx.get('transfer-encoding') === '')) return undefined;
  const type = ctx.request.type;
  if (type !== 'application/json' && !type.endsWith('+json')) throw new RouteError(415, 'UNSUPPORTED_MEDIA_TYPE', 'request bodies are JSON (Content-Type: application/json)');
  const raw = await readRaw(ctx.req);
  const size = raw.length;
  if (size === 0) return undefined;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw)) as unknown;
  } catch {
    throw new RouteError(400, 'BAD_REQUEST', 'request body is not valid JSON');
  }
}

/** Reads without destroying the request on refusal, so the client still gets the answer. */
function readRaw(req: Context['req']): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err: RouteError | null) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onError);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > LIMIT) done(new RouteError(413, 'PAYLOAD_TOO_LARGE', `request body larger than ${LIMIT} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = () => done(null);
    const onError = () => done(new RouteError(400, 'BAD_REQUEST', 'request body could not be read'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onError);
  });
}
