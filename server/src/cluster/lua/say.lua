-- A chat message posted to the cluster: numbered, then published to every instance.
-- KEYS: 1 chat id counter
-- ARGV: 1 chat pub/sub channel, 2 the message (Chat JSON; its id is set by the receivers),
--       3 the lowest id the posting instance may hand out (one past the largest it has seen)
-- Ids increase and are never reused, also after Redis restarted empty: the counter never
-- falls behind the posting instance's history, nor behind Redis's clock in milliseconds
-- times 1000. Published as "<id> <json>": the id is not passed through cjson, whose numbers
-- keep only 14 digits.
local now = redis.call('TIME')
local floor = math.max(tonumber(ARGV[3]),
                       tonumber(now[1]) * 1000000 + math.floor(tonumber(now[2]) / 1000) * 1000)
local id = redis.call('INCR', KEYS[1])
if id < floor then
  redis.call('SET', KEYS[1], string.format('%.0f', floor))
  id = floor
end
redis.call('PUBLISH', ARGV[1], string.format('%.0f', id) .. ' ' .. ARGV[2])
return id
