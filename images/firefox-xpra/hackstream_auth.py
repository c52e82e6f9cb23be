# HackStream one-time connect tokens for xpra 3.1 (--ssl-auth=hackstream and friends).
#
# The control plane never hands the container a token, only its SHA-256 (hex) and an expiry:
# `hs-token add <sha256hex> <expires_unix_seconds>` appends "<sha256hex> <expires>" to
# /tmp/hs/tokens. A client logs in once with the token as its password; the first success
# removes the line and records the hash as spent, so the same token never works twice.
#
# The xor digest is forced so that the server recovers the plain token (the 3.1 client sends
# xor only over ssl/wss, and every socket here is TLS). Neither tokens nor hashes are logged.
import fcntl
import hashlib
import hmac
import os
import threading
import time

from xpra.server.auth.sys_auth_base import SysAuthenticator, init, log

assert init  # xpra calls module.init(opts)

HS_DIR = "/tmp/hs"
TOKENS = os.path.join(HS_DIR, "tokens")
SPENT = os.path.join(HS_DIR, "spent")
LOCK = os.path.join(HS_DIR, "tokens.lock")

_spent = set()
_lock = threading.Lock()


def _as_bytes(password):
    if isinstance(password, (bytes, bytearray, memoryview)):
        return bytes(password)
    return str(password).encode("latin1")


def _write_atomically(path, lines):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
    os.rename(tmp, path)


def consume(token, now=None):
    """True when sha256(token) is a live, unspent line of the token file; spends it."""
    digest = hashlib.sha256(_as_bytes(token)).hexdigest().encode("ascii")
    now = int(time.time()) if now is None else now
    with _lock, open(LOCK, "a") as lock_file:
        # The same lock as hs-token (flock on tokens.lock), so no append is lost.
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with open(TOKENS) as f:
                lines = f.readlines()
        except FileNotFoundError:
            lines = []
        keep = []
        found = False
        for line in lines:
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) <= now:
                continue  # expired or malformed: pruned
            # Every line is compared in full (no early exit), in constant time per line.
            match = hmac.compare_digest(parts[0].encode("ascii", "replace"), digest)
            if match and not found:
                found = True
                continue
            keep.append(line)
        spent = digest.decode() in _spent
        if found:
            _spent.add(digest.decode())
            with open(SPENT, "a") as f:
                f.write(digest.decode() + "\n")
        if len(keep) != len(lines):
            _write_atomically(TOKENS, keep)
        return found and not spent


class Authenticator(SysAuthenticator):
    def __init__(self, username, **kwargs):
        SysAuthenticator.__init__(self, username, **kwargs)

    def get_uid(self):
        return os.getuid()

    def get_gid(self):
        return os.getgid()

    def get_challenge(self, digests):
        if "xor" not in digests:
            log.error("Error: hackstream authentication requires the 'xor' digest")
            return None
        return SysAuthenticator.get_challenge(self, ["xor"])

    def check(self, password):
        if not password:
            return False
        ok = consume(password)
        log("hackstream token check: %s", "accepted" if ok else "refused")
        return ok

    def __repr__(self):
        return "hackstream"
