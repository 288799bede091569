"""INGInious's own grading image (tests/upstream/build.sh), checked by itself,
without an agent: it is built (from the cache when there is one), then each
check runs a throw-away container of it.

Run with the venv's python (the one that holds the pinned inginious package):
    /opt/proctor-venv/bin/python -m pytest tests/upstream/test_upstream_image.py
PROCTOR_UPSTREAM_CACHE sets the build's cache directory.
"""
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = importlib.metadata.version("INGInious")
IMAGE = "proctor/upstream-%s" % VERSION
BASE = os.path.join(sysconfig.get_paths()["purelib"], "base-containers", "base")
SITE = "/usr/lib/python3/dist-packages"
PKG_BIN = sorted(os.listdir(os.path.join(BASE, "bin")))
PKG_API = sorted(f for f in os.listdir(os.path.join(BASE, "inginious_container_api")) if f.endswith(".py"))


def build():
    cmd = [os.path.join(HERE, "build.sh")]
    if os.environ.get("PROCTOR_UPSTREAM_CACHE"):
        cmd.append(os.environ["PROCTOR_UPSTREAM_CACHE"])
    # The package this interpreter holds is the one the image must carry.
    env = dict(os.environ, PROCTOR_VENV=sys.prefix)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, "build.sh failed:\n%s%s" % (p.stdout, p.stderr)
    # Quiet unless it fails.
    assert p.stdout == "" and p.stderr == "", p.stdout + p.stderr


def image_id(name):
    return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", name],
                           capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module", autouse=True)
def built():
    build()


def run(script, image=IMAGE, user=None):
    """Runs `sh -c script` in a fresh container; returns its stdout."""
    cmd = ["docker", "run", "--rm", "--network", "none"]
    if user:
        cmd += ["--user", user]
    p = subprocess.run(cmd + [image, "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    return p.stdout


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def image_sums(paths):
    out = run("sha256sum " + " ".join(paths))
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def test_a_second_build_reuses_everything():
    before = image_id(IMAGE), image_id("proctor/upstream-student")
    build()
    assert (image_id(IMAGE), image_id("proctor/upstream-student")) == before


def test_labels_and_command_are_inginious_own():
    with open(os.path.join(BASE, "Dockerfile")) as f:
        want = re.search(r"^LABEL\s+org\.inginious\.grading\.agent_version=(\d+)", f.read(), re.M).group(1)
    out = subprocess.run(["docker", "image", "inspect", IMAGE, "proctor/upstream", "proctor/upstream-student"],
                         capture_output=True, text=True, check=True).stdout
    main, alias, student = json.loads(out)
    assert main["Id"] == alias["Id"]
    for img, name in ((main, "upstream"), (student, "upstream-student")):
        labels = img["Config"]["Labels"]
        assert labels["org.inginious.grading.name"] == name
        assert labels["org.inginious.grading.agent_version"] == want
        assert img["Config"]["Cmd"] == ["INGInious"]
        assert img["Config"]["User"] in ("", "root")
    # The student image is the same file system, only named otherwise.
    assert student["RootFS"]["Layers"] == main["RootFS"]["Layers"]


def test_the_api_is_the_package_s_own_and_imports():
    out = run("python3 -c 'import inginious_container_api, inginious\n"
              "import inginious_container_api.feedback, inginious_container_api.input, "
              "inginious_container_api.run_student, inginious_container_api.ssh_student, "
              "inginious_container_api.rst, inginious_container_api.lang, inginious_container_api.utils\n"
              "import inginious.feedback, inginious.input, inginious.run_student\n"
              "print(inginious_container_api.__file__); print(inginious.__file__)'")
    assert out.split() == [SITE + "/inginious_container_api/__init__.py", SITE + "/inginious/__init__.py"]
    want = {f: sha256(os.path.join(BASE, "inginious_container_api", f)) for f in PKG_API}
    for pkg in ("inginious_container_api", "inginious"):
        got = image_sums(["%s/%s/%s" % (SITE, pkg, f) for f in PKG_API])
        assert got == {"%s/%s/%s" % (SITE, pkg, f): h for f, h in want.items()}
        assert run("cat %s/%s.pth" % (SITE, pkg)) == pkg + "\n"


def test_the_commands_are_the_package_s_own_with_their_modes():
    for tool in ("getinput", "feedback-result", "run_student", "_run_student_intern", "inginious-ipython"):
        assert tool in PKG_BIN
    out = run("cd /bin && stat -c '%n %a %U %G' " + " ".join(PKG_BIN))
    modes = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert modes == {t: ["700" if t == "INGInious" else "755", "root", "root"] for t in PKG_BIN}
    got = image_sums(["/bin/" + t for t in PKG_BIN])
    assert got == {"/bin/" + t: sha256(os.path.join(BASE, "bin", t)) for t in PKG_BIN}


def test_the_commands_run_under_the_image_s_python():
    # Their shebangs (#!/bin/python3, #! /usr/bin/python3) find Debian's python3,
    # and their imports resolve: each argparse tool answers --help.
    for tool in ("getinput", "feedback-result", "run_student", "feedback-grade", "archive"):
        assert "usage:" in run("%s --help" % tool, user="worker")
    # inginious-ipython really is IPython (a shell escape) with the API preloaded.
    out = run("printf 'print(\"ipy\", 6 * 7)\\n!echo shell-escape\\nprint(callable(set_global_result))\\n' "
              ">/tmp/t.ipy && inginious-ipython /tmp/t.ipy")
    assert out.split("\n")[:3] == ["ipy 42", "shell-escape", "True"]


def test_worker_is_4242_with_home_task():
    assert run("id worker").strip() == "uid=4242(worker) gid=4242(worker) groups=4242(worker)"
    assert run("getent passwd worker").split(":")[5] == "/task"


def test_the_locale_the_image_names_exists():
    # Without it every bash in the image warns on stderr ("cannot change locale").
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "bash", "-c", "locale >/dev/null"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_no_ssh_host_keys_are_shared_by_containers():
    assert run("ls /etc/ssh/ | grep -c ssh_host_ || true").strip() == "0"


def test_the_api_s_ssh_server_lets_its_user_in():
    # utils.start_ssh_server is what ssh debug and ssh_student run: password
    # (chpasswd), host keys, sshd with INGInious's ForceCommand (script). A real
    # OpenSSH client in the same container logs in with that password.
    script = r"""
set -e
mkdir -p /task/student && chown worker:worker /task/student
pw=$(python3 -c "from inginious_container_api.utils import start_ssh_server; print(start_ssh_server('worker')[1])")
printf '#!/bin/sh\necho "%s"\n' "$pw" >/tmp/askpass && chmod 755 /tmp/askpass
echo 'echo in-as-$(id -u); exit' | SSH_ASKPASS=/tmp/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=none \
  setsid -w ssh -tt -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=20 \
  worker@127.0.0.1 2>&1
test -s /task/student/.ssh_logs && echo logged
"""
    out = run(script)
    assert "LOGIN: Good luck !" in out
    assert "in-as-4242" in out
    assert "LOGOUT: Good bye!" in out
    assert out.rstrip().endswith("logged")
