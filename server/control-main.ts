/*
 * The control process's entry (the supervisor runs it as the system user hackstream): the API
 * on <runDir>/control/api.sock and the edge link on edge.sock, both for the edge's uid only;
 * sessions through the agent at <runDir>/agent/agent.sock.
 */
import { join } from 'node:path';
import { AgentRuntime } from '../core/sessions/agent-runtime.js';
import { buildControl, type Control } from './control.js';
import { initialAdminAnnouncer } from './initial-admin.js';
import { allowUids, uidFromEnv } from './peers.js';
import { runChild, within } from './process-main.js';
import { startTracing, type Tracing } from '../lib/tracing-sdk.js';

// Off (a no-op) without the config's `tracing` block; flushed after control drained.
let tracing: Tracing | undefined;

runChild<Control>({
  name: 'control',
  async start(config, logger, runDir) {
    tracing = await startTracing(config.tracing, 'control', logger);
    const runtime = new AgentRuntime({ socketPath: join(runDir, 'agent', 'agent.sock'), logger });
    const control = await buildControl(config, {
      logger,
      runDir,
      runtime,
      checkPeer: allowUids([uidFromEnv('HACKSTREAM_EDGE_UID')]),
      sessionsReadiness: true,
      bootstrap: {
        username: process.env.HACKSTREAM_ADMIN_USER || undefined,
        password: process.env.HACKSTREAM_ADMIN_PASSWORD || undefined,
        // Jupyter-style: the generated password is shown once on the terminal, not in the JSON
        // log; under systemd (HACKSTREAM_ADMIN_PASSWORD_FILE) it goes to a 0600 file instead.
        announce: initialAdminAnnouncer(process.env, (text) => process.stderr.write(text)),
      },
    });
    // The agent restarted: containers it created while nobody listened must be adopted or removed.
    runtime.onReconnect(() => {
      control.sessions.reconcile().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'reconcile after the agent came back failed'));
    });
    await control.listen();
    return control;
  },
  async stop(control) {
    await control.close();
    await tracing?.shutdown();
  },
  async crashed(control, err) {
    // What the spans say about the crash is worth the flush (bounded like the audit row).
    const flushed = tracing ? within(2_000, tracing.shutdown()) : Promise.resolve();
    if (!control) return flushed;
    await within(
      2_000,
      control.control.audit.record({
        actor: 'control',
        action: 'sys_crash',
        target: `pid ${process.pid}`,
        result: 'failure',
        details: { error: err instanceof Error ? err.message.slice(0, 500) : String(err).slice(0, 500) },
      }),
    );
    await flushed;
  },
});
