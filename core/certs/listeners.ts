import { Listeners } from '../../lib/listeners.js';
import type { Logger } from '../../lib/log.js';
import type { KeyPair } from './types.js';

/** The onChange listeners of a CertificateSource. */
export class PairListeners extends Listeners<[KeyPair]> {
  constructor(logger: Logger) {
    super(logger, 'certificate change');
  }
}
