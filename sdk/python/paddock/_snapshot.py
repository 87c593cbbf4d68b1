"""Packs a source directory as the tar.gz snapshot the server stores (honours .paddockignore)."""
import fnmatch
import hashlib
import io
import os
import posixpath
import tarfile
from typing import List, Optional, Tuple

from .exceptions import SnapshotException

MAX_BYTES = 100 * 1024 * 1024
MAX_ENTRIES = 20000
SDK_DIR = ".paddock-sdk"  # where the SDK is copied into a snapshot so runs can `import paddock`


class _Ignore:
    """gitignore-like rules: `#` comments, `!` negation, trailing `/` for directories, a leading or inner `/`
    anchors the pattern at the root, `**` matches across directories (via fnmatch)."""

    def __init__(self, lines: List[str]) -> None:
        self.rules: List[Tuple[bool, bool, bool, str]] = []
        for raw in lines:
            line = raw.rstrip("\n").rstrip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            if neg:
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line
            line = line.lstrip("/")
            if line:
                self.rules.append((neg, dir_only, anchored, line))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        out = False
        base = posixpath.basename(rel)
        for neg, dir_only, anchored, pat in self.rules:
            if dir_only and not is_dir:
                continue
            if anchored:
                hit = fnmatch.fnmatchcase(rel, pat) or (pat.startswith("**/") and fnmatch.fnmatchcase(rel, pat[3:]))
            else:
                hit = fnmatch.fnmatchcase(base, pat)
            if hit:
                out = not neg
        return out


def _check_link(rel: str, target: str) -> None:
    if not target:
        raise SnapshotException("symlink %s has an empty target" % rel)
    if target.startswith("/") or os.path.isabs(target):
        raise SnapshotException("symlink %s points to the absolute path %s; only links inside the source "
                                "directory can be uploaded" % (rel, target))
    parts = [p for p in target.split("/") if p not in ("", ".")]
    seen_name = False
    for p in parts:
        if p == "..":
            if seen_name:
                raise SnapshotException("symlink %s points to %s, which goes back up (..) after a name" % (rel, target))
        else:
            seen_name = True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if joined == ".." or joined.startswith("../"):
        raise SnapshotException("symlink %s points to %s, outside the source directory" % (rel, target))


def pack(source_dir: str, include_sdk: bool = True) -> Tuple[bytes, str]:
    """Returns (tar.gz bytes, hex sha256 digest)."""
    root = os.path.abspath(os.path.expanduser(source_dir))
    if not os.path.isdir(root):
        raise SnapshotException("source_directory %s is not a directory" % source_dir)
    ign_path = os.path.join(root, ".paddockignore")
    rules = _Ignore([])
    if os.path.isfile(ign_path):
        with open(ign_path, "r", encoding="utf-8") as f:
            rules = _Ignore(f.readlines())
    buf = io.BytesIO()
    count = 0
    total = 0
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        def add(path: str, arc: str) -> None:
            nonlocal count, total
            info = tf.gettarinfo(path, arcname=arc)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            count += 1
            if count > MAX_ENTRIES:
                raise SnapshotException("%s has more than %d files, directories and symlinks; exclude some with a "
                                        ".paddockignore" % (source_dir, MAX_ENTRIES))
            if info.isreg():
                total += info.size
                if total > MAX_BYTES:
                    raise SnapshotException("%s is larger than the snapshot limit of %d MiB; exclude files with a "
                                            ".paddockignore" % (source_dir, MAX_BYTES // (1024 * 1024)))
                with open(path, "rb") as f:
                    tf.addfile(info, f)
            else:
                tf.addfile(info)

        def walk(rel: str) -> None:
            full = os.path.join(root, rel) if rel else root
            for name in sorted(os.listdir(full)):
                r = posixpath.join(rel, name) if rel else name
                p = os.path.join(full, name)
                if os.path.islink(p):
                    if rules.ignored(r, False):
                        continue
                    _check_link(r, os.readlink(p))
                    add(p, r)
                elif os.path.isdir(p):
                    if rules.ignored(r, True) or (include_sdk and r == SDK_DIR):
                        continue
                    add(p, r)
                    walk(r)
                elif os.path.isfile(p):
                    if rules.ignored(r, False):
                        continue
                    add(p, r)
                # sockets, fifos, devices are skipped

        walk("")
        if include_sdk:
            pkg = os.path.dirname(os.path.abspath(__file__))
            for dirpath, dirnames, filenames in os.walk(pkg):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                relpkg = os.path.relpath(dirpath, os.path.dirname(pkg)).replace(os.sep, "/")
                if relpkg == "paddock":
                    add(dirpath, SDK_DIR)
                add(dirpath, SDK_DIR + "/" + relpkg)
                for fn in sorted(filenames):
                    if fn.endswith((".py", ".typed")):
                        add(os.path.join(dirpath, fn), "%s/%s/%s" % (SDK_DIR, relpkg, fn))
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _unused(x: Optional[str]) -> None:
    pass
