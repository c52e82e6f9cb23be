export { openDatabase, redactUrl, type Database, type DatabaseOptions } from './database.js';
export { embeddedPaths } from './embedded.js';
export * from './entities.js';
export { AUDIT_GENESIS_HASH, lockAuditChain } from './audit-chain.js';
export { isDatabaseUnavailable, isForeignKeyViolation, isUniqueViolation, mapDatabaseError, pgErrorCode } from './errors.js';
export { openKv, LockTimeoutError, type KeyValueStore, type KvCounter, type KvLock, type KvOptions, type KvSetOptions } from './kv.js';
