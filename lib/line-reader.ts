/*
 * Splits a stream into newline-terminated lines without ever holding more than `maxBytes` of
 * one line: a longer line is reported once (onOverflow) and nothing more is read.
 */
export class LineReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private overflowed = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (!this.overflowed) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.length + (end - start) > this.maxBytes) {
        this.overflowed = true;
        this.chunks = [];
        this.onOverflow();
        return;
      }
      if (nl === -1) {
        if (end > start) this.chunks.push(chunk.subarray(start));
        this.length += end - start;
        return;
      }
      this.chunks.push(chunk.subarray(start, nl));
      const line = Buffer.concat(this.chunks).toString('utf8');
      this.chunks = [];
      this.length = 0;
      start = nl + 1;
      this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
  }
}
