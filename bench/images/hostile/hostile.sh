# Runs as the grading container's runner: reads the agent's start message on
# stdin, then writes application frames (4-byte big-endian length + msgpack)
# on stdout, each MIB MiB long, where MIB comes from the job's input
# ("frames<MIB>", e.g. frames16):
#   1. one array of MIB Mi - 5 one-byte integers: what made an agent that
#      decodes into msgpack-c objects, then copies them, take ~57x the frame;
#   2. the worst frame proctord's decoder accepts: as many objects as its
#      budget allows (65536 + bytes/16), each a one-byte empty string (a node
#      and an allocation each), then one string filling the frame;
#   3. a valid result, so that the job must still grade as a success;
#   4. 5-byte frames declaring 2^32-1 array elements, map entries, string
#      bytes (after the result: the Python agent stops reading at the first
#      frame it cannot decode, so it would never see a result sent after them).
bb=/bin/busybox
be32() {
    $bb printf "$($bb printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
        $(($1 >> 8 & 255)) $(($1 & 255)))"
}
fill() { # fill N OCTAL: N bytes of the byte \OCTAL
    $bb head -c "$1" /dev/zero | $bb tr '\000' "\\$2"
}

# The start message: a length, then msgpack holding the input's strings.
n=$($bb dd bs=1 count=4 2>/dev/null | $bb od -An -tu1 |
    $bb awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
mib=1
for w in $($bb dd bs=1 count="${n:-0}" 2>/dev/null | $bb tr -c 'a-z0-9' ' '); do
    case $w in
    frames[0-9]*) mib=${w#frames} ;;
    esac
done
len=$((mib * 1048576))

# 1. [1, 1, 1, ...]
be32 $len
$bb printf '\335'
be32 $((len - 5))
fill $((len - 5)) 001

# 2. ["", "", ..., "xxx..."]: objs empty strings, one string of the rest.
objs=$((65536 + len / 16 - 2))
be32 $len
$bb printf '\335'
be32 $((objs + 1))
fill $objs 240
$bb printf '\333'
be32 $((len - 10 - objs))
fill $((len - 10 - objs)) 170

# 3. {"type": "result", "result": {"result": "success", "text": "hostile
# frames sent", "grade": 100.0, "problems": {}, "tests": {}, "custom": {},
# "state": "", "archive": ""}}
be32 117
$bb printf '\202\244type\246result\246result\210\246result\247success\244text\263hostile frames sent'
$bb printf '\245grade\313\100\131\000\000\000\000\000\000\250problems\200\245tests\200\246custom\200'
$bb printf '\245state\240\247archive\240'

# 4. array32, map32, str32 and bin32 declaring 2^32-1, with nothing after.
for t in 335 337 333 306; do
    $bb printf "\\000\\000\\000\\005\\$t\\377\\377\\377\\377"
done
