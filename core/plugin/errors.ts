/** A plugin could not be loaded, initialised or used as declared; `plugin` names it. */
export class PluginError extends Error {
  constructor(
    readonly plugin: string,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PluginError';
  }
}

/** A short description of a thrown value for messages (the full error goes to the log). */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
