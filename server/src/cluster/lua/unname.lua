-- This node's sessions no longer hold these skeletons of a user.
-- KEYS: 1 names:<this node>
-- ARGV: 1 user, 2... the skeletons (each deleted only while it is still this user's)
local deleted = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    deleted = deleted + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return deleted
