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
    try {
      const addr = await edge.listen();
      logger.info({ address: addr.address, port: addr.port, publicHost: config.publicHost }, 'hackstream listening');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const { host, port } = config.listen;
      await edge.close(0);
      if (code === 'EACCES') throw new Error(`permission denied binding ${host}:${port}: run as root (the supervisor binds the port), or set HACKSTREAM_LISTEN=0.0.0.0:8443`, { cause: err });
      if (code === 'EADDRINUSE') throw new Error(`${host}:${port}: the port is already in use: stop the other server or set HACKSTREAM_LISTEN`, { cause: err });
      throw err;
    }
    return edge;
  },
  stop: (edge) => edge.close(drainMs),
  async crashed(edge, err) {
    // The edge has no store: control audits the crash (sys_crash) when the link is up.
    if (edge) await within(1_000, edge.link.reportCrash(err instanceof Error ? err.message : String(err)));
  },
});
