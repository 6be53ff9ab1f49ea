-- Prelude of the scripts that change a held seat (KEYS[1]: seats; ARGV[2]: user, ARGV[3]:
-- node, ARGV[4]: session): the user's seat if that session of that node holds it, else nil.
local function held_seat()
  local current = redis.call('HGET', KEYS[1], ARGV[2])
  if not current then
    return nil
  end
  local seat = cjson.decode(current)
  if seat.node ~= ARGV[3] or seat.session ~= tonumber(ARGV[4]) then
    return nil
  end
  return seat
end
