/*
 * The edge process's entry: a cluster worker of the supervisor, run as the system user
 * hackstream-edge. Its listen() goes to the supervisor, which binds the port and hands the
 * socket over, so the edge holds no privilege. It waits for control's link before listening.
 */
import { buildEdge, type Edge } from './edge.js';
import { runChild, within } from './process-main.js';

let drainMs = 10_000;

runChild<Edge>({
  name: 'edge',
  async start(config, logger, runDir) {
    drainMs = config.gateway.shutdownDrainMs;
    const edge = await buildEdge(config, { logger, runDir });
    await edge.listen();
    return edge;
  },
  stop: (edge) => edge.close(drainMs),
  async crashed(edge, err) {
    // The edge has no store: control audits the crash (sys_crash) when the link is up.
    if (edge) await within(1_000, edge.link.reportCrash(err instanceof Error ? err.message : String(err)));
  },
});
