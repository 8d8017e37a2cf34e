"""Issue #13 item 10: the image installs only what deploy/requirements.lock pins by version and
hash, and the lock cannot drift from pyproject.toml silently: every runtime dependency is
pinned at a version its specifier allows, nothing is pinned for a dependency pyproject no
longer has, every pin carries hashes, and the Dockerfile installs from the lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# Where the image runs (python:3.11-slim): the environment the dependency markers are read in.
IMAGE_ENVIRONMENT = {
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
# The lock's own note of why a package is there; `switchboard` marks a direct dependency.
DIRECT = "switchboard (pyproject.toml)"


class Pin:
    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = Version(version)
        self.hashes: list[str] = []
        self.via: list[str] = []


def read_lock() -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in LOCK.read_text(encoding="utf-8").splitlines():
        line = raw.strip().rstrip("\\").strip()
        if match := PIN.match(line):
            current = Pin(canonicalize_name(match[1]), match[2])
            pins[current.name] = current
        elif current and line.startswith("--hash=sha256:"):
            current.hashes.append(line.removeprefix("--hash=sha256:"))
        elif current and line.startswith("#") and line.lstrip("# ").strip():
            reason = line.lstrip("#").strip()
            current.via.append(reason.removeprefix("via").strip())
    return pins


def runtime_requirements() -> list[Requirement]:
    """pyproject's dependencies that apply in the image (the image installs no extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(IMAGE_ENVIRONMENT)]


def test_every_runtime_dependency_is_pinned_at_a_version_its_specifier_allows() -> None:
    pins = read_lock()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {LOCK.name}: regenerate the lock"
        version = pins[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, outside pyproject's {requirement}"
        )


def test_the_lock_pins_no_direct_dependency_pyproject_dropped() -> None:
    direct = {name for name, pin in read_lock().items() if DIRECT in pin.via}
    assert direct == {canonicalize_name(r.name) for r in runtime_requirements()}


def test_every_pin_is_exact_and_carries_sha256_hashes() -> None:
    pins = read_lock()
    assert len(pins) >= len(runtime_requirements())
    for pin in pins.values():
        assert pin.hashes, f"{pin.name} has no --hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in pin.hashes), pin.name
        assert pin.via, f"{pin.name} has no `# via` note: was the lock written by hand?"
    # Anything `name>=x`, a URL or an editable line would escape --require-hashes.
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            assert PIN.match(line), f"not an exact pin: {line}"


def test_the_image_installs_from_the_lock_with_hashes_and_the_project_without_deps() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    installs = re.findall(r"pip (?:install|wheel)[^\n]*", dockerfile)
    assert installs, "the Dockerfile installs nothing with pip?"
    for command in installs:
        uses_lock = "--require-hashes -r" in command and "requirements.lock" in command
        assert uses_lock or "--no-deps" in command, f"unpinned install: {command}"
    # The wheel is built against the locked setuptools, not one fetched for the build.
    assert re.search(r"pip wheel [^\n]*--no-build-isolation", dockerfile)
