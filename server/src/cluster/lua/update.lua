-- New flags for a held seat (and a new call instance when ARGV[6] is '1').
-- KEYS: 1 seats, 2 seq
-- ARGV: 1 presence channel, 2 user, 3 node, 4 session, 5 member JSON, 6 fresh
-- (after lua/held.lua) Returns the event's seq, or 0 when the session held no seat.
local seat = held_seat()
if not seat then
  return 0
end
local member = cjson.decode(ARGV[5])
local seq = redis.call('INCR', KEYS[2])
if ARGV[6] == '1' then
  member.instance = seq
else
  member.instance = seat.member.instance
end
seat.member = member
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(seat))
local change = {op = 'update', channel = seat.channel, member = member,
                node = seat.node, session = seat.session}
redis.call('PUBLISH', ARGV[1], cjson.encode({seq = seq, changes = {change}}))
return seq
