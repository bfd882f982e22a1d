"""Hostile answers files, generated (hypothesis): random YAML structures, deep nesting, huge strings,
odd unicode, control characters, binary, wrong types at every key, anchors and aliases, tags,
duplicate keys, shell metacharacters. `vast-loopback check` and `--auto` answer each with either a
valid parse or exit 2 and one clear message on stderr: never a traceback, never a crash file, no
terminal escape sequence repeated from the file. Values that do parse and reach a shell or a
Proxmox API path are single, quoted words there."""

from __future__ import annotations

import contextlib
import io
import shlex
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backend.lab  # noqa: F401  - registers the lab provider, which these tests replace
from backend import target
from backend.clients.proxmox import check_segment
from backend.errors import BadInput, TargetUnreachable
from backend.model.answers import check_secrets, parse
from backend.steps.install import cluster_create_command
from tui import cli

FULL = {
    "version": 1,
    "proxmox": {"url": "lab", "token_id": "root@pam!vlb", "token_secret": "env:VLB_TOKEN", "node": "auto",
                "fingerprint": ":".join(["AB"] * 32)},
    "vm": {"name": "vast-lb", "vcpus": 12, "memory_gib": 120, "disk_gib": 1000, "storage": "local-lvm",
           "bridge": "vmbr0", "vmid": 100},
    "ova": "local:import/vast-5.4.0-loopback.ova",
    "guest": {"address": "dhcp", "user": "centos", "port": 22, "password": "env:VLB_GUEST",
              "key": "file:~/.ssh/id_ed25519", "host_key": "SHA256:" + "A" * 43},
    "vast": {"build": "release-5-4-0-2043819", "cluster_name": "lb-vast54", "admin_user": "admin",
             "admin_password": "file:/etc/vlb/vms"},
    "tuning": {"limits": True},
    "lab": {"host_profile": "seed", "faults": {"rate": 0.1, "seed": 3, "kinds": ["ssh_drop", "pve_500"]}},
}
KEY_PATHS = [(section,) for section in FULL] + [
    (section, key) for section, body in FULL.items() if isinstance(body, dict) for key in body
] + [("lab", "faults", key) for key in FULL["lab"]["faults"]]

SHELL_META = ";|&$`'\"\\<>(){}[]*?!#~ \t\n=%^,"
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list(SHELL_META) + list("abcXYZ019-_.")), max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["\x1b]0;pwned\x07", "\x1b[2J", "\u202eabc", "\ud7ff", "\ufeff", "$(reboot)", "`id`",
                     "a;rm -rf /", "null", "yes", "0o17", "1:20", "~", "<<", "*x", "&x", "!tag", "interval",
                     "literal['auto']", ""]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), hostile_text)
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(hostile_text, inner, max_size=4)),
                     max_leaves=20)


def _dump(data: object, flow: bool, unicode: bool) -> str:
    return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=unicode, sort_keys=False)


@st.composite
def wrong_value_at_a_key(draw) -> str:
    """The full answers file with one key's value replaced by anything at all."""
    data = yaml.safe_load(yaml.safe_dump(FULL))
    path = draw(st.sampled_from(KEY_PATHS))
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = draw(trees)
    return _dump(data, draw(st.booleans()), draw(st.booleans()))


@st.composite
def text_inserted(draw) -> str:
    """The full answers file with random text (control characters included) put somewhere in it."""
    base = _dump(FULL, False, True)
    at = draw(st.integers(0, len(base)))
    cut = draw(st.integers(0, 20))
    return base[:at] + draw(st.text(max_size=30)) + base[at + cut:]


@st.composite
def constructs(draw) -> str:
    """YAML features an answers file has no use for, and sizes it must not have."""
    n = draw(st.integers(1, 4000))
    word = draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
    return draw(st.sampled_from([
        f"vm: &{word} {{name: a}}\nguest: *{word}\n",
        f"a: &{word} [x, x]\nb: [*{word}, *{word}, *{word}]\n",
        f"vm:\n  <<: {{name: {word}}}\n",
        f"vm: !!python/object/apply:os.system ['echo {word}']\n",
        f"vm: !{word} {{name: a}}\n",
        "vast: {build: !!binary aGVsbG8=}\n",
        f"vm: !!set {{{word}, b}}\n",
        f"vm: {{name: a}}\nvm: {{name: {word}}}\n",
        f"vm:\n  name: a\n  name: {word}\n",
        "vm: " + "[" * n + "]" * n + "\n",
        "vm: " + "{a: " * n + "1" + "}" * n + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(min(n, 300))),
        f"vm: {{name: {'x' * n * 70}}}\n",
        f"? {'k' * n * 70}\n: 1\n",
        "\n".join(f"k{i}: {i}" for i in range(n + 1500)) + "\n",
        f"vm: {{vcpus: {'9' * n}}}\n",
        f"vm: {{name: a}}\n---\nvm: {{name: {word}}}\n",
        f"%YAML 1.1\n%TAG ! tag:{word},2000:\n---\nvm: !x {{name: a}}\n",
        f"\"\\e]0;{word}\\a\": 1\n",
        f"vm: {{\"\\e[2J{word}\": 1}}\n",
    ]))


documents = st.one_of(
    trees.map(lambda data: _dump(data, False, True)),
    wrong_value_at_a_key(),
    text_inserted(),
    constructs(),
    st.text(max_size=200),
    st.binary(max_size=200),
)


def _clear(message: str) -> None:
    """One clear message: no traceback, printable (newlines between problems only), not a flood."""
    assert "Traceback" not in message and "Error:" not in message.split(":", 1)[0]
    assert all(c.isprintable() or c == "\n" for c in message), repr(message[:300])
    assert len(message) < 6000


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(documents)
def test_any_document_parses_or_is_refused_with_one_clear_message(text):
    try:
        parse(text, "answers.yaml")
    except BadInput as exc:
        _clear(str(exc))
        assert str(exc).startswith("answers.yaml")


NUMBERS = [("vm", "vcpus"), ("vm", "memory_gib"), ("vm", "disk_gib"), ("vm", "vmid"), ("guest", "port"),
           ("lab", "faults", "rate"), ("lab", "faults", "seed"), ("version",)]


WRONG = [True, False, [12], {"n": 12}, "twelve", 10**40, float("nan")]


@pytest.mark.parametrize(("path", "wrong"), [(path, wrong) for path in NUMBERS for wrong in WRONG
                                             if not (path[-1] == "seed" and wrong == 10**40)])  # any int seeds
def test_a_wrong_type_where_a_number_goes_is_refused_naming_the_key(path, wrong):
    data: dict = {}
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = wrong
    with pytest.raises(BadInput) as refused:
        parse(yaml.safe_dump(data), "answers.yaml")
    _clear(str(refused.value))
    assert f": {'.'.join(path)}: " in str(refused.value)


async def _unopened(answers, options):
    raise TargetUnreachable("the lab is not started in this test")


@pytest.fixture
def no_target(monkeypatch, tmp_path):
    """Targets replaced by one that refuses to open; crash files go to tmp_path/crash."""
    monkeypatch.setitem(target._PROVIDERS, "lab", _unopened)
    monkeypatch.setitem(target._PROVIDERS, "https", _unopened)
    crash = tmp_path / "crash"
    crash.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(crash))
    return crash


def _main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=documents, command=st.sampled_from(["check", "--auto"]))
def test_the_cli_answers_exit_2_and_one_message_or_goes_on_to_the_target(no_target, document, command):
    with tempfile.TemporaryDirectory(dir=no_target.parent) as work:
        answers = Path(work) / "answers.yaml"
        answers.write_bytes(document if isinstance(document, bytes) else document.encode("utf-8", "surrogatepass"))
        try:
            check_secrets(parse(answers.read_bytes(), str(answers)))  # env:/file: references must resolve
            valid = True
        except BadInput:
            valid = False
        args = ["check", str(answers)] if command == "check" else \
            ["--auto", str(answers), "--run-dir", str(Path(work) / "run")]
        code, out, err = _main(args)
    assert list(no_target.iterdir()) == [], "a crash file was written"
    assert err.startswith("vast-loopback: ")
    _clear(err)
    if valid:
        assert (code, err) == (1, "vast-loopback: the lab is not started in this test\n")
    else:
        assert code == 2 and out == ""


shell_words = st.text(alphabet=st.sampled_from(list(SHELL_META) + list("abcXYZ019-_.@:/")), min_size=1,
                      max_size=30)
plausible = st.one_of(shell_words, st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,20}", fullmatch=True),
                      st.from_regex(r"release-[0-9]-[0-9]-[0-9]-[0-9]{1,7}", fullmatch=True))
SHELL_FIELDS = [("guest", "user"), ("vast", "build"), ("vast", "cluster_name"), ("vast", "admin_user")]
PATH_FIELDS = [("proxmox", "node"), ("vm", "storage"), ("vm", "bridge"), ("vm", "name")]


def _answers_with(field: tuple[str, str], value: str):
    data = {"proxmox": {"url": "lab"}}
    data.setdefault(field[0], {})[field[1]] = value
    return parse(yaml.safe_dump(data))


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(SHELL_FIELDS), value=plausible)
def test_values_that_reach_a_shell_parse_only_as_safe_words_and_stay_one_word(field, value):
    try:
        answers = _answers_with(field, value)
    except BadInput as exc:
        _clear(str(exc))
        return
    assert not set(value) & set(SHELL_META), value  # the model admits no shell metacharacter at all
    words = shlex.split(cluster_create_command(SimpleNamespace(answers=answers), "/jobs/x"))
    vast = answers.vast
    assert words[words.index("-u") + 1] == vast.admin_user and words[words.index("--name") + 1] == vast.cluster_name
    assert words[words.index("--build") + 1] == vast.build


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(PATH_FIELDS), value=plausible)
def test_values_that_reach_a_proxmox_path_are_safe_segments(field, value):
    try:
        answers = _answers_with(field, value)
    except BadInput as exc:
        _clear(str(exc))
        return
    assert check_segment(getattr(getattr(answers, field[0]), field[1])) == value


def test_a_missing_secret_is_bad_input_before_a_run_directory_exists(no_target, tmp_path, monkeypatch):
    monkeypatch.delenv("VLB_NOT_SET", raising=False)
    answers = tmp_path / "answers.yaml"
    answers.write_text("proxmox: {url: lab}\nguest: {password: 'env:VLB_NOT_SET'}\n")
    run = tmp_path / "run"
    code, out, err = _main(["--auto", str(answers), "--run-dir", str(run)])
    assert code == 2 and out == "" and not run.exists()
    assert err == ("vast-loopback: guest.password: environment variable VLB_NOT_SET is not set\n"
                   "  hint: export VLB_NOT_SET=... before running, or point guest.password at file:PATH\n")
