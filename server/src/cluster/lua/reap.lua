-- Release every seat of every node whose lease has lapsed, announcing each leave, and
-- forget the names its sessions held.
-- KEYS: 1 nodes (set), 2 seats, 3 seq
-- ARGV: 1 presence channel, 2 key prefix
-- Returns how many seats were released. (Keys built here: one Redis, not Redis Cluster.)
local released = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[2] .. ':alive:' .. node) == 0 then
    local held = ARGV[2] .. ':held:' .. node
    for _, user in ipairs(redis.call('SMEMBERS', held)) do
      local current = redis.call('HGET', KEYS[2], user)
      if current then
        local seat = cjson.decode(current)
        if seat.node == node then
          redis.call('HDEL', KEYS[2], user)
          local seq = redis.call('INCR', KEYS[3])
          local change = {op = 'leave', channel = seat.channel, member = seat.member,
                          node = node, session = seat.session, why = 'expired'}
          redis.call('PUBLISH', ARGV[1], cjson.encode({seq = seq, changes = {change}}))
          released = released + 1
        end
      end
    end
    redis.call('DEL', held)
    redis.call('DEL', ARGV[2] .. ':names:' .. node)
    redis.call('SREM', KEYS[1], node)
  end
end
return released
