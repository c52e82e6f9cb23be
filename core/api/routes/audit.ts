import type { DataSource } from 'typeorm';
import { auditQuerySchema, queryAudit } from '../../audit/index.js';
import { route, type AnyRoute } from '../route.js';
import { auditPageSchema, auditPageToWire } from '../schemas.js';

/** Admin only: GET /v1/audit?user&action&from&to&limit&cursor (newest first). */
export function auditRoutes(dataSource: DataSource): AnyRoute[] {
  return [
    route({
      method: 'GET',
      path: '/v1/audit',
      access: 'admin',
      summary: 'Read the audit log (admin)',
      responses: { 200: auditPageSchema },
      query: auditQuerySchema,
      async handle(ctx, { query }) {
        ctx.body = auditPageToWire(await queryAudit(dataSource, query));
      },
    }),
  ];
}
