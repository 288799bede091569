-- units.lua: named unit helpers for policy files (embedded in proctord).
--
-- Policies write `MiB(512)` or `seconds(30)` instead of bare numbers, so a
-- reader always knows the unit. Every helper returns a Lua integer in the base
-- unit named by the key suffix the host expects:
--   *_mib   memory in MiB        (MiB, GiB)
--   *_bytes sizes in bytes        (bytes, KiB_bytes, MiB_bytes, GiB_bytes)
--   *_s     durations in seconds  (seconds, minutes, hours)
-- Fractions are refused: a size or a duration is always a whole number.

local API_VERSION = 1

local M = { API_VERSION = API_VERSION }

local function whole(n, what)
    if math.type(n) == "integer" then
        return n
    end
    if math.type(n) == "float" and n == math.floor(n) and n >= math.mininteger and n <= math.maxinteger then
        return math.tointeger(n)
    end
    error(what .. " expects a whole number, got " .. tostring(n), 3)
end

-- Multiplies without wrapping around: Lua integers overflow silently.
local function scaled(n, factor, what)
    n = whole(n, what)
    if n > math.maxinteger // factor or n < math.mininteger // factor then
        error(what .. "(" .. n .. ") does not fit in an integer", 3)
    end
    return n * factor
end

function M.MiB(n) return scaled(n, 1, "MiB") end
function M.GiB(n) return scaled(n, 1024, "GiB") end

function M.bytes(n) return scaled(n, 1, "bytes") end
function M.KiB_bytes(n) return scaled(n, 1024, "KiB_bytes") end
function M.MiB_bytes(n) return scaled(n, 1024 * 1024, "MiB_bytes") end
function M.GiB_bytes(n) return scaled(n, 1024 * 1024 * 1024, "GiB_bytes") end

function M.seconds(n) return scaled(n, 1, "seconds") end
function M.minutes(n) return scaled(n, 60, "minutes") end
function M.hours(n) return scaled(n, 3600, "hours") end

-- The names a policy file sees as read-only globals.
M.EXPORTS = {
    "MiB", "GiB", "bytes", "KiB_bytes", "MiB_bytes", "GiB_bytes", "seconds", "minutes", "hours",
}

return M
