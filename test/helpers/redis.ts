import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.HACKSTREAM_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Removes every key a test wrote under its own prefix. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}
