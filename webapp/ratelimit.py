"""Per-session upload rate limit: a token bucket in Redis shared by all web processes."""
from __future__ import annotations

import math
import time

from gazelab import broker
from gazelab.config import Config

# KEYS[1] bucket; ARGV: rate/s, burst, now → {allowed 0/1, seconds to wait}
_BUCKET = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 5)
return {allowed, tostring(wait)}
"""

_clients: dict[str, object] = {}


def retry_after(config: Config, session_id: str) -> int | None:
    """None when the upload may go ahead, else seconds to wait (for Retry-After).

    Fails open: when the broker cannot be reached, uploads are not blocked.
    """
    url = broker.broker_url(config)
    try:
        client = _clients.get(url) or _clients.setdefault(url, broker.redis_client(url))
        allowed, wait = client.eval(_BUCKET, 1, f"gazelab:rate:{session_id}",
                                    config.server.rate_limit_per_second,
                                    config.server.rate_limit_burst, time.time())
    except Exception:
        return None
    return None if int(allowed) else max(1, math.ceil(float(wait)))
