"""The Lua scripts behind RedisJobStore: every multi-key state change of a job is one of them.

Each script is registered once per store with `LUA_KEYS + LUA_HELPERS` in front; ARGV[1] is always
the key prefix (see `redis_keys.py`).
"""

LUA_HELPERS = """
local function set_instance(key, id, created, new)
    local old = redis.call('HGET', key, 'instance')
    if old == new then return end
    if old then
        local k = k_instance(old)
        redis.call('ZREM', k, id)
        if redis.call('ZCARD', k) == 0 then redis.call('SREM', K_INSTANCES, old) end
    end
    if new then
        redis.call('ZADD', k_instance(new), created, id)
        redis.call('SADD', K_INSTANCES, new)
        redis.call('HSET', key, 'instance', new)
    else
        redis.call('HDEL', key, 'instance')
    end
end
local function move_state(key, id, created, old, new)
    redis.call('ZREM', k_state(old), id)
    redis.call('ZADD', k_state(new), created, id)
    redis.call('HSET', key, 'state', new)
end
"""

# ARGV: prefix, id, queue score (lease expiry or finished_at), field/value pairs...
CREATE = """
local id = ARGV[2]
local key = k_job(id)
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, unpack(ARGV, 4))
local f = redis.call('HMGET', key, 'state', 'type', 'created_at', 'instance')
local state, created = f[1], f[3]
redis.call('ZADD', K_ALL, created, id)
redis.call('ZADD', k_state(state), created, id)
redis.call('ZADD', k_type(f[2]), created, id)
redis.call('SADD', K_TYPES, f[2])
if f[4] then
    redis.call('ZADD', k_instance(f[4]), created, id)
    redis.call('SADD', K_INSTANCES, f[4])
end
if state == 'pending' then
    redis.call('ZADD', K_PENDING, created, id)
elseif state == 'processing' then
    redis.call('ZADD', K_LEASES, ARGV[3], id)
else
    redis.call('ZADD', K_FINISHED, ARGV[3], id)
end
return 1
"""

# ARGV: prefix, now, owner, lease expiry, has instance ('1'/'0'), instance, [job id]
CLAIM = """
local id = ARGV[7]
if not id then
    local head = redis.call('ZRANGE', K_PENDING, 0, 0)
    if #head == 0 then return false end
    id = head[1]
end
local key = k_job(id)
local f = redis.call('HMGET', key, 'state', 'created_at', 'started_at')
if f[1] ~= 'pending' then return false end
redis.call('ZREM', K_PENDING, id)
move_state(key, id, f[2], 'pending', 'processing')
redis.call('HINCRBY', key, 'attempt', 1)
redis.call('HSET', key, 'lease_owner', ARGV[3], 'lease_expires_at', ARGV[4], 'updated_at', ARGV[2],
           'progress', '0.0')
if not f[3] then redis.call('HSET', key, 'started_at', ARGV[2]) end
set_instance(key, id, f[2], ARGV[5] == '1' and ARGV[6])
redis.call('ZADD', K_LEASES, ARGV[4], id)
return redis.call('HGETALL', key)
"""

# ARGV: prefix, id, attempt, check owner ('1'/'0'), owner, new lease expiry or '', field/value pairs...
FENCED_SET = """
local key = k_job(ARGV[2])
local f = redis.call('HMGET', key, 'state', 'attempt', 'lease_owner')
if f[1] ~= 'processing' or f[2] ~= ARGV[3] then return 0 end
if ARGV[4] == '1' and f[3] ~= ARGV[5] then return 0 end
redis.call('HSET', key, unpack(ARGV, 7))
if ARGV[6] ~= '' then redis.call('ZADD', K_LEASES, ARGV[6], ARGV[2]) end
return 1
"""

# ARGV: prefix, id, attempt or '' (any unfinished job), new state, now, field/value pairs...
FINISH = """
local id = ARGV[2]
local key = k_job(id)
local f = redis.call('HMGET', key, 'state', 'attempt', 'created_at')
local state = f[1]
if ARGV[3] == '' then
    if state ~= 'pending' then return 0 end
elseif state ~= 'processing' or f[2] ~= ARGV[3] then
    return 0
end
if state == 'pending' then redis.call('ZREM', K_PENDING, id) else redis.call('ZREM', K_LEASES, id) end
move_state(key, id, f[3], state, ARGV[4])
redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
redis.call('HSET', key, 'finished_at', ARGV[5], 'updated_at', ARGV[5], unpack(ARGV, 6))
redis.call('ZADD', K_FINISHED, ARGV[5], id)
return 1
"""

# ARGV: prefix, id, attempt, now, error as JSON. History is a compact JSON array, appended as text.
REQUEUE = """
local id = ARGV[2]
local key = k_job(id)
local f = redis.call('HMGET', key, 'state', 'attempt', 'created_at', 'instance', 'history')
if f[1] ~= 'processing' or f[2] ~= ARGV[3] then return 0 end
local entry = '{"attempt":' .. f[2] .. ',"instance":' .. (f[4] and cjson.encode(f[4]) or 'null')
    .. ',"error":' .. ARGV[5] .. ',"at":' .. ARGV[4] .. '}'
local history = f[5]
if not history or history == '[]' then
    history = '[' .. entry .. ']'
else
    history = string.sub(history, 1, -2) .. ',' .. entry .. ']'
end
redis.call('ZREM', K_LEASES, id)
move_state(key, id, f[3], 'processing', 'pending')
set_instance(key, id, f[3], false)
redis.call('HDEL', key, 'lease_owner', 'lease_expires_at', 'prompt_id')
redis.call('HSET', key, 'history', history, 'updated_at', ARGV[4], 'progress', '0.0')
redis.call('ZADD', K_PENDING, f[3], id)
return 1
"""

# ARGV: prefix, id, attempt, now, owner, lease expiry
TAKE_OVER = """
local key = k_job(ARGV[2])
local f = redis.call('HMGET', key, 'state', 'attempt', 'lease_expires_at')
if f[1] ~= 'processing' or f[2] ~= ARGV[3] then return false end
if f[3] and tonumber(f[3]) > tonumber(ARGV[4]) then return false end
redis.call('HINCRBY', key, 'attempt', 1)
redis.call('HSET', key, 'lease_owner', ARGV[5], 'lease_expires_at', ARGV[6], 'updated_at', ARGV[4])
redis.call('ZADD', K_LEASES, ARGV[6], ARGV[2])
return redis.call('HGETALL', key)
"""

# ARGV: prefix, id
DELETE = """
local id = ARGV[2]
local key = k_job(id)
local data = redis.call('HGETALL', key)
if #data == 0 then return false end
local f = redis.call('HMGET', key, 'state', 'type', 'created_at')
for _, k in ipairs({K_PENDING, K_LEASES, K_FINISHED, K_ALL, k_state(f[1])}) do redis.call('ZREM', k, id) end
local kt = k_type(f[2])
redis.call('ZREM', kt, id)
if redis.call('ZCARD', kt) == 0 then redis.call('SREM', K_TYPES, f[2]) end
set_instance(key, id, f[3], false)
redis.call('DEL', key)
return data
"""

# ARGV: prefix, state names... -> {total, state counts..., {type, count, ...}, {instance, count, ...}}
COUNTS = """
local states = {}
for i = 2, #ARGV do states[#states + 1] = redis.call('ZCARD', k_state(ARGV[i])) end
local function per(set_key, index)
    local out = {}
    for _, name in ipairs(redis.call('SMEMBERS', set_key)) do
        out[#out + 1] = name
        out[#out + 1] = redis.call('ZCARD', index(name))
    end
    return out
end
return {redis.call('ZCARD', K_ALL), states, per(K_TYPES, k_type), per(K_INSTANCES, k_instance)}
"""


# CREATE behind an idempotency key. ARGV: prefix, id, score, idempotency key name, its ttl (ms),
# field/value pairs... Returns the id of the job the key already names, or CREATE's 1 / 0.
CREATE_ONCE = """
local named = redis.call('GET', ARGV[4])
if named and redis.call('EXISTS', k_job(named)) == 1 then return named end
""" + CREATE.replace("unpack(ARGV, 4)", "unpack(ARGV, 6)").replace(
    "return 1\n", "redis.call('SET', ARGV[4], ARGV[2], 'PX', ARGV[5])\nreturn 1\n")
