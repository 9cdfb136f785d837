"""What every phase is handed: the QEMU version, its two builds, where
logs go, and whether the full matrix was asked for."""
import os
from dataclasses import dataclass, field

from .builds import JOBS, Cache


@dataclass
class Context:
    version: str                    # upstream's version, e.g. 10.0.13
    debian_version: str             # Debian's, e.g. 1:10.0.13+ds-0+deb13u1
    builds: dict                    # {"upstream": Build, "qpd": Build}
    logdir: str                     # this run's logs and tables
    full: bool = False              # --full: every case, longer runs
    cache: Cache = field(default_factory=Cache)
    jobs: int = JOBS

    @property
    def upstream(self):
        return self.builds["upstream"]

    @property
    def qpd(self):
        return self.builds["qpd"]

    def phase_dir(self, name):
        """The log directory of phase NAME (created)."""
        d = os.path.join(self.logdir, name)
        os.makedirs(d, exist_ok=True)
        return d
