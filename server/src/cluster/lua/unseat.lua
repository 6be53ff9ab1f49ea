-- Release a seat if this node's session holds it, and announce the leave.
-- KEYS: 1 seats, 2 seq, 3 held:<node>
-- ARGV: 1 presence channel, 2 user, 3 node, 4 session, 5 why
-- (after lua/held.lua) Returns the event's seq, or 0 when the session held no seat.
local seat = held_seat()
if not seat then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[2])
local seq = redis.call('INCR', KEYS[2])
local change = {op = 'leave', channel = seat.channel, member = seat.member,
                node = seat.node, session = seat.session, why = ARGV[5]}
redis.call('PUBLISH', ARGV[1], cjson.encode({seq = seq, changes = {change}}))
return seq
