/*
 * `npm start`: the supervisor (server/supervisor-main.ts), which runs the embedded store, the
 * agent, control and the edge workers as separate processes (docs/processes.md).
 */
import { main } from './supervisor-main.js';

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`hackstream: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
