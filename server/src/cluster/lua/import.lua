-- Carry one channel's history from a single server's file into the cluster's: append the
-- messages newer than the stream's newest (a stream only grows at its end; importing again
-- adds nothing), keep the counter ahead of them, trim to the retention count.
-- KEYS: 1 chat id counter, 2 the channel's history (stream)
-- ARGV: 1 the most messages the history keeps (0: no limit), then pairs of
--       message id and ChatMessage JSON, oldest first
-- Returns how many were added.
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
local newest = 0
if last then
  newest = tonumber(string.match(last[1], '^(%d+)'))
end
local added = 0
for i = 2, #ARGV - 1, 2 do
  if tonumber(ARGV[i]) > newest then
    redis.call('XADD', KEYS[2], ARGV[i] .. '-0', 'm', ARGV[i + 1])
    newest = tonumber(ARGV[i])
    added = added + 1
  end
end
local keep = tonumber(ARGV[1])
if keep > 0 then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', keep)
end
if newest > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%.0f', newest))
end
return added
