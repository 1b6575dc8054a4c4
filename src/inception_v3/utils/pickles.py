"""Telling a tampered file from a damaged one: the globals a pickle would import, and which of them run code.

A crash leaves a truncated or empty file; another tool's file holds objects we do not load (numpy arrays,
argparse namespaces). Neither imports `os.system` or `builtins.eval`: a pickle that does was written by
someone to run code on whoever loads it. Such a file is moved aside as evidence (`quarantine`), never
loaded, overwritten or deleted.

The globals are read by unpickling with every class and function replaced by an inert stub, so the
pickle machine itself resolves memo references, protocol-0 `INST`, `STACK_GLOBAL` and the several pickles
of PyTorch's legacy format; nothing the file names is imported or called.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

# Modules whose functions run commands or code, or open the way to them (imports, calls by name, nested loads).
CODE_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "shutil", "importlib", "_imp", "pkgutil",
    "runpy", "code", "codeop", "pty", "socket", "ctypes", "marshal", "webbrowser", "multiprocessing", "pickle",
    "_pickle", "dill", "pdb", "bdb", "pydoc", "profile", "cProfile", "trace", "timeit", "asyncio", "_thread",
    "commands", "popen2", "operator",
})  # fmt: skip
CODE_NAMES = frozenset({
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__", "builtins.getattr",
    "builtins.setattr", "builtins.delattr", "builtins.open", "builtins.globals", "builtins.locals",
    "builtins.vars", "builtins.input", "builtins.breakpoint", "types.FunctionType", "types.CodeType",
    "types.LambdaType", "types.MethodType", "types.ModuleType", "torch.load", "torch.jit.load",
    "torch.hub.load", "numpy.load",
})  # fmt: skip
CODE_PREFIXES = ("torch.hub.", "torch.utils.cpp_extension.", "torch.package.", "torch.serialization.load")


class _Stub:
    """What every global becomes while scanning: callable, buildable and fillable, and inert."""

    def _ignore(self, *args: Any, **kwargs: Any) -> None:
        """Take a call's arguments, a BUILD's state, a SETITEM's item or an APPEND's values; keep nothing."""

    __init__ = __setstate__ = __setitem__ = append = extend = _ignore

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()


class _Scanner(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, found: list[str]) -> None:
        super().__init__(stream)
        self.found = found

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names, as pickle maps them (protocol < 3)
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        self.found.append(f"{module}.{name}")
        return _Stub

    def persistent_load(self, pid: Any) -> Any:
        return _Stub()


def pickle_globals(data: bytes) -> list[str]:
    """`module.name` of every global the pickles in `data` would import (a torch zip file's data.pkl, or the
    pickles of a bare or legacy file one after another), in order; what cannot be parsed ends the scan."""
    if data[:4] == b"PK\x03\x04":  # torch's own test for its zip format
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = z.namelist()
                prefix = names[0].split("/", 1)[0] if names else ""
                data = z.read(f"{prefix}/data.pkl") if f"{prefix}/data.pkl" in names else b""
        except (zipfile.BadZipFile, OSError, KeyError):
            return []
    found: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            _Scanner(stream, found).load()
        except Exception:  # a damaged or hostile stream: the globals read so far count
            break
    return found


def code_globals(names: list[str]) -> list[str]:
    """Those of `names` (module.name) that would run code when a pickle imports and calls them."""

    def runs_code(name: str) -> bool:
        if name.rpartition(".")[0].split(".")[0] in CODE_MODULES:  # the module's top-level package
            return True
        return name.startswith(CODE_PREFIXES) or name.replace("__builtin__.", "builtins.") in CODE_NAMES

    return list(dict.fromkeys(n for n in names if runs_code(n)))


def quarantine(path: Path) -> Path | None:
    """Move `path` aside as evidence, to `NAME.tampered` (or `NAME.tampered-2`, ...: never over another file);
    None if it cannot be moved (it stays where it is, untouched)."""
    for k in range(1, 1000):
        target = path.with_name(f"{path.name}.tampered" + (f"-{k}" if k > 1 else ""))
        if target.exists():
            continue
        try:
            os.rename(path, target)
        except OSError:
            return None
        return target
    return None


def evidence(path: Path) -> list[Path]:
    """The copies of `path` moved aside by `quarantine`."""
    return sorted(path.parent.glob(f"{path.name}.tampered*")) if path.parent.is_dir() else []
