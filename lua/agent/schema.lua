-- schema.lua: small checks that policy files use on their own tables and on
-- the tables the agent hands them (embedded in proctord).
--
-- The agent converts msgpack values to Lua as follows, and this module names
-- the two values Lua cannot express on its own:
--   nil inside a map or an array  -> schema.null        (a frozen sentinel)
--   an empty array                -> schema.empty_array (a frozen sentinel)
--   an empty map                  -> {}
-- Everything else is a plain string, boolean, integer, float or table.

local API_VERSION = 1

local M = { API_VERSION = API_VERSION }

local function frozen(name)
    return setmetatable({}, {
        __newindex = function() error(name .. " is read-only", 2) end,
        __tostring = function() return name end,
        __metatable = false,
    })
end

M.null = frozen("schema.null")
M.empty_array = frozen("schema.empty_array")

function M.is_null(v) return rawequal(v, M.null) end

function M.is_integer(v) return math.type(v) == "integer" end

function M.is_float(v) return math.type(v) == "float" end

-- True for a non-empty sequence 1..n (and for schema.empty_array).
function M.is_array(v)
    if rawequal(v, M.empty_array) then return true end
    if type(v) ~= "table" or rawequal(v, M.null) then return false end
    local n, count = #v, 0
    for k in pairs(v) do
        if math.type(k) ~= "integer" or k < 1 or k > n then return false end
        count = count + 1
    end
    return n > 0 and count == n
end

-- A map is any table that is not an array or one of the sentinels; {} is a map.
function M.is_map(v)
    return type(v) == "table" and not rawequal(v, M.null) and not M.is_array(v)
end

-- INGInious's id rule for problems: ASCII letters, digits, '-', '.', '_'.
function M.is_id(s)
    return type(s) == "string" and s:find("^[A-Za-z0-9_.%-]+$") ~= nil
end

-- Ids of `tests` may also hold '*'.
function M.is_test_id(s)
    return type(s) == "string" and s:find("^[A-Za-z0-9_.%-%*]+$") ~= nil
end

-- Raises (at the caller's line) when `tbl` holds a key that is not in `known`
-- (a list of names): catches typos in the tables admins edit.
function M.check_keys(tbl, known, what)
    local allowed = {}
    for _, k in ipairs(known) do allowed[k] = true end
    for k in pairs(tbl) do
        if not allowed[k] then
            local names = {}
            for _, n in ipairs(known) do names[#names + 1] = n end
            table.sort(names)
            error(string.format("%s: unknown key '%s' (known: %s)", what, tostring(k),
                table.concat(names, ", ")), 2)
        end
    end
    return tbl
end

local function kind(v)
    return math.type(v) or type(v)
end

-- The `defaults` table of a shipped policy file with the entries that an
-- admin's extend(name, { defaults = overrides }) replaces (a shipped file
-- passes its chunk argument `...` as `overrides`; nil when loaded on its own).
-- An override must name an entry of `defaults` and keep its kind (integer,
-- float, string, boolean, table); an entry whose shipped value is `false` is an
-- optional knob and takes any value. A bad override raises the table
-- { override_error = "what: ..." }, which extend() reports at the admin's line.
function M.with_overrides(defaults, overrides, what)
    if overrides == nil then return defaults end
    local out = {}
    for k, v in pairs(defaults) do out[k] = v end
    for k, v in pairs(overrides) do
        local shipped = defaults[k]
        if shipped == nil then
            local names = {}
            for n in pairs(defaults) do names[#names + 1] = tostring(n) end
            table.sort(names)
            error({ override_error = string.format("%s: unknown key '%s' (known: %s)", what,
                tostring(k), table.concat(names, ", ")) }, 0)
        end
        if shipped ~= false and kind(v) ~= kind(shipped) then
            error({ override_error = string.format("%s: '%s' must be a %s, got %s", what,
                tostring(k), kind(shipped), kind(v)) }, 0)
        end
        out[k] = v
    end
    return out
end

-- A deterministic one-line rendering, for messages and example failures.
function M.dump(v, depth)
    depth = depth or 0
    if rawequal(v, M.null) then return "null" end
    if rawequal(v, M.empty_array) then return "[]" end
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) ~= "table" then return tostring(v) end
    if depth > 8 then return "{...}" end
    if M.is_array(v) then
        local items = {}
        for i = 1, #v do items[i] = M.dump(v[i], depth + 1) end
        return "{" .. table.concat(items, ", ") .. "}"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
        return type(a) < type(b)
    end)
    local parts = {}
    for _, k in ipairs(keys) do
        local key = type(k) == "string" and k:find("^[%a_][%w_]*$") and k or "[" .. M.dump(k, depth + 1) .. "]"
        parts[#parts + 1] = key .. " = " .. M.dump(v[k], depth + 1)
    end
    return "{" .. table.concat(parts, ", ") .. "}"
end

-- Deep equality that tells integers from floats (1 ~= 1.0), as the C schema does.
function M.same(a, b)
    if math.type(a) ~= math.type(b) then return false end
    if type(a) ~= "table" or type(b) ~= "table" then return a == b end
    if rawequal(a, b) then return true end
    if rawequal(a, M.null) or rawequal(b, M.null) or rawequal(a, M.empty_array)
        or rawequal(b, M.empty_array) then
        return false
    end
    for k, v in pairs(a) do
        if not M.same(v, b[k]) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

return M
