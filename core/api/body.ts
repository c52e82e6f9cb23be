import type Koa from 'koa';
import { AppError } from '../errors.js';

/** Request bodies are small JSON documents; anything larger is refused (413). */
export const BODY_LIMIT_BYTES = 64 * 1024;

/** Refuses a declared Content-Length over the limit before any other work (and any read). */
export function bodyLimit(limit = BODY_LIMIT_BYTES): Koa.Middleware {
  return async (ctx, next) => {
    const declared = ctx.get('content-length');
    if (declared !== '' && (!/^\d{1,15}$/.test(declared) || Number(declared) > limit)) {
      // Node discards the unread body after the answer (bounded by the request timeout),
      // so a client still sending it reads the 413 instead of a reset.
      throw new AppError(/^\d{1,15}$/.test(declared) ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST', /^\d{1,15}$/.test(declared) ? `request body larger than ${limit} bytes` : 'bad Content-Length');
    }
    await next();
  };
}

/**
 * Reads the whole body, at most `limit` bytes (a chunked body is cut off at the limit), and
 * parses it as JSON. No body at all gives `undefined`. Refuses: over the limit (413), a
 * media type other than JSON (415), invalid UTF-8 or malformed JSON (400).
 */
export async function readJson(ctx: BodyContext, limit = BODY_LIMIT_BYTES): Promise<unknown> {
  const raw = await readRaw(ctx, limit);
  if (raw.length === 0) return undefined;
  const type = ctx.request.type;
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'request bodies are JSON (Content-Type: application/json)');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch (err) {
    throw new AppError('BAD_REQUEST', 'request body is not valid UTF-8', { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AppError('BAD_REQUEST', 'request body is not valid JSON', { cause: err });
  }
}

/** What reading a body needs of a context: core's routes and plugin routes both have it. */
type BodyContext = Pick<Koa.ParameterizedContext, 'req' | 'request' | 'get'>;

/**
 * Core's body parser for routes that do not declare a schema (plugin routes): the JSON body,
 * read and refused exactly as for core's routes, in `ctx.request.body` (`undefined` when none).
 */
export async function parseJsonBody(ctx: BodyContext, next: Koa.Next): Promise<void> {
  ctx.request.body = await readJson(ctx);
  await next();
}

function readRaw(ctx: BodyContext, limit: number): Promise<Buffer> {
  const req = ctx.req;
  if (req.readableEnded || (ctx.get('content-length') === '' && ctx.get('transfer-encoding') === '')) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(new AppError('PAYLOAD_TOO_LARGE', `request body larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new AppError('BAD_REQUEST', 'request body could not be read', { cause: err }));
    };
    const onAborted = () => onError(new Error('aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
