"""Embedded metadata as ExifTool reads it (ImageKit's ``embeddedMetadata`` follows ExifTool):
Debian's ``exiftool`` kept running in batch mode (``-stay_open``), one per media worker, so a
file costs a request on a pipe rather than a Perl start.

Runs only in the media workers (``app.upload_api.media``): ExifTool parses untrusted files, so
it lives inside the worker's bounds. It inherits the worker's address-space limit, dies with
the worker (util-linux's ``setpriv --pdeathsig``: a worker killed for its time takes its
ExifTool along; set by ``setpriv`` rather than between fork and exec, which a worker's libvips
threads make unsafe), and a read that does not end is the worker's timeout. Without ExifTool
installed (a first run on a bare machine) the reader answers None and the upload API reads
metadata with its own libraries.

What is kept: every tag ExifTool reports, by ExifTool's name (its own choice among duplicates),
with ExifTool's values (``-n``: numbers as numbers, no printed conversions), except its System
group (the server's path, file times and permissions of a temporary file) and its own version,
and the binary blobs it only describes ("(Binary data ...)").
"""

import json
import os
import shutil
import subprocess
from typing import IO, Any, Final

#: ExifTool's options for each file: JSON, values unconverted, names without groups (ExifTool
#: resolves duplicates), the server-side groups left out, file names as UTF-8.
_OPTIONS: Final = (
    *("-j", "-n"),
    *("-x", "System:all", "-x", "ExifTool:all"),
    *("-charset", "filename=utf8"),
)
_READY: Final = b"{ready}\n"


class ExifTool:
    """One ``exiftool -stay_open`` process, started on first use and again after a failure."""

    def __init__(self, program: str | None = None) -> None:
        self.program = program or shutil.which("exiftool")
        #: Killed when its parent (the worker) dies.
        setpriv = shutil.which("setpriv")
        self._prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        self._process: subprocess.Popen[bytes] | None = None

    def _started(self, program: str) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(  # noqa: S603 - a fixed program, no shell
                [*self._prefix, program, "-stay_open", "True", "-@", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
            )
        return self._process

    def read(self, path: str) -> dict[str, Any] | None:
        """The tags of ``path``; None when ExifTool is not installed or failed on it."""
        if self.program is None or "\n" in path:
            return None
        process = self._started(self.program)
        stdin, stdout = process.stdin, process.stdout
        if stdin is None or stdout is None:  # never: both are pipes
            return None
        try:
            stdin.write("\n".join([*_OPTIONS, path, "-execute", ""]).encode())
            stdin.flush()
            answer = _until_ready(stdout)
        except OSError:  # the process died: the next file starts another
            self.close()
            return None
        if answer is None:
            self.close()
            return None
        try:
            found = json.loads(answer) if answer.strip() else []
        except ValueError:
            return None
        if not found or not isinstance(found[0], dict):
            return None
        return {
            name: value
            for name, value in found[0].items()
            if name != "SourceFile"
            and not (isinstance(value, str) and value.startswith("(Binary data "))
        }

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.write(b"-stay_open\nFalse\n")
                process.stdin.close()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _until_ready(stdout: IO[bytes]) -> bytes | None:
    """What ExifTool wrote before its ``{ready}`` line; None if it ended first."""
    lines: list[bytes] = []
    while True:
        line = stdout.readline()
        if not line:
            return None
        if line == _READY:
            return b"".join(lines)
        lines.append(line)


#: This process's ExifTool (a media worker's).
_READER = ExifTool()


def embedded(path: str, extension: str) -> dict[str, Any] | None:
    """``path``'s embedded metadata as ExifTool reports it for a file of this (canonical)
    extension; None without ExifTool. ExifTool types a file partly by its name (a DNG or an
    ARW is TIFF inside), so a file stored without it is read through a link that has it."""
    if _READER.program is None:
        return None
    if path.endswith(f".{extension}"):
        return _READER.read(path)
    named = f"{path}.{extension}"
    try:
        os.link(path, named)
    except OSError:  # no link here (a read-only or foreign file system): read it as it is
        return _READER.read(path)
    try:
        return _READER.read(named)
    finally:
        os.unlink(named)
