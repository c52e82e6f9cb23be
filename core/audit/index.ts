export { AUDIT_ACTIONS, AUDIT_ACTION_PATTERN, isAuditAction, type AuditAction } from './actions.js';
export { escapeAuditText, escapeForExport, TRUNCATION_MARK } from './escape.js';
export { canonicalJson, DETAIL_STRING_MAX, DETAILS_MAX_CHARS, REDACTED, type JsonObject, type JsonValue } from './details.js';
export { auditRowHash, serializeAuditFields, type HashedFields } from './hash.js';
export { ACTOR_MAX, ANONYMOUS_ACTOR, normalizeIp, recordAudit, TARGET_MAX, toAuditEvent, type AuditInput } from './record.js';
export {
  auditedTransaction,
  recordStandaloneAudit,
  type AuditedTransaction,
  type AuditedTransactionOptions,
  type AuditEmit,
} from './transaction.js';
export {
  AUDIT_QUERY_DEFAULT_LIMIT,
  AUDIT_QUERY_MAX_LIMIT,
  auditQuerySchema,
  parseAuditQuery,
  queryAudit,
  type AuditExportItem,
  type AuditPage,
  type AuditQuery,
  type AuditQueryInput,
} from './query.js';
export { verifyAuditChain, type AuditChainProblem, type AuditChainReport } from './verify.js';
export { AUDIT_CSV_COLUMNS, AUDIT_CSV_MAX_ROWS, auditCsv, csvCell, type AuditCsv } from './csv.js';
