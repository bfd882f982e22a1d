"""Guest-side player of the lab's VAST tools: vast_bootstrap.sh and vman.sh hand over to it.

Runs inside the lab guest with /usr/libexec/platform-python (Python 3.6, standard library only).
It validates its arguments as the real tools would, takes a lock so a tool never runs twice at
once, then plays the tool's timeline from the scenario file the lab wrote at power-on: it sleeps on
the lab clock, writes the install log to stdout, starts containers through the guest's `docker`,
appends world events for the lab's VMS, and exits with the scenario's status.

    player.py bootstrap --interface <mgmt ip> [--skip-prompt]
    VMS_PASSWORD=<password> player.py vman <build> <pem> vcli -u <user> -c cluster create \
        --build <build> --name <name> --loopback [--vsettings K=V,...]
    player.py vman <build> <pem> start
    player.py bringup start        (/vast/bin/vms-bringup inside cnode-1: `docker exec` hands over)

vman.sh reads EXTRA_VOLUME_MOUNTS from its environment, as the real one does: when set, it is added
to the volume mounts and vman.sh says so (backend/lab/facts.py).

vcli's password comes from the environment, VMS_PASSWORD, and a `-p <password>` is refused: on the
command line every user of the guest could read it in /proc/<pid>/cmdline (why the environment, and
what is not known about the real vcli: backend/lab/facts.py, VCLI_PASSWORD). vcli logs in to the
guest's VMS (POST /api/token/ at the address the lab writes in /run/lab/vast/vms.json), which
checks the password: the player never knows it, and nothing in the guest holds it or a hash of it.

Environment (for tests; the guest needs none): LAB_ROOT (prefix of every guest path, default /),
LAB_DOCKER (the docker program, default docker), LAB_VMS_LOGIN_WAIT (wall seconds vcli waits for
its VMS, default 600), LAB_OPENSSL (default openssl).
"""

import errno
import fcntl
import glob
import json
import os
import signal
import ssl
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.environ.get("LAB_ROOT", "/")
DOCKER = os.environ.get("LAB_DOCKER", "docker")
OPENSSL = os.environ.get("LAB_OPENSSL", "openssl")
CLOCK = "/run/lab/clock.json"
SCENARIO = "/run/lab/vast/scenario.json"
VMS_ADDRESS = "/run/lab/vast/vms.json"
PASSWORD_ENV = "VMS_PASSWORD"
LOGIN_WAIT_S = 600.0  # wall seconds vcli waits for the lab's VMS (see vms_login)
EVENTS = "/var/lib/lab/vast/events.jsonl"
KMSG = "/dev/kmsg"
BUNDLES = "/vast/bundles"
MAX_SLEEP = 0.25  # wall seconds between looks at the clock file (the lab may change its speed)


def path(guest_path):
    return os.path.join(ROOT, guest_path.lstrip("/"))


def kernel_usec(since_boot_lab):
    """The kernel's timestamp for a record written now: /proc/uptime, the guest kernel's own clock
    (the one the agent turns into epoch seconds), not lab seconds, which run N-fold faster."""
    try:
        with open(path("/proc/uptime")) as handle:
            return int(float(handle.read().split()[0]) * 1e6)
    except (OSError, ValueError, IndexError):
        return int(max(0.0, since_boot_lab) * 1e6)


class Failed(Exception):
    def __init__(self, message, code=1):
        Exception.__init__(self, message)
        self.code = code


# --- the lab clock -----------------------------------------------------------------------------

class LabClock:
    """lab time = origin_target + scale * (wall - origin_wall), capped by the holds in force
    ([limit, until_wall, pace, since_wall]: the lab is doing real work the world does in a known
    time, the limit moving on at `pace` lab seconds per wall second since `since_wall`; see
    backend/lab/worldclock.py, whose `evaluate` this repeats); re-read when the file changes."""

    def __init__(self):
        self._key = None
        now = time.time()
        self.scale, self.origin_wall, self.origin_target = 1.0, now, now
        self.holds = []
        self._load()

    def _load(self):
        try:
            stat = os.stat(path(CLOCK))
        except OSError:
            return
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if key == self._key:
            return
        try:
            with open(path(CLOCK)) as handle:
                data = json.load(handle)
            self.scale = float(data["scale"])
            self.origin_wall = float(data["origin_wall"])
            self.origin_target = float(data["origin_target"])
            self.holds = [[float(x) for x in (list(hold) + [0.0, 0.0])[:4]] for hold in data.get("holds") or []]
            self._key = key
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def now(self):
        self._load()
        wall = time.time()
        value = self.origin_target + self.scale * (wall - self.origin_wall)
        for limit, until_wall, pace, since_wall in self.holds:
            limit += pace * max(0.0, wall - since_wall)
            if wall < until_wall and limit < value:
                value = limit
        return value

    def sleep_until(self, lab_t):
        while True:
            remaining = lab_t - self.now()
            if remaining <= 1e-6:
                return
            time.sleep(max(0.002, min(remaining / self.scale, MAX_SLEEP)))


def stamp(lab_t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(lab_t))


def stamp_ns(lab_t):
    whole = int(lab_t)
    nanoseconds = int(round((lab_t - whole) * 1e9)) % 1000000000
    return f"{stamp(whole)}.{nanoseconds:09d}"


# --- the world ---------------------------------------------------------------------------------

def read_events():
    try:
        with open(path(EVENTS), "rb") as handle:
            data = handle.read()
    except OSError:
        return []
    events = []
    for line in data.split(b"\n"):
        try:
            event = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def world(boot_t):
    """What the tools need to know of the world: is the VMS up, is there a cluster, was it deployed."""
    state = {"vms_up": False, "bootstrapped": False, "cluster": None, "deployed": False}
    for event in read_events():
        kind = event.get("kind")
        if kind == "reset":
            state.update(vms_up=False, bootstrapped=False, cluster=None, deployed=False)
        elif kind == "vms":
            state["vms_up"] = bool(event.get("up")) and float(event.get("t", 0)) >= boot_t
        elif kind == "tool" and event.get("tool") == "bootstrap" and event.get("phase") == "finished":
            state["bootstrapped"] = event.get("exit") == 0
        elif kind == "cluster":
            state["cluster"] = event.get("name") or state["cluster"]
        elif kind == "vtask" and event.get("name") == "cluster_deploy":
            state["deployed"] = event.get("state") == "COMPLETED"
    return state


class Events:
    def __init__(self):
        directory = os.path.dirname(path(EVENTS))
        if not os.path.isdir(directory):
            os.makedirs(directory)

    def append(self, lab_t, kind, **fields):
        record = dict(fields, t=round(lab_t, 3), kind=kind)
        with open(path(EVENTS), "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


# --- playing a timeline ------------------------------------------------------------------------

class Player:
    def __init__(self, tool, scenario, clock, variables):
        self.tool = tool
        self.scenario = scenario
        self.clock = clock
        self.variables = dict(variables)
        self.events = Events()
        # On a whole lab second, as the field's stamps are: a fractional start would round some of
        # the schedule's fractional offsets (deploy done at +1068.11 s) into the next second.
        self.start = float(int(clock.now()))
        self.out = getattr(sys.stdout, "buffer", sys.stdout)
        self.boot_t = float(scenario.get("boot_t", self.start))

    def fill(self, text, lab_t):
        values = dict(self.variables)
        values["ts"] = f"[{stamp(lab_t)}]"
        values["vts"] = f"[{stamp(lab_t)}: {self.variables.get('uuid', '')}]"
        values["vts0"] = f"[{stamp(lab_t)}: ]"
        values["ptime"] = stamp_ns(lab_t)
        return string.Template(text).safe_substitute(values)

    def fill_value(self, value, lab_t):
        if isinstance(value, str):
            return self.fill(value, lab_t)
        if isinstance(value, list):
            return [self.fill_value(item, lab_t) for item in value]
        if isinstance(value, dict):
            return dict((key, self.fill_value(item, lab_t)) for key, item in value.items())
        return value

    def play(self, steps):
        self.events.append(self.start, "tool", tool=self.tool, phase="started", pid=os.getpid(),
                           scenario=self.scenario.get("name", ""))
        signal.signal(signal.SIGTERM, self._terminated)
        for index, step in enumerate(steps):
            at = self.start + float(step["at"])
            self.clock.sleep_until(at)
            if "exit" in step:
                code = self.finish(int(step["exit"]), at)
                self.go_on(steps[index + 1:])
                return code
            try:
                self.do(step, at)
            except Failed as exc:
                self.out.flush()
                self.finish(exc.code, self.clock.now())
                raise
        return self.finish(0, self.clock.now())

    def go_on(self, steps):
        """Steps after the tool's exit happen without it (the cluster it started goes on: e.g. an OOM
        kill long after the deploy): a detached process plays them, holding none of the tool's files
        or locks, and ends with the guest like any of its processes."""
        if not steps or os.fork() != 0:
            return
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, 65536)
            self.out = open(os.devnull, "wb")  # noqa: SIM115 (the process ends with it)
            for step in steps:
                at = self.start + float(step["at"])
                self.clock.sleep_until(at)
                if "exit" not in step:
                    self.do(step, at)
        except BaseException:  # noqa: BLE001 - nothing to report to: the tool has exited
            pass
        os._exit(0)

    def finish(self, code, lab_t):
        self.events.append(lab_t, "tool", tool=self.tool, phase="finished", exit=code)
        return code

    def _terminated(self, signum, frame):
        self.finish(128 + signum, self.clock.now())
        sys.exit(128 + signum)

    def do(self, step, at):
        if "out" in step:
            stamp_at = self.start + float(step.get("stamp", step["at"]))
            self.out.write(self.fill(step["out"], stamp_at).encode("utf-8"))
            self.out.flush()
        elif "event" in step:
            event = self.fill_value(dict(step["event"]), at)
            kind = event.pop("kind")
            self.events.append(at, kind, **event)
        elif "docker" in step:
            self.docker(self.fill_value(step["docker"], at))
        elif "file" in step:
            self.append_file(step["file"], self.fill(step["text"], at), bool(step.get("replace")))
        elif "kmsg" in step:
            self.kmsg(step["kmsg"], at)
        elif "vms_tls" in step:
            self.vms_certificate()

    def docker(self, args):
        process = subprocess.Popen([DOCKER] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = process.communicate()[0]
        if process.returncode != 0 and args[:1] != ["rm"]:
            raise Failed(f"docker {args[0]} failed: {output.decode('utf-8', 'replace').strip()}")

    def append_file(self, guest_path, text, replace=False):
        target = path(guest_path)
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            os.makedirs(directory)
        with open(target, "w" if replace else "a") as handle:
            handle.write(text)

    def vms_certificate(self):
        """The VMS's self-signed certificate and key where the scenario keeps them, made once (the
        VMS keeps its certificate across restarts): `openssl req -x509`, as an appliance makes one."""
        tls = self.scenario.get("vms_tls") or {}
        cert, key = path(tls.get("cert", "")), path(tls.get("key", ""))
        if not tls or (os.path.isfile(cert) and os.path.isfile(key)):
            return
        directory = os.path.dirname(cert)
        if not os.path.isdir(directory):
            os.makedirs(directory)
        ip = self.scenario.get("ip") or "127.0.0.1"
        command = [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-days", str(int(tls.get("days", 3650))), "-subj", "/O=VMS (vast-loopback lab)/CN=" + ip,
                   "-addext", "subjectAltName=IP:" + ip, "-keyout", key, "-out", cert]
        # everything it needs is on the command line (the lab guest's /etc has no openssl.cnf)
        env = dict(os.environ, OPENSSL_CONF="/dev/null")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        output = process.communicate()[0]
        if process.returncode != 0:
            raise Failed("the VMS could not make its certificate: " + output.decode("utf-8", "replace").strip())
        os.chmod(key, 0o600)
        os.chmod(cert, 0o644)

    def kmsg(self, messages, lab_t):
        """Kernel messages in /dev/kmsg's record format, only into the lab's file (never a real device)."""
        target = path(KMSG)
        if not os.path.isfile(target):
            return
        with open(target, "rb") as handle:
            seq = handle.read().count(b"\n")
        usec = kernel_usec(lab_t - self.boot_t)
        with open(target, "a") as handle:
            for offset, (prio, text) in enumerate(messages):
                handle.write(f"{prio},{seq + offset},{usec + offset},-;{text}\n")


# --- the tools ---------------------------------------------------------------------------------

def load_scenario():
    try:
        with open(path(SCENARIO)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        raise Failed(f"this guest has no VAST scenario ({SCENARIO}): was it booted by the lab?") from None


def lock(name):
    directory = os.path.dirname(path(EVENTS))
    if not os.path.isdir(directory):
        os.makedirs(directory)
    handle = open(os.path.join(directory, name + ".lock"), "a+")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise Failed(f"{name} is already running") from None
        raise
    return handle  # the lock lasts as long as the process


def docker_running():
    try:
        process = subprocess.Popen([DOCKER, "info"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError:
        return False
    process.communicate()
    return process.returncode == 0


BOOTSTRAP_USAGE = "usage: vast_bootstrap.sh --interface <management ip> [--skip-prompt]"


def bootstrap(argv):
    interface, skip_prompt = None, False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--skip-prompt":
            skip_prompt = True
        elif arg == "--interface" and args:
            interface = args.pop(0)
        elif arg.startswith("--interface="):
            interface = arg.split("=", 1)[1]
        else:
            raise Failed(f"unknown argument: {arg}\n{BOOTSTRAP_USAGE}", 2)
    if not interface:
        raise Failed(BOOTSTRAP_USAGE, 2)
    scenario = load_scenario()
    if interface not in (scenario["ip"], scenario.get("interface", "eth0")):
        raise Failed(f"ERROR: no interface with address {interface} on this host")
    packages = sorted(glob.glob(os.path.join(path(BUNDLES), "vastdata_release_*.vast.tar.gz")))
    if not packages:
        raise Failed(f"ERROR: no package found in {BUNDLES}")
    package = os.path.basename(packages[0])
    buildno = package[len("vastdata_release_"):-len(".vast.tar.gz")]
    if not docker_running():
        raise Failed("ERROR: docker is not running")
    if not skip_prompt:
        sys.stdout.write("This will (re)install the VAST management system on this host. Continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise Failed("aborted")
    held = lock("bootstrap")
    clock = LabClock()
    player = Player("bootstrap", scenario, clock, {"ip": scenario["ip"], "buildno": buildno,
                                                   "build": scenario["build"]})
    code = player.play(scenario["tools"]["bootstrap"])
    held.close()
    return code


VMAN_USAGE = ("usage: VMS_PASSWORD=<password> vman.sh <build> <ssh key pem> vcli -u <user> -c <command...>\n"
              "       vman.sh <build> <ssh key pem> start")


def build_of(image_or_build):
    """'release-5-4-0-2043819', or the image form vman.sh also takes ('<registry>/dev/orion:<build>-vms')."""
    build = image_or_build.rsplit(":", 1)[-1] if "/" in image_or_build else image_or_build
    return build[:-len("-vms")] if build.endswith("-vms") else build


def parse_vcli(args):
    options = {}
    while args:
        arg = args.pop(0)
        if arg in ("-p", "--password"):
            raise Failed("vcli: a password on the command line is refused (every user of the guest can read it "
                         "in /proc/<pid>/cmdline): give it in the environment, " + PASSWORD_ENV, 2)
        if arg == "-u" and args:
            options[arg] = args.pop(0)
        elif arg == "-c":
            words = []
            for item in args:
                words.extend(item.split())
            return options, words
        else:
            raise Failed(f"vcli: unknown option {arg}", 2)
    raise Failed("vcli: missing -c <command>", 2)


def parse_create(words):
    options, flags = {}, set()
    rest = list(words[2:])
    while rest:
        word = rest.pop(0)
        if word in ("--loopback",):
            flags.add(word)
        elif word in ("--build", "--name", "--vsettings") and rest:
            options[word] = rest.pop(0)
        else:
            raise Failed(f"vcli: cluster create: unknown option {word}", 2)
    return options, flags


def vms_login(ip, user, password):
    """vcli's login to the guest's VMS: POST /api/token/, which checks the password in memory.

    Here the VMS lives in the lab's process (in a real guest it runs on whatever happens to the
    tool): while that process is away (killed, being resumed) or its VMS restarting, vcli waits
    for it, re-reading where it listens, for up to LOGIN_WAIT_S wall seconds."""
    refused = f"Failed to connect to VMS at https://{ip}: [Errno 111] Connection refused"
    body = json.dumps({"username": user, "password": password}).encode("utf-8")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),  # the guest's own VMS, never a proxy
                                         urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
    deadline = time.monotonic() + float(os.environ.get("LAB_VMS_LOGIN_WAIT", LOGIN_WAIT_S))
    while True:
        try:
            with open(path(VMS_ADDRESS)) as handle:
                address = json.load(handle)
            url = f"https://{address['host']}:{int(address['port'])}/api/token/"
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with opener.open(request, timeout=10) as answer:
                answer.read()
                return
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 403):
                raise Failed("vcli: 401 Unauthorized: Invalid username/password.") from None
            raise Failed(f"vcli: VMS answered HTTP {exc.code} to the login") from None
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                raise Failed(refused) from None
            time.sleep(0.1)


def vman(argv):
    if len(argv) < 3:
        raise Failed(VMAN_USAGE, 2)
    build_arg, pem, command = argv[0], argv[1], argv[2:]
    scenario = load_scenario()
    build = build_of(build_arg)
    if build != scenario["build"]:
        raise Failed(f"Build {build} not found: no image vastdata.registry.local:5000/dev/orion:{build} "
                     "in the local registry")
    if not os.path.isfile(path(pem)):
        raise Failed(f"ssh key {pem} not found")
    boot_t = float(scenario.get("boot_t", 0))
    known = world(boot_t)
    if not known["bootstrapped"]:
        raise Failed(f'"{build}" and "{build}-vms" are not imported: run vast_bootstrap.sh first')
    variables = {"ip": scenario["ip"], "build": build, "buildno": build.rsplit("-", 1)[-1], "pem": pem,
                 "uuid": str(uuid.uuid4()), "vcli_args": " ".join(command)}  # echoed as is, as the field log shows
    variables.update(extra_mounts(scenario))
    if command[0] == "start":
        held = lock("vman")
        player = Player("start", scenario, LabClock(), variables)
        steps = scenario["tools"]["start_deployed" if known["deployed"] else "start_fresh"]
        code = player.play(steps)
        held.close()
        return code
    if command[0] != "vcli":
        raise Failed(VMAN_USAGE, 2)
    options, words = parse_vcli(command[1:])
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        raise Failed("vcli: no password: give it in the environment, " + PASSWORD_ENV, 2)
    if not known["vms_up"]:
        raise Failed(f"Failed to connect to VMS at https://{scenario['ip']}: [Errno 111] Connection refused")
    vms_login(scenario["ip"], options.get("-u", ""), password)
    if words[:2] != ["cluster", "create"]:
        raise Failed(f"vcli: '{' '.join(words)}' is not available in this lab", 2)
    create, flags = parse_create(words)
    if "--name" not in create:
        raise Failed("vcli: cluster create: --name is required", 2)
    if create.get("--build", build) != build:
        raise Failed(f"vcli: build {create['--build']} is not the build the hosts run ({build})")
    if "--loopback" not in flags:
        raise Failed("vcli: no hosts were discovered for a multi-node cluster (use --loopback)")
    if known["cluster"]:
        raise Failed(f"vcli: Cluster {known['cluster']} already exists")
    held = lock("vman")
    variables["name"] = create["--name"]
    player = Player("cluster_create", scenario, LabClock(), variables)
    code = player.play(scenario["tools"]["cluster_create"])
    held.close()
    return code


def extra_mounts(scenario):
    """vman.sh's template variables for EXTRA_VOLUME_MOUNTS (empty when it is not exported)."""
    extra = os.environ.get("EXTRA_VOLUME_MOUNTS", "").strip()
    if not extra:
        return {"extra_mounts": "", "extra_mounts_warning": ""}
    prefix = scenario.get("texts", {}).get("extra_mounts_warning", "")
    return {"extra_mounts": " " + extra, "extra_mounts_warning": prefix + extra + "\n"}


BRINGUP_USAGE = "usage: vms-bringup start"


def bringup(argv):
    """/vast/bin/vms-bringup inside cnode-1's container (what start_vms.sh runs after a reboot)."""
    if argv != ["start"]:
        raise Failed(BRINGUP_USAGE, 2)
    scenario = load_scenario()
    known = world(float(scenario.get("boot_t", 0)))
    if not known["cluster"]:
        raise Failed("vms-bringup: no cluster is configured on this host (run the cluster create first)")
    held = lock("bringup")
    variables = {"ip": scenario["ip"], "build": scenario["build"], "name": known["cluster"]}
    player = Player("bringup", scenario, LabClock(), variables)
    code = player.play(scenario["tools"]["bringup"])
    held.close()
    return code


TOOLS = {"bootstrap": bootstrap, "vman": vman, "bringup": bringup}


def main(argv):
    if not argv or argv[0] not in TOOLS:
        sys.stderr.write("usage: player.py bootstrap|vman|bringup ARGS...\n")
        return 2
    try:
        return TOOLS[argv[0]](argv[1:])
    except Failed as exc:
        sys.stdout.flush()
        sys.stderr.write(str(exc) + "\n")
        return exc.code
    except OSError as exc:  # e.g. the lab's files are not writable for this user
        sys.stdout.flush()
        sys.stderr.write(f"{argv[0]}: {exc.strerror}: {exc.filename}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
