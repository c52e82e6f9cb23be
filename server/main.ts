/*
 * `npm start`: the supervisor (server/supervisor-main.ts), which runs the embedded store, the
 * agent, control and the edge workers as separate processes (docs/processes.md).
 */
import { runMain } from './supervisor-main.js';

runMain();
