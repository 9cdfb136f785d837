"""Debian: the only archive a CI machine reaches, for packages and for
QEMU's own source.

The system's apt sources are never changed. A private apt configuration
under the cache root (apt/) lists bookworm-backports binaries (QEMU 10
needs meson >= 1.5, bookworm has 1.0) and the source suites QEMU comes
from, with the mirror read at run time from the system's own bookworm
entry: no mirror host is written anywhere. SourceParts stays the system's,
so its entries still resolve dependencies.
"""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time

from .util import HarnessError, as_root, capture, log

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SRC_SUITES = os.environ.get("QPD_SRC_SUITES", "trixie sid").split()
MESON_MIN = "1.5"

# What the harness needs on a Debian 12 host: QEMU's build (xz-utils for
# the source's tarballs), the guests (static glibc is in libc6-dev), gdb
# for the flush counter, hyperfine, gnuplot and valgrind for bench and
# gate, and the firmware
# Debian's "+ds" source lacks (SeaBIOS; pvh.bin, linuxboot_dma.bin and
# kvmvapic.bin from qemu-system-data; the iPXE ROMs that go with them).
HOST_PKGS = [
    "build-essential", "pkg-config", "ninja-build", "python3", "python3-venv",
    "python3-pip", "python3-setuptools", "libglib2.0-dev", "zlib1g-dev", "flex",
    "bison", "device-tree-compiler", "ccache", "libck-dev", "libjemalloc-dev",
    "libnuma-dev", "gdb", "hyperfine", "dpkg-dev", "rsync", "xz-utils",
    "debian-archive-keyring", "seabios", "qemu-system-data", "ipxe-qemu",
    "gcc", "libc6-dev", "valgrind", "gnuplot-nox",
]
BACKPORTS_PKGS = ["meson", "python3-pycotap"]


def installed(pkg):
    """Whether Debian package PKG is installed."""
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True)
    return "install ok installed" in p.stdout


def version_cmp(a, op, b):
    """dpkg's comparison of two Debian versions (op: lt, le, gt, ge, eq)."""
    return subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0


def installed_version(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def meson_ok():
    v = installed_version("meson")
    return bool(v) and version_cmp(v, "ge", MESON_MIN)


def mirror_uri():
    """The URI of the system's Debian archive, from the entry serving
    bookworm (deb822 .sources or one-line .list); QPD_DEBIAN_MIRROR
    overrides it."""
    if os.environ.get("QPD_DEBIAN_MIRROR"):
        return os.environ["QPD_DEBIAN_MIRROR"]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", open(path).read()):
            fields = {}
            for line in stanza.splitlines():
                if line.lstrip().startswith("#") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if (fields.get("enabled", "yes").lower() != "no" and fields.get("uris")
                    and "bookworm" in fields.get("suites", "").split()):
                return fields["uris"].split()[0]
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if not os.path.exists(path):
            continue
        for line in open(path):
            w = line.split()
            if not w or w[0] not in ("deb", "deb-src"):
                continue
            i = 1
            if w[i].startswith("["):
                while i < len(w) - 1 and not w[i].endswith("]"):
                    i += 1
                i += 1
            if i + 1 < len(w) and w[i + 1] == "bookworm":
                return w[i]
    raise HarnessError("no bookworm entry in /etc/apt; set QPD_DEBIAN_MIRROR=URI")


class Apt:
    """The private apt configuration under DIR (CACHE/apt)."""

    def __init__(self, cache_root):
        self.dir = os.path.join(cache_root, "apt")
        self.conf = os.path.join(self.dir, "apt.conf")
        self.sources = os.path.join(self.dir, "sources.list")
        self.changed = False

    def setup(self, *suites):
        """Write the configuration; source suites listed by earlier runs stay
        (dropping one would only cost another update when asked again)."""
        uri = mirror_uri()
        for d in ("lists/partial", "archives/partial"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        want = list(SRC_SUITES)
        old = open(self.sources).read() if os.path.exists(self.sources) else ""
        for s in list(suites) + [l.split()[-2] for l in old.splitlines()
                                 if l.startswith("deb-src")]:
            if s not in want:
                want.append(s)
        text = "deb [signed-by=%s] %s bookworm-backports main\n" % (KEYRING, uri)
        text += "".join("deb-src [signed-by=%s] %s %s main\n" % (KEYRING, uri, s) for s in want)
        self.changed = text != old
        if self.changed:
            with open(self.sources, "w") as f:
                f.write(text)
        with open(self.conf, "w") as f:
            f.write('Dir::Etc::SourceList "%s";\nDir::State::Lists "%s/lists";\n'
                    'Dir::Cache::archives "%s/archives";\nDir::Cache::pkgcache "";\n'
                    'Dir::Cache::srcpkgcache "";\nAcquire::Languages "none";\n'
                    'DPkg::Lock::Timeout "600";\n' % (self.sources, self.dir, self.dir))
        return self

    def env(self):
        return dict(os.environ, APT_CONFIG=self.conf, DEBIAN_FRONTEND="noninteractive")

    def update(self, force=False):
        """Refresh the private lists when missing, older than
        QPD_APT_MAX_AGE minutes (360), changed, or FORCE. A failed refresh
        with usable old lists is only a warning."""
        stamp = os.path.join(self.dir, "lists", ".qpd-updated")
        max_age = 60 * int(os.environ.get("QPD_APT_MAX_AGE", "360"))
        if (not force and not self.changed and os.path.exists(stamp)
                and time.time() - os.path.getmtime(stamp) < max_age):
            return
        log("apt-get update (private configuration)")
        logf = os.path.join(self.dir, "update.log")
        with open(logf, "w") as f:
            rc = subprocess.run(as_root(["apt-get", "update", "-qq"]), env=self.env(),
                                stdout=f, stderr=subprocess.STDOUT).returncode
        if rc == 0:
            open(stamp, "w").close()
        elif os.path.exists(stamp):
            log("WARNING: apt-get update failed, using older lists (%s)" % logf)
        else:
            raise HarnessError("apt-get update failed:\n" + open(logf).read()[-1500:])
        self.changed = False

    def install(self, pkgs, backports=False):
        what = "bookworm-backports " if backports else ""
        log("installing %s%s" % (what, " ".join(pkgs)))
        argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
        if backports:
            argv += ["-t", "bookworm-backports"]
        logf = os.path.join(self.dir, "install%s.log" % ("-bpo" if backports else ""))
        with open(logf, "w") as f:
            rc = subprocess.run(as_root(["env", "APT_CONFIG=" + self.conf,
                                         "DEBIAN_FRONTEND=noninteractive"] + argv + pkgs),
                                stdout=f, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise HarnessError("apt-get install %sfailed:\n%s" % (what, open(logf).read()[-2000:]))

    def madison_sources(self):
        """[(Debian version, suite)] of the qemu source packages listed."""
        out = capture(["apt-cache", "madison", "qemu"], env=self.env())
        rows = []
        for line in out.splitlines():
            cols = [c.strip() for c in line.split("|")]
            if len(cols) == 3 and cols[2].endswith(" Sources"):
                words = cols[2].split()
                rows.append((cols[1], words[-2].split("/")[0]))
        return rows


def ensure_host_packages(cache_root, extra=()):
    """Install whatever of HOST_PKGS (and EXTRA) and the backports is missing."""
    missing = [p for p in HOST_PKGS + list(extra) if not installed(p)]
    bpo = [p for p in BACKPORTS_PKGS if not (meson_ok() if p == "meson" else installed(p))]
    if not missing and not bpo:
        log("dependencies: all installed")
        return
    apt = Apt(cache_root).setup()
    apt.update(force=True)
    if missing:
        apt.install(missing)
    if bpo:
        apt.install(bpo, backports=True)
    if not meson_ok():
        raise HarnessError("meson >= %s still missing" % MESON_MIN)


def upstream_of(debver):
    """1:10.0.13+ds-0+deb13u1 -> 10.0.13"""
    v = debver.split(":", 1)[-1].rsplit("-", 1)[0]
    return v.split("+")[0]


def newest(versions):
    best = None
    for v in versions:
        if best is None or version_cmp(v, "gt", best):
            best = v
    return best


def resolve(apt, spec):
    """(Debian version, upstream version) of QEMU for SPEC: "" (trixie's,
    Debian 13's 10.0.x), 10.2 (the newest 10.2.x listed), 10.0.13 (that
    release), 1:10.2.2+ds-1 (exactly), or a suite (sid, forky)."""
    spec = spec or "trixie"
    suite = None if spec[0].isdigit() else spec
    apt.setup(*([suite] if suite else []))
    apt.update()
    rows = apt.madison_sources()
    if not rows:
        raise HarnessError("no qemu source package in the private apt lists")
    have = " ".join(v for v, _ in rows)
    if suite:
        deb = newest(v for v, s in rows if s == suite)
        what = "suite '%s' serves no qemu source" % suite
    elif any(c in spec for c in ":-+"):
        deb = newest(v for v, _ in rows if v in (spec, "1:" + spec))
        what = "qemu %s is not served" % spec
    else:
        deb = newest(v for v, _ in rows if upstream_of(v) == spec
                     or upstream_of(v).startswith(spec + "."))
        what = "no qemu %s.x is served" % spec
    if not deb:
        raise HarnessError("%s (have: %s)" % (what, have))
    return deb, upstream_of(deb)


def fetch_source(apt, cache_root, debver):
    """Debian's source of QEMU DEBVER, unpacked with Debian's patches into
    CACHE/src/qemu-V (cached; the stamp names the Debian version). apt
    checks the files against the signed Sources index, so dpkg-source's
    "cannot verify inline signature" is harmless."""
    version = upstream_of(debver)
    dst = os.path.join(cache_root, "src", "qemu-" + version)
    stamp = os.path.join(dst, ".qpd-debian-version")
    if os.path.exists(stamp) and open(stamp).read().strip() == debver:
        log("source: qemu %s cached in %s" % (debver, dst))
        return dst
    dl = os.path.join(cache_root, "src", "dl")
    os.makedirs(dl, exist_ok=True)
    dsc = os.path.join(dl, "qemu_%s.dsc" % debver.split(":", 1)[-1])
    if not os.path.exists(dsc):
        if not os.path.exists(apt.conf):
            apt.setup()
        log("source: downloading qemu %s" % debver)
        with open(os.path.join(dl, "download.log"), "w") as f:
            if subprocess.run(["apt-get", "source", "-qq", "--download-only", "qemu=" + debver],
                              cwd=dl, env=apt.env(), stdout=f, stderr=subprocess.STDOUT).returncode:
                raise HarnessError("apt-get source qemu=%s failed: %s" % (
                    debver, open(f.name).read()[-1500:]))
    log("source: unpacking into %s" % dst)
    # Unpack inside dl/: dpkg-source puts a copy of the orig tarball beside it.
    tmp = "qemu-%s.tmp" % version
    shutil.rmtree(dst, ignore_errors=True)
    shutil.rmtree(os.path.join(dl, tmp), ignore_errors=True)
    with open(os.path.join(dl, "unpack.log"), "w") as f:
        if subprocess.run(["dpkg-source", "-x", os.path.basename(dsc), tmp], cwd=dl,
                          stdout=f, stderr=subprocess.STDOUT).returncode:
            raise HarnessError("dpkg-source -x %s failed: %s" % (dsc, open(f.name).read()[-1500:]))
    with open(os.path.join(dl, tmp, ".qpd-debian-version"), "w") as f:
        f.write(debver + "\n")
    os.rename(os.path.join(dl, tmp), dst)
    return dst


_system_updated = False


def system_apt_update():
    """apt-get update of the system's lists, once per run."""
    global _system_updated
    if not _system_updated:
        log("apt-get update")
        if subprocess.run(as_root(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"]),
                          stdout=subprocess.DEVNULL).returncode:
            raise HarnessError("apt-get update failed")
        _system_updated = True


def candidate(pkg):
    """The version apt would install of PKG, or None."""
    out = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    return m.group(1) if m and m.group(1) != "(none)" else None


def fetch_deb(cache_dir, pkg, version):
    """PKG=VERSION downloaded and extracted (dpkg-deb -x, not installed)
    into CACHE_DIR once; returns the extracted tree."""
    dst = os.path.join(cache_dir, "%s_%s" % (pkg, version.replace(":", "_")))
    if os.path.exists(os.path.join(dst, ".complete")):
        return dst
    log("downloading %s %s" % (pkg, version))
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".dl.", dir=cache_dir)
    try:
        # apt drops root for downloads: let its user write the directory.
        try:
            shutil.chown(tmp, "_apt")
        except (LookupError, PermissionError, OSError):
            pass
        argv = ["apt-get", "download", "-qq", "%s=%s" % (pkg, version)]
        if subprocess.run(argv, cwd=tmp, capture_output=True).returncode:
            system_apt_update()       # stale lists name files the mirror dropped
            if subprocess.run(argv, cwd=tmp, capture_output=True).returncode:
                raise HarnessError("apt-get download %s=%s failed" % (pkg, version))
        root = os.path.join(tmp, "root")
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if subprocess.run(["dpkg-deb", "-x", debs[0], root]).returncode:
            raise HarnessError("dpkg-deb -x %s failed" % debs[0])
        open(os.path.join(root, ".complete"), "w").close()
        shutil.rmtree(dst, ignore_errors=True)
        os.rename(root, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
