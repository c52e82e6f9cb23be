/**
 * The public plugin contract. A plugin imports only from this file (and `quota-schema.js`
 * for quota bounds); the host behind it may change, this may not without a major version.
 */
import type Router from '@koa/router';
import type { RouterMiddleware } from '@koa/router';
import type { z } from 'zod';
import type { Logger } from '../../lib/log.js';
import type { AuditSink, AuthProvider, DeviceFlow, QuotaPolicy, RedirectFlow, SecondFactor, SessionListener } from './extensions.js';
import type { PluginServices, PluginStorage } from './services.js';
import { parseJsonBody } from '../api/body.js';

export type * from './extensions.js';
export { FLOW_ID_PATTERN } from './extensions.js';
export type * from './services.js';
export type { Logger };

/**
 * The contract version this HackStream implements. A plugin states the version it was
 * written for (`contract`); any other is refused at start-up, naming the plugin.
 */
export const PLUGIN_CONTRACT_VERSION = 2;

/** The caller of a plugin route, when the request carried a valid access token. */
export interface PluginPrincipal {
  readonly userId: string;
  readonly username: string;
  readonly role: 'admin' | 'user';
}

/** What core puts in `ctx.state` of a plugin route. */
export interface PluginRouteState {
  /** The request id, also in the `x-request-id` response header. */
  readonly reqId: string;
  /** Null when the request had no valid access token: the route decides what that means. */
  readonly principal: PluginPrincipal | null;
  /** The client's address as the edge saw it. */
  readonly ip: string;
}

declare module 'koa' {
  interface Request {
    /** After `jsonBody`: the request's JSON body as core parsed it (`undefined` when there is none). */
    body?: unknown;
  }
}

/**
 * Core's body parser, offered to plugin routes: `router.use(jsonBody)` (or per route) puts the
 * JSON body in `ctx.request.body`, read and refused exactly as on core's routes — over 64 KiB
 * 413, not JSON 415, malformed JSON or UTF-8 400 — before the route runs. The route still
 * validates the shape (zod). Routes without it may read `ctx.req` themselves.
 */
export const jsonBody: RouterMiddleware<PluginRouteState> = parseJsonBody;

/** A router a plugin registers; the host mounts it under `/v1/plugins/<plugin name>`. */
export type PluginRouter = Router<PluginRouteState>;

/**
 * Where a plugin registers its extensions. Each method works only while the plugin's
 * `init` runs; afterwards (and once `init` timed out) it throws.
 */
export interface PluginRegistrar {
  /** Adds a provider to the auth chain (chain order = plugin init order). */
  authProvider(provider: AuthProvider): void;
  /** Sets the quota policy. A second policy from any plugin stops start-up. */
  quotaPolicy(policy: QuotaPolicy): void;
  /**
   * Serves a router under `/v1/plugins/<plugin name>/`: a route `/hello` answers at
   * `/v1/plugins/<plugin name>/hello`. Routes added after init are not served.
   */
  httpRoutes(router: PluginRouter): void;
  /** Receives every committed audit row. */
  auditSink(sink: AuditSink): void;
  /** Receives every session lifecycle event. */
  sessionEvents(listener: SessionListener): void;
  /** Adds a browser redirect flow (its `id` unique across plugins). */
  redirectFlow(flow: RedirectFlow): void;
  /** Adds a device flow (its `id` unique across plugins). */
  deviceFlow(flow: DeviceFlow): void;
  /** Adds a second factor (its `id` unique across plugins). */
  secondFactor(factor: SecondFactor): void;
}

/** One step of a plugin's schema: SQL run once, in order, inside the plugin's own schema. */
export interface PluginMigration {
  /** Unique within the plugin and never reused, e.g. `001-secrets`. */
  readonly id: string;
  readonly up: string;
}

/** What `init` receives: nothing else of core is reachable from a plugin. */
export interface PluginContext<Options> {
  /** A child logger whose lines carry `plugin: <name>`. */
  readonly logger: Logger;
  /** This plugin's options, validated by its `configSchema`, defaults applied, deep-frozen. */
  readonly config: Options;
  readonly register: PluginRegistrar;
  readonly services: PluginServices;
  /** Its own SQL schema and KV space (see PluginStorage). */
  readonly storage: PluginStorage;
}

/** Returned by `init` when the plugin holds something to release on shutdown. */
export interface PluginHandle {
  /** Releases what `init` acquired. Called once, in reverse init order, with a timeout. */
  close(): Promise<void>;
}

/**
 * A HackStream plugin. It is enabled by being listed under `plugins` in the config: the key
 * is a built-in's name, an npm package name (resolved from the server's node_modules or the
 * plugins folder) or a path (`./…` or `/…`, relative to the config file); the value is its
 * options. At start-up the host loads every enabled plugin, checks its contract version and
 * validates its options before any `init`, applies its migrations, then calls `init` in
 * dependency order, each with a timeout. A plugin module's default export is its `Plugin`.
 *
 * @typeParam Options - the options after validation (`z.output` of `configSchema`)
 * @typeParam Input - the options as written in the config file (`z.input`)
 */
export interface Plugin<Options = unknown, Input = unknown> {
  /**
   * Its identity, unique among the enabled plugins (routes `/v1/plugins/<name>`, logs, storage,
   * audit prefix): lowercase, digits, hyphens. For a built-in also its config key and folder.
   */
  readonly name: string;
  /** The plugin's own version (semver), logged at start-up. */
  readonly version: string;
  /** The contract version it was written for: PLUGIN_CONTRACT_VERSION. */
  readonly contract: number;
  /** Its SQL schema's migrations, applied in order once each (see PluginStorage). */
  readonly migrations?: readonly PluginMigration[];
  /** Plugins that must be enabled and initialised before this one. */
  readonly dependsOn?: readonly string[];
  /** Validates the options; unknown keys should be refused (`.strict()`), defaults set here. */
  readonly configSchema: z.ZodType<Options, Input>;
  /** Example options for docs; the contract suite checks that they validate. */
  readonly exampleConfig: Input;
  /**
   * Registers the plugin's extensions and acquires what it needs. Throwing (or not
   * settling within the host's init timeout) stops start-up.
   */
  init(ctx: PluginContext<Options>): Promise<PluginHandle | void>;
}

/** Identity helper that infers `Options` and `Input` from the schema. */
export function definePlugin<Options, Input>(plugin: Plugin<Options, Input>): Plugin<Options, Input> {
  return plugin;
}
