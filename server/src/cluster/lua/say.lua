-- A chat message posted to the cluster: numbered, added to its channel's history, then
-- published to every instance, in one step (so the history holds a message before anyone
-- has seen it live, and in the one order of all chat).
-- KEYS: 1 chat id counter, 2 the channel's history (a stream)
-- ARGV: 1 chat pub/sub channel, 2 the message (Chat JSON; its id is set by the receivers),
--       3 the lowest id the posting instance may hand out (one past the largest it has seen),
--       4 the message alone (ChatMessage JSON, as the history keeps it),
--       5 the most messages the channel's history keeps (0: no limit),
--       6 the age limit in ms (0: none): older messages are trimmed from the history
-- Ids increase and are never reused, also after Redis restarted empty: the counter never
-- falls behind the posting instance's history, nor behind Redis's clock in milliseconds
-- times 1000, nor behind the channel's history. Published as "<id> <json>": the id is not
-- passed through cjson, whose numbers keep only 14 digits. The history's entry id is
-- "<id>-0", so a page is a range of entry ids; an id is never below its posting time in
-- ms times 1000, which is what lets an age limit be a range too (see history.lua).
local now = redis.call('TIME')
local floor = math.max(tonumber(ARGV[3]),
                       tonumber(now[1]) * 1000000 + math.floor(tonumber(now[2]) / 1000) * 1000)
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if last then
  floor = math.max(floor, tonumber(string.match(last[1], '^(%d+)')) + 1)
end
local id = redis.call('INCR', KEYS[1])
if id < floor then
  redis.call('SET', KEYS[1], string.format('%.0f', floor))
  id = floor
end
local entry = string.format('%.0f', id) .. '-0'
local keep = tonumber(ARGV[5])
if keep > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', keep, entry, 'm', ARGV[4])
else
  redis.call('XADD', KEYS[2], entry, 'm', ARGV[4])
end
local max_age = tonumber(ARGV[6])
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if max_age > 0 and max_age < now_ms then
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%.0f', (now_ms - max_age) * 1000) .. '-0')
end
redis.call('PUBLISH', ARGV[1], string.format('%.0f', id) .. ' ' .. ARGV[2])
return id
