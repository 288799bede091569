#!/usr/bin/env python3
"""Writes the seed corpus of every harness under tests/fuzz/corpus/<harness>/.

Seeds are real messages: backend frames built by INGInious's own message
classes (inginious.common.messages.dump), container frames shaped as the
runtime and INGInious's container API send them, Docker Engine replies as
the API documents them. Run with the venv that has INGInious
(tools/setup.sh): /opt/proctor-venv/bin/python tests/fuzz/make_seeds.py
The output is deterministic, so re-running it leaves git clean.
"""
import json
import os
import struct
import sys

import msgpack
from inginious.common import messages as im

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def app_frame(obj):
    body = pack(obj)
    return struct.pack(">I", len(body)) + body


def docker_frame(stream, payload):
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def write(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- messages -------------------------------------------------------------

INPUT = {
    "q1": "print('Hello, world!')",
    "q2": ["a", "b"],
    "upload": {"filename": "report.txt", "value": b"\x00\x01binary\xff"},
    "@username": "alice,bob",
    "@email": "alice@example.org",
    "@lang": "en",
    "@time": "2026-12-01 07:00:00.000000",
    "@attempts": "3",
    "@random": [0.25, 0.5],
    "@state": "previous",
}
PARAMS = {"run_cmd": None, "network_grading": False,
          "limits": {"time": 30, "hard_time": 90, "memory": 200, "disk": 100}}

BACKEND = {
    "new_job": im.BackendNewJob("4f2c9a3e-6b1d-4e8f-9a7c-2d5e8f1b3c4a", "demo", "hello",
                                {"q1": {"type": "code", "language": "python"}}, INPUT,
                                "docker", "default", PARAMS, False),
    "new_job_ssh": im.BackendNewJob("job-ssh", "demo", "hello", {}, {"q1": "x"}, "docker-ssh",
                                    "default", PARAMS, "ssh"),
    "new_job_debug": im.BackendNewJob("job-dbg", "demo", "upload", {}, INPUT, "docker", "default",
                                      {"limits": {"time": 10, "memory": 100}}, True),
    "new_job_taskless": im.BackendNewJob("job-taskless", None, None, {}, {"@lang": "fr"},
                                         "docker", "default", {}, False),
    "kill_job": im.BackendKillJob("4f2c9a3e-6b1d-4e8f-9a7c-2d5e8f1b3c4a", "previous"),
    "ping": im.Ping(),
}

RESULT = {"result": "success", "text": "Well done", "grade": 100.0,
          "problems": {"q1": ["success", "Correct"], "q2": "feedback only"},
          "tests": {"tag1": True, "auto*": "x"}, "custom": {"k": [1, 2.5, None]},
          "state": "attempt 2", "archive": "H4sIAAAAAAAAA+3BAQ0AAADCoPdPbQ8HFAAAAAAAAAAAAAAAAAAAAAA=",
          "stdout": "out\n", "stderr": "err\n"}
CONTAINER = {
    "result": {"type": "result", "result": RESULT},
    "result_failed": {"type": "result", "result": {"result": "failed", "text": "Wrong",
                                                   "grade": 12.345, "problems": {"q1": ["failed", "no"]}}},
    "result_crash": {"type": "result", "result": {"result": "crash",
                                                  "text": "No feedback was given !",
                                                  "problems": {}, "tests": {}}},
    "result_int_grade": {"type": "result", "result": {"result": "success", "grade": 100}},
    "result_extra_key": {"type": "result", "result": {"result": "success", "oops": 1}},
    "result_nil": {"type": "result", "result": None},
    "run_student": {"type": "run_student", "environment": None, "time_limit": 0,
                    "hard_time_limit": 0, "memory_limit": 0, "share_network": False,
                    "socket_id": "pA1b2C3", "ssh": False, "run_as_root": False},
    "ssh_debug": {"type": "ssh_debug", "ssh_user": "worker", "ssh_key": "s3cret"},
}
AGENT_TO_RUNNER = {
    "start": {"type": "start", "input": {"q1": "x", "@lang": "en"}, "debug": False,
              "envtypes": {"docker": True}, "run_cmd": "run", "run_as_root": False,
              "shared_kernel": True},
    "started": {"type": "run_student_started", "socket_id": "pA1b2C3",
                "container_id": "0123456789ab" * 5 + "cdef"},
    "retval": {"type": "run_student_retval", "socket_id": "pA1b2C3", "retval": 252},
    "intern_command": {"type": "run_student_command", "student_container_id": "c" * 64,
                       "command": "python3 'a b' \"c\\\"d\" e\\ f g h i", "teardown_script": "",
                       "working_dir": "/task/student", "ssh": False, "user": "worker"},
}


def seeds_value_unpack():
    for name, msg in BACKEND.items():
        write("value_unpack", "backend_" + name, im.dump(msg))
    for name, msg in CONTAINER.items():
        write("value_unpack", "container_" + name, pack(msg))
    # Every msgpack family once: float32, uint64, negative ints, str8/16, bin, nesting.
    write("value_unpack", "types", pack([None, True, False, 0, -1, -33, 255, 65536, 2**63 + 5,
                                         -2**63, 1.5, "", "é" * 40, "x" * 300, b"", b"\x00" * 70,
                                         {1: "int key", b"bin": "bin key"}, [[[]]]]))
    write("value_unpack", "float32", b"\xca\x3f\xc0\x00\x00")
    write("value_unpack", "ext_refused", b"\xd4\x01\x02")
    # Issue 8 item 5: declared sizes far past the bytes, and nesting past the cap.
    write("value_unpack", "hostile_array32", b"\xdd\xff\xff\xff\xff")
    write("value_unpack", "hostile_array16", b"\xdc\xff\xff")
    write("value_unpack", "hostile_map32", b"\xdf\xff\xff\xff\xff\xa1k")
    write("value_unpack", "hostile_deep", b"\x91" * 80 + b"\xc0")


def seeds_backend_decode():
    for name, msg in BACKEND.items():
        write("backend_decode", name, im.dump(msg))
    write("backend_decode", "hostile_array32", b"\x81\xa5@type\xdd\xff\xff\xff\xff")
    write("backend_decode", "unknown_type", pack({"@type": "ClientHello", "name": "x"}))
    write("backend_decode", "bad_utf8", pack({"@type": "BackendKillJob", "job_id": b"\xff",
                                              "state": ""}).replace(b"\xc4\x01\xff", b"\xa1\xff"))


def stream_seed(mode, splits, payload):
    return bytes([mode, len(splits)] + [s - 1 for s in splits]) + payload


def seeds_docker_stream():
    res = app_frame(CONTAINER["result"])
    rs = app_frame(CONTAINER["run_student"])
    write("docker_stream", "result_one_frame", stream_seed(0x0f, [], docker_frame(1, res)))
    write("docker_stream", "result_cut", stream_seed(0x0f, [3, 5, 8, 1, 30],
                                                     docker_frame(1, res)))
    write("docker_stream", "interleaved", stream_seed(
        0x0e, [9, 7], docker_frame(2, b"INGInious: starting\n") + docker_frame(1, rs[:10]) +
        docker_frame(0, b"") + docker_frame(2, b"log\n") + docker_frame(1, rs[10:] + res)))
    write("docker_stream", "small_caps", stream_seed(0x00, [1, 1, 1], docker_frame(1, res)))
    write("docker_stream", "bad_stream_id", stream_seed(0x0f, [], docker_frame(1, rs) +
                                                        b"\x07\x00\x00\x00\x00\x00\x00\x01z"))
    write("docker_stream", "truncated", stream_seed(0x0f, [4], docker_frame(1, res)[:-7]))
    write("docker_stream", "zero_length_msg", stream_seed(0x0f, [], docker_frame(
        1, b"\x00\x00\x00\x00")))


JSON_REPLIES = {
    "info": {"ID": "X", "Containers": 3, "NCPU": 2, "MemTotal": 8340000000,
             "ServerVersion": "24.0.7", "CgroupVersion": "2", "DefaultRuntime": "runc",
             "Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"},
                          "nvidia": {"path": "nvidia-container-runtime"}}},
    "images": [{"Id": "sha256:" + "a" * 64, "Created": 1700000000, "Size": 1234,
                "Labels": {"org.inginious.grading.name": "default",
                           "org.inginious.grading.agent_version": "3",
                           "org.inginious.grading.ports": "22,8080"}},
               {"Id": "sha256:" + "b" * 64, "Created": 1700000001, "Labels": None}],
    "containers": [{"Id": "c" * 64, "State": "running",
                    "Labels": {"org.proctor.agent": "proctord-x", "org.proctor.role": "grading"}},
                   {"Id": "d" * 64, "State": "exited", "Labels": {}}],
    "create": {"Id": "e" * 64, "Warnings": ["Your kernel does not support swap limit"]},
    "inspect": {"Id": "f" * 64, "State": {"Status": "exited", "Running": False,
                                          "OOMKilled": True, "ExitCode": 137, "Pid": 0}},
    "wait": {"StatusCode": 0, "Error": {"Message": ""}},
    "error": {"message": "No such container: c1"},
}
# Request kinds of fuzz_docker_reply.c, in the order of its enum.
KINDS = ["info", "images", "images_label", "containers", "create", "start", "kill", "remove",
         "inspect", "wait", "cpu", "events"]


def seeds_docker_reply():
    def seed(kind, status_index, body):
        mode = KINDS.index(kind) | status_index << 4
        return bytes([mode, 0]) + body
    for kind in ["info", "images", "containers", "create", "inspect", "wait"]:
        write("docker_reply", kind, seed(kind, 0, json.dumps(JSON_REPLIES[kind]).encode()))
    write("docker_reply", "images_label", seed("images_label", 0,
                                               json.dumps(JSON_REPLIES["images"]).encode()))
    write("docker_reply", "create_500", seed("create", 6, b'{"message":"boom"}'))
    write("docker_reply", "inspect_404", seed("inspect", 4,
                                              json.dumps(JSON_REPLIES["error"]).encode()))
    write("docker_reply", "start_304", seed("start", 3, b""))
    # Issue 8 item 7: numbers out of every integer range.
    write("docker_reply", "info_huge_ncpu", seed("info", 0, b'{"NCPU": 1e300, "MemTotal": -1e30}'))
    write("docker_reply", "wait_huge_code", seed("wait", 0, b'{"StatusCode": 1e10}'))
    write("docker_reply", "inspect_nan_pid", seed("inspect", 0,
                                                  b'{"Id": "x", "State": {"Pid": 1e999}}'))
    write("docker_reply", "cpu_huge", seed("cpu", 0,
                                           b'{"cpu_stats":{"cpu_usage":{"total_usage":1e999}}}\n'))
    write("docker_reply", "events_huge_time", seed("events", 0, b'{"Action":"die","Actor":{"ID":'
                                                   b'"c1","Attributes":{}},"time":1e17}\n'))
    write("docker_reply", "remove_204", seed("remove", 2, b""))
    write("docker_reply", "kill_409", seed("kill", 5, b'{"message":"is not running"}'))
    stats = b"".join(json.dumps(s).encode() + b"\n" for s in [
        {"read": "2026-12-01T07:00:00Z", "cpu_stats": {"cpu_usage": {"total_usage": 123456789}}},
        {"read": "x"},
        {"cpu_stats": {"cpu_usage": {"total_usage": 0}}},
        {"cpu_stats": {"cpu_usage": {"total_usage": 223456789}}}])
    write("docker_reply", "cpu_stream", seed("cpu", 0, stats))
    events = b"".join(json.dumps(e).encode() + b"\n" for e in [
        {"Type": "container", "Action": "die", "Actor": {"ID": "c" * 64, "Attributes": {
            "exitCode": "1", "org.proctor.job": "j1"}}, "time": 1700000001,
         "timeNano": 1700000001000000100},
        {"Type": "container", "Action": "oom", "Actor": {"ID": "d" * 64, "Attributes": {}},
         "time": 1700000002, "timeNano": 1700000002000000200},
        {"status": "die", "id": "e" * 64, "Actor": {"Attributes": {"exitCode": "oops"}},
         "time": 1700000003}])
    write("docker_reply", "events_stream", seed("events", 0, events))


UPGRADED = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")


def seeds_docker_attach():
    res = app_frame(CONTAINER["result"])
    write("docker_attach", "upgraded_result", b"\x00" + UPGRADED + docker_frame(2, b"log\n") +
          docker_frame(1, res))
    write("docker_attach", "ok_200", b"\x00" + UPGRADED.replace(b"101 UPGRADED", b"200 OK") +
          docker_frame(1, b"hello"))
    write("docker_attach", "tty", b"\x01" + UPGRADED + b"raw tty output\r\n")
    write("docker_attach", "small_max_frame", b"\x02" + UPGRADED + docker_frame(1, b"x" * 100))
    write("docker_attach", "truncated", b"\x00" + UPGRADED + docker_frame(1, b"abc")[:-1])
    body = b'{"message":"No such container: c1"}'
    write("docker_attach", "refused_404", b"\x00" + b"HTTP/1.1 404 Not Found\r\n"
          b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
          b"\r\n\r\n" + body)
    write("docker_attach", "refused_until_eof", b"\x00HTTP/1.1 500 Internal\r\n\r\n" + body)


def seeds_rt_msgpack():
    for name, msg in {**CONTAINER, **AGENT_TO_RUNNER}.items():
        write("rt_msgpack", "object_" + name, b"\x00" + pack(msg))
    stream = app_frame(AGENT_TO_RUNNER["start"]) + app_frame(AGENT_TO_RUNNER["started"]) + \
        app_frame(AGENT_TO_RUNNER["retval"])
    write("rt_msgpack", "frames_agent", bytes([1 | 5 << 1]) + stream)
    write("rt_msgpack", "frames_ipc", bytes([1 | 2 << 1]) + app_frame(CONTAINER["run_student"]))
    write("rt_msgpack", "frames_too_long", b"\x01\x7f\xff\xff\xff")


def seeds_rt_json():
    feedback = {"result": "failed", "text": "Wrong answer\n\n.. code::\n\n  x = 1",
                "grade": 66.67, "problems": {"q1": ["failed", "Expected 3"]},
                "tests": {"ok": True}, "custom": {"score": 2, "ratio": 1e-05},
                "state": "s", "archive": None}
    write("rt_json", "feedback", json.dumps(feedback).encode())
    write("rt_json", "inputdata", json.dumps({"q1": "print(\"\\u00e9\")", "q2": ["a", "b"],
                                              "upload": {"filename": "f", "value": "AAEC"},
                                              "@random": [0.1, 0.9], "@attempts": "1"}).encode())
    write("rt_json", "python_floats", b'[NaN, Infinity, -Infinity, 1e300, -0.0, 5e-324, 12345678901234567890]')
    write("rt_json", "escapes", b'"\\ud83d\\ude00 \\u0000 \\t \\" \\/"')


def seeds_rt_args():
    def argv(remainder, *words):
        return bytes([remainder]) + b"\x00".join(w.encode() for w in words)
    write("rt_args", "feedback_result", argv(0, "-i", "q1", "success"))
    write("rt_args", "feedback_msg", argv(0, "-ae", "-m", "line\\n\\x41\\u00e9\\U0001F600", "--id=q2"))
    write("rt_args", "run_student", argv(1, "--time", "10", "--memory", "100", "prog", "-a", "--b"))
    write("rt_args", "negative", argv(0, "--time", "-5", "-3", "--", "-h"))
    write("rt_args", "grade_repr", b"\x00" + struct.pack("<d", 66.67))
    write("rt_args", "int_text", argv(0, "  42\n"))


def seeds_rt_intern():
    cmds = ["prog a b c d e f g", "python3 'a b' \"c\\\"d\" e\\ f", "echo 'run_student: no command was given'",
            " ".join("w%d" % i for i in range(16)), "unterminated 'quote", "tab\tand\nnewline", ""]
    for i, c in enumerate(cmds):
        write("rt_intern", "shlex_%d" % i, b"\x00" + c.encode())
    write("rt_intern", "command", b"\x01" + pack(AGENT_TO_RUNNER["intern_command"]))
    write("rt_intern", "command_then_bytes", b"\x01" + pack(AGENT_TO_RUNNER["intern_command"]) +
          b"009")
    write("rt_intern", "command_cut", b"\x01" + pack(AGENT_TO_RUNNER["intern_command"])[:40])


def seeds_rt_ipc():
    req = dict(CONTAINER["run_student"])
    write("rt_ipc", "request", b"\x00" + app_frame(req))
    write("rt_ipc", "request_in_bytes", b"\x00" + app_frame(dict(req, environment="student",
                                                                  time_limit=5)))
    write("rt_ipc", "two_requests", b"\x07" + app_frame(req) + app_frame(dict(req, socket_id="p2")))
    write("rt_ipc", "bad_socket_id", b"\x03" + app_frame(dict(req, socket_id="../main")))
    write("rt_ipc", "not_run_student", b"\x01" + app_frame({"type": "done"}))
    write("rt_ipc", "not_a_map", b"\x00" + app_frame([1, 2, 3]))
    write("rt_ipc", "too_long", b"\x00\x00\x01\x00\x01")


def seeds_policy_results():
    for name, msg in CONTAINER.items():
        if name.startswith("result"):
            write("policy_results", name, b"\x01" + pack(msg))
            # The same, judged by the built-in default (no policy file).
            write("policy_results", "default_" + name, b"\x05" + pack(msg))
    write("policy_results", "bad_problem_id", b"\x00" + pack(
        {"type": "result", "result": {"result": "success", "problems": {"bad id!": "x"}}}))
    write("policy_results", "invalid_utf8_text", b"\x02" + pack(
        {"type": "result", "result": {"result": "failed", "text": "caf\xe9"}}).replace(
            "caf\xe9".encode(), b"caf\xe9\xff"))


def main():
    for fn in [seeds_value_unpack, seeds_backend_decode, seeds_docker_stream, seeds_docker_reply,
               seeds_docker_attach, seeds_rt_msgpack, seeds_rt_json, seeds_rt_args, seeds_rt_intern,
               seeds_rt_ipc, seeds_policy_results]:
        fn()
    n = sum(len(files) for _, _, files in os.walk(CORPUS))
    print(f"make_seeds: {n} seeds under {os.path.relpath(CORPUS)}", file=sys.stderr)


if __name__ == "__main__":
    main()
