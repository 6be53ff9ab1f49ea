-- A page of one channel's history, newest first.
-- KEYS: 1 the channel's history (a stream of "<id>-0" -> m: ChatMessage JSON)
-- ARGV: 1 only messages below this id (0: the newest), 2 the most to return,
--       3 only ids from this one up (messages older than the age limit have lower ids; 0: all)
-- Returns {id, json, id, json, ...}.
local before = tonumber(ARGV[1])
local top = '+'
if before > 0 then
  top = '(' .. ARGV[1] .. '-0'
end
local bottom = '-'
if tonumber(ARGV[3]) > 0 then
  bottom = ARGV[3] .. '-0'
end
local out = {}
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], top, bottom, 'COUNT', ARGV[2])) do
  out[#out + 1] = string.match(entry[1], '^(%d+)')
  out[#out + 1] = entry[2][2]
end
return out
