-- Every seat and the seq they are current at, read in one step.
-- KEYS: 1 seats, 2 seq
local seq = redis.call('GET', KEYS[2])
if not seq then
  seq = '0'
end
return {seq, redis.call('HVALS', KEYS[1])}
