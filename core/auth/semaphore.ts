import { AppError } from '../errors.js';

/**
 * At most `limit` holders at once, at most `queueMax` waiting; a caller beyond both is
 * refused at once (503) instead of piling up memory behind a slow resource.
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly limit: number,
    private readonly queueMax: number,
  ) {}

  get inUse(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.take();
    try {
      return await fn();
    } finally {
      this.give();
    }
  }

  private take(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.queueMax) {
      return Promise.reject(new AppError('SERVICE_UNAVAILABLE', 'too many logins at once, try again', { headers: { 'Retry-After': '1' } }));
    }
    // The slot passes straight from the releasing holder to the next waiter (active stays).
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}
