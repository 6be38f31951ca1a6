"""The lab's pure parts: recipe hash, qemu command line, state file, accel choice, tools."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from dindkit.cache import build_cached
from dindkit.lab import image, state, tools, vm
from dindkit.lab.state import Lab


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DINDKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_lab(tmp_path: Path, name: str = "lab1", accel: str = "tcg") -> Lab:
    directory = tmp_path / "labs" / name
    return Lab(
        name=name,
        distro="bookworm",
        ssh_port=2222,
        key_path=directory / "id_ed25519",
        pid=None,
        overlay=directory / "overlay.qcow2",
        serial_log=directory / "serial.log",
        image=tmp_path / "base.qcow2",
        memory=2048,
        cpus=1,
        accel=accel,
        started_at=0.0,
    )


# --- image recipe -------------------------------------------------------------------------


def test_recipe_hash_is_stable_and_differs_per_distro() -> None:
    assert image.recipe_hash(image.recipe("bookworm")) == image.recipe_hash(
        image.recipe("bookworm")
    )
    assert image.recipe_hash(image.recipe("bookworm")) != image.recipe_hash(image.recipe("trixie"))


def test_recipe_hash_follows_packages_files_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image.recipe_hash(image.recipe("bookworm"))
    monkeypatch.setattr(image, "PACKAGES", (*image.PACKAGES, "vim-tiny"))
    with_package = image.recipe_hash(image.recipe("bookworm"))
    monkeypatch.setattr(image, "RECIPE_VERSION", image.RECIPE_VERSION + 1)
    with_version = image.recipe_hash(image.recipe("bookworm"))
    monkeypatch.setattr(image, "NAMESERVER", "10.0.2.99")
    with_file = image.recipe_hash(image.recipe("bookworm"))
    assert len({before, with_package, with_version, with_file}) == 4


def test_unknown_distro_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown distro 'sid'"):
        image.recipe("sid")


def test_image_is_cached_under_the_cache_dir(cache: Path) -> None:
    found = image.image_for("trixie")
    assert found.directory.parent == cache / "images"
    assert found.directory.name.startswith("trixie-")
    assert not found.exists()


def test_guest_files_configure_network_dns_and_the_key_unit() -> None:
    files = image.guest_files()
    network = files["/etc/systemd/network/20-dindkit-lab.network"]
    assert "Name=en* eth*" in network and "DHCP=ipv4" in network
    assert files["/etc/resolv.conf"].strip().endswith("nameserver 10.0.2.3")
    assert (
        "ExecStart=/usr/local/sbin/dindkit-lab-init"
        in files["/etc/systemd/system/dindkit-lab-init.service"]
    )
    assert "dindkit.authorized_key=" in files["/usr/local/sbin/dindkit-lab-init"]


def test_mmdebstrap_command(tmp_path: Path) -> None:
    command = image.mmdebstrap_command("trixie", tmp_path / "root", tmp_path / "files", True)
    assert command[:4] == [
        "mmdebstrap",
        "--mode=unshare",
        "--variant=minbase",
        "--format=directory",
    ]
    include = next(arg for arg in command if arg.startswith("--include="))
    assert "linux-image-cloud-amd64" in include and "openssh-server" in include
    assert f"--customize-hook=sync-in {tmp_path / 'files'} /" in command
    assert command[-4:] == [
        str(tmp_path / "root"),
        "deb http://deb.debian.org/debian trixie main",
        "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://deb.debian.org/debian-security trixie-security main",
    ]
    root = image.mmdebstrap_command("bookworm", tmp_path / "r", tmp_path / "f", False)
    assert root[1] == "--mode=root"


# --- qemu --------------------------------------------------------------------------------


def test_qemu_command_line(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    command = vm.qemu_command(
        lab, Path("/k/vmlinuz"), Path("/k/initrd.img"), "ssh-ed25519 AAAA x\n", tmp_path / "pid"
    )
    text = " ".join(command)
    assert command[0] == "qemu-system-x86_64"
    assert command[command.index("-name") + 1] == "dindkit-lab-lab1"
    assert "-accel tcg -cpu max" in text
    assert "-m 2048 -smp 1" in text
    assert "-kernel /k/vmlinuz -initrd /k/initrd.img" in text
    assert f"file={lab.overlay},if=virtio,format=qcow2,cache=unsafe" in command
    assert "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22" in command
    assert command[command.index("-serial") + 1] == f"file:{lab.serial_log}"
    assert "-daemonize" in command
    append = command[command.index("-append") + 1].split()
    assert {"root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0"} <= set(append)
    assert "systemd.hostname=lab-lab1" in append
    key = next(arg for arg in append if arg.startswith("dindkit.authorized_key="))
    assert base64.b64decode(key.split("=", 1)[1]) == b"ssh-ed25519 AAAA x"


def test_kvm_command_line(tmp_path: Path) -> None:
    command = vm.qemu_command(
        make_lab(tmp_path, accel="kvm"), Path("k"), Path("i"), "key", tmp_path / "pid"
    )
    assert "-accel kvm -cpu host" in " ".join(command)
    with pytest.raises(ValueError):
        vm.accel_arguments("hvf")


def test_free_port_is_bindable() -> None:
    """The port is free: nobody answers on it, and we can bind and listen there ourselves."""
    port = vm.free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        assert client.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
        server.listen(1)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass


def test_free_port_is_not_a_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        taken = held.getsockname()[1]
        ports = {vm.free_port() for _ in range(20)}
    assert taken not in ports


# --- accelerator choice --------------------------------------------------------------------


def test_explicit_accel_is_taken_as_is() -> None:
    def never(_: Path) -> bool:
        raise AssertionError("no probe for an explicit choice")

    assert vm.choose_accel("tcg", Path("k"), probe=never) == "tcg"
    assert vm.choose_accel("kvm", Path("k"), probe=never) == "kvm"
    with pytest.raises(ValueError, match="unknown accelerator"):
        vm.choose_accel("xen", Path("k"))


def test_auto_without_kvm_device_is_tcg() -> None:
    def never(_: Path) -> bool:
        raise AssertionError("no probe without /dev/kvm")

    assert vm.choose_accel("auto", Path("k"), probe=never, device_ok=lambda: False) == "tcg"


@pytest.mark.parametrize(("works", "expected"), [(True, "kvm"), (False, "tcg")])
def test_auto_probes_once_and_caches(works: bool, expected: str, cache: Path) -> None:
    calls: list[Path] = []

    def probe(kernel: Path) -> bool:
        calls.append(kernel)
        return works

    messages: list[str] = []
    for _ in range(2):
        chosen = vm.choose_accel(
            "auto", Path("k"), progress=messages.append, probe=probe, device_ok=lambda: True
        )
        assert chosen == expected
    assert calls == [Path("k")]
    assert (cache / "accel.json").is_file()
    assert any(f"using {expected}" in message for message in messages)


# --- waiting for SSH -----------------------------------------------------------------------


def test_wait_for_ssh_gives_up_when_qemu_is_gone(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)  # pid None: not running
    with pytest.raises(vm.LabError, match="exited while booting"):
        vm.wait_for_ssh(lab, timeout=5, answers=lambda _: False)


def test_wait_for_ssh_returns_when_ssh_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It returns at the first answer without a pause (counted, not timed: a loaded machine
    can stall any process for a second)."""
    pauses: list[float] = []
    monkeypatch.setattr(vm.time, "sleep", pauses.append)
    asked: list[Lab] = []

    def answers(lab: Lab) -> bool:
        asked.append(lab)
        return True

    waited = vm.wait_for_ssh(make_lab(tmp_path), timeout=5, answers=answers)
    assert len(asked) == 1 and pauses == [] and waited >= 0


def test_wait_for_ssh_pauses_between_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(vm.time, "sleep", pauses.append)
    monkeypatch.setattr(state.Lab, "running", property(lambda _: True))
    answers = iter([False, False, True])
    vm.wait_for_ssh(make_lab(tmp_path), timeout=60, answers=lambda _: next(answers))
    assert pauses == [2, 2]


# --- state -------------------------------------------------------------------------------


def test_state_round_trip_and_listing(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    lab.pid = 12345
    state.save(lab)
    loaded = state.load("lab1")
    assert loaded == lab
    assert isinstance(loaded.key_path, Path)
    assert [each.name for each in state.all_labs()] == ["lab1"]
    assert loaded.host == "lab-lab1"
    state.forget("lab1")
    assert state.load("lab1") is None


def test_a_dead_or_foreign_pid_is_not_running(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    lab.pid = 1  # init: alive, but not this lab's qemu
    assert not lab.running


@pytest.mark.parametrize("name", ["lab1", "test-bookworm", "a"])
def test_good_names(name: str) -> None:
    assert state.check_name(name) == name


@pytest.mark.parametrize("name", ["", "Lab", "-x", "x-", "a_b", "a/b", "x" * 40])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="bad lab name"):
        state.check_name(name)


def test_ssh_command(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    command = lab.ssh_command("echo hi")
    assert command[0] == "ssh" and command[-3:] == ["root@127.0.0.1", "--", "echo hi"]
    assert command[command.index("-p") : command.index("-p") + 2] == ["-p", "2222"]
    assert "UserKnownHostsFile=/dev/null" in command
    assert lab.ssh_command(["echo", "a b"])[-1] == "echo 'a b'"
    assert lab.ssh_command()[-1] == "root@127.0.0.1"


# --- host tools ----------------------------------------------------------------------------


def test_missing_tools_message_lists_tools_and_apt_command() -> None:
    missing = tools.missing_tools(build=True, which=lambda tool, path=None: None)
    assert set(missing) == {
        "mkfs.ext4",
        "mmdebstrap",
        "qemu-img",
        "qemu-system-x86_64",
        "ssh",
        "ssh-keygen",
    }
    message = tools.missing_tools_message(missing)
    assert message.startswith("the lab needs these host tools, which are missing: mkfs.ext4, ")
    assert message.endswith(
        "sudo apt-get install -y e2fsprogs mmdebstrap openssh-client qemu-system-x86 qemu-utils"
    )


def test_present_tools_are_not_reported() -> None:
    assert tools.missing_tools(build=True, which=lambda tool, path=None: f"/usr/bin/{tool}") == {}
    only_qemu = tools.missing_tools(
        which=lambda tool, path=None: None if tool == "qemu-img" else tool
    )
    assert only_qemu == {"qemu-img": "qemu-utils"}


def test_unprivileged_build_needs_subordinate_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\n")
    subgid.write_text("alice:100000:65536\n")
    assert image.unprivileged_problem("alice", (subuid, subgid)) is None
    problem = image.unprivileged_problem("bob", (subuid, subgid))
    assert problem and problem.startswith(f"{subuid} has no range for bob")


def test_stale_images_keep_current_recipes_and_images_in_use(cache: Path) -> None:
    current = image.image_for("bookworm").directory
    old, used = cache / "images" / "bookworm-old", cache / "images" / "trixie-used"
    for directory in (current, old, used, cache / "images" / ".build-x"):
        directory.mkdir(parents=True)
    assert image.stale_images({used / "base.qcow2"}) == [old]


# --- build_cached: the image's and the box's cache entries -----------------------------------


def test_build_cached_builds_once_with_its_recipe_and_clears_a_killed_build(cache: Path) -> None:
    entry = cache / "images" / "bookworm-abc"
    killed = cache / "images" / ".build-bookworm-abc-x1y2"
    killed.mkdir(parents=True)
    said: list[str] = []
    builds: list[Path] = []

    def build(work: Path) -> None:
        builds.append(work)
        (work / "base.qcow2").write_text("disk")

    def ready() -> bool:
        return (entry / "base.qcow2").is_file()

    args = {"ready": ready, "what": "bookworm image", "progress": said.append}
    assert build_cached(entry, {"distro": "bookworm"}, build, **args) is True
    assert (entry / "recipe.json").read_text() == '{\n  "distro": "bookworm"\n}\n'
    assert not killed.exists() and builds[0].name.startswith(".build-bookworm-abc-")
    assert said[-1].startswith("Built the bookworm image in ")
    assert build_cached(entry, {"distro": "bookworm"}, build, **args) is False
    assert said[-1] == f"Reusing the cached bookworm image {entry}" and len(builds) == 1


def test_build_cached_leaves_nothing_when_the_build_fails(cache: Path) -> None:
    entry = cache / "boxes" / "bookworm-abc"

    def build(work: Path) -> None:
        (work / "box.img").write_text("half")
        raise RuntimeError("debugfs failed")

    with pytest.raises(RuntimeError, match="debugfs failed"):
        build_cached(entry, {}, build, ready=entry.exists, what="bookworm box", progress=print)
    assert [path.name for path in entry.parent.iterdir()] == ["bookworm-abc.lock"]


# --- up, without qemu ------------------------------------------------------------------------


class FakeImage:
    def __init__(self, root: Path) -> None:
        self.disk, self.kernel, self.initrd = root / "base.qcow2", root / "k", root / "i"


@pytest.fixture
def fake_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[object]]:
    import dindkit.lab as lab_api

    seen: dict[str, list[object]] = {"ports": [], "images": []}
    monkeypatch.setattr(lab_api, "require_tools", lambda: None)

    def ensure_image(distro: str, progress: object = None) -> FakeImage:
        seen["images"].append(distro)
        return FakeImage(tmp_path)

    monkeypatch.setattr(lab_api.images, "ensure_image", ensure_image)
    monkeypatch.setattr(lab_api, "_ensure_key", lambda directory, name: _fake_key(directory))
    monkeypatch.setattr(lab_api, "_create_overlay", lambda base, overlay: overlay.touch())
    monkeypatch.setattr(lab_api.vm, "choose_accel", lambda accel, kernel, progress: "tcg")
    ports = iter([4001, 4002])
    monkeypatch.setattr(lab_api.vm, "free_port", lambda: next(ports))

    def start(lab: Lab, kernel: Path, initrd: Path, key: str) -> int:
        seen["ports"].append(lab.ssh_port)
        if lab.ssh_port == 4001:
            raise vm.LabError("qemu: Could not set up host forwarding rule 'tcp:...'")
        return 4242

    monkeypatch.setattr(lab_api.vm, "start", start)
    monkeypatch.setattr(lab_api.vm, "wait_for_ssh", lambda lab, timeout, progress: 1.0)
    return seen


def _fake_key(directory: Path) -> Path:
    key = directory / "id_ed25519"
    key.write_text("private")
    key.with_suffix(".pub").write_text("ssh-ed25519 AAAA test")
    return key


def test_up_retries_a_taken_port_and_records_the_lab(
    fake_boot: dict[str, list[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dindkit.lab as lab_api

    messages: list[str] = []
    booted = lab_api.up("lab1", "trixie", memory=2048, cpus=1, progress=messages.append)
    assert fake_boot["ports"] == [4001, 4002]
    assert (booted.ssh_port, booted.pid, booted.distro, booted.accel) == (
        4002,
        4242,
        "trixie",
        "tcg",
    )
    assert state.load("lab1") == booted

    # Running now: a second up does nothing, not even look at the image.
    monkeypatch.setattr(Lab, "running", property(lambda self: True))
    again = lab_api.up("lab1", "trixie", progress=messages.append)
    assert again == booted and fake_boot["images"] == ["trixie"]
    assert "already running" in messages[-1]


# --- CLI, without qemu ---------------------------------------------------------------------


def test_cli_list_status_and_down_without_labs() -> None:
    from click.testing import CliRunner

    from dindkit.lab.cli import lab as lab_cli

    runner = CliRunner()
    listed = runner.invoke(lab_cli, ["list"])
    assert listed.exit_code == 0 and "No labs" in listed.output
    status = runner.invoke(lab_cli, ["status"])
    assert status.exit_code == 0 and "image bookworm: not built" in status.output
    assert runner.invoke(lab_cli, ["down"]).exit_code == 2  # NAME or --all
    assert runner.invoke(lab_cli, ["down", "x", "--all"]).exit_code == 2
    gone = runner.invoke(lab_cli, ["down", "nolab"])
    assert gone.exit_code == 0 and "nothing to do" in gone.output
    ssh = runner.invoke(lab_cli, ["ssh", "nolab", "--", "true"])
    assert ssh.exit_code == 1 and "lab nolab is not running" in ssh.output


def test_cli_lists_a_recorded_lab(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dindkit.lab.cli import lab as lab_cli

    state.save(make_lab(tmp_path))
    listed = CliRunner().invoke(lab_cli, ["list"])
    assert listed.exit_code == 0
    assert listed.output.splitlines()[1].split() == [
        "lab1",
        "bookworm",
        "stopped",
        "-",
        "-",
        "tcg",
        "lab-lab1",
    ]
