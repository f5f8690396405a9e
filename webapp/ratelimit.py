"""Rate limits: one token bucket in Redis (a Lua script, atomic), shared by all web
processes, for every limit: frames per collection session, new sessions per IP, admin
logins per IP and per name. Flask-Limiter was weighed: it would add a dependency and a
second limiter model for the same three counters this 20-line script already gives, with
Retry-After and fail-open on a broker outage."""
from __future__ import annotations

import math
import time

from gazelab import broker
from gazelab.config import Config

# KEYS[1] bucket; ARGV: rate/s, burst, now, tokens to take → {allowed 0/1, seconds to wait}
_BUCKET = """
local rate, burst, now, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local allowed, wait = 0, 0
if tokens >= cost then tokens = tokens - cost; allowed = 1 else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 5)
return {allowed, tostring(wait)}
"""

_clients: dict[str, object] = {}
# After the broker failed to answer, limits are not checked for this long (seconds): an
# outage must not add a connection attempt's wait to every upload.
BROKER_DOWN_PAUSE_S = 5.0
_broker_down_until: dict[str, float] = {}


def retry_after(config: Config, key: str, per_second: float, burst: int, cost: int = 1) -> int | None:
    """Take `cost` tokens (at most `burst`) from bucket `key`: None when the request may go
    ahead, else the seconds to wait (for Retry-After).

    Fails open, and fast: when the broker cannot be reached, nothing is blocked, and it is
    not asked again for BROKER_DOWN_PAUSE_S.
    """
    url = broker.broker_url(config)
    if time.monotonic() < _broker_down_until.get(url, 0.0):
        return None
    try:
        client = _clients.get(url) or _clients.setdefault(url, broker.redis_client(url, retry=False))
        allowed, wait = client.eval(_BUCKET, 1, f"gazelab:rate:{key}", per_second, burst, time.time(),
                                     min(cost, burst))
    except Exception:
        _broker_down_until[url] = time.monotonic() + BROKER_DOWN_PAUSE_S
        return None
    return None if int(allowed) else max(1, math.ceil(float(wait)))


def upload_wait(config: Config, session_id: str, frames: int = 1) -> int | None:
    return retry_after(config, f"frames:{session_id}", config.server.rate_limit_per_second,
                       config.server.rate_limit_burst, frames)


def new_session_wait(config: Config, ip: str) -> int | None:
    per_hour = config.server.sessions_per_ip_per_hour
    return retry_after(config, f"sessions:{ip}", per_hour / 3600, per_hour)


def login_wait(config: Config, ip: str, name: str) -> int | None:
    """Both buckets are charged; the longer wait wins."""
    attempts, window_s = config.server.login_attempts, config.server.login_window_minutes * 60
    waits = [retry_after(config, f"login:{kind}:{value}", attempts / window_s, attempts)
             for kind, value in (("ip", ip), ("name", name.lower()[:64]))]
    return max((w for w in waits if w is not None), default=None)
