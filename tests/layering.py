#!/usr/bin/env python3
"""The dependency rule between the library's folders, checked over every #include line.

    base <- scheduler <- engine;  base <- io;  engine, io <- api <- cli

A folder may include the headers of the folders its arrow comes from (and its own); cli/ may
include its own headers and the public header, chunkmeans.h, alone. Third-party headers that
belong to one layer stay there: libtiff and zstd in io/, OpenMP in scheduler/, MPI in base/. tests/ and
benchmarks/ may reach anything.

    layering.py SOURCE_DIR     prints every include that breaks the rule; exit 1 if any
    layering.py --self-test    shows that the check finds a wrong include of each kind
"""
import pathlib
import re
import sys
import tempfile

FOLDERS = ("base", "scheduler", "engine", "io", "api", "cli")
MAY_USE = {
    "base": {"base"},
    "scheduler": {"base", "scheduler"},
    "engine": {"base", "scheduler", "engine"},
    "io": {"base", "io"},
    "api": {"base", "scheduler", "engine", "io", "api"},
    "cli": {"cli"},
}
# Headers of other folders that a folder may include by name, beyond MAY_USE.
PUBLIC = {"cli": {"chunkmeans.h"}}
# Headers made by the build, and the folder they belong to.
GENERATED = {"cm_version.h": "base"}
# Third-party headers that only one folder may include.
THIRD_PARTY = {"tiffio.h": "io", "tiff.h": "io", "zstd.h": "io", "omp.h": "scheduler", "mpi.h": "base"}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def owners(root):
    """The folder of every project header, by file name."""
    own = dict(GENERATED)
    for folder in FOLDERS:
        for h in (root / folder).glob("*.h"):
            own[h.name] = folder
    return own


def violations(root):
    root = pathlib.Path(root)
    own = owners(root)
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*.[ch]")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                quoted, name = m.group(1) == '"', m.group(2)
                base = name.rsplit("/", 1)[-1]
                where = f"{path.relative_to(root)}:{n}: {m.group(0).strip()}"
                if base in THIRD_PARTY and THIRD_PARTY[base] != folder:
                    found.append(f"{where}: {base} belongs to {THIRD_PARTY[base]}/ alone")
                elif quoted and base not in own:
                    found.append(f"{where}: not a header of any folder")
                elif quoted and "/" in name:
                    found.append(f"{where}: include headers by name, not by path")
                elif quoted and own[base] not in MAY_USE[folder] \
                        and base not in PUBLIC.get(folder, ()):
                    found.append(f"{where}: {folder}/ may not use {own[base]}/")
    return found


def self_test():
    """A tree with one wrong include of each kind, and the same tree put right."""
    files = {
        "base/cm_base.h": "",
        "scheduler/cm_graph.h": '#include "cm_base.h"\n',
        "engine/cm_engine.h": '#include "cm_graph.h"\n',
        "io/cm_io.h": '#include "cm_base.h"\n',
        "api/chunkmeans.h": '#include "cm_engine.h"\n#include "cm_io.h"\n',
        "cli/cli.h": '#include "chunkmeans.h"\n',
        "engine/fit.c": '#include "cm_io.h"\n',            # engine may not use io
        "io/read.c": '#include "cm_graph.h"\n',            # io may not use scheduler
        "cli/cmd_run.c": '#include "cli.h"\n#include "cm_engine.h"\n',  # cli: chunkmeans.h only
        "engine/tile.c": "#include <tiffio.h>\n",          # libtiff is io's
        "scheduler/x.c": '#include "../io/cm_io.h"\n',     # by path, and a wrong layer
    }
    wrong = 5
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        found = violations(root)
        for v in found:
            print("found, as it should:", v)
        if len(found) != wrong:
            print(f"self-test: expected {wrong} wrong includes, found {len(found)}")
            return 1
        for name in ("engine/fit.c", "io/read.c", "engine/tile.c", "scheduler/x.c"):
            (root / name).write_text('#include "cm_base.h"\n')
        (root / "cli/cmd_run.c").write_text('#include "cli.h"\n#include "chunkmeans.h"\n')
        found = violations(root)
        if found:
            print("self-test: a tree that keeps the rule was refused:", *found, sep="\n  ")
            return 1
    print(f"self-test: all {wrong} wrong includes found; the corrected tree passes")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = violations(argv[1])
    for v in found:
        print(v)
    print(f"{len(found)} include(s) break the dependency rule" if found
          else "every include keeps the dependency rule")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
