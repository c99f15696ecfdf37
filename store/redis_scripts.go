package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts. Each runs atomically on one node: its KEYS share one hash
// tag, and the other keys it builds (from the tag in ARGV[1] and handles
// read from Redis) carry the same tag, so they are in the same slot.
// Times and durations are milliseconds; "now" is the caller's clock.

// luaPrelude holds the helpers shared by the session scripts.
const luaPrelude = `
local function fmt(n) return string.format('%d', n) end

local function tomap(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

-- live reports whether a record (map) is in force at now.
local function live(f, now)
  return now < tonumber(f['e']) and now < tonumber(f['x'])
end

-- delete_session removes a session or family, its refresh pointers and its
-- subject index entry, and returns its fields (flat), or nil if absent.
local function delete_session(tag, handle)
  local sk = tag .. 's:' .. handle
  local rec = redis.call('HGETALL', sk)
  if #rec == 0 then return nil end
  local f = tomap(rec)
  redis.call('DEL', sk)
  local pk = tag .. 'p:' .. handle
  for _, name in ipairs(redis.call('ZRANGE', pk, 0, -1)) do
    redis.call('DEL', tag .. 'r:' .. name)
  end
  redis.call('DEL', pk)
  if f['uh'] then redis.call('ZREM', tag .. 'u:' .. f['uh'], handle) end
  return rec
end
`

// createScript creates a session or family and evicts the subject's oldest
// live sessions beyond the maximum, atomically.
//
// KEYS[1] record, KEYS[2] subject index, KEYS[3] refresh pointer and
// KEYS[4] pointer set (families only). ARGV[1] tag, ARGV[2] handle,
// ARGV[3] now, ARGV[4] max per subject (0: none), ARGV[5] record TTL,
// ARGV[6] TTL until ExpiresAt, ARGV[7] sha(first refresh token) or "",
// ARGV[8] and ARGV[9] a field and value that only this creation writes
// (the ID hash or the token's), ARGV[10...] the record's field/value
// pairs. Returns the evicted records. A client retry of a creation that
// already happened finds its own record and changes nothing.
var createScript = redis.NewScript(luaPrelude + `
local tag, handle = ARGV[1], ARGV[2]
local now, max, ttl, abs = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], ARGV[8]) == ARGV[9] then return {} end
  return redis.error_reply('handle collision')
end
local evicted = {}
if max > 0 then
  local alive = {}
  for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local rec = redis.call('HGETALL', tag .. 's:' .. h)
    if #rec == 0 then
      redis.call('ZREM', KEYS[2], h)
    elseif live(tomap(rec), now) then
      alive[#alive + 1] = h
    else
      delete_session(tag, h)
    end
  end
  for i = 1, #alive - max + 1 do
    evicted[#evicted + 1] = delete_session(tag, alive[i])
  end
else
  -- Without a maximum nothing reads the whole index: drop a few of its
  -- oldest members if their records are gone, so it does not grow forever.
  for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, 7)) do
    if redis.call('EXISTS', tag .. 's:' .. h) == 0 then redis.call('ZREM', KEYS[2], h) end
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 10))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], handle)
if redis.call('PTTL', KEYS[2]) < abs then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[3], 'h', handle)
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  redis.call('ZADD', KEYS[4], fmt(now + ttl), ARGV[7])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
return evicted
`)

// touchScript records a use of an opaque session.
//
// KEYS[1] record. ARGV[1] now, ARGV[2] idle (0: none). Returns 1, or 0 if
// the session is absent, ended or a family.
var touchScript = redis.NewScript(luaPrelude + `
local f = redis.call('HMGET', KEYS[1], 'e', 'x', 'm')
if not f[1] then return 0 end
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
local e = tonumber(f[1])
if f[3] == 'tokens' or now >= e or now >= tonumber(f[2]) then return 0 end
local x = e
if idle > 0 and now + idle < e then x = now + idle end
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'x', fmt(x))
redis.call('PEXPIRE', KEYS[1], fmt(x - now))
return 1
`)

// updateScript changes a live record's identity fields.
//
// KEYS[1] record. ARGV[1] now, ARGV[2...] field/value pairs. Returns the
// record, or nil if it is absent or ended.
var updateScript = redis.NewScript(luaPrelude + `
local rec = redis.call('HGETALL', KEYS[1])
if #rec == 0 or not live(tomap(rec), tonumber(ARGV[1])) then return false end
redis.call('HSET', KEYS[1], 'u', ARGV[1], unpack(ARGV, 2))
return redis.call('HGETALL', KEYS[1])
`)

// deleteScript deletes a session or family with its pointers.
//
// KEYS[1] record. ARGV[1] tag, ARGV[2] handle. Returns the deleted record
// or nil.
var deleteScript = redis.NewScript(luaPrelude + `
local rec = delete_session(ARGV[1], ARGV[2])
if not rec then return false end
return rec
`)

// listScript returns the records of a subject's index, dropping members
// whose record is gone.
//
// KEYS[1] subject index. ARGV[1] tag.
var listScript = redis.NewScript(luaPrelude + `
local out = {}
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local rec = redis.call('HGETALL', ARGV[1] .. 's:' .. h)
  if #rec == 0 then redis.call('ZREM', KEYS[1], h) else out[#out + 1] = rec end
end
return out
`)

// deleteSubjectScript deletes every session and family of a subject.
//
// KEYS[1] subject index. ARGV[1] tag. Returns the deleted records.
var deleteSubjectScript = redis.NewScript(luaPrelude + `
local out = {}
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local rec = delete_session(ARGV[1], h)
  if rec then out[#out + 1] = rec end
end
redis.call('DEL', KEYS[1])
return out
`)

// rotateScript is the refresh-token state machine (Memory.Rotate), in one
// step. The family's field t lists the names of its current generation's
// tokens, comma-separated (names are base64url).
//
// KEYS[1] pointer of the presented token. ARGV[1] tag, ARGV[2] sha(new
// token), ARGV[3] now, ARGV[4] grace, ARGV[5] idle (0: none), ARGV[6]
// sha(presented token), ARGV[7] MaxGenerationTokens. Returns {status,
// family record} with status one of "rotated" (the record after rotation),
// "replayed" (the new token joined the current generation), "full" (the
// generation is full; nothing changed), "reused" (the family, now deleted)
// or "absent". ARGV[2] is fresh for every call, so a pointer already made
// for it means that the client is retrying this very call after it ran
// (a go-redis retry after a lost answer): the same status again, no change.
var rotateScript = redis.NewScript(luaPrelude + `
local tag = ARGV[1]
local now, grace, idle, maxlive = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
local ptr = redis.call('HMGET', KEYS[1], 'h', 'ra', 'sn')
local handle = ptr[1]
if not handle then return {'absent'} end
local sk = tag .. 's:' .. handle
local rec = redis.call('HGETALL', sk)
if #rec == 0 then
  redis.call('DEL', KEYS[1])
  return {'absent'}
end
local f = tomap(rec)
if f['m'] ~= 'tokens' or not live(f, now) then return {'absent'} end
local pk = tag .. 'p:' .. handle
local nk = tag .. 'r:' .. ARGV[2]
if ptr[3] == ARGV[2] then return {'rotated', rec} end
if redis.call('EXISTS', nk) == 1 then return {'replayed', rec} end

-- add_pointer leads token name to the family until x (ms).
local function add_pointer(name, x)
  local k = tag .. 'r:' .. name
  redis.call('HSET', k, 'h', handle)
  redis.call('PEXPIRE', k, fmt(x - now))
  redis.call('ZADD', pk, fmt(x), name)
end

if ptr[2] then
  if now - tonumber(ptr[2]) >= grace then
    delete_session(tag, handle)
    return {'reused', rec}
  end
  local _, commas = string.gsub(f['t'], ',', '')
  if commas + 1 >= maxlive then return {'full', rec} end
  redis.call('HSET', sk, 't', f['t'] .. ',' .. ARGV[2])
  add_pointer(ARGV[2], tonumber(f['x']))
  return {'replayed', redis.call('HGETALL', sk)}
end
if not string.find(',' .. f['t'] .. ',', ',' .. ARGV[6] .. ',', 1, true) then return {'absent'} end

local e = tonumber(f['e'])
local x = e
if idle > 0 and now + idle < e then x = now + idle end
redis.call('HSET', sk, 't', ARGV[2], 'g', fmt(tonumber(f['g']) + 1), 'l', ARGV[3], 'x', fmt(x))
redis.call('PEXPIRE', sk, fmt(x - now))
-- Every token of the generation is replaced now; its pointer stays as long
-- as the family could still be used through it, so that its reuse is
-- detected.
for name in string.gmatch(f['t'], '[^,]+') do
  local k = tag .. 'r:' .. name
  if redis.call('EXISTS', k) == 1 then
    redis.call('HSET', k, 'ra', ARGV[3], 'sn', ARGV[2])
    redis.call('PEXPIRE', k, fmt(x - now))
    redis.call('ZADD', pk, fmt(x), name)
  end
end
add_pointer(ARGV[2], x)
redis.call('ZREMRANGEBYSCORE', pk, '-inf', ARGV[3])
redis.call('PEXPIRE', pk, fmt(e - now))
return {'rotated', redis.call('HGETALL', sk)}
`)

// revokeScript stores a revocation (a later expiry wins) and publishes it.
//
// KEYS[1] entry, KEYS[2] index, KEYS[3] ID lookup. ARGV[1] Revocation.Key,
// ARGV[2] expires_at, ARGV[3] TTL, ARGV[4] channel, ARGV[5] and ARGV[6] the
// event JSON before and after the expiry actually stored.
var revokeScript = redis.NewScript(luaPrelude + `
local exp, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < exp then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  exp = cur
end
redis.call('ZADD', KEYS[2], 'GT', fmt(exp), ARGV[1])
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if old < exp then redis.call('HSET', KEYS[3], ARGV[1], fmt(exp)) end
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[5] .. fmt(exp) .. ARGV[6])
return 1
`)

// pruneScript drops up to ARGV[2] members of the zset KEYS[1] whose score
// (an expiry) is at most ARGV[1], and their fields in the hash KEYS[2] if
// given. Returns how many it dropped.
var pruneScript = redis.NewScript(`
local n = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
if n > tonumber(ARGV[2]) then n = tonumber(ARGV[2]) end
if n == 0 then return 0 end
if KEYS[2] then
  local dead = redis.call('ZRANGE', KEYS[1], 0, n - 1)
  redis.call('HDEL', KEYS[2], unpack(dead))
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1)
return n
`)

// cutoffScript stores a cutoff merged with the live one of the same kind
// and name (the later before and expiry win) and publishes the result.
//
// KEYS[1] cutoff index, KEYS[2] cutoff values. ARGV[1] name, ARGV[2]
// before, ARGV[3] expires_at, ARGV[4] now, ARGV[5] channel, ARGV[6] and
// ARGV[7] the event JSON before and after its "b" and "e" members.
var cutoffScript = redis.NewScript(luaPrelude + `
local before, exp, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local oldexp = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if oldexp > now then
  local oldb = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
  if oldb > before then before = oldb end
  if oldexp > exp then exp = oldexp end
end
redis.call('ZADD', KEYS[1], fmt(exp), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], fmt(before))
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < exp - now then redis.call('PEXPIRE', KEYS[i], fmt(exp - now)) end
end
redis.call('PUBLISH', ARGV[5], ARGV[6] .. '"b":' .. fmt(before) .. ',"e":' .. fmt(exp) .. ARGV[7])
return 1
`)

// scriptRunner is (*redis.Script).Run.
type scriptRunner func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd
