import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bundle } from '../../core/web/bundle.js';

/*
 * Issue 14's budget: at most 60 KB of gzipped JS for the portal and the admin console together
 * (xpra's own HTML5 client is not counted). Sizes are recorded in docs/web.md.
 */
const BUDGET = 60 * 1024;

describe('the web front end fits its JS budget', () => {
  it('portal + admin console + the tab glue are ≤ 60 KB gzipped (no eval for the strict CSP)', async () => {
    const [portal, admin, glue] = await Promise.all([bundle('portal'), bundle('admin'), bundle('xpra-open')]);
    const total = portal.gzipBytes + admin.gzipBytes + glue.gzipBytes;
    process.stdout.write(`portal ${portal.js.length}/${portal.gzipBytes} B, admin ${admin.js.length}/${admin.gzipBytes} B, xpra-open ${glue.js.length}/${glue.gzipBytes} B (minified/gzip -9), total gzipped ${total} B\n`);
    assert.ok(admin.gzipBytes > 1000, 'the console bundle was built');
    assert.ok(total <= BUDGET, `${total} bytes gzipped exceed the ${BUDGET}-byte budget`);
    // The CSP has no unsafe-eval: nothing in the bundle may need it.
    assert.doesNotMatch(admin.js, /\beval\(|new Function\(/);
  });
});
