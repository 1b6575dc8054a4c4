"""Telling a tampered file from a damaged one: the globals a pickle would import, and which of them run code.

A crash leaves a truncated or empty file; another tool's file holds objects we do not load (numpy arrays,
argparse namespaces). Neither imports `os.system` or `builtins.eval`: a pickle that does was written by
someone to run code on whoever loads it. Such a file is moved aside as evidence (`quarantine`), never
loaded, overwritten or deleted.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path

# Modules whose functions run commands or code, or open the way to them (imports, calls by name).
CODE_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "code", "codeop", "pty", "socket",
    "ctypes", "marshal", "types", "webbrowser", "multiprocessing", "pickle", "_pickle", "dill", "pdb", "timeit",
    "asyncio", "_thread", "commands", "popen2", "operator",
})  # fmt: skip
CODE_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "getattr", "setattr", "delattr", "open",
                           "globals", "locals", "vars", "input", "breakpoint", "memoryview"})  # fmt: skip
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def pickle_globals(path: str | os.PathLike[str]) -> list[str]:
    """`module.name` of every global the pickle in `path` (a torch zip file's data.pkl, or a bare pickle)
    would import, in order; what cannot be parsed is left out."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl")]
                data = z.read(names[0]) if names else b""
        else:
            data = Path(path).read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: list[str] = []
    strings: list[str] = []  # the strings pushed so far (STACK_GLOBAL takes the last two)
    memo: dict[int, str] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _STRINGS:
                strings.append(str(arg))
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[int(str(arg))] = strings[-1]
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(str(arg)) in memo:
                strings.append(memo[int(str(arg))])
            elif op.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # genops raises several types on damaged bytes; the globals read so far count
        pass
    return found


def code_globals(path: str | os.PathLike[str]) -> list[str]:
    """The globals of the pickle in `path` that would run code on load (empty for a plain or damaged file)."""
    out = []
    for name in pickle_globals(path):
        module, _, attr = name.rpartition(".")
        root = module.split(".")[0]
        if root in CODE_MODULES or (root in ("builtins", "__builtin__") and attr in CODE_BUILTINS):
            out.append(name)
    return out


def quarantine(path: Path) -> Path:
    """Move `path` aside as evidence, to `NAME.tampered` (or `NAME.tampered-2`, ...: never over another file)."""
    for k in range(1, 1000):
        target = path.with_name(f"{path.name}.tampered" + (f"-{k}" if k > 1 else ""))
        if not target.exists():
            os.rename(path, target)
            return target
    raise OSError(f"too many quarantined copies of {path}")
