import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freeReadBuffers, giveReadBuffer, nextReadBuffer, READ_SIZE, setNextReadBuffer, SHARED_READ_BUFFER, takeReadBuffer } from '../../gateway/relay-buffers.js';

describe('relay read buffers', () => {
  it('hands out the shared buffer unless the last read asked for another, once', () => {
    assert.equal(nextReadBuffer(), SHARED_READ_BUFFER, 'a socket at rest reads into the shared buffer');
    const own = takeReadBuffer();
    setNextReadBuffer(own);
    assert.equal(nextReadBuffer(), own, 'the socket that just read gets the buffer its callback chose');
    assert.equal(nextReadBuffer(), SHARED_READ_BUFFER, 'the choice does not leak to the next socket');
    giveReadBuffer(own);
  });

  it('reuses returned buffers and keeps at most a few free ones', () => {
    const taken = Array.from({ length: 40 }, () => takeReadBuffer());
    assert.ok(taken.every((b) => b.length === READ_SIZE && b !== SHARED_READ_BUFFER));
    assert.equal(new Set(taken).size, taken.length, 'no buffer is handed out twice');
    for (const b of taken) giveReadBuffer(b);
    const kept = freeReadBuffers();
    assert.ok(kept > 0 && kept <= 16, `${kept} free buffers kept`);
    const again = takeReadBuffer();
    assert.ok(taken.includes(again), 'a returned buffer is reused');
    giveReadBuffer(again);
  });
});
