import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AUDIT_CSV_COLUMNS, auditCsv, csvCell, queryAudit, recordStandaloneAudit, type AuditInput } from '../../core/audit/index.js';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../helpers/store.js';

/*
 * The audit's CSV export (the admin console's "Export CSV"): the rows queryAudit's filters
 * select, newest first, every one of them (across pages), cells quoted by RFC 4180 and
 * formula-looking cells defused. Real Postgres and the embedded store.
 */

/** A minimal RFC 4180 reader (quoted cells, doubled quotes, CRLF rows) to read the export back. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += ch;
  }
  return rows;
}

const entry = (over: Partial<AuditInput>): AuditInput => ({ actor: 'system', action: 'user_updated', target: null, sourceIp: '192.0.2.10', result: 'success', ...over });

describe('csvCell', () => {
  const cases: [string, string | null, string][] = [
    ['plain text stays', 'abc', 'abc'],
    ['null is empty', null, ''],
    ['a comma is quoted', 'a,b', '"a,b"'],
    ['quotes are doubled inside quotes', 'say "hi"', '"say ""hi"""'],
    ['a formula gets an apostrophe', '=HYPERLINK("x")', `"'=HYPERLINK(""x"")"`],
    ['+, - and @ too', '@SUM(A1)', "'@SUM(A1)"],
    ['markup is just text', '<script>alert(1)</script>', '<script>alert(1)</script>'],
  ];
  for (const [what, input, want] of cases) it(what, () => assert.equal(csvCell(input), want));
});

for (const kind of DATABASE_KINDS) {
  describe(`audit CSV export (${kind})`, () => {
    let t: TestDatabase;
    const ds = () => t.db.dataSource;
    before(async () => {
      t = await openTestDatabase(kind);
      for (let i = 0; i < 7; i++) await recordStandaloneAudit(ds(), entry({ action: 'user_updated', target: 'u-1', details: { n: i } }));
      await recordStandaloneAudit(ds(), entry({ action: 'user_created', target: 'u-2', details: { note: '=1+1, "quoted"\nnext line' } }));
      await recordStandaloneAudit(ds(), entry({ action: 'authn_login_fail', actor: null, target: '<img src=x onerror=alert(1)>\u202e' }));
    });
    after(async () => {
      await t?.cleanup();
    });

    it('exports the filtered rows, newest first, the same as queryAudit (across pages)', async () => {
      const csv = await auditCsv(ds(), { user: 'u-1', action: 'user_updated' }, 100, 2);
      const rows = parseCsv(csv.text);
      assert.deepEqual(rows[0], [...AUDIT_CSV_COLUMNS]);
      const page = await queryAudit(ds(), { user: 'u-1', action: 'user_updated', limit: 500 });
      assert.equal(csv.rows, 7);
      assert.equal(csv.truncated, false);
      assert.deepEqual(rows.slice(1).map((r) => r[0]), page.items.map((i) => i.id));
      assert.deepEqual(rows.slice(1).map((r) => JSON.parse(r[7]!) as { n: number }).map((d) => d.n), [6, 5, 4, 3, 2, 1, 0]);
      assert.ok(rows.slice(1).every((r) => r.length === AUDIT_CSV_COLUMNS.length && r[3] === 'user_updated' && r[4] === 'u-1'));
      // A time range after every row selects none.
      const none = await auditCsv(ds(), { from: new Date(Date.now() + 3_600_000).toISOString() });
      assert.equal(none.rows, 0);
      assert.equal(none.text, `${AUDIT_CSV_COLUMNS.join(',')}\r\n`);
    });

    it('caps an export at maxRows (the newest kept) and says so', async () => {
      const csv = await auditCsv(ds(), {}, 3, 2);
      assert.equal(csv.rows, 3);
      assert.equal(csv.truncated, true);
      assert.deepEqual(parseCsv(csv.text).slice(1).map((r) => r[3]), ['authn_login_fail', 'user_created', 'user_updated']);
    });

    it('keeps hostile text as text: quoted, escaped, one line per row', async () => {
      const csv = await auditCsv(ds(), { action: 'user_created' });
      const rows = parseCsv(csv.text);
      assert.equal(csv.text.split('\r\n').length, 3, 'header, one row, the final CRLF: the stored \\n stays escaped');
      assert.deepEqual(JSON.parse(rows[1]![7]!), { note: '=1+1, "quoted"\\nnext line' });
      const fail = parseCsv((await auditCsv(ds(), { action: 'authn_login_fail' })).text)[1]!;
      assert.equal(fail[4], '<img src=x onerror=alert(1)>\\u202e', 'the RTL override is written as its escape');
      assert.equal(fail[2], 'anonymous');
    });

    it('refuses bad filters with VALIDATION_FAILED', async () => {
      await assert.rejects(() => auditCsv(ds(), { action: 'Not An Action' }), (err: Error & { code?: string }) => err.code === 'VALIDATION_FAILED');
    });
  });
}
