import type { MigrationInterface } from 'typeorm';
import { Initial1764000000000 } from './1764000000000-initial.js';
import { SessionRuntime1764100000000 } from './1764100000000-session-runtime.js';
import { PluginsV21765000000000 } from './1765000000000-plugins-v2.js';
import { QuotaProfile1766000000000 } from './1766000000000-quota-profile.js';

/** Every migration, oldest first. Listed, not globbed, so sources (tsx) and dist/ run the same set. */
export const MIGRATIONS: (new () => MigrationInterface)[] = [Initial1764000000000, SessionRuntime1764100000000, PluginsV21765000000000, QuotaProfile1766000000000];
