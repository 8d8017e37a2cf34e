"""The Lua scripts behind the Redis figures store, one slot (a model group) per call.

Each script gets the group's keys in KEYS (owners, inflight, stats, usage, cooldowns) and
`now_ms` first in ARGV: all workers time-stamp with their own clock (NTP-synced hosts).
In-flight counts are kept per owner (a worker) and summed over owners still alive, so a
crashed worker's requests stop counting when its liveness entry expires.
"""

from __future__ import annotations

# Sum the in-flight fields of live owners per deployment into `counts`; forget dead owners.
_LIVE_COUNTS = """
local function live_counts(owners_key, inflight_key, now)
  local alive = {}
  for _, owner in ipairs(redis.call('ZRANGEBYSCORE', owners_key, now, '+inf')) do
    alive[owner] = true
  end
  local counts, dead = {}, {}
  local flat = redis.call('HGETALL', inflight_key)
  for i = 1, #flat, 2 do
    local field = flat[i]
    local sep = string.find(field, '|', 1, true)
    local owner, dep = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
    if alive[owner] then
      counts[dep] = (counts[dep] or 0) + tonumber(flat[i + 1])
    else
      dead[#dead + 1] = field
    end
  end
  for i = 1, #dead, 1000 do
    redis.call('HDEL', inflight_key, unpack(dead, i, math.min(i + 999, #dead)))
  end
  redis.call('ZREMRANGEBYSCORE', owners_key, '-inf', '(' .. now)
  return counts
end
"""

# ARGV: now_ms, deployment... -> per deployment 7 values:
# in_flight, cooldown_ms_left, latency_ms_per_token, ttft_ms, rpm, tpm, failures
# ('' when unknown).
SNAPSHOT = (
    _LIVE_COUNTS
    + """
local now = tonumber(ARGV[1])
local counts = live_counts(KEYS[1], KEYS[2], now)
local out = {}
for i = 2, #ARGV do
  local dep = ARGV[i]
  local until_ms = tonumber(redis.call('HGET', KEYS[5], dep) or '0')
  local stats = redis.call('HMGET', KEYS[3], 'lat|' .. dep, 'ttft|' .. dep)
  local usage = redis.call('HMGET', KEYS[4], 'rpm|' .. dep, 'tpm|' .. dep, 'err|' .. dep)
  out[#out + 1] = tostring(counts[dep] or 0)
  out[#out + 1] = tostring(math.max(0, until_ms - now))
  out[#out + 1] = stats[1] or ''
  out[#out + 1] = stats[2] or ''
  out[#out + 1] = usage[1] or '0'
  out[#out + 1] = usage[2] or '0'
  out[#out + 1] = usage[3] or '0'
end
return out
"""
)

# ARGV: now_ms, owner, deployment, rpm_limit, tpm_limit, max_parallel (0 = none),
# prompt_tokens_estimate, owner_expiry_ms, usage_ttl_s.
# Returns 'ok' after reserving, else what stood in the way: cooldown | rpm | tpm | parallel.
# Check and reserve in one script: two workers cannot both take a deployment's last slot.
ACQUIRE = (
    _LIVE_COUNTS
    + """
local now, owner, dep = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local rpm_limit, tpm_limit, parallel = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local tokens = tonumber(ARGV[7])
if tonumber(redis.call('HGET', KEYS[5], dep) or '0') > now then return 'cooldown' end
local usage = redis.call('HMGET', KEYS[4], 'rpm|' .. dep, 'tpm|' .. dep)
if rpm_limit > 0 and tonumber(usage[1] or '0') + 1 > rpm_limit then return 'rpm' end
if tpm_limit > 0 and tonumber(usage[2] or '0') + tokens > tpm_limit then return 'tpm' end
if parallel > 0 then
  local counts = live_counts(KEYS[1], KEYS[2], now)
  if (counts[dep] or 0) >= parallel then return 'parallel' end
end
redis.call('ZADD', KEYS[1], ARGV[8], owner)
redis.call('HINCRBY', KEYS[2], owner .. '|' .. dep, 1)
redis.call('HINCRBY', KEYS[4], 'rpm|' .. dep, 1)
redis.call('HINCRBY', KEYS[4], 'tpm|' .. dep, tokens)
redis.call('EXPIRE', KEYS[4], ARGV[9])
return 'ok'
"""
)

# ARGV: now_ms, owner, deployment, latency_ms_per_token, ttft_ms ('' = no sample),
# tokens_delta, failure_class ('' = success), allowed_fails, cooldown_ms (0 = never),
# alpha, stats_ttl_s, usage_ttl_s.
# Returns 1 when this failure put the deployment in cooldown, else 0.
RELEASE = """
local now, owner, dep = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local field = owner .. '|' .. dep
if redis.call('HINCRBY', KEYS[2], field, -1) <= 0 then redis.call('HDEL', KEYS[2], field) end
local alpha = tonumber(ARGV[10])
for i, name in ipairs({'lat|', 'ttft|'}) do
  local sample = tonumber(ARGV[3 + i])
  if sample then
    local old = tonumber(redis.call('HGET', KEYS[3], name .. dep) or '')
    local new = old and (old + alpha * (sample - old)) or sample
    redis.call('HSET', KEYS[3], name .. dep, tostring(new))
    redis.call('EXPIRE', KEYS[3], ARGV[11])
  end
end
local delta = tonumber(ARGV[6])
if delta ~= 0 then
  redis.call('HINCRBY', KEYS[4], 'tpm|' .. dep, delta)
  redis.call('EXPIRE', KEYS[4], ARGV[12])
end
if ARGV[7] == '' then return 0 end
redis.call('HINCRBY', KEYS[4], 'err|' .. dep, 1)
local fail_field = 'fail|' .. dep .. '|' .. ARGV[7]
local fails = redis.call('HINCRBY', KEYS[4], fail_field, 1)
redis.call('EXPIRE', KEYS[4], ARGV[12])
local cooldown_ms = tonumber(ARGV[9])
if cooldown_ms > 0 and fails > tonumber(ARGV[8]) then
  redis.call('HDEL', KEYS[4], fail_field)
  redis.call('HSET', KEYS[5], dep, now + cooldown_ms)
  if redis.call('PTTL', KEYS[5]) < cooldown_ms then redis.call('PEXPIRE', KEYS[5], cooldown_ms) end
  return 1
end
return 0
"""
