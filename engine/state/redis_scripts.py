"""The Lua scripts of the Redis state store (engine.state.redis_store), and the keys they touch.

Per (stream, key) series, three Redis keys (``<base>`` is ``verdict:state:<signature>:<hashed key>``):

- ``<base>``: a string ``<version>|<series JSON>`` (engine.state.series ``Series.dump``), the
  *snapshot*; its version grows by one at each write;
- ``<base>:events``: a list of the events recorded since the snapshot, oldest first (its TTL is the
  stream's retention, renewed at each append; the snapshot's is renewed when it is rewritten), each the JSON
  ``[time, row, numeric bits, resolution, lateness, retention, token]`` (``Series.record``'s
  arguments and a random token naming the transaction that appended it). A reader replays them on
  the snapshot, in list order, so every reader of every server sees the same series;
- ``<base>:seen:<field>``: for a key a linked feature reads, a sorted set of the shared values
  (their reverse series' stored keys) the key used, scored by their latest event time.

Redis runs a script alone, so each script is atomic. Scripts name keys they build from what they
read (a linked feature's reverse series), which Redis Cluster refuses: use one Redis (or Valkey)
server, with replicas if needed, not a cluster. ``ZADD ... GT`` needs Redis 6.2 or later.
"""

from __future__ import annotations

__all__ = ["COMMIT", "LINK_PREFETCH", "PREFIX", "READ", "UNDO", "events_key", "seen_key", "series_key"]

PREFIX = "verdict:state:"
LINK_PREFETCH = 256  # shared values a link read prefetches per key (newest first); more are read in a second round trip


def series_key(sig: str, key: str) -> str:
    """The snapshot's Redis key of a (stream signature, hashed key) series."""
    return f"{PREFIX}{sig}:{key}"


def events_key(sig: str, key: str) -> str:
    """The Redis list of the events recorded since the snapshot."""
    return f"{PREFIX}{sig}:{key}:events"


def seen_key(sig: str, key: str, field: int) -> str:
    """The sorted set of the shared values of field ``field`` the key used (linked features)."""
    return f"{PREFIX}{sig}:{key}:seen:{field}"


# One round trip of a decision: read the series (snapshot and events) of its keys and the reverse
# series its linked features follow, then append its events, all at once. Its one argument is a
# JSON object (cjson, built into Redis's Lua), so a decision sends one string and gets one back:
#   r: 1 to read and return the series (0: append only);
#   s: per series its snapshot key (its events list is that key and ':events');
#   l: per link [its seen set, the time after which a value counts, the request's own value ('' for
#      none), the reverse series' key prefix, how many values to read at most (the newest)];
#   a: per append [the series' number in s (from 1), the event, the TTL in ms];
#   m: per seen entry [the seen set, the value, its time, the time below which values are forgotten,
#      the TTL in ms]. Times are sent as text, so Lua's number printing never rounds them.
# Returns (r = 1) one record per series of s, then one per link, separated by RS (\30); a series'
#   record is its snapshot ('' when absent) and its events, separated by GS (\29); a link's record
#   is its values' entries separated by FS (\28), each the value, then a series' record. JSON never
#   holds these bytes unescaped.
READ = r"""
local p = cjson.decode(ARGV[1])
local out = {}
local function series(base)
  local snap = redis.call('GET', base) or ''
  local events = redis.call('LRANGE', base .. ':events', 0, -1)
  if #events == 0 then return snap end
  return snap .. '\29' .. table.concat(events, '\29')
end
if p.r == 1 then
  for i, base in ipairs(p.s) do
    out[i] = series(base)
  end
  for _, link in ipairs(p.l) do
    local items = redis.call('ZREVRANGEBYSCORE', link[1], '+inf', '(' .. link[2], 'LIMIT', 0, link[5])
    if link[3] ~= '' then items[#items + 1] = link[3] end
    local got = {}
    for k, item in ipairs(items) do
      got[k] = item .. '\29' .. series(link[4] .. item)
    end
    out[#out + 1] = table.concat(got, '\28')
  end
end
for _, a in ipairs(p.a) do
  local events = p.s[a[1]] .. ':events'
  redis.call('RPUSH', events, a[2])
  redis.call('PEXPIRE', events, a[3])
end
for _, m in ipairs(p.m) do
  redis.call('ZADD', m[1], 'GT', m[3], m[2])
  redis.call('ZREMRANGEBYSCORE', m[1], '-inf', '(' .. m[4])
  redis.call('PEXPIRE', m[1], m[5])
end
if p.r == 1 then return table.concat(out, '\30') end
return 1
"""

# Write new snapshots, folding the events they include: per series, check it still has the version
# read and that the last event folded is still where it was read (no event before it was removed),
# then, when all hold, write every snapshot and drop the folded events. Strict ('1'): also check no
# event was appended since the read (a read-modify-write of a whole series must have seen them all).
# KEYS: per series its snapshot key and events key. ARGV: strict, then per series the version read,
#   the number of events folded, the last of them ('' for none), the new series JSON ('' to check
#   only) and the TTL in ms. Returns 1 when written, 0 when a check failed (nothing written).
COMMIT = """
local strict = ARGV[1] == '1'
local m = #KEYS / 2
for i = 1, m do
  local b = 1 + 5 * (i - 1)
  local cur = redis.call('GET', KEYS[2 * i - 1])
  local version = '0'
  if cur then version = string.match(cur, '^(%d+)|') end
  if version ~= ARGV[b + 1] then return 0 end
  local folded = tonumber(ARGV[b + 2])
  if folded > 0 and redis.call('LINDEX', KEYS[2 * i], folded - 1) ~= ARGV[b + 3] then return 0 end
  if strict and redis.call('LLEN', KEYS[2 * i]) ~= folded then return 0 end
end
for i = 1, m do
  local b = 1 + 5 * (i - 1)
  if ARGV[b + 4] ~= '' then
    redis.call('SET', KEYS[2 * i - 1], tostring(tonumber(ARGV[b + 1]) + 1) .. '|' .. ARGV[b + 4], 'PX', ARGV[b + 5])
    local folded = tonumber(ARGV[b + 2])
    if folded > 0 then redis.call('LTRIM', KEYS[2 * i], folded, -1) end
  end
end
return 1
"""

# Take back the events a transaction appended (its step raised, or its request stopped waiting).
# KEYS: the events lists; ARGV: the event appended to each. Returns how many were still there.
UNDO = """
local removed = 0
for i = 1, #KEYS do
  removed = removed + redis.call('LREM', KEYS[i], 1, ARGV[i])
end
return removed
"""
