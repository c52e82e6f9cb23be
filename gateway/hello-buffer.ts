/**
 * Accumulates the first bytes of a connection with amortised O(1) appends, so a
 * ClientHello that arrives one byte at a time is not copied once per byte.
 */
export class HelloBuffer {
  private buf: Buffer;
  private used = 0;

  constructor(initial = 2048) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  get length(): number {
    return this.used;
  }

  append(chunk: Buffer): void {
    if (this.used + chunk.length > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + chunk.length));
      this.buf.copy(next, 0, 0, this.used);
      this.buf = next;
    }
    chunk.copy(this.buf, this.used);
    this.used += chunk.length;
  }

  /** A view of the bytes so far (valid until the next append). */
  view(): Buffer {
    return this.buf.subarray(0, this.used);
  }

  /** A copy of the bytes so far, detached from the buffer. */
  take(): Buffer {
    return Buffer.from(this.view());
  }
}
