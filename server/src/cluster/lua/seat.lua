-- The join guard across instances: check and seat in one atomic step.
-- KEYS: 1 seats (hash user -> seat JSON), 2 seq, 3 alive:<node>, 4 held:<node>
-- ARGV: 1 presence channel, 2 user, 3 node, 4 session, 5 channel, 6 member JSON
-- Returns {status, n}: 'seated' (n = seq), 'here'/'taken' (n = the channel the user sits
-- in), 'dead' (this node's lease has lapsed: it may hold no seat).
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {'dead', 0}
end
local user, node = ARGV[2], ARGV[3]
local session, channel = tonumber(ARGV[4]), tonumber(ARGV[5])
local member = cjson.decode(ARGV[6])
local changes = {}
local current = redis.call('HGET', KEYS[1], user)
if current then
  local seat = cjson.decode(current)
  if seat.channel == channel then
    return {'here', channel}
  end
  if seat.node ~= node or seat.session ~= session then
    return {'taken', seat.channel}
  end
  changes[1] = {op = 'leave', channel = seat.channel, member = seat.member,
                node = node, session = session, why = 'switched'}
end
local seq = redis.call('INCR', KEYS[2])
member.instance = seq
local seat = {node = node, session = session, channel = channel, seq = seq, member = member}
redis.call('HSET', KEYS[1], user, cjson.encode(seat))
redis.call('SADD', KEYS[4], user)
changes[#changes + 1] = {op = 'join', channel = channel, member = member,
                         node = node, session = session}
redis.call('PUBLISH', ARGV[1], cjson.encode({seq = seq, changes = changes}))
return {'seated', seq}
