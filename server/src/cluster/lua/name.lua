-- Look-alike names across instances: refuse a user when another user's session on a live
-- instance holds a name with one of its skeletons; else register them as this node's, in one
-- step (two look-alike newcomers on two instances at once: one is refused).
-- KEYS: 1 nodes (set), 2 names:<this node> (hash skeleton -> user)
-- ARGV: 1 key prefix, 2 user, 3... its skeletons
-- Returns {'free', user} or {'taken', the user holding it}. A node whose lease has lapsed
-- holds no names (reap.lua deletes them with its seats).
local user = ARGV[2]
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':alive:' .. node) == 1 then
    local names = ARGV[1] .. ':names:' .. node
    for i = 3, #ARGV do
      local holder = redis.call('HGET', names, ARGV[i])
      if holder and holder ~= user then
        return {'taken', holder}
      end
    end
  end
end
for i = 3, #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], user)
end
return {'free', user}
