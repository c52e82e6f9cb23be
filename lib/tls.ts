/* TLS material types shared by the edge (which serves them) and the control plane (which makes them). */

/** Certificate material in PEM form. */
export interface KeyPair {
  certPem: string;
  keyPem: string;
}

/**
 * Where the API hostname's certificate comes from (self-signed CA, operator files, ACME).
 * The gateway reads `current()` at start and calls `onChange` listeners' cert on every change,
 * installing it with `tls.Server#setSecureContext`, so open connections are not dropped.
 */
export interface CertificateSource {
  current(): KeyPair;
  /** Registers a listener called with the new pair after each successful change; returns an unsubscribe. */
  onChange(listener: (pair: KeyPair) => void): () => void;
  close(): Promise<void>;
}

/**
 * Certificates answering ACME TLS-ALPN-01 challenges (RFC 8737), by normalised hostname.
 * The gateway sends a ClientHello whose ALPN offers only `acme-tls/1` to a responder that
 * presents the cert stored here for the SNI, then closes.
 */
export interface AcmeChallengeStore {
  get(hostname: string): KeyPair | undefined;
}
