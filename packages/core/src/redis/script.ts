import { createHash } from 'node:crypto';

/**
 * The one script every counters decision runs. It mirrors `slots.ts` line for line. Per slot, one
 * hash (`s`) holds the running aggregate, the open holds (`h:<holdId>` = `amount|expiresAt`) and
 * the fired thresholds (`f:<percent>`), so a check reads each slot with one HGETALL; distinct
 * values live in a set (`d`) and ids of recently counted events in a sorted set (`e`, for
 * retries and seeding races).
 *
 * KEYS: three per slot (s, d, e) in the order of `op.slots`, then the hashes holding the items' holds.
 * ARGV[1]: the operation as JSON. Numbers come back as strings to keep every digit.
 */
export const COUNTERS_SCRIPT = `
local op = cjson.decode(ARGV[1])
local now = tonumber(op.now)
local RECENT = tonumber(op.recentMs)
local GRACE = 3600000
local NULL = cjson.null

local function fmt(x) return string.format('%.17g', x) end
local function keysOf(i) local b = (i - 1) * 3 return KEYS[b + 1], KEYS[b + 2], KEYS[b + 3] end

-- The slot's state and its live holds ({ amount, expiresAt }); lapsed holds are deleted on the way.
local function load(sk)
  local raw = redis.call('HGETALL', sk)
  local f, live, lapsed = {}, {}, nil
  for j = 1, #raw, 2 do
    local name, v = raw[j], raw[j + 1]
    if string.sub(name, 1, 2) == 'h:' then
      local sep = string.find(v, '|', 1, true)
      local amount, exp = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
      if exp <= now then
        lapsed = lapsed or {}
        lapsed[#lapsed + 1] = name
      else
        live[#live + 1] = { amount, exp }
      end
    else
      f[name] = v
    end
  end
  if lapsed then redis.call('HDEL', sk, unpack(lapsed)) end
  if f.seeded == nil then return nil, live end
  return { c = tonumber(f.c) or 0, s = tonumber(f.s) or 0, d = tonumber(f.d) or 0,
           mn = tonumber(f.mn), mx = tonumber(f.mx), l = tonumber(f.l), la = tonumber(f.la) }, live
end

local function save(sk, st)
  redis.call('HSET', sk, 'c', fmt(st.c), 's', fmt(st.s), 'd', fmt(st.d), 'seeded', '1')
  if st.mn then redis.call('HSET', sk, 'mn', fmt(st.mn), 'mx', fmt(st.mx)) end
  if st.l then redis.call('HSET', sk, 'l', fmt(st.l), 'la', fmt(st.la)) end
end

local function expire(slot, sk, dk, ek)
  if slot.e == NULL then
    redis.call('PERSIST', sk)
    return
  end
  local ttl = math.max(tonumber(slot.e) - now, 0) + GRACE
  redis.call('PEXPIRE', sk, ttl)
  if redis.call('EXISTS', dk) == 1 then redis.call('PEXPIRE', dk, ttl) end
  if redis.call('EXISTS', ek) == 1 then redis.call('PEXPIRE', ek, ttl) end
end

local function valueOf(agg, st)
  if agg == 'sum' then return st.s
  elseif agg == 'count' then return st.c
  elseif agg == 'max' then return st.mx or 0
  elseif agg == 'min' then return st.mn or 0
  elseif agg == 'latest' then return st.l or 0
  elseif agg == 'avg' then if st.c == 0 then return 0 end return st.s / st.c
  elseif agg == 'unique' then return st.d end
  return 0
end

local function usedWith(agg, st, live)
  local used = valueOf(agg, st)
  if agg == 'sum' or agg == 'count' or agg == 'unique' then
    for _, h in ipairs(live) do used = used + h[1] end
  elseif agg == 'max' then
    for _, h in ipairs(live) do if h[1] > used then used = h[1] end end
  elseif agg == 'latest' then
    local last = nil
    for _, h in ipairs(live) do if last == nil or h[2] >= last[2] then last = h end end
    if last then used = last[1] end
  end
  return used
end

local function isNewDistinct(slot, dk)
  return type(slot.c) == 'string' and redis.call('SISMEMBER', dk, slot.c) == 0
end

local function holdAmount(slot, isNew)
  local c = slot.c
  if c == NULL then return nil end
  local a = slot.a
  if a == 'sum' or a == 'count' or a == 'max' or a == 'latest' then
    if type(c) == 'number' then return c end
    return nil
  elseif a == 'unique' then
    if isNew then return 1 end
    return 0
  end
  return nil
end

local function projected(slot, st, used, isNew)
  local c = slot.c
  if c == NULL then return used end
  local a = slot.a
  if a == 'unique' then if isNew then return used + 1 end return used end
  if a == 'sum' or a == 'count' then return used + c
  elseif a == 'max' then return math.max(used, c)
  elseif a == 'latest' then return c
  elseif a == 'min' then if st.mn == nil then return c end return math.min(st.mn, c)
  elseif a == 'avg' then return (st.s + c) / (st.c + 1) end
  return used
end

local function allows(slot, st, used, isNew)
  if slot.m == 'soft' then return true end
  if slot.c == NULL then return used < slot.v end
  return projected(slot, st, used, isNew) <= slot.v
end

local function addToState(st, c, at, isNew)
  st.c = st.c + 1
  if type(c) == 'string' then
    if isNew then st.d = st.d + 1 end
    return
  end
  st.s = st.s + c
  if st.mn == nil or c < st.mn then st.mn = c end
  if st.mx == nil or c > st.mx then st.mx = c end
  if st.la == nil or at >= st.la then st.l = c; st.la = at end
end

local function reached(slot, used)
  local out = {}
  for _, t in ipairs(slot.t) do
    if used * 100 >= t * slot.v - 1e-9 then out[#out + 1] = t end
  end
  return out
end

if op.type == 'check' or op.type == 'reserve' then
  local states, lives, missing = {}, {}, {}
  for i = 1, #op.slots do
    local st, live = load((keysOf(i)))
    if st == nil then missing[#missing + 1] = i - 1 else states[i] = st; lives[i] = live end
  end
  if #missing > 0 then return cjson.encode({ missing = missing }) end
  local used, ok, news, allowed = {}, {}, {}, true
  for i, slot in ipairs(op.slots) do
    local _, dk = keysOf(i)
    news[i] = isNewDistinct(slot, dk)
    local u = usedWith(slot.a, states[i], lives[i])
    used[i] = u
    ok[i] = allows(slot, states[i], u, news[i])
    if not ok[i] then allowed = false end
  end
  if op.type == 'reserve' and allowed then
    for i, slot in ipairs(op.slots) do
      local amount = holdAmount(slot, news[i])
      if amount ~= nil then
        redis.call('HSET', (keysOf(i)), 'h:' .. op.holdId, fmt(amount) .. '|' .. fmt(op.expiresAt))
        lives[i][#lives[i] + 1] = { amount, tonumber(op.expiresAt) }
        used[i] = usedWith(slot.a, states[i], lives[i])
      end
    end
  end
  for i = 1, #used do used[i] = fmt(used[i]) end
  return cjson.encode({ allowed = allowed, used = used, ok = ok })
end

if op.type == 'record' then
  local missing = {}
  for k = 1, op.slotCount do
    if redis.call('HEXISTS', KEYS[(k - 1) * 3 + 1], 'seeded') == 0 then missing[#missing + 1] = k - 1 end
  end
  if #missing > 0 then return cjson.encode({ missing = missing }) end
  local used, alerts = {}, {}
  local k = 0
  for _, item in ipairs(op.items) do
    if item.holdId then
      for _, hk in ipairs(item.holdKeys) do redis.call('HDEL', KEYS[hk], 'h:' .. item.holdId) end
    end
    for _, slot in ipairs(item.slots) do
      k = k + 1
      local sk, dk, ek = keysOf(k)
      local st, live = load(sk)
      do
        local counts = slot.c ~= NULL
        if counts then
          if redis.call('ZSCORE', ek, item.id) then
            counts = false
          else
            redis.call('ZADD', ek, now, item.id)
            redis.call('ZREMRANGEBYSCORE', ek, '-inf', now - RECENT)
          end
        end
        if counts then
          local isNew = false
          if type(slot.c) == 'string' then isNew = redis.call('SADD', dk, slot.c) == 1 end
          addToState(st, slot.c, tonumber(item.at), isNew)
          save(sk, st)
          expire(slot, sk, dk, ek)
        end
        local u = usedWith(slot.a, st, live)
        used[k] = fmt(u)
        -- Thresholds are checked even for an event the seed already counted; HSETNX fires each once.
        if slot.c ~= NULL then
          for _, t in ipairs(reached(slot, u)) do
            if redis.call('HSETNX', sk, 'f:' .. t, '1') == 1 then alerts[#alerts + 1] = { k - 1, t, fmt(u) } end
          end
        end
      end
    end
  end
  return cjson.encode({ used = used, alerts = alerts })
end

if op.type == 'release' then
  for i = 1, #op.slots do redis.call('HDEL', (keysOf(i)), 'h:' .. op.holdId) end
  return cjson.encode({})
end

if op.type == 'seed' then
  for i, seed in ipairs(op.seeds) do
    local sk, dk, ek = keysOf(i)
    if redis.call('HEXISTS', sk, 'seeded') == 0 then
      local st = { c = tonumber(seed.c), s = tonumber(seed.s), d = tonumber(seed.d),
                   mn = tonumber(seed.mn), mx = tonumber(seed.mx), l = tonumber(seed.l), la = tonumber(seed.la) }
      save(sk, st)
      for j = 1, #seed.values, 1000 do
        redis.call('SADD', dk, unpack(seed.values, j, math.min(j + 999, #seed.values)))
      end
      for j = 1, #seed.ids do redis.call('ZADD', ek, now, seed.ids[j]) end
      if seed.slot.e ~= NULL and tonumber(seed.slot.e) <= now then
        for _, t in ipairs(reached(seed.slot, valueOf(seed.slot.a, st))) do redis.call('HSET', sk, 'f:' .. t, '1') end
      end
      expire(seed.slot, sk, dk, ek)
    end
  end
  return cjson.encode({})
end

return redis.error_reply('unknown operation ' .. tostring(op.type))
`;

/** SHA1 of {@link COUNTERS_SCRIPT}, the name Redis knows it by after `SCRIPT LOAD`. */
export const COUNTERS_SCRIPT_SHA = createHash('sha1').update(COUNTERS_SCRIPT).digest('hex');
