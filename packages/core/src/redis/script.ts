import { createHash } from 'node:crypto';

/**
 * Two scripts run every counters operation: {@link CHECK_SCRIPT} reads for a check, which the
 * client then decides; {@link COUNTERS_SCRIPT} reserves, records, releases and seeds, deciding
 * inside the script so a hold is placed only when every hard slot allows. Together they mirror
 * `slots.ts` line for line. Per slot, one hash (`s`) holds the running aggregate (`c`, `s`, `d`,
 * `mn`, `mx`, `l`, `la`, `seeded`), the open holds (`h:<holdId>` = `amount|expiresAt`), the fired
 * thresholds (`f:<percent>`) and when the recent ids were last pruned (`p`); distinct values live
 * in a set (`d`) and ids of recently counted events in a sorted set (`e`, for retries and seeding
 * races).
 *
 * Keys expire an hour after their window ends (never for a slot without an end). While the window
 * is open that is a fixed time, so a record sets it when it prunes the recent ids (at most once a
 * minute per slot, and on the first count after a seed, which leaves no `p`) and on a key it
 * creates; once the window has ended, on every count. Every value is stored as `%.17g` prints it
 * (which reads back to the same string), so a record writes only the fields that change.
 *
 * A check or reservation reads a slot with one HMGET: the field its aggregation needs, the number
 * of hold fields (`hn`) and a marker (`h:~`). Only while `hn` is 0 and the marker is there is that
 * enough; otherwise the slot is read whole (HGETALL). A record reads the fields it updates the same
 * way, and stands by that read while the marker is there and the holds `hn` counts are all ones
 * it has just dropped. `hn` is exact while the marker is there: the
 * counters script sets both from a whole read and keeps `hn` up to date as it adds and drops
 * holds. The marker looks like a lapsed hold (`0|0`) to the previous version of the script, which
 * deletes lapsed holds whenever it touches a slot, and so whenever it might add a hold: during a
 * rolling upgrade its holds are never missed.
 */

/**
 * Lua statements that sort a slot hash read whole (`raw`, an HGETALL reply) into its plain fields
 * (`fields[name] = value`) and its hold fields (`h:<holdId>` = `amount|expiresAt`, the marker
 * aside), running `onHold` for each hold with `name`, `amount` and `exp` in scope. Both scripts
 * read holds this way.
 */
function sortHashFields(raw: string, fields: string, onHold: string): string {
  return `for j = 1, #${raw}, 2 do
        local name, v = ${raw}[j], ${raw}[j + 1]
        local b1, b2 = string.byte(name, 1, 2)
        if b1 == 104 and b2 == 58 and name ~= MARK then
          local sep = string.find(v, '|', 1, true)
          local amount, exp = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
          ${onHold}
        else
          ${fields}[name] = v
        end
      end`;
}

/**
 * Lua statements that run `take` when hold field name `x` sorts after `y` byte by byte: for
 * latest, the newest reservation's hold (the greatest hold id) counts. Lua's own `<` on strings
 * follows the server's locale, so both scripts compare bytes with this.
 */
function ifNewerHold(x: string, y: string, take: string): string {
  return `local x, y, d = ${x}, ${y}, 0
          for q = 1, math.min(#x, #y) do
            d = string.byte(x, q) - string.byte(y, q)
            if d ~= 0 then break end
          end
          if d > 0 or (d == 0 and #x > #y) then ${take} end`;
}

/**
 * Checks: reads slots and changes nothing; the client decides from what it returns, with no limit,
 * mode or contribution sent. One run serves one or more checks (concurrent checks share a run).
 * KEYS = per check: s per slot, then d of each slot adding a distinct value. ARGV = per check: now,
 * its slot count, then per slot its aggregation, or `=<distinct value>` for a unique slot adding
 * one.
 *
 * Returns one reply per check. Per slot, in order: the usage; for avg instead the stored sum and
 * count, for min the stored minimum (false when unset); then, for a `=` slot, 1 if the value is
 * already counted, else 0. A usage read from the hash comes back as it is stored (a `%.17g`
 * string, or false when unset); one computed with holds as an integer when exact (below 2^53),
 * else a `%.17g` string. A check that finds slots without state replies {{slot indexes...}}.
 *
 * Nothing here makes a table or closure beyond the reply unless a slot must be read whole.
 */
export const CHECK_SCRIPT = `
local call, K, A = redis.call, KEYS, ARGV
local MARK = 'h:~'
local replies, p, base = {}, 1, 0
while p <= #A do
  local now, n = tonumber(A[p]), tonumber(A[p + 1])
  local out, k, dk, missing = {}, 0, base + n, nil
  for i = 1, n do
    local a, sk = A[p + 1 + i], K[base + i]
    local v
    if a == 'sum' then v = call('HMGET', sk, MARK, 'hn', 's')
    elseif a == 'count' then v = call('HMGET', sk, MARK, 'hn', 'c')
    elseif a == 'max' then v = call('HMGET', sk, MARK, 'hn', 'mx')
    elseif a == 'min' then v = call('HMGET', sk, MARK, 'hn', 'mn')
    elseif a == 'latest' then v = call('HMGET', sk, MARK, 'hn', 'l')
    elseif a == 'avg' then v = call('HMGET', sk, MARK, 'hn', 's', 'c')
    else v = call('HMGET', sk, MARK, 'hn', 'd') end
    if v[1] and v[2] == '0' then
      -- A stored number goes back as an integer reply when it is one (cheaper for the client to
      -- read), else as stored; false when unset.
      local x = tonumber(v[3])
      if x and x % 1 == 0 and x < 9007199254740992 and x > -9007199254740992 and (x ~= 0 or 1 / x > 0) then v[3] = x end
      k = k + 1
      out[k] = v[3]
      if a == 'avg' then
        x = tonumber(v[4])
        if x and x % 1 == 0 and x < 9007199254740992 and x > -9007199254740992 and (x ~= 0 or 1 / x > 0) then v[4] = x end
        k = k + 1
        out[k] = v[4]
      end
    else
      -- Read whole: the aggregate and the live holds (lapsed ones are skipped, not deleted).
      local raw = call('HGETALL', sk)
      local f, amounts, names = {}, {}, {}
      ${sortHashFields('raw', 'f', `if exp > now then
            amounts[#amounts + 1] = amount
            names[#names + 1] = name
          end`)}
      if f.seeded == nil then
        missing = missing or {}
        missing[#missing + 1] = i - 1
      elseif a == 'avg' then
        out[k + 1] = f.s or false
        out[k + 2] = f.c or false
        k = k + 2
      elseif a == 'min' then
        k = k + 1
        out[k] = f.mn or false
      else
        -- Holds add to sum, count and unique; max takes the largest; latest the newest reservation's
        -- (the greatest hold id). Min and avg hold nothing.
        local u
        if a == 'sum' then u = tonumber(f.s) or 0
        elseif a == 'count' then u = tonumber(f.c) or 0
        elseif a == 'max' then u = tonumber(f.mx) or 0
        elseif a == 'latest' then u = tonumber(f.l) or 0
        else u = tonumber(f.d) or 0 end
        if a == 'max' then
          for j = 1, #amounts do if amounts[j] > u then u = amounts[j] end end
        elseif a == 'latest' then
          local last = nil
          for j = 1, #amounts do
            if last == nil then last = j
            else
              ${ifNewerHold('names[j]', 'names[last]', 'last = j')}
            end
          end
          if last then u = amounts[last] end
        else
          for j = 1, #amounts do u = u + amounts[j] end
        end
        if not (u % 1 == 0 and u < 9007199254740992 and u > -9007199254740992 and (u ~= 0 or 1 / u > 0)) then
          u = string.format('%.17g', u)
        end
        k = k + 1
        out[k] = u
      end
    end
    if string.byte(a, 1) == 61 then
      dk = dk + 1
      if missing == nil then
        k = k + 1
        out[k] = call('SISMEMBER', K[dk], string.sub(a, 2))
      end
    end
  end
  if missing then out = { missing } end
  replies[#replies + 1] = out
  p = p + n + 2
  base = dk
end
return replies
`;

/** SHA1 of {@link CHECK_SCRIPT}, the name Redis knows it by after `SCRIPT LOAD`. */
export const CHECK_SCRIPT_SHA = createHash('sha1').update(CHECK_SCRIPT).digest('hex');

/**
 * Reserve, record, release and seed. Arguments are flat strings, not JSON, on the hot path; only
 * the rare seed carries JSON. A contribution is `` (none), `=<distinct value>` or a number.
 *
 * - reserve: KEYS = s per slot, then d of each slot whose contribution is a distinct value.
 *   ARGV = op, now, holdId, expiresAt, then a, v, m, c per slot. Returns
 *   {1 or 0 (allowed), used, ok (1/0), used, ok, ...}; the hold is placed only when allowed.
 * - record: KEYS = s, d, e per slot of every item, then the hashes holding the items' holds.
 *   ARGV = op, now, recentMs, then per item: id, at, holdId ('' for none), hold key count, hold
 *   key indexes, slot count, then per slot: a, v, c, e ('' for none), threshold count,
 *   thresholds. Returns {1, used per slot..., then (slot, threshold index, used) per new alert}.
 * - release: KEYS = s per slot. ARGV = op, now, holdId.
 * - seed: KEYS = s, d, e per slot. ARGV = op, now, the seeds as JSON.
 *
 * A decision that finds a slot without state returns {-1, slot indexes...} and changes nothing.
 * Usage comes back as an integer when it is one (below 2^53), else as a 17-digit string, so
 * every digit survives.
 */
export const COUNTERS_SCRIPT = `
local op = ARGV[1]
local NULL = false
local MARK = 'h:~'
local GRACE = 3600000
local PRUNE_EVERY = 60000

-- A number as stored: every digit (%.17g). An exact integer prints the same digits with %d, which
-- is cheaper; -0 keeps its sign through %.17g.
local function fmt(x)
  if x % 1 == 0 and x < 9007199254740992 and x > -9007199254740992 and (x ~= 0 or 1 / x > 0) then return string.format('%d', x) end
  return string.format('%.17g', x)
end

-- An integer reply when exact, else every digit as a string (-0 keeps its sign that way).
local function num(x)
  if x % 1 == 0 and x < 9007199254740992 and x > -9007199254740992 and (x ~= 0 or 1 / x > 0) then return x end
  return string.format('%.17g', x)
end

-- Helpers (and now), made on first use: a reservation or record that reads no slot whole makes none.
local now, load, valueOf, usedWith

-- PEXPIRE leaves a missing key alone; only a unique slot has a distinct-values set.
local function expire(e, distinct, sk, dk, ek)
  if e == NULL then
    redis.call('PERSIST', sk)
    return
  end
  local ttl = math.max(e - now, 0) + GRACE
  redis.call('PEXPIRE', sk, ttl)
  if distinct then redis.call('PEXPIRE', dk, ttl) end
  redis.call('PEXPIRE', ek, ttl)
end

local function helpers()
  now = tonumber(ARGV[2])

  -- The slot's state, its live holds ({ amount, expiresAt, field name }), its other fields and how many hold
  -- fields it keeps. With tidy, lapsed holds are deleted (a seed only reads), and hn and the
  -- marker are set since every hold field left is known.
  load = function(sk, tidy)
    local raw = redis.call('HGETALL', sk)
    local f, live, lapsed = {}, {}, {}
    ${sortHashFields('raw', 'f', `if exp <= now then
            lapsed[#lapsed + 1] = name
          else
            live[#live + 1] = { amount, exp, name }
          end`)}
    local holds = #live + #lapsed
    if tidy and #lapsed > 0 then
      redis.call('HDEL', sk, unpack(lapsed))
      holds = #live
      redis.call('HSET', sk, 'hn', holds, MARK, '0|0')
    end
    if f.seeded == nil then return nil, live, f, holds end
    return { c = tonumber(f.c) or 0, s = tonumber(f.s) or 0, d = tonumber(f.d) or 0,
             mn = tonumber(f.mn), mx = tonumber(f.mx), l = tonumber(f.l), la = tonumber(f.la) }, live, f, holds
  end

  valueOf = function(agg, st)
    if agg == 'sum' then return st.s
    elseif agg == 'count' then return st.c
    elseif agg == 'max' then return st.mx or 0
    elseif agg == 'min' then return st.mn or 0
    elseif agg == 'latest' then return st.l or 0
    elseif agg == 'avg' then if st.c == 0 then return 0 end return st.s / st.c
    elseif agg == 'unique' then return st.d end
    return 0
  end

  usedWith = function(agg, st, live)
    local used = valueOf(agg, st)
    if agg == 'sum' or agg == 'count' or agg == 'unique' then
      for _, h in ipairs(live) do used = used + h[1] end
    elseif agg == 'max' then
      for _, h in ipairs(live) do if h[1] > used then used = h[1] end end
    elseif agg == 'latest' then
      -- The newest reservation's hold: the greatest hold id.
      local last = nil
      for _, h in ipairs(live) do
        if last == nil then last = h
        else
          ${ifNewerHold('h[3]', 'last[3]', 'last = h')}
        end
      end
      if last then used = last[1] end
    end
    return used
  end
end

if op == 'reserve' then
  local call, tonumber = redis.call, tonumber
  local base = 4
  local n = (#ARGV - base) / 4
  local out, missing, allowed, dk = { 1 }, nil, true, n
  -- What the reservation needs again, each made when needed: the slots read whole (states, lives),
  -- which distinct values are new, and which slots showed the marker as it is written.
  local states, lives, news, marked = nil, nil, nil, nil
  for i = 1, n do
    local b = base + i * 4 - 4
    local sk, a, raw = KEYS[i], ARGV[b + 1], ARGV[b + 4]
    local c = tonumber(raw)
    if c == nil then
      if raw == '' then c = NULL else c = string.sub(raw, 2) end
    end
    -- With the marker and no hold fields, only the field the aggregation reads (avg reads s and
    -- c); otherwise the whole hash. u is the usage; mn, s and cnt what min and avg project with.
    local v, u, mn, s, cnt
    if a == 'sum' then v = call('HMGET', sk, MARK, 'hn', 's')
    elseif a == 'count' then v = call('HMGET', sk, MARK, 'hn', 'c')
    elseif a == 'unique' then v = call('HMGET', sk, MARK, 'hn', 'd')
    elseif a == 'max' then v = call('HMGET', sk, MARK, 'hn', 'mx')
    elseif a == 'min' then v = call('HMGET', sk, MARK, 'hn', 'mn')
    elseif a == 'latest' then v = call('HMGET', sk, MARK, 'hn', 'l')
    elseif a == 'avg' then v = call('HMGET', sk, MARK, 'hn', 's', 'c') end
    if v and v[1] and v[2] == '0' then
      if v[1] == '0|0' then
        marked = marked or {}
        marked[i] = true
      end
      local x = tonumber(v[3])
      if a == 'avg' then
        s, cnt = x or 0, tonumber(v[4]) or 0
        if cnt == 0 then u = 0 else u = s / cnt end
      else
        u, mn = x or 0, x
      end
    else
      if load == nil then helpers() end
      local st, live = load(sk, true)
      if st == nil then
        missing = missing or { -1 }
        missing[#missing + 1] = i - 1
      else
        u, mn, s, cnt = usedWith(a, st, live), st.mn, st.s, st.c
        states, lives = states or {}, lives or {}
        states[i], lives[i] = st, live
      end
    end
    local isNew = false
    if type(c) == 'string' then
      dk = dk + 1
      if u ~= nil then
        isNew = call('SISMEMBER', KEYS[dk], c) == 0
        news = news or {}
        news[i] = isNew
      end
    end
    if u ~= nil then
      out[i * 2] = u
      -- Soft slots always allow; without a contribution a hard slot allows while used < limit,
      -- with one while the usage it would make stays within the limit.
      local ok = ARGV[b + 3] == 'soft'
      if not ok then
        local p = u
        if c == NULL then p = nil
        elseif a == 'unique' then if isNew then p = u + 1 end
        elseif a == 'sum' or a == 'count' then p = u + c
        elseif a == 'max' then if c > u then p = c end
        elseif a == 'latest' then p = c
        elseif a == 'min' then if mn == nil or c < mn then p = c else p = mn end
        elseif a == 'avg' then p = (s + c) / (cnt + 1) end
        if p == nil then ok = u < tonumber(ARGV[b + 2]) else ok = p <= tonumber(ARGV[b + 2]) end
      end
      if ok then
        out[i * 2 + 1] = 1
      else
        out[i * 2 + 1] = 0
        allowed = false
      end
    end
  end
  if missing then return missing end

  if allowed then
    -- What a hold keeps back: the contribution for sum, count, max and latest, 1 for a new
    -- distinct value (0 for one already counted); min and avg hold nothing.
    local name, expiresAt = 'h:' .. ARGV[3], tonumber(ARGV[4])
    local until_ = '|' .. fmt(expiresAt)
    for i = 1, n do
      local a, raw, amount = ARGV[base + i * 4 - 3], ARGV[base + i * 4], nil
      if raw ~= '' then
        if a == 'sum' or a == 'count' or a == 'max' or a == 'latest' then
          -- None for a distinct value.
          amount = tonumber(raw)
        elseif a == 'unique' then
          if news and news[i] then amount = 1 else amount = 0 end
        end
      end
      if amount ~= nil then
        -- The slot was read whole or had no hold fields: either way every hold field is known.
        local live = lives and lives[i]
        -- The marker is written unless the read showed it as it is.
        if marked and marked[i] then
          call('HSET', KEYS[i], name, fmt(amount) .. until_, 'hn', 1)
        else
          call('HSET', KEYS[i], name, fmt(amount) .. until_, 'hn', live and #live + 1 or 1, MARK, '0|0')
        end
        if live then
          live[#live + 1] = { amount, expiresAt, name }
          out[i * 2] = usedWith(a, states[i], live)
        else
          -- The new hold is the slot's only one.
          local u = out[i * 2]
          if a == 'sum' or a == 'count' or a == 'unique' then u = u + amount
          elseif a == 'max' then if amount > u then u = amount end
          elseif a == 'latest' then u = amount end
          out[i * 2] = u
        end
      end
    end
  end
  if not allowed then out[1] = 0 end
  -- Usage as an integer reply when exact, else every digit as a string (-0 keeps its sign that way).
  for i = 2, n * 2, 2 do out[i] = num(out[i]) end
  return out
end

if op == 'record' then
  local call, tonumber = redis.call, tonumber
  now = tonumber(ARGV[2])
  local RECENT, nA = tonumber(ARGV[3]), #ARGV
  -- Before any write, per slot, one HMGET of the fields the record reads: seeded (which finds the
  -- slots without state), hn, the marker, p, the aggregate, then the slot's fired flags. A number
  -- added to a slot that neither shows the latest value nor counts distinct values needs neither l
  -- nor d. A key met again in the run is not read again: its first read says whether it has state.
  local reads, firstOf, missing = {}, {}, nil
  local p, k = 4, 0
  while p <= nA do
    local nh = tonumber(ARGV[p + 3])
    local ns = tonumber(ARGV[p + 4 + nh])
    p = p + 5 + nh
    for _ = 1, ns do
      k = k + 1
      local nt, sk = tonumber(ARGV[p + 4]), KEYS[k * 3 - 2]
      local first, v = firstOf[sk], nil
      if first == nil then
        firstOf[sk] = k
        local a = ARGV[p]
        if a ~= 'latest' and a ~= 'unique' and tonumber(ARGV[p + 2]) then
          if nt == 1 then
            v = call('HMGET', sk, 'seeded', 'hn', MARK, 'p', 'c', 's', 'mn', 'mx', 'la', 'f:' .. tonumber(ARGV[p + 5]))
          else
            local names = { 'seeded', 'hn', MARK, 'p', 'c', 's', 'mn', 'mx', 'la' }
            for q = 1, nt do names[9 + q] = 'f:' .. tonumber(ARGV[p + 4 + q]) end
            v = call('HMGET', sk, unpack(names))
          end
        else
          local names = { 'seeded', 'hn', MARK, 'p', 'c', 's', 'mn', 'mx', 'la', 'l', 'd' }
          for q = 1, nt do names[11 + q] = 'f:' .. tonumber(ARGV[p + 4 + q]) end
          v = call('HMGET', sk, unpack(names))
        end
        reads[k] = v
      else
        v = reads[first]
      end
      if not v[1] then
        missing = missing or { -1 }
        missing[#missing + 1] = k - 1
      end
      p = p + 5 + nt
    end
  end
  if missing then return missing end

  local out, alerts = { 1 }, nil
  -- Per hash, the holds this run deleted from it.
  local dropped = {}
  -- One slot's HSET arguments at a time (w of them).
  local write, w = {}, 0
  p, k = 4, 0
  while p <= nA do
    local id, at, holdId, nh = ARGV[p], tonumber(ARGV[p + 1]), ARGV[p + 2], tonumber(ARGV[p + 3])
    -- A dropped hold leaves hn one too high until the slot is written again: never too low.
    if holdId ~= '' then
      local name = 'h:' .. holdId
      for j = 1, nh do
        local hk = KEYS[tonumber(ARGV[p + 3 + j])]
        if call('HDEL', hk, name) == 1 then
          -- Deleting the marker itself leaves hn unknown: that slot is read whole.
          if name == MARK then dropped[hk] = 1 / 0 else dropped[hk] = (dropped[hk] or 0) + 1 end
        end
      end
    end
    local ns = tonumber(ARGV[p + 4 + nh])
    p = p + 5 + nh
    for _ = 1, ns do
      k = k + 1
      local a, limit, raw, e, nt = ARGV[p], tonumber(ARGV[p + 1]), ARGV[p + 2], ARGV[p + 3], tonumber(ARGV[p + 4])
      local c = tonumber(raw)
      if c == nil then
        if raw == '' then c = NULL else c = string.sub(raw, 2) end
      end
      if e ~= '' then e = tonumber(e) or NULL else e = NULL end
      local b = k * 3 - 3
      local sk, dk, ek = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3]
      -- The early read stands for the slot when it is the key's first slot in the run (nothing has
      -- written it since), it had the marker, and the holds hn counted are all ones this run
      -- deleted: no hold field is left. Otherwise the slot is read whole now, deleting lapsed holds.
      local v, f, live, holds, tf = reads[k], nil, nil, 0, 9
      if not (v and v[3] and tonumber(v[2]) == (dropped[sk] or 0)) then v = nil end
      local cnt, s, d, mn, mx, l, la, lastPrune
      if v then
        cnt, s, mn, mx, la = tonumber(v[5]) or 0, tonumber(v[6]) or 0, tonumber(v[7]), tonumber(v[8]), tonumber(v[9])
        -- A short read (no l, no d) for a number added to a slot that uses neither.
        if a == 'latest' or a == 'unique' or type(c) ~= 'number' then
          l, d, tf = tonumber(v[10]), tonumber(v[11]) or 0, 11
        end
        lastPrune = v[4]
      else
        if load == nil then helpers() end
        local st
        st, live, f, holds = load(sk, true)
        cnt, s, d, mn, mx, l, la = st.c, st.s, st.d, st.mn, st.mx, st.l, st.la
        lastPrune = f.p
      end
      w = 0
      local counted, distinct, refresh, created, isNew = false, false, false, false, false
      if c ~= NULL then
        -- Keys expire GRACE after their window ends. While the window is open that is a fixed
        -- time, set when the ids are pruned (at most once a minute, and on the first count after a
        -- seed, which leaves no p) and on a key this count creates; once it has ended, on every count.
        refresh = e ~= NULL and (e <= now or now - (tonumber(lastPrune) or 0) >= PRUNE_EVERY)
        if e ~= NULL and not refresh then created = call('EXISTS', ek) == 0 end
        -- ZADD NX answers 0 for an id already counted: a retry, or an event the seed counted.
        counted = call('ZADD', ek, 'NX', now, id) == 1
      end
      if counted then
        -- Only the fields that change are written: every other one already holds what it would be
        -- rewritten with (each value is stored by fmt, which reads back to the same string).
        cnt = cnt + 1
        write[1] = 'c'; write[2] = fmt(cnt)
        w = 2
        if type(c) == 'string' then
          distinct = true
          isNew = call('SADD', dk, c) == 1
          if isNew then
            d = d + 1
            write[3] = 'd'; write[4] = fmt(d)
            w = 4
          end
        else
          distinct = a == 'unique'
          s = s + c
          write[3] = 's'; write[4] = fmt(s)
          w = 4
          if mn == nil or c < mn then
            mn = c
            write[w + 1] = 'mn'; write[w + 2] = fmt(mn); w = w + 2
          end
          if mx == nil or c > mx then
            mx = c
            write[w + 1] = 'mx'; write[w + 2] = fmt(mx); w = w + 2
          end
          if la == nil or at >= la then
            l, la = c, at
            write[w + 1] = 'l'; write[w + 2] = fmt(l); write[w + 3] = 'la'; write[w + 4] = fmt(la); w = w + 4
          end
        end
        -- Ids older than RECENT go at most once a minute: a retry within RECENT is always caught.
        if now - (tonumber(lastPrune) or 0) >= PRUNE_EVERY then
          call('ZREMRANGEBYSCORE', ek, '-inf', now - RECENT)
          write[w + 1] = 'p'; write[w + 2] = ARGV[2]; w = w + 2
        end
      end
      local u
      if a == 'sum' then u = s
      elseif a == 'count' then u = cnt
      elseif a == 'max' then u = mx or 0
      elseif a == 'min' then u = mn or 0
      elseif a == 'latest' then u = l or 0
      elseif a == 'avg' then if cnt == 0 then u = 0 else u = s / cnt end
      elseif a == 'unique' then u = d
      else u = 0 end
      if live and #live > 0 then u = usedWith(a, { c = cnt, s = s, d = d, mn = mn, mx = mx, l = l, la = la }, live) end
      out[k + 1] = num(u)
      -- Thresholds are checked even for an event the seed already counted; each fires once.
      if c ~= NULL then
        for q = 1, nt do
          local t = tonumber(ARGV[p + 4 + q])
          if u * 100 >= t * limit - 1e-9 then
            local name, fired = 'f:' .. t, nil
            if v then fired = v[tf + q] else fired = f[name] end
            if not fired then
              write[w + 1] = name; write[w + 2] = '1'; w = w + 2
              alerts = alerts or {}
              alerts[#alerts + 1] = k - 1; alerts[#alerts + 1] = q - 1; alerts[#alerts + 1] = num(u)
            end
          end
        end
      end
      if w > 0 then
        -- hn and the marker, unless the early read shows them as they would be written.
        if not (v and v[2] == '0') then write[w + 1] = 'hn'; write[w + 2] = holds; w = w + 2 end
        if not (v and v[3] == '0|0') then write[w + 1] = MARK; write[w + 2] = '0|0'; w = w + 2 end
        call('HSET', sk, unpack(write, 1, w))
      end
      if counted then
        if e == NULL or refresh then
          expire(e, distinct, sk, dk, ek)
        else
          -- Only keys this count created need their expiry.
          local ttl = math.max(e - now, 0) + GRACE
          if isNew then call('PEXPIRE', dk, ttl) end
          if created then call('PEXPIRE', ek, ttl) end
        end
      end
      p = p + 5 + nt
    end
  end
  if alerts then for j = 1, #alerts do out[#out + 1] = alerts[j] end end
  return out
end

helpers()

-- The state as hash fields and values, for one HSET.
local function fields(st)
  local a = { 'c', fmt(st.c), 's', fmt(st.s), 'd', fmt(st.d), 'seeded', '1' }
  if st.mn then a[9] = 'mn'; a[10] = fmt(st.mn); a[11] = 'mx'; a[12] = fmt(st.mx) end
  if st.l then a[#a + 1] = 'l'; a[#a + 1] = fmt(st.l); a[#a + 1] = 'la'; a[#a + 1] = fmt(st.la) end
  return a
end

-- Positions in t of the thresholds (percent) that used has reached.
local function reached(t, v, used)
  local out = {}
  for j = 1, #t do
    if used * 100 >= t[j] * v - 1e-9 then out[#out + 1] = j end
  end
  return out
end

if op == 'release' then
  local name = 'h:' .. ARGV[3]
  for i = 1, #KEYS do
    if redis.call('HDEL', KEYS[i], name) == 1 then redis.call('HINCRBY', KEYS[i], 'hn', -1) end
  end
  return {}
end

if op == 'seed' then
  local CNULL = cjson.null
  for i, seed in ipairs(cjson.decode(ARGV[3])) do
    local b = (i - 1) * 3
    local sk, dk, ek = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3]
    local _, _, f, holds = load(sk, false)
    if f.seeded == nil then
      local st = { c = tonumber(seed.c), s = tonumber(seed.s), d = tonumber(seed.d),
                   mn = tonumber(seed.mn), mx = tonumber(seed.mx), l = tonumber(seed.l), la = tonumber(seed.la) }
      local write = fields(st)
      for j = 1, #seed.values, 1000 do
        redis.call('SADD', dk, unpack(seed.values, j, math.min(j + 999, #seed.values)))
      end
      for j = 1, #seed.ids do redis.call('ZADD', ek, now, seed.ids[j]) end
      local slot = seed.slot
      local e = NULL
      if slot.e ~= CNULL then e = tonumber(slot.e) end
      if e ~= NULL and e <= now then
        for _, j in ipairs(reached(slot.t, slot.v, valueOf(slot.a, st))) do
          write[#write + 1] = 'f:' .. slot.t[j]; write[#write + 1] = '1'
        end
      end
      write[#write + 1] = 'hn'; write[#write + 1] = holds
      write[#write + 1] = MARK; write[#write + 1] = '0|0'
      redis.call('HSET', sk, unpack(write))
      expire(e, #seed.values > 0 or slot.a == 'unique', sk, dk, ek)
    end
  end
  return {}
end

return redis.error_reply('unknown operation ' .. tostring(op))
`;

/** SHA1 of {@link COUNTERS_SCRIPT}, the name Redis knows it by after `SCRIPT LOAD`. */
export const COUNTERS_SCRIPT_SHA = createHash('sha1').update(COUNTERS_SCRIPT).digest('hex');
