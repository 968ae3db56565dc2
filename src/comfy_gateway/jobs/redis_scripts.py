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
-- A tenant's pending and processing jobs, beside the global queue and leases (fair share).
local function tenant_of(key) return redis.call('HGET', key, 'tenant') or 'anonymous' end
local function queue_in(key, id, created)
    local tenant = tenant_of(key)
    redis.call('ZADD', K_PENDING, created, id)
    redis.call('ZADD', k_tqueue(tenant), created, id)
    redis.call('SADD', K_TENANTS, tenant)
end
-- A tenant with no job left in the queue or running loses its turn: back, it is served first anyway.
local function forget_if_idle(tenant)
    if redis.call('EXISTS', k_tqueue(tenant)) == 0 and redis.call('EXISTS', k_trunning(tenant)) == 0 then
        redis.call('HDEL', K_TURNS, tenant)
        if redis.call('EXISTS', K_TURNS) == 0 then redis.call('DEL', K_TURN) end
    end
end
local function queue_out(key, id)
    local tenant = tenant_of(key)
    local queue = k_tqueue(tenant)
    redis.call('ZREM', K_PENDING, id)
    redis.call('ZREM', queue, id)
    if redis.call('ZCARD', queue) == 0 then redis.call('SREM', K_TENANTS, tenant) end
    forget_if_idle(tenant)
end
local function running_in(key, id, created) redis.call('ZADD', k_trunning(tenant_of(key)), created, id) end
local function running_out(key, id)
    local tenant = tenant_of(key)
    redis.call('ZREM', k_trunning(tenant), id)
    forget_if_idle(tenant)
end
-- rank: {-priority, tenant's last turn, created_at, id}; the lowest goes first
local function ranks_before(a, b)
    for i = 1, #a do
        if a[i] ~= b[i] then return a[i] < b[i] end
    end
    return false
end
-- The oldest job of `queue` whose type is in `types`, a JSON list ('' or nil: any type).
local function first_of_types(queue, types)
    if not types or types == '' then return redis.call('ZRANGE', queue, 0, 0)[1] end
    local wanted = {}
    for _, name in ipairs(cjson.decode(types)) do wanted[name] = true end
    local start = 0
    while true do
        local page = redis.call('ZRANGE', queue, start, start + 99)
        if #page == 0 then return nil end
        for _, id in ipairs(page) do
            if wanted[redis.call('HGET', k_job(id), 'type')] then return id end
        end
        start = start + 100
    end
end
-- The next job in fair-share order (see JobStore.claim) of one of `types` (JSON list, '': any);
-- caps: tenant -> most processing jobs.
local function fair_head(caps, types)
    local best, best_rank
    for _, tenant in ipairs(redis.call('SMEMBERS', K_TENANTS)) do
        local cap = caps[tenant]
        local queue = k_tqueue(tenant)
        local head = first_of_types(queue, types)
        if head and (cap == nil or redis.call('ZCARD', k_trunning(tenant)) < cap) then
            local rank = {-tonumber(redis.call('HGET', k_job(head), 'priority') or '0'),
                          tonumber(redis.call('HGET', K_TURNS, tenant) or '0'),
                          tonumber(redis.call('ZSCORE', queue, head)), head}
            if best == nil or ranks_before(rank, best_rank) then best, best_rank = head, rank end
        end
    end
    return best
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
    queue_in(key, id, created)
elseif state == 'processing' then
    redis.call('ZADD', K_LEASES, ARGV[3], id)
    running_in(key, id, created)
else
    redis.call('ZADD', K_FINISHED, ARGV[3], id)
end
return 1
"""

# ARGV: prefix, now, owner, lease expiry, has instance ('1'/'0'), instance, job id or '' (the next one),
# caps as a JSON object, job types the next one may have as a JSON list or '' (any).
# Answers how many jobs are pending after the claim, then the claimed job's fields (none: no job).
CLAIM = """
local id = ARGV[7]
if id == '' then
    id = fair_head(cjson.decode(ARGV[8]), ARGV[9])
    if not id then return {redis.call('ZCARD', K_PENDING)} end
end
local key = k_job(id)
local f = redis.call('HMGET', key, 'state', 'created_at', 'started_at')
if f[1] ~= 'pending' then return {redis.call('ZCARD', K_PENDING)} end
queue_out(key, id)
running_in(key, id, f[2])
redis.call('HSET', K_TURNS, tenant_of(key), redis.call('INCR', K_TURN))
move_state(key, id, f[2], 'pending', 'processing')
redis.call('HINCRBY', key, 'attempt', 1)
redis.call('HSET', key, 'lease_owner', ARGV[3], 'lease_expires_at', ARGV[4], 'updated_at', ARGV[2],
           'progress', '0.0')
if not f[3] then redis.call('HSET', key, 'started_at', ARGV[2]) end
set_instance(key, id, f[2], ARGV[5] == '1' and ARGV[6])
redis.call('ZADD', K_LEASES, ARGV[4], id)
local answer = redis.call('HGETALL', key)
table.insert(answer, 1, redis.call('ZCARD', K_PENDING))
return answer
"""

# ARGV: prefix, id, attempt, instance, placement as JSON, now, prompt id or ''
PLACE = """
local id = ARGV[2]
local key = k_job(id)
local f = redis.call('HMGET', key, 'state', 'attempt', 'created_at')
if f[1] ~= 'processing' or f[2] ~= ARGV[3] then return 0 end
set_instance(key, id, f[3], ARGV[4])
redis.call('HSET', key, 'placement', ARGV[5], 'updated_at', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', key, 'prompt_id', ARGV[7]) end
return 1
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
# Answers the finished job's fields, or 0.
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
if state == 'pending' then
    queue_out(key, id)
else
    redis.call('ZREM', K_LEASES, id)
    running_out(key, id)
end
move_state(key, id, f[3], state, ARGV[4])
redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
redis.call('HSET', key, 'finished_at', ARGV[5], 'updated_at', ARGV[5], unpack(ARGV, 6))
redis.call('ZADD', K_FINISHED, ARGV[5], id)
return redis.call('HGETALL', key)
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
queue_in(key, id, f[3])  -- before running_out: the tenant is never idle in between, its turn is kept
running_out(key, id)
move_state(key, id, f[3], 'processing', 'pending')
set_instance(key, id, f[3], false)
redis.call('HDEL', key, 'lease_owner', 'lease_expires_at', 'prompt_id')
redis.call('HSET', key, 'history', history, 'updated_at', ARGV[4], 'progress', '0.0')
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
queue_out(key, id)
running_out(key, id)
for _, k in ipairs({K_LEASES, K_FINISHED, K_ALL, k_state(f[1])}) do redis.call('ZREM', k, id) end
local kt = k_type(f[2])
redis.call('ZREM', kt, id)
if redis.call('ZCARD', kt) == 0 then redis.call('SREM', K_TYPES, f[2]) end
set_instance(key, id, f[3], false)
redis.call('DEL', key)
return data
"""

# ARGV: prefix. Jobs filed before tenants existed go into their tenant's queue or running set (at open;
# idempotent). Returns how many pending jobs were added.
INDEX_TENANTS = """
local added = 0
local pending = redis.call('ZRANGE', K_PENDING, 0, -1, 'WITHSCORES')
for i = 1, #pending, 2 do
    local id = pending[i]
    local tenant = tenant_of(k_job(id))
    if not redis.call('ZSCORE', k_tqueue(tenant), id) then
        queue_in(k_job(id), id, pending[i + 1])
        added = added + 1
    end
end
for _, id in ipairs(redis.call('ZRANGE', K_LEASES, 0, -1)) do
    running_in(k_job(id), id, redis.call('HGET', k_job(id), 'created_at') or '0')
end
return added
"""

# ARGV: prefix, id, one delivery attempt as JSON (appended to a JSON array kept as text, like history)
ADD_WEBHOOK_ATTEMPT = """
local key = k_job(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
local attempts = redis.call('HGET', key, 'webhook_deliveries')
if not attempts or attempts == '[]' then
    attempts = '[' .. ARGV[3] .. ']'
else
    attempts = string.sub(attempts, 1, -2) .. ',' .. ARGV[3] .. ']'
end
redis.call('HSET', key, 'webhook_deliveries', attempts)
return 1
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
