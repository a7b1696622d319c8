#include "scripts.h"

#include <string>
#include <string_view>

namespace converge::redis::internal_redis {
namespace {

// Shared by every script that reads the clock or expires keys.
//
// Times on the clock are integer microseconds (exact in a Lua double for
// any date up to year 2255). ARGV "now" is the injected clock's time, or
// empty for the server's own clock (TIME). Expiry is data: a lease's
// `expires` field, and for an index or counter key a companion string key
// (its "meta" key) holding the expiry; real TTLs (gc) only collect garbage.
constexpr std::string_view kPrelude = R"lua(
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function now_us(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(n) return string.format('%.0f', n) end
-- Real TTL of a key that expires at `exp` on the clock: the time left plus
-- the grace (ms); grace < 0: none.
local function gc(key, exp, now, grace)
  if grace < 0 then return end
  local ms = math.ceil((exp - now) / 1000) + grace
  if ms < 1 then ms = 1 end
  redis.call('PEXPIRE', key, ms)
end
-- Writes the expiry `exp` of a key into its meta key, with the same real
-- TTL as the key (one command).
local function set_meta(meta, exp, now, grace)
  if grace < 0 then
    redis.call('SET', meta, fmt(exp))
    return
  end
  local ms = math.ceil((exp - now) / 1000) + grace
  if ms < 1 then ms = 1 end
  redis.call('SET', meta, fmt(exp), 'PX', ms)
end
-- Has the key whose expiry `meta` holds expired on the clock?
local function expired(meta, now)
  local e = redis.call('GET', meta)
  return e ~= false and tonumber(e) <= now
end
-- LockStore::TryAcquire: free, expired, or ours -> (re)taken until now+ttl.
local function acquire(key, token, ttl, now, grace)
  local cur = redis.call('HMGET', key, 'token', 'expires')
  if cur[1] and cur[1] ~= token and tonumber(cur[2]) > now then
    return false
  end
  local exp = now + ttl
  redis.call('HSET', key, 'token', token, 'expires', fmt(exp))
  gc(key, exp, now, grace)
  return true
end
)lua";

// KEYS[1] lease. ARGV: now, grace_ms, token, ttl_us. Returns 1 or 0.
constexpr std::string_view kLeaseAcquire = R"lua(
local now = now_us(ARGV[1])
if acquire(KEYS[1], ARGV[3], tonumber(ARGV[4]), now, tonumber(ARGV[2])) then
  return 1
end
return 0
)lua";

// KEYS[1] lease. ARGV: token. Compare-and-delete: 1 if released.
constexpr std::string_view kLeaseRelease = R"lua(
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
)lua";

// KEYS[1] lease. ARGV: now, grace_ms, token, ttl_us. Compare-and-extend: 1
// if `token` holds an unexpired lease (now pushed to now + ttl).
constexpr std::string_view kLeaseExtend = R"lua(
local now = now_us(ARGV[1])
local cur = redis.call('HMGET', KEYS[1], 'token', 'expires')
if cur[1] ~= ARGV[3] or tonumber(cur[2]) <= now then return 0 end
local exp = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'expires', fmt(exp))
gc(KEYS[1], exp, now, tonumber(ARGV[2]))
return 1
)lua";

// WindowStore::Apply, the hot path in one script.
// KEYS: [lease] then, per distinct window key i, its key and meta key.
// ARGV: now, grace_ms, key_ttl_us (0: none), trim ("(<score>" or "": no
// trim), lease token ("": no lease), lease ttl_us, read min, read max,
// nadds, nadds x (key index, score, member), ngroups, per group: count,
// key indexes.
// Returns {0} (lease busy; adds applied) or {1, group1, group2, ...}.
constexpr std::string_view kWindowApply = R"lua(
local now = now_us(ARGV[1])
local grace = tonumber(ARGV[2])
local key_ttl = tonumber(ARGV[3])
local trim = ARGV[4]
local token = ARGV[5]
local lo, hi = ARGV[7], ARGV[8]
local base = 0
if token ~= '' then base = 1 end
local function K(i) return KEYS[base + 2 * i - 1] end
local function M(i) return KEYS[base + 2 * i] end
local nadds = tonumber(ARGV[9])
local order, seen = {}, {}
local p = 10
for a = 1, nadds do
  local i = tonumber(ARGV[p])
  if not seen[i] then seen[i] = true; order[#order + 1] = i end
  p = p + 3
end
-- Refuse before writing anything: a written key must be an index (or
-- missing, or expired).
local stale = {}
for _, i in ipairs(order) do
  stale[i] = expired(M(i), now)
  local t = redis.call('TYPE', K(i)).ok
  if not stale[i] and t ~= 'none' and t ~= 'zset' then
    if t == 'string' then
      return redis.error_reply('FAILEDPRECONDITION key ' .. K(i) ..
                               ' is a counter, not a window index')
    end
    return redis.error_reply('FAILEDPRECONDITION key ' .. K(i) ..
                             ' holds a ' .. t .. ', not a window index')
  end
end
for _, i in ipairs(order) do
  if stale[i] then redis.call('DEL', K(i), M(i)) end
end
p = 10
for a = 1, nadds do
  redis.call('ZADD', K(tonumber(ARGV[p])), ARGV[p + 1], ARGV[p + 2])
  p = p + 3
end
for _, i in ipairs(order) do
  -- Without a trim the key holds at least the member just added.
  if trim ~= '' and redis.call('ZREMRANGEBYSCORE', K(i), '-inf', trim) > 0 and
     redis.call('EXISTS', K(i)) == 0 then
    redis.call('DEL', M(i))
  elseif key_ttl > 0 then
    local exp = now + key_ttl
    set_meta(M(i), exp, now, grace)
    gc(K(i), exp, now, grace)
  else
    redis.call('DEL', M(i))
    redis.call('PERSIST', K(i))
  end
end
if token ~= '' and not acquire(KEYS[1], token, tonumber(ARGV[6]), now, grace) then
  return {0}
end
local out = {1}
local ngroups = tonumber(ARGV[p])
p = p + 1
for g = 1, ngroups do
  local cnt = tonumber(ARGV[p])
  p = p + 1
  local members, dedup = {}, nil
  if cnt > 1 then dedup = {} end
  for j = 0, cnt - 1 do
    local i = tonumber(ARGV[p + j])
    if expired(M(i), now) then
      redis.call('DEL', K(i), M(i))
    else
      local r = redis.pcall('ZRANGEBYSCORE', K(i), lo, hi)
      if r.err == nil then
        for _, m in ipairs(r) do
          if dedup == nil then
            members[#members + 1] = m
          elseif not dedup[m] then
            dedup[m] = true
            members[#members + 1] = m
          end
        end
      end
    end
  end
  p = p + cnt
  out[#out + 1] = members
end
return out
)lua";

// KEYS: pairs of key and meta. ARGV: now. Refuses (as window_apply does)
// when a key is live and not an index; writes nothing.
constexpr std::string_view kWindowCheck = R"lua(
local now = now_us(ARGV[1])
for i = 1, #KEYS, 2 do
  local t = redis.call('TYPE', KEYS[i]).ok
  if t ~= 'none' and t ~= 'zset' and not expired(KEYS[i + 1], now) then
    if t == 'string' then
      return redis.error_reply('FAILEDPRECONDITION key ' .. KEYS[i] ..
                               ' is a counter, not a window index')
    end
    return redis.error_reply('FAILEDPRECONDITION key ' .. KEYS[i] ..
                             ' holds a ' .. t .. ', not a window index')
  end
end
return 1
)lua";

// KEYS: key, meta. ARGV: now. Members of a live index, else 0.
constexpr std::string_view kWindowSize = R"lua(
local now = now_us(ARGV[1])
if expired(KEYS[2], now) then redis.call('DEL', KEYS[1], KEYS[2]) return 0 end
local r = redis.pcall('ZCARD', KEYS[1])
if type(r) ~= 'number' then return 0 end
return r
)lua";

// KEYS: key, meta. ARGV: now, member. 1 if removed.
constexpr std::string_view kWindowRemove = R"lua(
local now = now_us(ARGV[1])
if expired(KEYS[2], now) then redis.call('DEL', KEYS[1], KEYS[2]) return 0 end
local r = redis.pcall('ZREM', KEYS[1], ARGV[2])
if type(r) ~= 'number' then return 0 end
if r == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
return r
)lua";

// Upstream K4: INCR, and the expiry only while the value is <= the
// threshold. KEYS: key, meta. ARGV: now, grace_ms, ttl_us, refresh_up_to.
constexpr std::string_view kCounterIncrement = R"lua(
local now = now_us(ARGV[1])
local grace = tonumber(ARGV[2])
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' or expired(KEYS[2], now) then
  redis.call('DEL', KEYS[1], KEYS[2])
elseif t ~= 'string' then
  if t == 'zset' then
    return redis.error_reply('FAILEDPRECONDITION key ' .. KEYS[1] ..
                             ' is a window index, not a counter')
  end
  return redis.error_reply('FAILEDPRECONDITION key ' .. KEYS[1] ..
                           ' holds a ' .. t .. ', not a counter')
end
local v = redis.call('INCR', KEYS[1])
if v <= tonumber(ARGV[4]) then
  local exp = now + tonumber(ARGV[3])
  set_meta(KEYS[2], exp, now, grace)
  gc(KEYS[1], exp, now, grace)
end
return v
)lua";

// KEYS: key, meta. ARGV: now. The value of a live counter, else 0.
constexpr std::string_view kCounterValue = R"lua(
local now = now_us(ARGV[1])
if expired(KEYS[2], now) then redis.call('DEL', KEYS[1], KEYS[2]) return 0 end
local r = redis.pcall('GET', KEYS[1])
if type(r) ~= 'string' then return 0 end
return tonumber(r) or 0
)lua";

// KEYS: key, meta. ARGV: now. 1 if a live key was deleted.
constexpr std::string_view kKeyDelete = R"lua(
local now = now_us(ARGV[1])
if expired(KEYS[2], now) then redis.call('DEL', KEYS[1], KEYS[2]) return 0 end
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return n
)lua";

// Queues. KEYS (every queue script): tasks (hash id -> msgpack record),
// pending (zset: due), inflight (zset: visible until), dead (zset: burial
// order), seq (counter: enqueue order, delivery numbers, burial order).
// Members of pending and inflight are "<seq as 16 hex digits><id>", so that
// ties of the score go by enqueue order. A record is an array:
//   1 kind, 2 subject id (decimal text), 3 payload, 4 due (ns text),
//   5 attempts, 6 last error, 7 seq, 8 state ('p' pending, 'f' in flight,
//   'd' dead), 9 delivery number, 10 visible until (ns text).
// Scores are integer microseconds on the callers' clock.
constexpr std::string_view kQueuePrelude = R"lua(
local function member(seq, id) return string.format('%016x', seq) .. id end
local function load(id)
  local raw = redis.call('HGET', KEYS[1], id)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end
local function save(id, t) redis.call('HSET', KEYS[1], id, cmsgpack.pack(t)) end
local function task(id, t) return {id, t[1], t[2], t[3], t[4], t[5], t[6]} end
-- The in-flight task a receipt ("<id>#<delivery>") names, or nil (stale).
local function settle(receipt)
  local id, d = string.match(receipt, '^(.*)#(%d+)$')
  if not id then return nil end
  local t = load(id)
  if not t or t[8] ~= 'f' or t[9] ~= tonumber(d) then return nil end
  return id, t
end
)lua";

// ARGV: id, kind, subject, payload, due_ns, due_score, last_error.
// 1, or 0 if the id is taken (pending, in flight or dead).
constexpr std::string_view kQueueEnqueue = R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[5])
save(ARGV[1], {ARGV[2], ARGV[3], ARGV[4], ARGV[5], 0, ARGV[7], seq, 'p', 0, ''})
redis.call('ZADD', KEYS[2], ARGV[6], member(seq, ARGV[1]))
return 1
)lua";

// ARGV: now_score, visible_ns, visible_score. The earliest due pending task
// or overdue in-flight task (ties by enqueue order), now in flight:
// {id, kind, subject, payload, due, attempts, error, receipt, visible}, or
// nil.
constexpr std::string_view kQueueDequeue = R"lua(
while true do
  local best, from, bscore, bseq = nil, nil, nil, nil
  for _, k in ipairs({KEYS[2], KEYS[3]}) do
    local r = redis.call('ZRANGEBYSCORE', k, '-inf', ARGV[1], 'WITHSCORES',
                        'LIMIT', 0, 1)
    if #r > 0 then
      local s = tonumber(r[2])
      local q = tonumber(string.sub(r[1], 1, 16), 16)
      if best == nil or s < bscore or (s == bscore and q < bseq) then
        best, from, bscore, bseq = r[1], k, s, q
      end
    end
  end
  if best == nil then return false end
  redis.call('ZREM', from, best)
  local id = string.sub(best, 17)
  local t = load(id)
  if t then
    t[5] = t[5] + 1
    t[8] = 'f'
    t[9] = redis.call('INCR', KEYS[5])
    t[10] = ARGV[2]
    save(id, t)
    redis.call('ZADD', KEYS[3], ARGV[3], best)
    return {id, t[1], t[2], t[3], t[4], t[5], t[6],
            id .. '#' .. string.format('%.0f', t[9]), t[10]}
  end
  -- An index entry without its record (never written by these scripts):
  -- dropped, look again.
end
)lua";

// ARGV: receipt. 1 if acknowledged (the task is gone), 0 if stale.
constexpr std::string_view kQueueAck = R"lua(
local id, t = settle(ARGV[1])
if not id then return 0 end
redis.call('ZREM', KEYS[3], member(t[7], id))
redis.call('HDEL', KEYS[1], id)
return 1
)lua";

// Retry ('retry': keeps attempts, records the error) and Reschedule
// ('reschedule': attempts 0, error cleared). ARGV: receipt, due_ns,
// due_score, error, mode. 1, or 0 if stale.
constexpr std::string_view kQueuePutBack = R"lua(
local id, t = settle(ARGV[1])
if not id then return 0 end
redis.call('ZREM', KEYS[3], member(t[7], id))
t[4] = ARGV[2]
if ARGV[5] == 'reschedule' then
  t[5] = 0
  t[6] = ''
else
  t[6] = ARGV[4]
end
t[8] = 'p'
t[9] = redis.call('INCR', KEYS[5])
t[10] = ''
save(id, t)
redis.call('ZADD', KEYS[2], ARGV[3], member(t[7], id))
return 1
)lua";

// ARGV: receipt, error. 1, or 0 if stale.
constexpr std::string_view kQueueBury = R"lua(
local id, t = settle(ARGV[1])
if not id then return 0 end
redis.call('ZREM', KEYS[3], member(t[7], id))
t[6] = ARGV[2]
t[8] = 'd'
t[9] = redis.call('INCR', KEYS[5])
t[10] = ''
save(id, t)
redis.call('ZADD', KEYS[4], t[9], id)
return 1
)lua";

// ARGV: the last rank to list (-1: all). Dead tasks, oldest burial first:
// {{id, kind, subject, payload, due, attempts, error}, ...}.
constexpr std::string_view kQueueListDead = R"lua(
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, ARGV[1])) do
  local t = load(id)
  if t then out[#out + 1] = task(id, t) end
end
return out
)lua";

// ARGV: id, due_ns, due_score. 1, or 0 if there is no such dead task.
constexpr std::string_view kQueueRedrive = R"lua(
local id = ARGV[1]
local t = load(id)
if not t or t[8] ~= 'd' then return 0 end
redis.call('ZREM', KEYS[4], id)
t[4] = ARGV[2]
t[5] = 0
t[8] = 'p'
save(id, t)
redis.call('ZADD', KEYS[2], ARGV[3], member(t[7], id))
return 1
)lua";

// ARGV: the last rank to list (-1: all). Pending tasks by due time, ties by
// enqueue order.
constexpr std::string_view kQueueListPending = R"lua(
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, ARGV[1])) do
  local id = string.sub(m, 17)
  local t = load(id)
  if t then out[#out + 1] = task(id, t) end
end
return out
)lua";

// {pending, in flight, dead}.
constexpr std::string_view kQueueStats = R"lua(
return {redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4])}
)lua";

std::string Cat(std::string_view a, std::string_view b) {
  std::string s(a);
  s.append(b);
  return s;
}

}  // namespace

Scripts::Scripts()
    : lease_acquire("lease_acquire", Cat(kPrelude, kLeaseAcquire)),
      lease_release("lease_release", std::string(kLeaseRelease)),
      lease_extend("lease_extend", Cat(kPrelude, kLeaseExtend)),
      window_apply("window_apply", Cat(kPrelude, kWindowApply)),
      window_check("window_check", Cat(kPrelude, kWindowCheck)),
      window_size("window_size", Cat(kPrelude, kWindowSize)),
      window_remove("window_remove", Cat(kPrelude, kWindowRemove)),
      counter_increment("counter_increment", Cat(kPrelude, kCounterIncrement)),
      counter_value("counter_value", Cat(kPrelude, kCounterValue)),
      key_delete("key_delete", Cat(kPrelude, kKeyDelete)),
      queue_enqueue("queue_enqueue", Cat(kQueuePrelude, kQueueEnqueue)),
      queue_dequeue("queue_dequeue", Cat(kQueuePrelude, kQueueDequeue)),
      queue_ack("queue_ack", Cat(kQueuePrelude, kQueueAck)),
      queue_put_back("queue_put_back", Cat(kQueuePrelude, kQueuePutBack)),
      queue_bury("queue_bury", Cat(kQueuePrelude, kQueueBury)),
      queue_list_dead("queue_list_dead", Cat(kQueuePrelude, kQueueListDead)),
      queue_redrive("queue_redrive", Cat(kQueuePrelude, kQueueRedrive)),
      queue_list_pending("queue_list_pending",
                         Cat(kQueuePrelude, kQueueListPending)),
      queue_stats("queue_stats", std::string(kQueueStats)) {}

std::vector<const Script*> Scripts::all() const {
  return {
      &lease_acquire, &lease_release,      &lease_extend,  &window_apply,
      &window_check,  &window_size,        &window_remove, &counter_increment,
      &counter_value, &key_delete,         &queue_enqueue, &queue_dequeue,
      &queue_ack,     &queue_put_back,     &queue_bury,    &queue_list_dead,
      &queue_redrive, &queue_list_pending, &queue_stats};
}

const Scripts& GetScripts() {
  static const Scripts* scripts = new Scripts();
  return *scripts;
}

}  // namespace converge::redis::internal_redis
